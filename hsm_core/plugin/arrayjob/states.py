"""What a scheduler task's state is (part of the array-job toolkit of :mod:`hsm_core.plugin`).

A plugin maps its scheduler's words to a :class:`QueueState` (a table, tested line by line);
:func:`resolve_task_state` combines it with the task's ``status.yaml`` (written by the runner: the
truth) into the state hsm reports.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hsm_core.taskstate import TaskState

__all__ = ["QueueState", "JobInfo", "Verdict", "resolve_task_state", "QueryFailed", "TRANSIENT_PATTERNS"]


class QueueState(str, enum.Enum):
    """A job element's state as the scheduler reports it, after a plugin's mapping table."""

    PENDING = "pending"  # queued, held, requeued, configuring
    RUNNING = "running"
    SUSPENDED = "suspended"
    COMPLETING = "completing"  # processes still being cleaned up: wait before judging
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    PREEMPTED = "preempted"
    NODE_FAIL = "node_fail"
    OUT_OF_MEMORY = "out_of_memory"
    ENDED = "ended"  # finished, the scheduler does not say how (PBS 'C'/'F'/'X')

    @property
    def active(self) -> bool:
        """True while the element is queued, running or being cleaned up."""
        return self in (QueueState.PENDING, QueueState.RUNNING, QueueState.SUSPENDED, QueueState.COMPLETING)


@dataclass(frozen=True)
class JobInfo:
    """One line of the scheduler's answer."""

    state: QueueState
    raw: str = ""  #: the scheduler's own word for it (``TIMEOUT``, ``C`` ...)
    reason: str = ""


@dataclass(frozen=True)
class Verdict:
    """What to report for a task (see :func:`resolve_task_state`)."""

    state: TaskState
    final: bool = False
    #: hsm must write this state into status.yaml (the runner could not: killed, never started).
    write: bool = False
    #: Decided from the task's absence or a terminal scheduler state: confirm on a second query.
    confirm: bool = False
    infrastructure: bool = False
    message: str = ""
    #: Nobody can tell how the attempt ended (the runner saw a signal, the scheduler no longer
    #: knows the job): written as ``unconfirmed: true``, and ``hsm complete`` runs it again only
    #: with ``--retry-failed``.
    unconfirmed: bool = False


#: The message of a task stopped by a signal when nobody can say which.
UNCONFIRMED_MESSAGE = ("stopped by a signal; the scheduler no longer says whether it was a preemption, a cancel or the "
                       "walltime (hsm complete runs it again only with --retry-failed)")

_BY_QUEUE = {
    QueueState.TIMEOUT: (TaskState.TIMEOUT, False, "the job reached its walltime"),
    QueueState.PREEMPTED: (TaskState.PREEMPTED, False, "preempted by the scheduler and not requeued"),
    QueueState.CANCELLED: (TaskState.CANCELLED, False, "the job was cancelled outside hsm (with the scheduler's cancel command)"),
    QueueState.NODE_FAIL: (TaskState.LOST, True, "node failure"),
    QueueState.OUT_OF_MEMORY: (TaskState.FAILED, False, "killed by the scheduler: out of memory"),
    QueueState.FAILED: (
        TaskState.FAILED,
        False,
        "the job failed before the task finished (setup commands or the runner: see logs/jobs/)",
    ),
}


