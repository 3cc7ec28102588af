"""The served workbench app: incident list with filters, the report of one incident, overdue and
open action items, the cross-incident metrics and the review meeting's pack, as five tabs.

From Python (what ``workbench serve`` calls)::

    from workbench.reports.app import serve
    serve(workspace, port=5006)                      # http://127.0.0.1:5006/

Or with Panel's own server (this file is also a ``panel serve`` script)::

    panel serve reports/app.py --address 127.0.0.1 --port 5006 --args WORKSPACE [INCIDENT_ID]

:func:`serve` also registers the receivers and the REST API (:mod:`workbench.reports.api`, token
checked, beside the UI); ``panel serve reports/app.py`` serves the UI only.

The app only reads, through the core's API: each browser session opens the knowledge base (and,
for a report, the telemetry store) when it needs a table. Data strings reach the page as text
only: the incident list is a Tabulator (its default ``plaintext`` formatter escapes cells), the
filters and the incident picker are Bokeh ``Select`` widgets (option labels become text nodes),
and every other table goes through :mod:`workbench.reports.safe`. The browser test
(tests/test_app_browser.py) checks this with hostile titles, services, rationales and action items.

Basic auth: with ``basic_auth=PASSWORD`` (and a ``cookie_secret``) Panel's server redirects every
request without a valid signed cookie to ``/login``; the app, its websocket and its data are
only reachable after logging in (any user name with the password). The login and logout pages
here replace Panel's, which load their logo and icon from cdn.holoviz.org; the password check is
:mod:`workbench.reports.auth`'s (constant time, failed attempts limited per client address).
"""
from __future__ import annotations

import atexit
import os
import secrets
import shutil
import socket
import ssl
import sys
import tempfile
from pathlib import Path
from typing import Any

import panel as pn
from tornado.ioloop import IOLoop

from workbench.errors import WorkbenchError
from workbench.workspace import Workspace, open_workspace
from workbench.inbound.service import Inbound
from workbench.reports import api, auth, safe
from workbench.reports.app_views import ActionItemsOverview, MetricsOverview, filter_options, incident_frame
from workbench.reports.charts import WIDTH
from workbench.reports.safe import fmt
from workbench.reports.report import Report
from workbench.reports.review import ReviewTab

__all__ = ["app", "check_exposure", "serve", "websocket_origins", "ServeError", "WorkbenchApp", "TABS"]

#: Addresses that only this machine reaches; any other needs a password (and TLS or a proxy).
LOOPBACK = ("127.0.0.1", "localhost", "::1")
#: Shortest password the login form accepts.
MIN_PASSWORD = 12


class ServeError(WorkbenchError):
    """The app would be exposed without the protection its address needs."""

#: Tab titles, in order.
TABS = ("Incidents", "Report", "Action items", "Metrics", "Review")
_TABLE_CSS = ".tabulator-row { cursor: pointer; }"
_PAGE_CSS = """
* { box-sizing: border-box; margin: 0; padding: 0; }
html, body { height: 100%; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328; background: #f6f8fa; }
.wrap { display: flex; align-items: center; justify-content: center; height: 100%; }
form, .box { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: 28px; width: 340px; }
h1 { font-size: 20px; margin-bottom: 4px; }
p { color: #57606a; margin-bottom: 14px; font-size: 14px; }
.error { color: #a40e26; font-weight: 600; }
input { display: block; width: 100%; padding: 9px; margin-bottom: 12px; border: 1px solid #d0d7de; border-radius: 4px; }
button, a.button { display: block; width: 100%; padding: 9px; border: 0; border-radius: 4px; background: #1f6feb;
                   color: #fff; font-size: 14px; text-align: center; text-decoration: none; cursor: pointer; }
"""
#: Jinja templates of the login and logout pages (Panel renders them without autoescape, so every
#: variable is escaped explicitly). Nothing is loaded from outside the server. The error text comes
#: from the URL (``/login?error=...``), so the page shows a fixed message instead of echoing it.
LOGIN_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Postmortem workbench · sign in</title><link rel="icon" href="data:,"><style>""" + _PAGE_CSS + """</style></head>
<body><div class="wrap">
<form class="login-form" action=".{{ login_endpoint|e }}" method="post" data-testid="login-form">
<h1>Postmortem workbench</h1><p>Sign in to read the incidents of this workspace.</p>
{% if errormessage %}<p class="error" data-testid="login-error">Wrong user name or password.</p>{% endif %}
<input name="username" type="text" autocapitalize="off" autocorrect="off" autocomplete="username" placeholder="user name" aria-label="user name">
<input name="password" type="password" autocomplete="current-password" placeholder="password" aria-label="password">
<button type="submit">Sign in</button>
</form></div></body></html>
"""
LOGOUT_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Postmortem workbench · signed out</title>
<link rel="icon" href="data:,"><style>""" + _PAGE_CSS + """</style></head>
<body><div class="wrap"><div class="box"><h1>Signed out</h1><p>You have left the postmortem workbench.</p>
<a class="button" href=".{{ LOGIN_ENDPOINT|e }}">Sign in again</a></div></div></body></html>
"""


