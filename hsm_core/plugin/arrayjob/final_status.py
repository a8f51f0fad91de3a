"""Writing the end of a scheduler task the runner could not record (part of the array-job toolkit
of :mod:`hsm_core.plugin`).

The runner writes how a task ended whenever it can. When it could not (the job was killed at its
walltime, cancelled, its node failed, it never started) hsm writes the :class:`Verdict` decided
from the scheduler's answer (:func:`~hsm_core.plugin.resolve_task_state`) with
:func:`write_verdict`, which never overwrites what the runner saw (``completed``, ``failed``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from hsm_core.plugin.arrayjob.states import FINAL_BY_RUNNER, JobInfo, Verdict, is_final_state
from hsm_core.plugin.taskfiles import now_iso, read_status, write_status
from hsm_core.taskstate import TaskState

__all__ = ["write_verdict"]

#: Runner-written states a scheduler verdict may replace: the runner saw a signal (it reads
#: ``preempted``) but only the scheduler knows whether it was a walltime kill, a cancel or a
#: preemption.
_REPLACEABLE = (TaskState.PREEMPTED.value,)


def write_verdict(task_dir: Path, verdict: Verdict, info: JobInfo | None, *,
                  known: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """Record ``verdict`` in the task's ``status.yaml``; returns the status written (None: the
    runner, or an earlier decision, already said how it ended, and nothing was written).

    ``known`` is the status as last read, used when the file cannot be read. A signal the runner
    recorded as a preemption takes the verdict's name in the attempt history too.
    The end time is the runner's when it recorded one (a walltime kill ended the task then, not
    when hsm noticed).
    """
    status = read_status(task_dir) or dict(known or {})
    current = status.get("state", TaskState.SUBMITTED.value)
    if current in FINAL_BY_RUNNER or (current not in _REPLACEABLE and is_final_state(current)):
        return None
    new = dict(status)
    runner_ended = current in _REPLACEABLE and status.get("end_time")
    new.update(state=verdict.state.value, message=verdict.message)
    if not runner_ended:
        new["end_time"] = now_iso()
    attempts = list(new.get("attempts") or [])
    last = attempts[-1] if attempts and isinstance(attempts[-1], dict) else None
    if current in _REPLACEABLE and last is not None and last.get("state") == current and verdict.state.value != current:
        # The attempt the runner recorded as preempted ended the way the scheduler says
        # (cancelled, timeout) or the way hsm asked (cancelled, interrupted).
        attempts[-1] = {**last, "state": verdict.state.value}
        new["attempts"] = attempts
    if info is not None and info.raw:
        new["scheduler_state"] = info.raw
    if verdict.unconfirmed:
        new["unconfirmed"] = True
    new.pop("process", None)
    write_status(task_dir, new)
    return new
