"""``hsm cleanup``: which old sweeps may be deleted, and deleting them safely.

A sweep is a candidate when its last activity (creation, last ``hsm complete``, last update) is
older than the cut-off. A sweep whose metadata says running/submitted and that has a task running
or queued (per the task's own ``status.yaml``) is never a candidate, however old.
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from hsm_core.monitor.snapshot import ACTIVE_SWEEP_STATUSES, created_time, has_active_tasks, last_activity, sweeps_with_metadata
from hsm_core.state import SweepDir


@dataclass
class Candidate:
    """A sweep older than the cut-off."""

    sweep: SweepDir
    created: _dt.datetime
    last_activity: _dt.datetime
    status: str
    running: bool  #: still has active tasks: never deleted

    @property
    def deletable(self) -> bool:
        return not self.running


def dir_size(path: Path) -> int:
    """Bytes used by the files under ``path`` (symlinks not followed)."""
    total = 0
    stack = [str(path)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        else:
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total


def fmt_size(n: int) -> str:
    """``12.3 MB`` style."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def find_candidates(output_dir: Path, days: float, now: _dt.datetime | None = None) -> list[Candidate]:
    """Sweeps under ``output_dir`` inactive for more than ``days`` days, oldest first."""
    now = now or _dt.datetime.now().astimezone()
    cutoff = now - _dt.timedelta(days=days)
    found = []
    for sweep, meta in sweeps_with_metadata(output_dir):  # a damaged sweep is never a candidate
        last = last_activity(sweep, meta)
        if last >= cutoff:
            continue
        status = str(meta.get("status") or "unknown")
        running = status in ACTIVE_SWEEP_STATUSES and has_active_tasks(sweep)
        found.append(Candidate(sweep, created_time(sweep, meta), last, status, running))
    return sorted(found, key=lambda c: (c.last_activity, c.sweep.path.name))


def delete_sweep(candidate: Candidate, output_dir: Path) -> None:
    """Remove a candidate's directory, after checking again that it is not running and that it is
    a sweep directory directly under ``output_dir``."""
    path = candidate.sweep.path.resolve()
    if path.parent != Path(output_dir).resolve() or not (path / "sweep_metadata.yaml").is_file():
        raise RuntimeError(f"refusing to delete {path}: not a sweep directory of {output_dir}")
    meta = candidate.sweep.read_metadata()
    if meta.get("status") in ACTIVE_SWEEP_STATUSES and has_active_tasks(candidate.sweep):
        raise RuntimeError(f"{candidate.sweep.sweep_id} started running again; not deleted")
    shutil.rmtree(path)
