"""``hsm worker --sweep X --status``: one row per configuration, from the files alone.

Categories: ``done`` (completed), ``running`` (a live claim: host, pid, cluster, heartbeat age),
``resumable`` (an interrupted, preempted or lost attempt, a checkpoint, or a claim whose worker
is dead or silent), ``failed`` and ``pending`` (never started). Reading needs no GPU and no lock:
``task_index.json`` answers for finished tasks and only unfinished ones are read from their dirs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from hsm_core.plugin import TaskState
from hsm_core.workers.claims import LockView
from hsm_core.workers.execute import RESUMABLE_STATES
from hsm_core.workers.worker import WorkerSweepSetup, has_checkpoint

CATEGORIES = ("done", "running", "resumable", "failed", "pending")


@dataclass
class Row:
    """One configuration in the status table."""

    index: int
    name: str
    run_id: str
    params: dict[str, Any]
    category: str
    state: str
    attempt: int = 0
    claimed_by: str | None = None  #: host/pid/cluster of a claim
    heartbeat_age: float | None = None  #: seconds since the claim was refreshed
    note: str = ""


@dataclass
class StatusTable:
    """The whole table plus counts per category."""

    sweep_dir: str
    group: str
    rows: list[Row]
    counts: dict[str, int] = field(default_factory=dict)
    stale_locks: int = 0

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "sweep_dir": self.sweep_dir,
            "group": self.group,
            "total": len(self.rows),
            "counts": self.counts,
            "stale_locks": self.stale_locks,
            "tasks": [asdict(r) for r in self.rows],
        }


def _holder_text(view: LockView) -> str:
    h = view.holder or {}
    return f"{h.get('host', '?')}/{h.get('pid', '?')}/{h.get('cluster', '?')}"


def collect(setup: WorkerSweepSetup, registry: Any = None) -> StatusTable:
    """Build the table for a worker sweep (nothing is written but the index cache).

    ``registry`` (a :class:`~hsm_core.workers.registries.RegistryView`): configurations it calls
    finished count as done ("finished elsewhere"), as a worker would treat them.
    """
    sweep, store = setup.sweep, setup.store
    states: dict[str, tuple[str, int]] = {}
    if (sweep.path / "sweep_metadata.yaml").exists():
        for run_id, rec in sweep.records().items():
            states[run_id] = (rec.state, rec.attempt)
    locks = store.locks()
    table = StatusTable(str(sweep.path), setup.group, [])
    counts = {c: 0 for c in CATEGORIES}
    for t in setup.tasks:
        state, attempt = states.get(t.run_id, (TaskState.PENDING.value, 0))
        view = locks.get(t.run_id)
        row = Row(t.index, t.name, t.run_id, dict(t.params), "pending", state, attempt)
        if view is not None:
            row.claimed_by = _holder_text(view)
            row.heartbeat_age = round(view.age, 1)
        if state == TaskState.COMPLETED.value:
            row.category = "done"
            if view is not None and view.takeable:
                row.note = "leftover lock"
        elif view is not None and not view.takeable:
            row.category = "running"
        elif registry is not None and registry.finished(t.run_id):
            row.category, row.note = "done", "finished elsewhere (task registry)"
        elif state == TaskState.FAILED.value and view is None:
            row.category = "failed"
        elif (
            view is not None
            or state in RESUMABLE_STATES
            or state == TaskState.FAILED.value
            or has_checkpoint(sweep.checkpoint_dir(t))
        ):
            row.category = "resumable"
            if view is not None:
                row.note = f"claim {view.verdict}: {view.reason}"
            elif has_checkpoint(sweep.checkpoint_dir(t)):
                row.note = "checkpoint"
        if view is not None and view.takeable:
            table.stale_locks += 1
        counts[row.category] += 1
        table.rows.append(row)
    table.counts = counts
    return table


def _age(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _params_text(params: dict[str, Any], width: int = 48) -> str:
    text = " ".join(f"{k}={v}" for k, v in params.items())
    return text if len(text) <= width else text[: width - 1] + "…"


#: Above this many configurations the table lists only those running, resumable or failed.
LONG_TABLE = 500


#: Columns that fold onto more lines in a narrow terminal, with the width they keep.
_FOLDING = {"params": 16, "note": 12, "claimed by (host/pid/cluster)": 12}


def render(table: StatusTable, *, all_rows: bool | None = None) -> None:
    """Print the summary and the table with rich. ``all_rows``: True every configuration, False
    none, None (default) every one for small sweeps, else only running/resumable/failed ones."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    c = table.counts
    total = len(table.rows)
    console.print(f"Sweep {table.group}: {table.sweep_dir}", markup=False)
    console.print(
        f"{c.get('done', 0)}/{total} done, {c.get('running', 0)} running, {c.get('resumable', 0)} resumable, "
        f"{c.get('pending', 0)} pending, {c.get('failed', 0)} failed"
        + (f"; {table.stale_locks} stale claim(s) to take over" if table.stale_locks else "")
    )
    if all_rows is False:
        return
    rows = table.rows
    if all_rows is None and len(rows) > LONG_TABLE:
        rows = [r for r in rows if r.category in ("running", "resumable", "failed")]
        console.print(f"(listing running, resumable and failed ones only; --all lists all {len(table.rows)})")
        if not rows:
            return
    claims = any(r.claimed_by for r in rows)
    notes = any(r.note for r in rows)
    cols = ["#", "run", "status", "attempt", "params"]
    if claims:
        cols += ["claimed by (host/pid/cluster)", "heartbeat"]
    if notes:
        cols.append("note")
    t = Table(show_lines=False, pad_edge=False, box=None)
    for col in cols:
        # Short columns keep their whole header (rich cut "attempt" to "attemp" in 80 columns);
        # the long ones fold, but never below a readable width (rich dropped params altogether).
        folds = _FOLDING.get(col)
        t.add_column(col, no_wrap=folds is None, overflow="fold", min_width=folds or len(col))
    styles = {"done": "green", "running": "cyan", "resumable": "yellow", "failed": "red", "pending": ""}
    for r in rows:
        style = styles[r.category]
        cells = [str(r.index), r.name, f"[{style}]{r.category}[/]" if style else r.category, str(r.attempt or ""),
                 _params_text(r.params)]
        if claims:
            cells += [r.claimed_by or "", _age(r.heartbeat_age)]
        if notes:
            cells.append(r.note)
        t.add_row(*cells)
    console.print(t)
