"""What ``hsm status`` reports of a sweep, from its files alone; where a project's sweeps are.

:func:`summarize` counts a sweep's tasks per state and per source, with durations, the controller
running it and the sources it waits on; :func:`list_sweeps` finds the sweeps of an output
directory; :func:`output_dir` and :func:`locate_sweep` find a project's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: The order states are listed in.
STATE_ORDER = ("completed", "failed", "running", "submitted", "pending", "interrupted", "cancelled", "timeout", "preempted", "lost")


def output_dir(project_dir: str | None) -> Path:
    """The project's sweeps output dir (``paths.output_dir``, default ``sweeps/outputs``)."""
    from hsm_core.config.checked_cache import load_checked_project_config
    from hsm_core.config.project_root import resolve_project_root

    return load_checked_project_config(resolve_project_root(project_dir)).output_dir


def locate_sweep(project_dir: str | None, sweep_id: str | None) -> Any:
    """SWEEP_ID of the project as a SweepDir (None or ``latest``: the latest sweep), see
    :func:`hsm_core.sweep_select.resolve_sweep`."""
    from hsm_core.config.checked_cache import load_checked_project_config
    from hsm_core.config.project_root import resolve_project_root
    from hsm_core.sweep_select import resolve_sweep

    # A command that only reads sweeps: the config is checked once per change (config.checked_cache).
    return resolve_sweep(load_checked_project_config(resolve_project_root(project_dir)), sweep_id)


def list_sweeps(out: Path) -> list[Path]:
    """Sweep dirs under ``out``, oldest first (by the creation time in their metadata)."""
    from hsm_core.sweep_select import sweeps_by_creation

    return [s.path for s in sweeps_by_creation(out)]


def summarize(sweep_path: Path, *, rebuild: bool = False, best_runs: bool = True) -> dict[str, Any]:
    """Counts per state, durations and per-source numbers of one sweep (and its best runs by its
    metric unless ``best_runs`` is False: they read every completed task's metrics)."""
    from hsm_core.state import SweepDir

    sweep = SweepDir(sweep_path)
    records = sweep.rebuild_index() if rebuild else sweep.records()
    from hsm_core.sweep_end import settle_ended_sweep

    settle_ended_sweep(sweep)  # every job ended with nobody watching: say how the sweep ended
    meta = sweep.read_metadata()
    counts = {s: 0 for s in STATE_ORDER}
    per_source: dict[str, dict[str, int]] = {}
    durations = []
    for r in records.values():
        counts[r.state] = counts.get(r.state, 0) + 1
        if r.source:
            src = per_source.setdefault(r.source, {})
            src[r.state] = src.get(r.state, 0) + 1
        if r.state == "completed" and isinstance(r.duration, (int, float)):
            durations.append(float(r.duration))
    total = len(records)
    from hsm_core.progress import finished_tasks, progress_percent
    from hsm_core.lease import current_holder
    from hsm_core.outages import read_outages

    holder = current_holder(sweep.path)
    outages = read_outages(sweep.logs_dir)
    return {
        "sweep_id": sweep.sweep_id,
        "path": str(sweep.path),
        "status": meta.get("status"),
        "created": meta.get("created"),
        "sources": meta.get("sources"),
        #: The hsm run/complete running the sweep right now (None when none is).
        "controller": holder.to_json() if holder is not None else None,
        "total": total,
        "counts": {k: v for k, v in counts.items() if v or k in ("completed", "failed", "running", "pending")},
        #: Tasks in a final state, and their share in percent: as hsm monitor watch shows them.
        "done": finished_tasks(counts),
        "progress": progress_percent(counts, total),
        "per_source": per_source,
        "duration": {
            "mean": round(sum(durations) / len(durations), 3) if durations else None,
            "max": max(durations) if durations else None,
            "total": round(sum(durations), 3) if durations else None,
        },
        # Sources the running controller cannot reach: the tasks waiting on each, since when,
        # when they run elsewhere, and what the user can do (logs/source_outages.json).
        "waiting": outages["sources"] if outages else [],
        #: An adaptive (search:) sweep's best completed trial so far: trial, metric, goal, value, params.
        "best": _best_trial(sweep.path),
        #: The sweep's metric ({name, goal}) and its best runs so far (hsm_core.monitor.best), or None.
        **(_best_runs(sweep.path, records.values()) if best_runs else {"metric": None, "best_runs": None}),
    }


def _best_trial(sweep_path: Path) -> dict[str, Any] | None:
    # Only a search: sweep has a trial log (hsm_core.adaptive.LOG_DIR): a grid's status does
    # not import the search machinery (12 ms, a tenth of its start-up).
    if not os.path.isdir(os.path.join(sweep_path, "search")):
        return None
    from hsm_core.adaptive import best_trial

    return best_trial(sweep_path)


def _best_runs(sweep_path: Path, records: Any) -> dict[str, Any]:
    from hsm_core.sweep_metric import declared_metric

    if declared_metric(sweep_path) is None:  # (most sweeps: no ranking module imported)
        return {"metric": None, "best_runs": None}
    from hsm_core.monitor.best import status_best

    return status_best(sweep_path, records)
