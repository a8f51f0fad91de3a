"""The states of a task (re-exported by :mod:`hsm_core.plugin`, where plugins import it from).

Kept apart, with no imports beyond the standard library, so that the task runner (started once per
array job element) does not pay for importing the whole plugin API.
"""

from __future__ import annotations

import enum


#: The states of a task that failed (what ``hsm monitor errors`` analyses), in the order they are shown.
FAILED_STATES = ("failed", "timeout", "lost", "preempted")


class TaskState(str, enum.Enum):
    """The state of one task, as written in its ``status.yaml``."""

    PENDING = "pending"
    SUBMITTED = "submitted"  # handed to a scheduler, not yet started
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # stopped by the user (Ctrl-C) or the controller going away
    TIMEOUT = "timeout"
    PREEMPTED = "preempted"
    LOST = "lost"  # the source lost track of it (host down, node failure)
    PRUNED = "pruned"  # stopped early by the sweep's pruner: a final outcome, never run again

    @property
    def finished(self) -> bool:
        """True for states a task does not leave by itself."""
        return self in _FINISHED

    @property
    def active(self) -> bool:
        """True while the task occupies (or is queued on) a source."""
        return self in (TaskState.SUBMITTED, TaskState.RUNNING)


_FINISHED = frozenset(
    {
        TaskState.COMPLETED,
        TaskState.FAILED,
        TaskState.CANCELLED,
        TaskState.INTERRUPTED,
        TaskState.TIMEOUT,
        TaskState.PREEMPTED,
        TaskState.LOST,
        TaskState.PRUNED,
    }
)

#: States in which a task is done for good: ``hsm complete`` (even ``--retry-failed``) leaves it.
DONE = frozenset({TaskState.COMPLETED.value, TaskState.PRUNED.value})
