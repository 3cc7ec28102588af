"""The served app: pick an incident, read its postmortem report (the same views as the export).

From Python (what ``workbench serve`` can call)::

    from workbench.reports.app import serve
    serve(workspace, port=5006)                      # http://127.0.0.1:5006/

Or with Panel's own server (this file is also a ``panel serve`` script)::

    panel serve reports/app.py --address 127.0.0.1 --port 5006 --args WORKSPACE [INCIDENT_ID]

The app only reads: each session opens the knowledge base and the telemetry store through
:class:`~workbench.reports.views.Report`. Incident titles in the picker are data too: Bokeh's
``Select`` puts option labels into the page as text nodes, never as markup (checked by the
browser test with hostile titles).
"""
from __future__ import annotations

import os
import sys
from typing import Any

import panel as pn

from workbench.config import Workspace, open_workspace
from workbench.reports.charts import WIDTH
from workbench.reports.views import Report


def app(workspace: Workspace | str | os.PathLike[str], incident_id: str | None = None) -> pn.viewable.Viewable:
    """An incident picker (newest first) above the selected incident's report.

    Parameters
    ----------
    workspace : Workspace or path
    incident_id : str, optional
        The incident shown first (default: the most recent one).

    Raises
    ------
    NotFoundError
        ``incident_id`` is not in the knowledge base.
    """
    ws = workspace if isinstance(workspace, Workspace) else open_workspace(workspace)
    kb = ws.knowledge_base()
    try:
        incidents = list(reversed(kb.list_incidents()))
        if incident_id is not None:
            kb.get_incident(incident_id)  # NotFoundError names the id and the database
    finally:
        kb.close()
    if not incidents:
        return pn.pane.HTML("<p>No incidents in this workspace yet: <code>workbench ingest</code> one.</p>",
                            sizing_mode="stretch_width")
    options = {f"{i.id} · {i.title}": i.id for i in incidents}
    picker = pn.widgets.Select(label="Incident", options=options, value=incident_id or incidents[0].id,
                               width=600)

    def report(selected: str) -> pn.viewable.Viewable:
        return Report.from_workspace(ws, selected).__panel__()

    return pn.Column(picker, pn.panel(pn.bind(report, picker), loading_indicator=True),
                     sizing_mode="stretch_width", max_width=WIDTH + 40, styles={"margin": "0 auto"})


def serve(workspace: Workspace | str | os.PathLike[str], *, incident_id: str | None = None, port: int = 5006,
          address: str = "127.0.0.1", show: bool = False, **kwargs: Any) -> Any:
    """Serve :func:`app` with Panel's server (blocking) on ``address:port``; returns the server.

    ``kwargs`` go to :func:`panel.serve` (e.g. ``threaded=True`` to return at once).
    """
    ws = workspace if isinstance(workspace, Workspace) else open_workspace(workspace)
    kwargs.setdefault("title", "Postmortem workbench")
    kwargs.setdefault("websocket_origin", [f"{address}:{port}", f"localhost:{port}"])
    return pn.serve({"/": lambda: app(ws, incident_id)}, port=port, address=address, show=show, **kwargs)


if __name__.startswith("bokeh_app"):  # run by `panel serve reports/app.py --args WORKSPACE [INCIDENT_ID]`
    if len(sys.argv) < 2:
        raise SystemExit("usage: panel serve reports/app.py --args WORKSPACE [INCIDENT_ID]")
    app(*sys.argv[1:3]).servable(title="Postmortem workbench")
