"""Metrics of a finished task, from the installed result collectors (``hsm_register_result_collectors``).

Used by the engine (every source) and by pull-based workers, so that ``hsm export`` and the
report see the same metrics however a task ran.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from hsm_core.plugin import CollectorRecord, ResultCollector
from hsm_core.taskdir import write_metrics_once


def load_collectors(registry: Any) -> list[ResultCollector]:
    """One instance of every installed result collector, in registration order."""
    return [rec.load()() for rec in registry.components(CollectorRecord.kind).values()]


def collect_metrics(task_dir: Path, collectors: Sequence[ResultCollector]) -> dict[str, Any]:
    """Merge what the collectors find (the first to name a metric wins) and write it to the task's
    ``metrics.json`` unless the script wrote that file itself. Returns the merged metrics."""
    metrics: dict[str, Any] = {}
    for collector in collectors:
        try:
            found = collector.collect(task_dir)
        except Exception:  # a collector bug must not stop the sweep
            continue
        for k, v in found.items():
            metrics.setdefault(k, v)
    if metrics:
        write_metrics_once(task_dir, metrics)
    return metrics
