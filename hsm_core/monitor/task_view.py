"""``hsm status --tasks``: one row per task, with its link back to where it runs.

Each row has the task's name, id, state, source and attempt from the index, and what its source
says now (:mod:`hsm_core.monitor.scheduler_link`, ``live``: the scheduler is asked once per
source): the scheduler's id of its element (``12345_7``), the scheduler's state and pending reason
while the queue still knows the job, ``held``, and the accounting (elapsed, peak memory, CPU
efficiency, nodes) when the site keeps one.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from hsm_core.monitor.scheduler_link import format_bytes, link_columns, task_links


def task_rows(sweep: Any, records: Iterable[Any], *, project_dir: str | None,
              warn: Any = None) -> list[dict[str, Any]]:
    """The rows of ``hsm status --tasks`` (task order), for JSON and for the table."""
    recs = sorted(records, key=lambda r: r.index)
    links = task_links(sweep, recs, project_dir=project_dir, live=True, warn=warn)
    rows = []
    for r in recs:
        row: dict[str, Any] = {"task": r.name, "id": r.task_id, "state": r.state, "source": r.source, "attempt": r.attempt}
        row.update(links.get(r.task_id, {}))
        rows.append(row)
    return rows


def _cell(column: str, value: Any) -> str:
    if value is None or value == "":
        return "-"
    if column == "max_rss":
        return format_bytes(value)
    if column == "cpu_efficiency" and isinstance(value, (int, float)):
        return f"{value * 100:.0f}%"
    if column == "elapsed" and isinstance(value, (int, float)):
        m, s = divmod(int(value), 60)
        h, m = divmod(m, 60)
        return f"{h}:{m:02d}:{s:02d}"
    if column == "held":
        return "held" if value else "-"
    return str(value)


def print_task_table(sweep_id: str, rows: list[dict[str, Any]]) -> None:
    """The rows as a table (columns a source said nothing about are left out)."""
    from rich import box
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table

    from hsm_core.monitor.view import make_console

    extra = link_columns({str(i): {k: v for k, v in row.items() if k not in _BASE and k != "id"} for i, row in enumerate(rows)})
    table = Table(title=f"Tasks of {sweep_id}", box=box.SIMPLE_HEAD, title_justify="left")
    headers = {"scheduler_id": "Scheduler id", "job_id": "Job id", "scheduler_state": "Scheduler state",
               "reason": "Reason", "held": "Held", "elapsed": "Elapsed", "max_rss": "Max RSS",
               "cpu_efficiency": "CPU eff.", "nodes": "Nodes"}
    for col in (*_BASE, *extra):
        table.add_column(headers.get(col, col.capitalize()), no_wrap=col in ("task", "scheduler_id"))
    for row in rows:
        table.add_row(*(_cell(c, row.get(c)) for c in (*_BASE, *extra)))
    console = make_console()
    # Ids are what the user copies into squeue or scontrol: never cut. A table wider than the
    # terminal is printed whole (the terminal folds its lines), as hsm status --all does.
    need = Measurement.get(console, console.options.update_width(10_000), table).maximum
    if need > console.width:
        console = Console(highlight=False, width=need)
    console.print(table)


_BASE = ("task", "state", "source", "attempt")

