"""What every review widget shares: the status line, escaping, opening the store, small parsers.

Strings from telemetry and from users are data, never markup: anything shown in an
``ipywidgets.HTML`` goes through :func:`escape` (``html.escape``) first. Widget *values* (a
``Text``, a ``Dropdown`` label, a ``Button`` description) are drawn as text by ipywidgets 8
(``description_allow_html`` is off by default), so they need no escaping.
"""
from __future__ import annotations

import html
from typing import Any, Iterable, Sequence

import ipywidgets as w
import pandas as pd

from workbench.workspace import Workspace, open_workspace  # noqa: F401 (the widgets' import)
from workbench.errors import ConflictError, NotFoundError, WorkbenchError

#: Colours of the status line per kind of message.
_STATUS_STYLE = {"ok": "color:#116329;background:#dafbe1", "error": "color:#a40e26;background:#ffebe9",
                 "warning": "color:#7d4e00;background:#fff8c5", "info": "color:#57606a;background:#f6f8fa"}
#: Styles shared by the cards and tables the widgets draw.
CSS = ("<style>.wbw-table{border-collapse:collapse;font-size:12px;margin:2px 0 6px 0}"
       ".wbw-table td,.wbw-table th{border:1px solid #d0d7de;padding:2px 6px;text-align:left;vertical-align:top;"
       "white-space:pre-wrap;overflow-wrap:anywhere}.wbw-table th{background:#f6f8fa}"
       ".wbw-badge{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;background:#eaeef2;"
       "margin-right:4px}.wbw-confirmed{background:#dafbe1;color:#116329}.wbw-rejected{background:#eaeef2;"
       "color:#57606a}.wbw-proposed{background:#fff8c5;color:#7d4e00}.wbw-muted{color:#57606a}"
       ".wbw-text{white-space:pre-wrap;overflow-wrap:anywhere}</style>")
#: Errors a save shows in the status line instead of raising: the store checked before writing,
#: so nothing was written. Stale ones (another writer won, or the record is gone) also reload.
SAVE_ERRORS = (WorkbenchError, ValueError)
STALE_ERRORS = (ConflictError, NotFoundError)


def escape(value: Any) -> str:
    """``value`` as HTML text: ``None`` is empty, everything else ``html.escape(str(value))``."""
    return "" if value is None else html.escape(str(value), quote=True)


def table(rows: Iterable[Sequence[Any]], headers: Sequence[str], empty: str = "none") -> str:
    """An HTML table whose every cell and header is escaped."""
    rows = list(rows)
    if not rows:
        return f'<span class="wbw-muted">{escape(empty)}</span>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="wbw-table"><tr>{head}</tr>{body}</table>'


def badge(text: Any, kind: str = "") -> str:
    return f'<span class="wbw-badge wbw-{escape(kind)}">{escape(text)}</span>'


def when(value: Any) -> str:
    """A time as ``2026-11-02 14:03 UTC`` (seconds when there are any); ``""`` for None."""
    if value is None:
        return ""
    ts = pd.Timestamp(value)
    ts = ts.tz_convert("UTC") if ts.tzinfo is not None else ts
    return ts.strftime("%Y-%m-%d %H:%M:%S" if ts.second else "%Y-%m-%d %H:%M") + " UTC"


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
        return self.widget._repr_mimebundle_(**kwargs)

    def _stale(self, exc: Exception) -> None:
        """A conflict or a vanished record: say so, then reload from the store (nothing was written)."""
        self.reload()
        self.status.error(conflict_message(exc))

    def reload(self) -> None:  # pragma: no cover - every subclass implements it
        raise NotImplementedError
