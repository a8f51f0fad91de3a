"""The scheduler's verdict on tasks nobody watched end (``hsm complete`` after ``--no-wait`` or a
controller that died).

A task runner stopped by a signal records the attempt as ``preempted``: it cannot know whether the
signal was a preemption, a walltime kill or a cancel. A watching controller asks the scheduler at
once; when nobody watched, ``hsm complete`` asks before it decides what to run again
(:func:`settle_unconfirmed`), through the optional :meth:`~hsm_core.plugin.ComputeSource.settle`
of the task's source. What it decides, for each such task:

* the scheduler requeued the job and it is queued or running again: watched, never run twice;
* ``timeout``: run again only with ``--retry-failed`` (it would likely time out again);
* ``cancelled`` (``scancel``/``qdel`` from outside hsm), ``preempted`` (the scheduler says so),
  node failure (``lost``): run again;
* nobody can tell (the queue forgot the job and there is no accounting): the status says
  ``unconfirmed: true`` and the task is run again only with ``--retry-failed``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from hsm_core.plugin import TaskSpec, TaskState
from hsm_core.state import read_status

__all__ = ["needs_verdict", "is_unconfirmed", "settle_unconfirmed", "UNCONFIRMED_REASON", "RERUN_ONLY_WITH_RETRY"]

#: What ``hsm complete`` says about the tasks it leaves for ``--retry-failed``.
UNCONFIRMED_REASON = "stopped by a signal the scheduler can no longer name (use --retry-failed)"

#: Final states ``hsm complete`` runs again only with ``--retry-failed``.
RERUN_ONLY_WITH_RETRY = (TaskState.FAILED.value, TaskState.TIMEOUT.value)


def needs_verdict(status: Mapping[str, Any] | None) -> bool:
    """True for a task whose runner recorded a signal in a scheduler job and nobody has asked the
    scheduler yet what the signal was."""
    if not status or status.get("state") != TaskState.PREEMPTED.value:
        return False
    return bool(status.get("job_id")) and not status.get("scheduler_state") and not status.get("unconfirmed")


def is_unconfirmed(status: Mapping[str, Any] | None) -> bool:
    """True for a task recorded ``preempted`` although nobody could say why it was stopped."""
    return bool(status and status.get("state") == TaskState.PREEMPTED.value and status.get("unconfirmed"))


def settle_unconfirmed(plan: Any, sources: Sequence[Any], *, retry_failed: bool) -> None:
    """Ask the sources which of ``plan.to_run`` only look preempted (see the module doc) and
    move them: to ``plan.to_adopt`` (requeued by the scheduler), out of ``plan.to_run`` (timed out
    or unconfirmed, without ``retry_failed``), or leave them to run again."""
    by_name = {getattr(s, "name", None): s for s in sources}
    asked: dict[str, list[tuple[Any, TaskSpec]]] = {}
    for rec in plan.to_run:
        d = plan.sweep.task_dir(rec.index)
        status = read_status(d)
        if not needs_verdict(status):
            continue
        source = by_name.get(str(status.get("source") or ""))
        if source is None:
            continue
        spec = TaskSpec(rec.task_id, rec.index, rec.params, d.resolve(), plan.sweep.sweep_id, plan.sweep.path.resolve())
        asked.setdefault(source.name, []).append((rec, spec))
    for name, items in asked.items():
        try:
            states = by_name[name].settle([spec for _, spec in items])
        except Exception as exc:  # the scheduler not answering must not stop the sweep: rerun as before
            plan.sweep.log("sweep.log", f"could not ask {name} how {len(items)} interrupted task(s) ended: {exc}")
            continue
        for rec, spec in items:
            state = states.get(rec.task_id)
            if state is None:
                continue
            status = read_status(spec.task_dir) or {}
            if status.get("state"):
                rec.update_from_status(status)
            if state.active:
                plan.to_run.remove(rec)
                plan.to_adopt.append(rec)
            elif not retry_failed and (state.value in RERUN_ONLY_WITH_RETRY or is_unconfirmed(status)):
                plan.to_run.remove(rec)
                reason = UNCONFIRMED_REASON if is_unconfirmed(status) else f"{state.value} (use --retry-failed)"
                plan.skipped[reason] = plan.skipped.get(reason, 0) + 1
