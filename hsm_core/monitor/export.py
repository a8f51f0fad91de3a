"""``hsm export``: one row per task with its parameters, status and metrics.

Columns: ``task`` (task_001), ``id``, one column per parameter (union over tasks, in the order
they first appear), ``status``, ``source``, ``duration``, ``exit_code``, then one column per metric
(``metrics.json`` flattened with dots: ``{"val": {"loss": 1}}`` gives ``val.loss``). A parameter
or metric whose name clashes with a fixed column or an earlier column gets a ``param.`` /
``metric.`` prefix, so no value is ever hidden.

Task facts come from the index, the metrics of tasks a controller saw complete from one file
beside it (:mod:`hsm_core.indexed_metrics`); only other tasks' ``metrics.json`` is read (and only for tasks
that started), and those a later evaluation rewrote (:mod:`hsm_core.metrics_freshness`), so
exporting 100,000 tasks takes about a second.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from hsm_core.indexed_metrics import known as known_metrics
from hsm_core.state import SweepDir, TaskRecord
from hsm_core.taskdir import METRICS_FILE, metrics_path

FIXED_HEAD = ("task", "id")
FIXED_TAIL = ("status", "source", "duration", "exit_code")


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "c": 2}`` -> ``{"a.b": 1, "c": 2}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if value and (type(value) is dict or isinstance(value, Mapping)):  # (the ABC check is slow)
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def read_metrics(task_dir: Path) -> dict[str, Any]:
    """The task's ``metrics.json`` flattened; {} when missing, unreadable or not an object."""
    return _read_metrics_file(str(metrics_path(task_dir)))


def _read_metrics_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = json.loads(fh.read())
    except (OSError, ValueError):
        return {}
    return flatten(data) if isinstance(data, dict) else {}


def without_changed(kept: dict[str, tuple[int, dict[str, Any]]], sweep: SweepDir,
                    fresh: Any = None) -> dict[str, tuple[int, dict[str, Any]]]:
    """``kept`` less the tasks whose ``metrics.json`` changed since it was kept (an evaluation
    after the sweep): those are read from their file (:mod:`hsm_core.metrics_freshness`)."""
    from hsm_core.metrics_freshness import Check

    for task_id in (fresh if fresh is not None else Check(str(sweep.path))).result():
        kept.pop(task_id, None)
    return kept


def _metrics_of(record: TaskRecord, tasks_dir: str, kept: Mapping[str, tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """What the sweep kept of the task's metrics for its current attempt
    (hsm_core.indexed_metrics), else its file."""
    found = kept.get(record.task_id)
    if found is not None and found[0] == record.attempt:
        return found[1]
    return _read_metrics_file(os.path.join(tasks_dir, record.name, METRICS_FILE))


@dataclass
class Table:
    """The export of a sweep: column names and rows (dicts keyed by column)."""

    columns: list[str]
    rows: list[dict[str, Any]]
    param_columns: dict[str, str]  #: parameter name -> its column
    metric_columns: dict[str, str]  #: metric name -> its column


def _ordered_union(dicts: Iterable[Mapping[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for d in dicts:
        for k in d:
            if k not in seen:
                seen[k] = None
    return list(seen)



def column_names(params: Iterable[str], metric_names: Iterable[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Each parameter's and metric's column name: its own, or with a ``param.``/``metric.``
    prefix when a fixed column or a parameter already has it."""
    taken = set(FIXED_HEAD) | set(FIXED_TAIL)
    param_columns: dict[str, str] = {}
    for p in params:
        col = p if p not in taken else f"param.{p}"
        param_columns[p] = col
        taken.add(col)
    metric_columns: dict[str, str] = {}
    for m in metric_names:
        col = m if m not in taken else f"metric.{m}"
        while col in taken:
            col = f"metric.{col}"
        metric_columns[m] = col
        taken.add(col)
    return param_columns, metric_columns

def build_table(sweep: SweepDir, records: Iterable[TaskRecord], *, metrics: bool = True) -> Table:
    """The rows of ``records`` (sorted by task index) with their metrics read from disk."""
    recs = sorted(records, key=lambda r: r.index)
    # Paths as strings: pathlib costs more than the read itself at 100,000 tasks.
    tasks_dir = str(sweep.tasks_dir)
    kept = without_changed(known_metrics(sweep.path), sweep) if metrics else {}
    per_task_metrics = [
        _metrics_of(r, tasks_dir, kept) if metrics and r.state != "pending" else {}
        for r in recs
    ]
    params = _ordered_union(r.params for r in recs)
    metric_names = _ordered_union(per_task_metrics)
    param_columns, metric_columns = column_names(params, metric_names)
    columns = [*FIXED_HEAD, *param_columns.values(), *FIXED_TAIL, *metric_columns.values()]
    rows = []
    for rec, found in zip(recs, per_task_metrics):
        row: dict[str, Any] = {"task": rec.name, "id": rec.task_id}
        for p, col in param_columns.items():
            row[col] = rec.params.get(p)
        row.update(status=rec.state, source=rec.source, duration=rec.duration, exit_code=rec.exit_code)
        for m, col in metric_columns.items():
            row[col] = found.get(m)
        rows.append(row)
    return Table(columns, rows, param_columns, metric_columns)


def _json_safe(value: Any) -> Any:
    # JSON has no NaN/Infinity: a diverged loss becomes null rather than an invalid file.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


def _csv_cell(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return value
    if kind is int:
        return str(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)


def to_csv(table: Table) -> str:
    """The table as CSV text (header row first; empty cell for a missing value)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow([_csv_cell(row.get(c)) for c in table.columns])
    return buf.getvalue()


def to_json(table: Table) -> str:
    """The table as a JSON list of objects, one per task, keys in column order."""
    rows = [{c: _json_safe(row.get(c)) for c in table.columns} for row in table.rows]
    return json.dumps(rows, indent=1, default=str, allow_nan=False) + "\n"


def export_text(sweep: SweepDir, records: Iterable[TaskRecord], fmt: str,
                links: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """The export of a sweep in ``fmt`` (csv or json); ``links``: what each task's source says
    about it (:mod:`hsm_core.monitor.scheduler_link`), added as columns after ``exit_code``."""
    table = build_table(sweep, records)
    if links:
        from hsm_core.monitor.scheduler_link import add_link_columns

        add_link_columns(table, links)
    return to_csv(table) if fmt == "csv" else to_json(table)
