"""Plain-text tables of the cross-incident figures, for the CLI."""
from __future__ import annotations

from typing import Mapping

from ..formats import clip
from ..store.records import iso
from .remediation import BeforeAfter, minus
from .selection import COUNTED_LABELS, PHASE_NAMES, PHASES, Selection
from .summary import DurationStats, Summary


def summary_table(s: Summary, *, max_rows: int = 50) -> str:
    """The summary as text (at most ``max_rows`` per-incident rows)."""
    return "\n".join(_summary_lines(s, max_rows))


def before_after_table(b: BeforeAfter, *, max_rows: int = 50) -> str:
    """The before/after comparison as text."""
    return "\n".join(_before_after_lines(b, max_rows))


def _summary_lines(s: Summary, max_rows: int) -> list[str]:
    lines = [f"incidents: {s.count}{selection_text(s.selection)}  (as of {iso(s.as_of)})", ""]
    lines += duration_lines(s.durations)
    r = s.recurrence
    rate = "rate unknown" if r.rate is None else f"= {percent(r.rate)}"
    lines += ["", f"recurrence: {len(r.recurred)} recurred of {len(r.under_watch)} under watch {rate}"
                  f"  ({len(r.unjudged)} under watch not yet judged)"]
    a = s.action_items
    lines += [f"action items: {a.done} done of {a.total - a.by_status['wont_do']} (wont_do {a.by_status['wont_do']} "
              f"excluded) = {percent(a.completion)}; open {a.by_status['open']}, in progress "
              f"{a.by_status['in_progress']}; overdue {a.overdue}; no due date {a.no_due}"]
    if s.by_owner:
        lines += ["", f"{'owner':<20} {'items':>5} {'done':>5} {'open':>5} {'in_prog':>7} {'wont_do':>7} "
                      f"{'overdue':>7} {'completion':>10}"]
        for owner, o in s.by_owner.items():
            lines.append(f"{clip(owner, 20):<20} {o.total:>5} {o.done:>5} {o.by_status['open']:>5} "
                         f"{o.by_status['in_progress']:>7} {o.by_status['wont_do']:>7} {o.overdue:>7} "
                         f"{percent(o.completion):>10}")
    if s.by_service:
        lines += ["", "incidents per service: " + ", ".join(f"{k} {v}" for k, v in s.by_service.items())]
    for key in COUNTED_LABELS:
        parts = [f"{k} {v}" for k, v in s.by_label[key].items()]
        if s.unlabelled[key]:
            parts.append(f"(unlabelled) {s.unlabelled[key]}")
        if parts:
            lines.append(f"label {key}: " + ", ".join(parts))
    if s.incidents:
        lines += ["", f"{'incident':<24} {'sev':<5} {'status':<10} {'started (UTC)':<17} {'detect':>9} "
                      f"{'mitigate':>9} {'resolve':>9}"]
        for t in s.incidents[:max_rows]:
            lines.append(f"{clip(t.incident_id, 24):<24} {t.severity:<5} {t.status:<10} "
                         f"{t.started:%Y-%m-%d %H:%M} {duration_text(t.time_to_detect):>9} {duration_text(t.time_to_mitigate):>9} "
                         f"{duration_text(t.time_to_resolve):>9}")
        if len(s.incidents) > max_rows:
            lines.append(f"... {len(s.incidents) - max_rows} more (use --json for all)")
    return lines


def duration_lines(durations: Mapping[str, DurationStats]) -> list[str]:
    lines = [f"{'':<16} {'mean':>9} {'median':>9} {'known':>6} {'unknown':>8}"]
    for m, d in durations.items():
        lines.append(f"{PHASE_NAMES[m]:<16} {duration_text(d.mean):>9} {duration_text(d.median):>9} {d.n_known:>6} {d.n_unknown:>8}")
    return lines


def _before_after_lines(b: BeforeAfter, max_rows: int) -> list[str]:
    how = f"last done of {', '.join(b.action_item_ids)}" if b.action_item_ids else "given"
    lines = [f"service {b.service}: remediation at {iso(b.done_at)} ({how})",
             f"windows of {duration_text(b.window.total_seconds())} each: before {iso(b.before.selection.since)} .. "
             f"{iso(b.done_at)}, after {iso(b.done_at)} .. {iso(b.after.selection.until)}", "",
             f"{'':<16} {'before':>9} {'after':>9} {'change':>10}",
             f"{'incidents':<16} {b.before.count:>9} {b.after.count:>9} {b.after.count - b.before.count:>+10}"]
    for m, _ in PHASES:
        x, y = b.before.durations[m], b.after.durations[m]
        change = minus(y.mean, x.mean)
        sign = "" if change is None else ("+" if change >= 0 else "-")
        lines.append(f"{PHASE_NAMES[m]:<16} {duration_text(x.mean):>9} {duration_text(y.mean):>9} "
                     f"{sign + duration_text(None if change is None else abs(change)):>10}"
                     f"   (known {x.n_known}/{b.before.count} before, {y.n_known}/{b.after.count} after)")
    lines.append(f"{'recurrence':<16} {percent(b.before.recurrence.rate):>9} {percent(b.after.recurrence.rate):>9}")
    for name, side in (("before", b.before), ("after", b.after)):
        if side.incidents:
            lines.append(f"{name}: " + ", ".join(t.incident_id for t in side.incidents[:max_rows])
                         + (" ..." if side.count > max_rows else ""))
    return lines


def selection_text(sel: Selection) -> str:
    parts = [f"since {iso(sel.since)}" if sel.since else "", f"until {iso(sel.until)}" if sel.until else "",
             f"service {sel.service}" if sel.service else "", f"severity {sel.severity}" if sel.severity else ""]
    parts += [f"{k}={v}" for k, v in sel.label.items()]
    parts = [p for p in parts if p]
    return f" ({', '.join(parts)})" if parts else ""


def duration_text(seconds: float | None) -> str:
    """``45s``, ``6m 25s``, ``1h 05m``, ``2d 03h``; ``unknown`` for None."""
    if seconds is None:
        return "unknown"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"
