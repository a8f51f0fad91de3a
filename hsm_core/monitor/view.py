"""What ``hsm monitor`` draws: rich renderables built from snapshots (no I/O here)."""

from __future__ import annotations

import datetime as _dt
import os
import sys
from typing import Any, Sequence

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from hsm_core.durations import fmt_duration
from hsm_core.monitor.logs import HealthEvent, SourceHealth
from hsm_core.monitor.snapshot import Snapshot

#: Width of output that goes to a file or a pipe: wide enough that tables do not wrap (rich
#: would assume 80 columns), narrow enough to read in a log viewer.
PIPE_WIDTH = 120


def make_console() -> Console:
    """The console monitor commands print to (wider when stdout is not a terminal)."""
    width = None
    if not sys.stdout.isatty() and not os.environ.get("COLUMNS"):
        width = PIPE_WIDTH
    return Console(highlight=False, width=width)


_STATUS_STYLE = {
    "running": "bold blue",
    "submitted": "bold magenta",
    "completed": "bold green",
    "incomplete": "bold red",
    "interrupted": "bold yellow",
}


def _status_text(snap: Snapshot) -> str:
    status = snap.status.capitalize()
    if snap.status in ("running", "submitted") and snap.finished:
        status += " (all tasks done)"
    return status


def progress_line(snap: Snapshot, width: int = 40) -> Table:
    """The progress bar with ``done/total (pct)`` beside it."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column()
    grid.add_column()
    bar = ProgressBar(total=max(1, snap.total), completed=snap.done, width=width,
                      complete_style="green" if not snap.failed else "yellow", finished_style="green")
    grid.add_row(bar, Text(snap.progress_text))
    return grid


def status_table(snap: Snapshot) -> Table:
    """The Metric / Value table of the v2 guide."""
    table = Table()
    table.add_column("Metric")
    table.add_column("Value")
    table.add_row("Status", Text(_status_text(snap), style=_STATUS_STYLE.get(snap.status, "")))
    table.add_row("Progress", snap.progress_text)
    table.add_row("Completed", str(snap.completed))
    table.add_row("Failed", Text(str(snap.failed), style="red" if snap.failed else ""))
    table.add_row("Running", str(snap.running))
    if snap.queued:
        table.add_row("Queued", str(snap.queued))
    table.add_row("Pending", str(snap.pending))
    if snap.stopped:
        table.add_row("Interrupted", str(snap.stopped))
    if snap.pruned:
        table.add_row("Pruned", str(snap.pruned))
    table.add_row("Duration", fmt_duration(snap.elapsed))
    if not snap.finished:
        table.add_row("ETA", fmt_duration(snap.eta))
    return table


def source_table(snap: Snapshot) -> Table:
    """Source / Active / Max Tasks / Health Status."""
    table = Table()
    for col in ("Source", "Active", "Max Tasks", "Health Status"):
        table.add_column(col)
    for row in snap.sources:
        cap = str(row.capacity) if row.capacity is not None else "-"
        table.add_row(row.name, f"{row.active}/{cap}", cap, health_text(row.health))
    return table


def health_text(h: SourceHealth) -> Text:
    style = {"healthy": "green", "degraded": "yellow", "disabled": "red"}.get(h.state, "dim")
    return Text(h.label, style=style)


def sweep_view(snap: Snapshot, *, interval: float | None = None, now: _dt.datetime | None = None) -> RenderableType:
    """The whole frame for one sweep (``interval`` given: the live monitor's banner)."""
    parts: list[RenderableType] = [Text(f"Sweep Status: {snap.sweep_id}", style="bold")]
    if interval is not None:
        every = f"{interval:g}s"
        parts.append(Panel(Text(f"🔄 Live Progress Monitor - Updates every {every} (Ctrl-C to exit)"), expand=False))
    else:
        stamp = (now or _dt.datetime.now()).strftime("%Y-%m-%d %H:%M:%S")
        parts.append(Text(f"Snapshot at {stamp}", style="dim"))
    parts.append(progress_line(snap))
    parts.append(status_table(snap))
    if snap.sources:
        parts.append(Text("Source Utilization:"))
        parts.append(source_table(snap))
    for outage in snap.outages:
        from hsm_core.outages import describe

        parts.append(Text("\n".join(describe(outage, now.timestamp() if now else None)), style="yellow"))
    if snap.finished and snap.failed:
        parts.append(Text(f"{snap.failed} task(s) failed: hsm monitor errors {snap.sweep_id}", style="yellow"))
    return Group(*parts)


def frame(snaps: Sequence[Snapshot], *, interval: float | None = None) -> RenderableType:
    """Frames of several sweeps, one under the other."""
    if not snaps:
        return Text("No active sweeps.")
    items: list[RenderableType] = []
    for i, s in enumerate(snaps):
        if i:
            items.append(Text(""))
        items.append(sweep_view(s, interval=interval if i == 0 else None))
    return Group(*items)


def recent_table(snaps: Sequence[Snapshot], title: str) -> Table:
    """One line per sweep for ``hsm monitor recent``."""
    table = Table(title=title)
    from rich import box

    table.box = box.SIMPLE_HEAD
    table.padding = (0, 1)
    table.pad_edge = False
    this_year = _dt.date.today().year
    numeric = ("Done", "Failed", "Active")
    for col in ("Sweep", "Created", "Status", "Done", "Failed", "Active", "Duration"):
        table.add_column(col, no_wrap=col == "Sweep", justify="right" if col in numeric else "left")
    for s in snaps:
        if s.created is None:
            created = "-"
        else:
            created = s.created.strftime("%b %d %H:%M" if s.created.year == this_year else "%Y-%m-%d")
        table.add_row(
            s.sweep_id, created, Text(s.status, style=_STATUS_STYLE.get(s.status, "")), f"{s.completed}/{s.total}",
            str(s.failed), str(s.running + s.queued), fmt_duration(s.elapsed),
        )
    return table


def health_current_table(snap: Snapshot, current: dict[str, SourceHealth]) -> Table:
    """Current health per source of one sweep."""
    table = Table(title=f"Source health: {snap.sweep_id}")
    for col in ("Source", "Health", "Since", "Checks", "Failed checks", "Active", "Last message"):
        table.add_column(col)
    names = [r.name for r in snap.sources] + sorted(n for n in current if n not in {r.name for r in snap.sources})
    rows = {r.name: r for r in snap.sources}
    for name in names:
        h = current.get(name) or SourceHealth()
        r = rows.get(name)
        active = f"{r.active}/{r.capacity if r.capacity is not None else '-'}" if r else "-"
        since = h.since.strftime("%Y-%m-%d %H:%M:%S") if h.since else "-"
        table.add_row(name, health_text(h), since, str(h.checks), str(h.failures), active, h.message or "")
    return table


def health_history_table(events: Sequence[HealthEvent], limit: int) -> Table:
    """The last ``limit`` lines of ``health_status.log``."""
    shown = list(events)[-limit:] if limit else list(events)
    table = Table(title=f"Health history (last {len(shown)} of {len(events)} events)")
    for col in ("Time", "Source", "Event", "Message"):
        table.add_column(col)
    style = {"healthy": "green", "recovered": "green", "unhealthy": "yellow", "disabled": "red"}
    for ev in shown:
        when = ev.when.strftime("%Y-%m-%d %H:%M:%S") if ev.when else "-"
        table.add_row(when, ev.source or "-", Text(ev.event, style=style.get(ev.event, "")), ev.message)
    return table


def errors_table(report: Any) -> Table:
    """Failed tasks per pattern for ``hsm monitor errors``."""
    from hsm_core.monitor.errors import CATEGORY_TITLES

    table = Table(title=f"Error patterns: {report.sweep_id} ({len(report.failed)} failed task(s))")
    table.add_column("Count", justify="right")
    table.add_column("Category")
    table.add_column("Pattern", overflow="fold")
    table.add_column("Tasks", overflow="fold")
    for g in report.groups:
        names = ", ".join(f.record.name for f in g.tasks[:6]) + (f" (+{g.count - 6})" if g.count > 6 else "")
        table.add_row(str(g.count), CATEGORY_TITLES.get(g.category, g.category), g.pattern, names)
    return table


__all__ = [
    "errors_table",
    "frame",
    "health_current_table",
    "health_history_table",
    "recent_table",
    "status_table",
    "source_table",
    "sweep_view",
]
