"""The best runs of a sweep: ranked by the sweep's metric (``metric: {name, goal}``).

* :func:`best_runs`: the completed tasks with a number for the metric, best first (what ``hsm
  status`` shows the top of, and the report's best-runs table);
* :func:`order_table`: ``hsm export --sort COLUMN [--desc] --top N`` on an export table;
* :func:`print_best_runs`: the few lines ``hsm status`` prints.

Only completed tasks' ``metrics.json`` are read, and only when the sweep declares a metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from hsm_core.monitor.export import Table, build_table
from hsm_core.plugin import HsmError
from hsm_core.state import SweepDir, TaskRecord
from hsm_core.sweep_metric import SweepMetric, declared_metric, metric_number

#: How many best runs ``hsm status`` shows.
STATUS_TOP = 5


@dataclass(frozen=True)
class RankedRun:
    """One completed task and its value of the metric."""

    task: str  #: the task dir's name (task_007)
    task_id: str
    value: float
    params: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "id": self.task_id, "value": self.value, "params": dict(self.params)}


def _with_asked_params(sweep: SweepDir, records: Iterable[TaskRecord]) -> list[TaskRecord]:
    from hsm_core.adaptive import with_trial_params  # an adaptive sweep's index holds placeholders

    return with_trial_params(sweep.path, records)


def best_runs(sweep: SweepDir, records: Iterable[TaskRecord], metric: SweepMetric,
              top: int | None = None) -> list[RankedRun]:
    """Completed tasks with a finite value of ``metric``, best first (ties: task order)."""
    done = [r for r in records if r.state == "completed"]
    table = build_table(sweep, _with_asked_params(sweep, done))
    col = table.metric_columns.get(metric.name)
    if col is None:
        return []
    runs = []
    for row in table.rows:
        value = metric_number(row.get(col))
        if value is not None:
            params = {p: row.get(c) for p, c in table.param_columns.items()}
            runs.append(RankedRun(row["task"], row["id"], value, params))
    runs.sort(key=lambda r: -r.value if metric.descending else r.value)  # sort is stable: ties keep task order
    return runs[:top] if top is not None else runs


def status_best(sweep_path: Path, records: Iterable[TaskRecord]) -> dict[str, Any]:
    """``metric`` and ``best_runs`` (the top :data:`STATUS_TOP`) for ``hsm status``; both None
    when the sweep declares no metric."""
    metric = declared_metric(sweep_path)
    if metric is None:
        return {"metric": None, "best_runs": None}
    runs = best_runs(SweepDir(Path(sweep_path)), records, metric, STATUS_TOP)
    return {"metric": metric.to_json(), "best_runs": [r.to_json() for r in runs]}


def describe_run(run: Mapping[str, Any], limit: int = 100) -> str:
    """``x=2.9 y=-1.1`` (cut at ``limit`` characters)."""
    text = " ".join(f"{k}={_short(v)}" for k, v in run["params"].items())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def print_best_runs(console: Any, info: Mapping[str, Any]) -> None:
    """The best runs table of ``hsm status`` (nothing for a sweep without a metric)."""
    metric, runs = info.get("metric"), info.get("best_runs")
    if not metric or runs is None:
        return
    from rich.table import Table as RichTable

    title = f"Best runs by {metric['name']} ({metric['goal']})"
    if not runs:
        console.print(f"{title}: none yet (no completed task has a number for {metric['name']})", markup=False,
                      soft_wrap=True)
        return
    table = RichTable(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("Task")
    table.add_column(metric["name"], justify="right")
    table.add_column("Parameters")
    for i, run in enumerate(runs, 1):
        table.add_row(str(i), run["task"], f"{run['value']:.6g}", describe_run(run))
    console.print(table)


# -- hsm export --sort/--desc/--top ------------------------------------------------------------------


def _column_of(table: Table, name: str, sweep_id: str) -> str:
    if name in table.metric_columns:
        return table.metric_columns[name]
    if name in table.param_columns:
        return table.param_columns[name]
    if name in table.columns:
        return name
    metrics = ", ".join(table.metric_columns) or "none yet"
    raise HsmError(f"no column {name!r} in the export of sweep {sweep_id} (metrics: {metrics})",
                   hint="sort by a metric, a parameter or a column of hsm export's header")


def order_table(table: Table, sweep: SweepDir, *, sort: str | None, desc: bool, top: int | None) -> Table:
    """The rows of ``table`` sorted by column ``sort`` (a metric, parameter or column name;
    ascending unless ``desc``), then the first ``top``. Rows without a value come last either
    way. ``top`` without ``sort`` ranks by the sweep's ``metric:`` (best first). A column that
    does not exist, or ``top`` in a sweep without a metric, is an HsmError."""
    if top is not None and top < 1:
        raise HsmError(f"--top must be at least 1, not {top}")
    if sort is None and desc:
        raise HsmError("--desc reverses the order of --sort: name the column, e.g. --sort accuracy --desc")
    if sort is None and top is None:
        return table
    if sort is None:
        metric = declared_metric(sweep.path)
        if metric is None:
            raise HsmError(f"sweep {sweep.sweep_id} has no metric to rank by, so --top needs --sort",
                           hint="e.g. hsm export --sort val_loss --top 5, or add metric: {name: val_loss, goal: "
                                "minimize} to the sweep file")
        sort, desc = metric.name, metric.descending
    col = _column_of(table, sort, sweep.sweep_id)
    numbers, texts, missing = [], [], []
    for row in table.rows:
        value = row.get(col)
        if value is None or value == "":
            missing.append(row)
        elif metric_number(value) is not None:
            numbers.append(row)
        else:
            texts.append(row)
    # Numbers, then text, then rows without a value, in either direction; ties keep task order
    # (Python's sort is stable with reverse=True too).
    numbers.sort(key=lambda r: metric_number(r.get(col)), reverse=desc)  # type: ignore[arg-type,return-value]
    texts.sort(key=lambda r: str(r.get(col)), reverse=desc)
    rows = numbers + texts + missing
    return Table(table.columns, rows[:top] if top is not None else rows, table.param_columns, table.metric_columns)
