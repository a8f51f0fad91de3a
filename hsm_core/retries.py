"""Automatic retries of transient failures (``retries: N``).

A task that failed because of the machine, not because of its parameters, is run again: an NCCL
error, a node failure, a preemption the scheduler did not requeue, a task the source lost. A
failure its parameters cause is never retried, because it would fail again: out of memory, a
Python exception (a ``ValueError``, a config the app rejects), a CUDA error, a plain non-zero exit,
a timeout (the same walltime runs out again). The failure categories are those ``hsm monitor
errors`` shows (:mod:`hsm_core.monitor.errors`).

``retries:`` in the sweep file, else ``compute.retries`` in ``hsm_config.yaml``: a number, or
``{max: N, backoff: SECONDS, max_backoff: SECONDS}``. The first retry waits ``backoff`` seconds
(default 10), each further one twice as long, up to ``max_backoff`` (default 600). A task is
retried while it has failed at most N times over its history (``attempts:`` in ``status.yaml``),
so a controller that is killed while a retry waits leaves it to ``hsm complete``, which keeps
counting. ``hsm complete --retry-failed`` runs a failed task once more whatever its count. Each
retry is a new attempt in the task's history and a line in ``logs/retries.log``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from hsm_core.state import SweepDir, TaskRecord, read_status
from hsm_core.taskstate import TaskState

#: Categories of :mod:`hsm_core.monitor.errors` whose failures the same parameters may not repeat.
TRANSIENT_CATEGORIES = frozenset({"nccl_error", "node_failure", "preempted", "lost"})
#: States an attempt can fail with (what counts against ``retries``).
FAILED_STATES = frozenset({TaskState.FAILED.value, TaskState.TIMEOUT.value, TaskState.LOST.value,
                           TaskState.PREEMPTED.value})
DEFAULT_BACKOFF = 10.0
DEFAULT_MAX_BACKOFF = 600.0
LOG_NAME = "retries.log"


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and how long after a failure, a task is run again."""

    max_retries: int = 0
    backoff: float = DEFAULT_BACKOFF
    max_backoff: float = DEFAULT_MAX_BACKOFF

    def delay(self, retry_number: int) -> float:
        """Seconds to wait before retry ``retry_number`` (1 for the first)."""
        return min(self.max_backoff, self.backoff * 2 ** max(0, retry_number - 1))


def policy_from(sweep_settings: Mapping[str, Any], project_data: Mapping[str, Any]) -> RetryPolicy:
    """The policy a sweep runs with: its own ``retries:``, else the project's ``compute.retries``
    (both already validated against the schema)."""
    value = sweep_settings.get("retries")
    if value is None:
        compute = project_data.get("compute") if isinstance(project_data, Mapping) else None
        value = compute.get("retries") if isinstance(compute, Mapping) else None
    if value is None:
        return RetryPolicy()
    if isinstance(value, Mapping):
        return RetryPolicy(int(value.get("max", 0)), float(value.get("backoff", DEFAULT_BACKOFF)),
                           float(value.get("max_backoff", DEFAULT_MAX_BACKOFF)))
    return RetryPolicy(int(value))


def failures_in_history(status: Mapping[str, Any] | None) -> int:
    """How many attempts of a task failed, from the ``attempts:`` history of its ``status.yaml``."""
    attempts = (status or {}).get("attempts") or []
    return sum(1 for a in attempts if isinstance(a, Mapping) and a.get("state") in FAILED_STATES)


@dataclass(frozen=True)
class RetryDecision:
    """Whether a failed task runs again, and why (what ``logs/retries.log`` says)."""

    retry: bool
    category: str
    reason: str
    delay: float = 0.0
    number: int = 0  #: which retry this is (1 for the first)


def failure_category(task_dir: Path, state: str, exit_code: int | None = None) -> str:
    """The category ``hsm monitor errors`` gives the last attempt of the task in ``task_dir``."""
    from hsm_core.monitor.errors import classify, read_stderr_tail

    status = read_status(task_dir) or {}
    code = exit_code if exit_code is not None else status.get("exit_code")
    error = status.get("error")
    return classify(state, code if isinstance(code, int) else None, read_stderr_tail(task_dir),
                    str(error) if error else None).category


