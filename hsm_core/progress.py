"""What "progress" of a sweep means, in one place: ``hsm status``, ``hsm monitor watch``, the
completion report, ``hsm run``'s progress bar and the Python API all show this.

Progress is the share of tasks in a final state (completed, failed, timed out, cancelled, ...):
the part of the sweep that will not change by itself any more. Failures are counted beside it,
never hidden in it: ``7/10 (70.0%)`` with ``Failed 2`` says the sweep ran seven tasks, two of them
without success.
"""

from __future__ import annotations

from typing import Mapping

from hsm_core.taskstate import TaskState

_FINAL = frozenset(s.value for s in TaskState if s.finished)


def finished_tasks(counts: Mapping[str, int]) -> int:
    """How many tasks are in a final state, from counts per state."""
    return sum(n for state, n in counts.items() if state in _FINAL)


def progress_percent(counts: Mapping[str, int], total: int) -> float:
    """Finished tasks in percent of ``total``, rounded to one decimal (0.0 for an empty sweep)."""
    return round(100.0 * finished_tasks(counts) / total, 1) if total else 0.0


def progress_text(counts: Mapping[str, int], total: int) -> str:
    """``done/total (pct%)``, as every view prints it."""
    return f"{finished_tasks(counts)}/{total} ({progress_percent(counts, total):.1f}%)"