def resolve_task_state(status_state: str | None, queue: QueueState | None, *, stopping: TaskState | None = None) -> Verdict:
    """The state of a scheduler task from its ``status.yaml`` state and the scheduler's view.

    ``status_state`` is what the runner (or hsm at submission) wrote, None when no status exists;
    ``queue`` the mapped scheduler state of the task's array element, None when the scheduler no
    longer knows it (and accounting did not say); ``stopping`` the state hsm asked for
    (CANCELLED by ``cancel``, INTERRUPTED by Ctrl-C). The table (tested line by line):

    * completed / failed written by the runner: final as written (the runner saw the exit code).
    * cancelled / timeout / lost / interrupted (written by hsm earlier): final as written.
    * element active in the queue: pending -> ``submitted`` (also a requeued task whose last
      attempt the runner recorded as preempted); running / suspended / completing -> ``running``
      (``submitted`` when the runner has not started yet and the element is completing).
    * element ended (or unknown) while status.yaml is not final -> decided by hsm (``write``,
      ``confirm``): ``stopping`` if hsm stopped it, else by the scheduler's state: timeout,
      preempted, cancelled outside hsm, node failure (lost, infrastructure: run it elsewhere),
      out of memory / failed (failed), except that a job the runner saw a signal in and that then
      ended by its own exit (failed, completed) reads preempted (a warning signal); no word from
      the scheduler -> preempted and *unconfirmed*
      if the runner saw a signal (a walltime kill, a cancel and a preemption all look alike from
      inside the job), else lost ("left the queue without a final status").
    """
    s = status_state or TaskState.SUBMITTED.value
    if s == TaskState.COMPLETED.value:
        return Verdict(TaskState.COMPLETED, final=True)
    if s == TaskState.FAILED.value:
        return Verdict(TaskState.FAILED, final=True)
    if s in (TaskState.CANCELLED.value, TaskState.TIMEOUT.value, TaskState.LOST.value, TaskState.INTERRUPTED.value):
        return Verdict(TaskState(s), final=True)
    if queue is not None and queue.active:
        if queue is QueueState.PENDING:
            return Verdict(TaskState.SUBMITTED)
        if queue is QueueState.COMPLETING and s != TaskState.RUNNING.value:
            return Verdict(TaskState.SUBMITTED if s in (TaskState.SUBMITTED.value, TaskState.PENDING.value) else TaskState.RUNNING)
        return Verdict(TaskState.RUNNING)
    # The element has ended (or is gone) but the runner left no final state.
    if stopping is not None:
        how = "cancelled by hsm" if stopping is TaskState.CANCELLED else "interrupted (Ctrl-C): the job was cancelled"
        return Verdict(stopping, final=True, write=True, confirm=True, message=how)
    if s == TaskState.PREEMPTED.value and queue in (QueueState.FAILED, QueueState.COMPLETED, QueueState.ENDED):
        # The runner saw a signal and the job then ended by the runner's own exit (not killed at
        # the walltime, not cancelled): a warning signal (--signal=B:USR1@N) or a preemption
        # notice the task acted on. The scheduler confirms it was no timeout and no cancel.
        return Verdict(TaskState.PREEMPTED, final=True, write=True, confirm=True,
                       message="stopped by a signal the job received (a warning signal or a preemption) and not requeued")
    if queue in _BY_QUEUE:
        state, infra, message = _BY_QUEUE[queue]  # type: ignore[index]
        return Verdict(state, final=True, write=True, confirm=True, infrastructure=infra, message=message)
    if s == TaskState.PREEMPTED.value:
        return Verdict(TaskState.PREEMPTED, final=True, write=True, confirm=True, unconfirmed=True,
                       message=UNCONFIRMED_MESSAGE)
    if s == TaskState.RUNNING.value:
        message = "the job ended while the task was running, without a final status (killed? see logs/jobs/)"
    else:
        message = "the job left the queue before the task started (see logs/jobs/)"
    return Verdict(TaskState.LOST, final=True, write=True, confirm=True, message=message)


#: States only the runner writes, from the exit code it saw: nothing overrides them.
FINAL_BY_RUNNER = (TaskState.COMPLETED.value, TaskState.FAILED.value)


def is_final_state(state: str) -> bool:
    """True for the value of a finished :class:`TaskState` (False for anything else)."""
    try:
        return TaskState(state).finished
    except ValueError:
        return False


def verdict_from_files(status_state: str | None) -> Verdict | None:
    """What the task files alone say, between scheduler queries (None: nothing new to say)."""
    if status_state in FINAL_BY_RUNNER or status_state in (
        TaskState.CANCELLED.value, TaskState.TIMEOUT.value, TaskState.LOST.value, TaskState.INTERRUPTED.value
    ):
        return Verdict(TaskState(status_state), final=True)
    if status_state == TaskState.RUNNING.value:
        return Verdict(TaskState.RUNNING)
    return None


class QueryFailed(Exception):
    """The scheduler's status command failed (not: some jobs are unknown). Tolerated by polls."""


#: Scheduler messages that mean "try again" (socket timeouts, a busy server ...); a plugin adds its
#: scheduler's own through :attr:`ArrayJobSource.transient_patterns`.
TRANSIENT_PATTERNS = (
    "socket timed out",
    "timed out",
    "resource temporarily unavailable",
    "try again",
    "temporarily",
    "connection refused",
    "connection reset",
    "communication failure",
    "cannot connect to server",
    "server is busy",
    "transient",
)
