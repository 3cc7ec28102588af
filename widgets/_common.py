"""What every review widget shares: the status line, escaping, opening the store, small parsers.

Strings from telemetry and from users are data, never markup: anything shown in an
``ipywidgets.HTML`` goes through the one escaping kit of both UI layers,
:mod:`workbench.reports.safe` (:func:`escape`, :func:`table`, :func:`badge` here are its). Widget *values* (a
``Text``, a ``Dropdown`` label, a ``Button`` description) are drawn as text by ipywidgets 8
(``description_allow_html`` is off by default), so they need no escaping.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import ipywidgets as w

from workbench.workspace import Workspace, open_workspace  # noqa: F401 (the widgets' import)
from workbench.errors import ConflictError, NotFoundError, WorkbenchError
from workbench.reports import safe, text

#: Colours of the status line per kind of message.
_STATUS_STYLE = {"ok": "color:#116329;background:#dafbe1", "error": "color:#a40e26;background:#ffebe9",
                 "warning": "color:#7d4e00;background:#fff8c5", "info": "color:#57606a;background:#f6f8fa"}
#: Styles shared by the cards and tables the widgets draw.
CSS = ("<style>.wbw-table{border-collapse:collapse;font-size:12px;margin:2px 0 6px 0}"
       ".wbw-table td,.wbw-table th{border:1px solid #d0d7de;padding:2px 6px;text-align:left;vertical-align:top;"
       "white-space:pre-wrap;overflow-wrap:anywhere}.wbw-table th{background:#f6f8fa}"
       ".wbw-table td.nw{white-space:nowrap;overflow-wrap:normal}"
       ".wbw-badge{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;background:#eaeef2;"
       "margin-right:4px}.wbw-confirmed{background:#dafbe1;color:#116329}.wbw-rejected{background:#eaeef2;"
       "color:#57606a}.wbw-proposed{background:#fff8c5;color:#7d4e00}.wbw-muted{color:#57606a}"
       ".wbw-text{white-space:pre-wrap;overflow-wrap:anywhere}</style>")
#: Errors a save shows in the status line instead of raising: the store checked before writing,
#: so nothing was written. Stale ones (another writer won, or the record is gone) also reload.
SAVE_ERRORS = (WorkbenchError, ValueError)
STALE_ERRORS = (ConflictError, NotFoundError)


# The widgets assemble their HTML as plain ``str`` (f-strings of escaped parts), so these return
# ``str``: a :class:`~workbench.reports.safe.Markup` on the right of ``"<b>" + ...`` would escape
# the literal markup on its left (``Markup.__radd__`` treats it as data).

def escape(value: Any) -> str:
    """``value`` as HTML text (:func:`workbench.reports.safe.escape`); ``""`` for None."""
    return str(safe.escape(value))


def table(rows: Iterable[Sequence[Any]], headers: Sequence[str], empty: str = "none",
          nowrap: Sequence[int] = ()) -> str:
    """An HTML table whose every cell and header is escaped (:func:`workbench.reports.safe.table`);
    a cell that is HTML the widget built (a badge) is passed as :class:`~workbench.reports.safe.Markup`;
    columns in ``nowrap`` (times, numbers, badges) do not wrap."""
    return str(safe.table(rows, headers, empty, nowrap, cls="wbw-table", empty_cls="wbw-muted", empty_tag="span"))


def badge(text_: Any, kind: str = "") -> safe.Markup:
    """A small rounded label (:func:`workbench.reports.safe.badge` with the widgets' classes); Markup,
    so it can be a cell of :func:`table`."""
    return safe.badge(text_, f"wbw-badge wbw-{kind}")


def when(value: Any) -> str:
    """A time as ``2026-11-02 14:03 UTC`` (seconds when there are any); ``""`` for None."""
    return "" if text.missing(value) else text.when(value, seconds=None)


def static_bundle(widget: w.Widget, markup: str, plain: str, **kwargs: Any) -> dict[str, Any]:
    """The display of a live widget plus its static rendering.

    JupyterLab shows the widget view while the kernel that made it runs; wherever it cannot (a
    saved notebook opened later, nbconvert, a viewer without widgets) the ``text/html`` part is
    what shows, and ``text/plain`` says what the cell is instead of the widget's repr
    (:mod:`workbench.postmortem.outputs` keeps only those two in an executed notebook).
    """
    bundle = widget._repr_mimebundle_(**kwargs)
    data = dict(bundle[0] if isinstance(bundle, tuple) else bundle or {})
    data["text/html"] = f'<div class="{safe.NO_MATH}">{markup}</div>'  # "$...$" in data is not math
    data["text/plain"] = plain
    return data


class Status:
    """One line telling the user what happened (validation message, conflict, saved).

    Attributes
    ----------
    widget : ipywidgets.HTML
        The escaped message.
    kind : str
        ``""`` (nothing to say), ``ok``, ``error``, ``warning`` or ``info``.
    text : str
        The last message as plain text (what tests and scripts read).
    """

    def __init__(self) -> None:
        self.widget = w.HTML(value="")
        self.kind = ""
        self.text = ""

    def show(self, kind: str, text: str) -> None:
        self.kind, self.text = kind, str(text)
        style = _STATUS_STYLE.get(kind, _STATUS_STYLE["info"])
        self.widget.value = (f'<div style="{style};padding:3px 8px;border-radius:4px;white-space:pre-wrap">'
                             f"{escape(text)}</div>")

    def ok(self, text: str) -> None:
        self.show("ok", text)

    def error(self, text: str) -> None:
        self.show("error", text)

    def warning(self, text: str) -> None:
        self.show("warning", text)

    def info(self, text: str) -> None:
        self.show("info", text)

    def clear(self) -> None:
        self.kind = self.text = ""
        self.widget.value = ""


def blank(value: Any) -> bool:
    return value is None or not str(value).strip()


def conflict_message(exc: Exception) -> str:
    """What the user reads when the store refused a stale or vanished record."""
    if isinstance(exc, ConflictError):
        return (f"Not saved: someone else changed this record since you loaded it ({exc}). "
                f"The view was reloaded with the current version; check it and decide again.")
    return f"Not saved: the record no longer exists ({exc}). The view was reloaded."


def in_kernel() -> bool:
    """True inside a running IPython kernel (a notebook), where output can be displayed."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipywidgets
        return False
    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


class StoreWidget:
    """Base of the widgets that read and write the knowledge base of one incident.

    Parameters
    ----------
    workspace : Workspace or str
        The workspace (or its folder).
    incident_id : str
    kb : KnowledgeBase, optional
        Use this knowledge base instead of opening the workspace's (it is then not closed by
        :meth:`close`).

    Every subclass sets ``self.widget`` (the ipywidgets container shown in a notebook) and
    ``self.status`` (:class:`Status`). The object displays itself (``_repr_mimebundle_``), so a
    notebook cell can end with the call that builds it.
    """

    widget: w.Widget
    status: Status

    def __init__(self, workspace: Workspace | str | Any, incident_id: str, *, kb: Any = None):
        self.workspace = open_workspace(workspace)
        self.incident_id = incident_id
        self._own_kb = kb is None
        self.kb = self.workspace.knowledge_base() if kb is None else kb
        self.incident = self.kb.get_incident(incident_id)  # NotFoundError names the incident

    def close(self) -> None:
        """Close the widget (and the knowledge base it opened)."""
        if self._own_kb:
            self.kb.close()
        self.widget.close()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return static_bundle(self.widget, self.static_markup(), self.static_text(), **kwargs)

    def static_markup(self) -> str:
        """What the widget shows, as escaped HTML that needs no kernel (subclasses say more)."""
        return CSS + f"<div class='wbw-muted'>{escape(type(self).__name__)} of {escape(self.incident_id)}: " \
                     "run this cell in JupyterLab (with a kernel) to use it.</div>"

    def static_text(self) -> str:
        """One line saying what the cell is (the ``text/plain`` of its output)."""
        return f"{type(self).__name__} of {self.incident_id} (static view; run the cell in JupyterLab for the live widget)"

    def _stale(self, exc: Exception) -> None:
        """A conflict or a vanished record: say so, then reload from the store (nothing was written)."""
        self.reload()
        self.status.error(conflict_message(exc))

    def reload(self) -> None:  # pragma: no cover - every subclass implements it
        raise NotImplementedError