def decide_for(task_dir: Path, state: str, policy: RetryPolicy, *, exit_code: int | None = None,
               failures: int = 0) -> RetryDecision:
    """Should the task in ``task_dir``, whose attempt just ended as ``state``, run again?
    ``failures``: failed attempts the caller saw (the task's history may say more)."""
    if state not in FAILED_STATES:
        return RetryDecision(False, "", f"state {state}")
    category = failure_category(task_dir, state, exit_code)
    if category not in TRANSIENT_CATEGORIES:
        return RetryDecision(False, category, f"{category} is not transient: the same parameters would fail again")
    failed = max(1, failures, failures_in_history(read_status(task_dir)))
    if failed > policy.max_retries:
        return RetryDecision(False, category, f"failed {failed} time(s); retries: {policy.max_retries}")
    return RetryDecision(True, category, f"transient ({category})", policy.delay(failed), failed)


def decide(sweep: SweepDir, rec: TaskRecord, policy: RetryPolicy, *, failures: int = 0) -> RetryDecision:
    """:func:`decide_for` a task of a sweep's index."""
    return decide_for(sweep.record_dir(rec), rec.state, policy, exit_code=rec.exit_code, failures=failures)


class Retrier:
    """The engine's ``retry`` callback: seconds to wait before a failed task runs again, or None."""

    def __init__(self, sweep: SweepDir, policy: RetryPolicy) -> None:
        self.sweep = sweep
        self.policy = policy
        self._failures: dict[str, int] = {}

    def __call__(self, rec: TaskRecord) -> float | None:
        if self.policy.max_retries <= 0 or rec.state not in FAILED_STATES:
            return None
        seen = self._failures[rec.task_id] = self._failures.get(rec.task_id, 0) + 1
        try:
            decision = decide(self.sweep, rec, self.policy, failures=seen)
        except OSError:
            return None  # its files cannot be read (disk trouble): not a failure to bet a retry on
        if not decision.retry:
            if decision.category in TRANSIENT_CATEGORIES:
                self._log(f"{rec.name} {rec.task_id} not retried: {decision.reason}")
            return None
        self._log(f"{rec.name} {rec.task_id} retry {decision.number}/{self.policy.max_retries} in "
                  f"{decision.delay:g}s: {decision.reason} after attempt {rec.attempt}")
        return decision.delay

    def _log(self, line: str) -> None:
        try:
            self.sweep.log(LOG_NAME, line)
        except OSError:
            pass  # a log line must never stop the sweep


def due_for_retry(sweep: SweepDir, rec: TaskRecord, policy: RetryPolicy) -> bool:
    """For ``hsm complete``: True when a failed task's last failure was transient and it has
    retries left (its controller ended before it could run it again)."""
    if policy.max_retries <= 0 or rec.state != TaskState.FAILED.value:
        return False
    try:
        return decide(sweep, rec, policy).retry
    except OSError:
        return False


def keep_only_category(plan: Any, category: str) -> int:
    """``hsm complete --retry-failed --only CATEGORY``: narrow ``plan.to_run`` to the failed tasks
    whose failure falls in ``category`` (a category of ``hsm monitor errors``); everything else,
    other failures and tasks that never ran alike, is left for another time. Returns how many
    were left out. An unknown category is an :class:`HsmError` naming the known ones."""
    from hsm_core.errors import HsmError
    from hsm_core.monitor.errors import CATEGORY_TITLES, diagnose

    if category not in CATEGORY_TITLES:
        from difflib import get_close_matches

        close = get_close_matches(category, list(CATEGORY_TITLES), n=1)
        raise HsmError(f"--only: unknown failure category {category!r}" + (f", did you mean {close[0]!r}?" if close else ""),
                       hint=f"categories (as hsm monitor errors shows them): {', '.join(CATEGORY_TITLES)}")
    keep = []
    for rec in plan.to_run:
        if rec.state in FAILED_STATES and diagnose(plan.sweep, rec).diagnosis.category == category:
            keep.append(rec)
    left_out = len(plan.to_run) - len(keep)
    plan.to_run = keep
    if left_out:
        reason = f"not failed with {category} (--only)"
        plan.skipped[reason] = plan.skipped.get(reason, 0) + left_out
    return left_out