def _workspace(workspace: Workspace | str | os.PathLike[str]) -> Workspace:
    return open_workspace(workspace)


class WorkbenchApp:
    """One browser session's app (build it with :func:`app`).

    Attributes
    ----------
    filters : dict of panel.widgets.Select
        ``status``, ``severity``, ``service``, ``label`` (value ``""`` = any; a label is a
        ``(key, value)`` pair), populated from the incidents in the knowledge base.
    table : panel.widgets.Tabulator
        The incidents matching the filters (:func:`~workbench.reports.app_views.incident_frame`);
        clicking a row opens that incident's report.
    picker : panel.widgets.Select
        The incident shown in the Report tab, above the tabs (the layout's first item); picking
        one switches to the Report tab.
    tabs : panel.Tabs
        :data:`TABS`; only the active tab is rendered (and each is read when first shown).
    """

    def __init__(self, workspace: Workspace, incidents: list[Any], incident_id: str | None = None,
                 jobs: dict[str, Any] | None = None):
        self.workspace = workspace
        self.total = len(incidents)
        options = filter_options(incidents)
        self.filters = {name: pn.widgets.Select(label=name.capitalize(), options=opts, value="", width=220)
                        for name, opts in options.items()}
        # "textarea" wraps long values; like the default "plaintext" it escapes the cell (never "html")
        wrap = {"type": "textarea"}
        self.table = pn.widgets.Tabulator(incident_frame(incidents, jobs or {}), disabled=True, show_index=False, selectable=False,
                                          pagination="local", page_size=25, layout="fit_columns",
                                          formatters={"title": wrap, "services": wrap, "labels": wrap, "jobs": wrap},
                                          titles={"severity": "sev", "started": "started (UTC)",
                                                  "time to detect": "detect", "time to resolve": "resolve"},
                                          widths={"id": 145, "title": 225, "severity": 65, "status": 80,
                                                  "services": 125, "started": 125, "time to detect": 85,
                                                  "time to resolve": 85, "jobs": 110},
                                          sizing_mode="stretch_width", stylesheets=[_TABLE_CSS])
        self.table.on_click(self._open_row)
        self.count = safe.pane(self._count_markup(self.total))
        for widget in self.filters.values():
            widget.param.watch(self._refresh, "value")
        newest = sorted(incidents, key=lambda i: (i.started, i.id), reverse=True)
        self.picker = pn.widgets.Select(label="Incident report", options={f"{i.id} · {i.title}": i.id for i in newest},
                                        value=incident_id or newest[0].id, width=600, margin=(5, 10, 12, 10))
        self.picker.param.watch(self._picked, "value")
        report = pn.param.ParamFunction(pn.bind(self._report, self.picker), lazy=True, loading_indicator=True)
        self.tabs = pn.Tabs(
            (TABS[0], pn.Column(pn.Row(*self.filters.values()), self.count, self.table, sizing_mode="stretch_width")),
            (TABS[1], report),
            (TABS[2], pn.param.ParamFunction(pn.bind(self._action_items), lazy=True, loading_indicator=True)),
            (TABS[3], pn.param.ParamFunction(pn.bind(self._metrics), lazy=True, loading_indicator=True)),
            (TABS[4], pn.param.ParamFunction(pn.bind(self._review), lazy=True, loading_indicator=True)),
            dynamic=True, active=1 if incident_id else 0, sizing_mode="stretch_width")

    # ------------------------------------------------------------------ callbacks

    def _count_markup(self, shown: int) -> safe.Markup:
        return safe.section(fmt('<p><b data-testid="incident-count">{0}</b> of {1} incidents. Click a row to open '
                                'its report.</p>', shown, self.total), "incident-list")

    def selected(self) -> list[Any]:
        """The incidents matching the filters (read through ``KnowledgeBase.list_incidents``)."""
        values = {name: w.value or None for name, w in self.filters.items()}
        label = values.pop("label")
        with self.workspace.knowledge_base() as kb:
            return kb.list_incidents(**values, label=None if label is None else {label[0]: label[1]})

    def _refresh(self, *_events: Any) -> None:
        incidents = self.selected()
        with self.workspace.knowledge_base() as kb:
            jobs = kb.latest_jobs([i.id for i in incidents])
        self.table.value = incident_frame(incidents, jobs)
        self.count.object = self._count_markup(len(incidents))

    def _open_row(self, event: Any) -> None:
        self.open(self.table.value["id"].iloc[event.row])

    def _picked(self, _event: Any) -> None:
        self.tabs.active = TABS.index("Report")

    def open(self, incident_id: str) -> None:
        """Show the report of ``incident_id`` in the Report tab."""
        self.picker.value = incident_id
        self.tabs.active = TABS.index("Report")

    # ------------------------------------------------------------------ tab contents

    def _report(self, incident_id: str) -> pn.viewable.Viewable:
        return Report.from_workspace(self.workspace, incident_id).__panel__()

    def _action_items(self) -> pn.viewable.Viewable:
        with self.workspace.knowledge_base() as kb:
            return ActionItemsOverview.from_knowledge_base(kb).__panel__()

    def _metrics(self) -> pn.viewable.Viewable:
        with self.workspace.knowledge_base() as kb:
            return MetricsOverview.from_knowledge_base(kb).__panel__()

    def _review(self) -> pn.viewable.Viewable:
        return ReviewTab(self.workspace, [v for v in self.filters["service"].options.values() if v]).__panel__()

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.picker, self.tabs, sizing_mode="stretch_width", max_width=WIDTH + 40,
                         styles={"margin": "0 auto", "padding": "0 8px"})


