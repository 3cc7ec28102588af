"""The live-source options of ``analyze``, ``run`` and ``recheck``: ``--refresh`` and ``--offline``."""
from __future__ import annotations

import typer

from ..errors import SourceError
from ..formats import printable

RefreshOpt = typer.Option(False, "--refresh", help="Fetch the window from the live sources of workbench.toml again, "
                                                   "even when it was fetched before.")
OfflineOpt = typer.Option(False, "--offline", help="Do not ask the live sources: use what the telemetry store "
                                                   "already holds (a warning says so).")


def fetch_live(ws, ids: list[str], refresh: bool, offline: bool) -> None:
    """The incidents' windows from the workspace's live sources (:mod:`workbench.telemetry.live`),
    reported on stderr; a source that is down is an error that names it and changes nothing."""
    from ..telemetry.live import fetch_incident

    if offline:
        warn_offline(ws, ids)
        return
    for iid in ids:
        try:
            report = fetch_incident(ws, iid, refresh=refresh, who="cli")
        except SourceError as exc:
            raise SourceError(f"{exc} (nothing was changed; --offline uses what the store already holds)") from None
        for line in report.summary():
            typer.echo(printable(f"{iid}: {line}"), err=True)


def warn_offline(ws, ids: list[str] | None = None) -> None:
    """The ``--offline`` warning on stderr (nothing when the workspace has no live sources)."""
    from ..telemetry.live import offline_warning

    warning = offline_warning(ws, ids)
    if warning:
        typer.echo(warning, err=True)
