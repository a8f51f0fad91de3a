"""The sweep directory as a plugin writes to it (part of :mod:`hsm_core.plugin`).

A sweep directory (``<output_dir>/<sweep_id>``, :attr:`~hsm_core.plugin.TaskSpec.sweep_dir`) holds
``tasks/<task dir>/`` per task, ``logs/`` and ``scripts/``, plus an index of the task states that
``hsm status`` reads. The index is a summary of the task dirs: a plugin that changes task dirs
outside a run (copies them back from a remote host) refreshes it with :func:`refresh_sweep_index`.
"""

from __future__ import annotations

from pathlib import Path

from hsm_core.state import SweepDir, count_states

__all__ = ["source_log", "refresh_sweep_index"]


def source_log(sweep_dir: Path, source: str, line: str) -> None:
    """Append a timestamped ``line`` to the sweep's ``logs/sources/<source>.log`` (what a compute
    source did: submissions, retries, lost tasks). Never raises: a log that cannot be written
    must not stop a sweep."""
    try:
        SweepDir(Path(sweep_dir)).log(f"sources/{source}.log", line)
    except Exception:  # noqa: BLE001 - a full disk or a damaged dir name: the log is only informative
        pass


def refresh_sweep_index(sweep_dir: Path) -> dict[str, int]:
    """Bring the sweep's index and ``task_mapping.yaml`` up to date with its task dirs' ``status.yaml``
    (after task dirs changed outside a run); returns the number of tasks in each state."""
    sweep = SweepDir(Path(sweep_dir))
    records = sweep.records()
    sweep.save_index(records.values(), mapping=True)
    return count_states(records.values())
