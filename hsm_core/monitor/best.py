"""The best runs of a sweep: ranked by the sweep's metric (``metric: {name, goal}``).

* :func:`best_runs`: the completed tasks with a number for the metric, best first (what ``hsm
  status`` shows the top of, and the report's best-runs table);
* :func:`sort_column` and :func:`ranked_rows`: ``hsm export --sort COLUMN [--desc] --top N`` (on
  the export's columns; :func:`order_table` on a row table);
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


def _column_of(names: list[str], param_columns: Mapping[str, str], metric_columns: Mapping[str, str], name: str,
               sweep_id: str) -> str:
    if name in metric_columns:
        return metric_columns[name]
    if name in param_columns:
        return param_columns[name]
    if name in names:
        return name
    metrics = ", ".join(metric_columns) or "none yet"
    raise HsmError(f"no column {name!r} in the export of sweep {sweep_id} (metrics: {metrics})",
                   hint="sort by a metric, a parameter or a column of hsm export's header")


def sort_column(names: list[str], param_columns: Mapping[str, str], metric_columns: Mapping[str, str],
                sweep: SweepDir, *, sort: str | None, desc: bool, top: int | None) -> tuple[str, bool] | None:
    """The export column that ``--sort`` (a metric, parameter or column name) or ``--top`` alone
    (the sweep's ``metric:``) orders by, and whether highest first; None when neither is given.
    A column that does not exist, or ``top`` in a sweep without a metric, is an HsmError."""
    if top is not None and top < 1:
        raise HsmError(f"--top must be at least 1, not {top}")
    if sort is None and desc:
        raise HsmError("--desc reverses the order of --sort: name the column, e.g. --sort accuracy --desc")
    if sort is None and top is None:
        return None
    if sort is None:
        metric = declared_metric(sweep.path)
        if metric is None:
            raise HsmError(f"sweep {sweep.sweep_id} has no metric to rank by, so --top needs --sort",
                           hint="e.g. hsm export --sort val_loss --top 5, or add metric: {name: val_loss, goal: "
                                "minimize} to the sweep file")
        sort, desc = metric.name, metric.descending
    return _column_of(names, param_columns, metric_columns, sort, sweep.sweep_id), desc


def ranked_rows(values: list[Any], desc: bool, top: int | None) -> list[int]:
    """The positions of ``values`` (one export column) in sorted order: numbers, then text, then
    rows without a value, in either direction; ties keep task order. The first ``top`` only."""
    numbers, texts, missing = [], [], []
    for row, value in enumerate(values):
        if value is None or value == "":
            missing.append(row)
        elif metric_number(value) is not None:
            numbers.append(row)
        else:
            texts.append(row)
    # (Python's sort is stable with reverse=True too.)
    numbers.sort(key=lambda r: metric_number(values[r]), reverse=desc)  # type: ignore[arg-type,return-value]
    texts.sort(key=lambda r: str(values[r]), reverse=desc)
    rows = numbers + texts + missing
    return rows[:top] if top is not None else rows


def order_table(table: Table, sweep: SweepDir, *, sort: str | None, desc: bool, top: int | None) -> Table:
    """The rows of ``table`` sorted by column ``sort`` (a metric, parameter or column name;
    ascending unless ``desc``), then the first ``top``. Rows without a value come last either
    way. ``top`` without ``sort`` ranks by the sweep's ``metric:`` (best first). A column that
    does not exist, or ``top`` in a sweep without a metric, is an HsmError."""
    column = sort_column(table.columns, table.param_columns, table.metric_columns, sweep, sort=sort, desc=desc,
                         top=top)
    if column is None:
        return table
    col, descending = column
    rows = ranked_rows([row.get(col) for row in table.rows], descending, top)
    return Table(table.columns, [table.rows[i] for i in rows], table.param_columns, table.metric_columns)