def app(workspace: Workspace | str | os.PathLike[str], incident_id: str | None = None) -> pn.viewable.Viewable:
    """The tabbed app over ``workspace``: Incidents, Report, Action items, Metrics, Review.

    Parameters
    ----------
    workspace : Workspace or path
    incident_id : str, optional
        Opens on the Report tab with this incident (default: the Incidents tab; the Report tab
        then shows the most recent incident).

    Raises
    ------
    NotFoundError
        ``incident_id`` is not in the knowledge base.
    """
    ws = _workspace(workspace)
    with ws.knowledge_base() as kb:
        incidents = kb.list_incidents()
        jobs = kb.latest_jobs()  # the job column: queued / running / done / failed with the error
        if incident_id is not None:
            kb.get_incident(incident_id)  # NotFoundError names the id and the database
    if not incidents:
        return safe.pane(safe.section(fmt("<p>No incidents in this workspace yet: <code>workbench ingest</code> "
                                          "one.</p>"), "no-incidents"))
    return pn.panel(WorkbenchApp(ws, incidents, incident_id, jobs))


def websocket_origins(address: str, port: int) -> list[str]:
    """``host:port`` origins whose pages may open the app's websocket: the bound address,
    ``localhost`` and ``127.0.0.1``, and for a wildcard address (``0.0.0.0``, ``::``) this
    machine's host name and fully qualified name (the names people browse to)."""
    hosts = [address, "localhost", "127.0.0.1"]
    if address in ("", "0.0.0.0", "::"):
        hosts = ["localhost", "127.0.0.1", socket.gethostname(), socket.getfqdn()]
    return list(dict.fromkeys(f"[{h}]:{port}" if ":" in h else f"{h.lower()}:{port}" for h in hosts if h))


def _auth_pages() -> Path:
    """A private temporary folder holding ``login.html`` and ``logout.html`` (Panel reads its
    templates from files, once, when it builds the server)."""
    folder = Path(tempfile.mkdtemp(prefix="workbench-auth-"))  # mode 0700
    (folder / "login.html").write_text(LOGIN_PAGE, encoding="utf-8")
    (folder / "logout.html").write_text(LOGOUT_PAGE, encoding="utf-8")
    return folder


def check_exposure(address: str, *, basic_auth: str | None = None, tls_cert: Any = None, tls_key: Any = None,
                   allow_plain_http: bool = False) -> dict[str, str]:
    """Refuse to expose the app beyond this machine without protection; return the TLS options.

    Anything but loopback needs a password of at least :data:`MIN_PASSWORD` characters, and TLS
    (``tls_cert`` with ``tls_key``, checked to load) unless ``allow_plain_http`` says a proxy in
    front terminates it: otherwise the login form would send the password in clear text.

    Raises
    ------
    ServeError
        Naming the option (as the ``workbench serve`` flag) that is missing or wrong.
    """
    if address not in LOOPBACK and not basic_auth:
        raise ServeError(f"binding to {address} exposes the workbench beyond this machine; give --basic-auth FILE "
                         f"(basic_auth=PASSWORD)")
    if basic_auth is not None and len(basic_auth) < MIN_PASSWORD:
        raise ServeError(f"the basic-auth password must have at least {MIN_PASSWORD} characters")
    if (tls_cert is None) != (tls_key is None):
        raise ServeError("give both --tls-cert and --tls-key (tls_cert, tls_key), or neither")
    if tls_cert is not None:
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certfile=str(tls_cert), keyfile=str(tls_key))
        except (OSError, ssl.SSLError) as exc:
            raise ServeError(f"cannot load the certificate {tls_cert} with the key {tls_key}: {exc}") from None
        return {"ssl_certfile": str(tls_cert), "ssl_keyfile": str(tls_key)}
    if address not in LOOPBACK and not allow_plain_http:
        raise ServeError(f"binding to {address} without TLS sends the password in clear text; give --tls-cert and "
                         f"--tls-key, or --allow-plain-http when a proxy in front terminates TLS")
    return {}


