"""What ``hsm status`` reports of a sweep, from its files alone; where a project's sweeps are.

:func:`summarize` counts a sweep's tasks per state and per source, with durations, the controller
running it and the sources it waits on; :func:`list_sweeps` finds the sweeps of an output
directory; :func:`output_dir` and :func:`locate_sweep` find a project's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hsm_core.plugin import HsmError

#: The order states are listed in.
STATE_ORDER = ("completed", "failed", "running", "submitted", "pending", "interrupted", "cancelled", "timeout", "preempted", "lost")


def output_dir(project_dir: str | None) -> Path:
    """The project's sweeps output dir (``paths.output_dir``, default ``sweeps/outputs``)."""
    from hsm_core.config import find_project_root, load_project_config

    root = Path(project_dir).resolve() if project_dir else find_project_root(Path.cwd())
    return load_project_config(root).output_dir


def locate_sweep(project_dir: str | None, sweep_id: str) -> Any:
    """SWEEP_ID of the project as a SweepDir: in its output dir, else a pull-based sweep under the
    workers' storage root (:func:`hsm_core.plugin.locate_sweep`)."""
    from hsm_core.plugin import locate_sweep as locate
    from hsm_core.state import SweepDir

    return SweepDir(locate(sweep_id, project_dir).sweep_dir)


def list_sweeps(out: Path) -> list[Path]:
    """Sweep dirs under ``out``, oldest first (by creation time recorded in the name or mtime)."""
    if not out.is_dir():
        return []
    from hsm_core.state import validate_sweep_id

    dirs = []
    for meta in out.glob("*/sweep_metadata.yaml"):
        try:
            dirs.append(Path(meta.parent.parent, validate_sweep_id(meta.parent.name)))
        except HsmError:  # a directory whose name is not a sweep id is not one of ours
            continue
    return sorted(dirs, key=lambda p: (p.stat().st_mtime, p.name))


def summarize(sweep_path: Path, *, rebuild: bool = False) -> dict[str, Any]:
    """Counts per state, durations and per-source numbers of one sweep."""
    from hsm_core.state import SweepDir

    sweep = SweepDir(sweep_path)
    records = sweep.rebuild_index() if rebuild else sweep.records()
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
    done = counts.get("completed", 0)
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
        "progress": round(100.0 * done / total, 1) if total else 0.0,
        "per_source": per_source,
        "duration": {
            "mean": round(sum(durations) / len(durations), 3) if durations else None,
            "max": max(durations) if durations else None,
            "total": round(sum(durations), 3) if durations else None,
        },
        # Sources the running controller cannot reach: the tasks waiting on each, since when,
        # when they run elsewhere, and what the user can do (logs/source_outages.json).
        "waiting": outages["sources"] if outages else [],
    }