def serve(workspace: Workspace | str | os.PathLike[str], *, incident_id: str | None = None, port: int = 5006,
          address: str = "127.0.0.1", show: bool = False, basic_auth: str | None = None, tls_cert: Any = None,
          tls_key: Any = None, allow_plain_http: bool = False, trusted_proxies: Any = (), **kwargs: Any) -> Any:
    """Serve :func:`app` with Panel's server (blocking) on ``address:port``; returns the server.

    :func:`check_exposure` decides first whether ``address`` may be served with the given
    protection. ``basic_auth=PASSWORD`` puts every page behind a login form (the workbench's own,
    unless ``login_template`` is given; ``login_throttle=`` a
    :class:`workbench.reports.auth.LoginThrottle` to tune the limit; ``trusted_proxies`` the
    addresses or CIDR networks of reverse proxies whose ``X-Forwarded-For`` names the client the
    limit counts, :func:`workbench.reports.auth.client_address`); ``tls_cert``/``tls_key``
    serve HTTPS. Other ``kwargs`` go to :func:`panel.serve`: ``threaded=True`` returns at once;
    ``websocket_origin`` replaces :func:`websocket_origins` (so does the ``BOKEH_ALLOW_WS_ORIGIN``
    environment variable, e.g. for a name the machine is reached by through a proxy).

    Raises
    ------
    ServeError
        The address needs protection that is not given.
    NotFoundError
        ``incident_id`` is not in the knowledge base (checked before the server starts).
    """
    kwargs.update(check_exposure(address, basic_auth=basic_auth, tls_cert=tls_cert, tls_key=tls_key,
                                 allow_plain_http=allow_plain_http))
    ws = _workspace(workspace)
    if incident_id is not None:
        with ws.knowledge_base() as kb:
            kb.get_incident(incident_id)
    kwargs.setdefault("title", "Postmortem workbench")
    kwargs.setdefault("websocket_origin", websocket_origins(address, port))
    if basic_auth:
        if "cookie_secret" not in kwargs:
            try:
                kwargs["cookie_secret"] = auth.cookie_secret(ws.root, basic_auth)
            except OSError as exc:  # a read-only workspace: logins then last until the server stops
                print(f"workbench serve: cannot keep the login key ({exc}); a restart will log everyone out",
                      file=sys.stderr)
                kwargs["cookie_secret"] = secrets.token_hex(32)
        if not {"login_template", "logout_template"} & set(kwargs):
            pages = _auth_pages()
            kwargs.update(login_template=str(pages / "login.html"), logout_template=str(pages / "logout.html"))
            if kwargs.get("threaded"):
                atexit.register(shutil.rmtree, pages, True)
            else:
                # runs once the loop starts, i.e. after pn.serve built the server (and read the pages);
                # a server stopped by a signal would never reach an atexit handler
                IOLoop.current().add_callback(shutil.rmtree, pages, True)
        # Our provider instead of Panel's: constant-time check, failed attempts limited per address.
        kwargs["auth_provider"] = auth.provider(basic_auth, login_template=kwargs.pop("login_template", None),
                                                logout_template=kwargs.pop("logout_template", None),
                                                throttle=kwargs.pop("login_throttle", None),
                                                trusted_proxies=trusted_proxies)
    # The receivers and REST API beside the UI (token-checked handlers, reports/api.py);
    # ``inbound=`` hands in one built with other settings (tests, embedding).
    inbound = kwargs.pop("inbound", None)
    if inbound is None:
        inbound = Inbound(ws)
        atexit.register(inbound.close)
    kwargs["extra_patterns"] = [*api.routes(inbound), *kwargs.get("extra_patterns", [])]
    return pn.serve({"/": lambda: app(ws, incident_id)}, port=port, address=address, show=show, **kwargs)


if __name__.startswith("bokeh_app"):  # run by `panel serve reports/app.py --args WORKSPACE [INCIDENT_ID]`
    if len(sys.argv) < 2:
        raise SystemExit("usage: panel serve reports/app.py --args WORKSPACE [INCIDENT_ID]")
    app(*sys.argv[1:3]).servable(title="Postmortem workbench")
