"""A sweep's own status once every job ended with nobody watching.

``hsm run --no-wait`` leaves the sweep ``submitted``, and a controller that died leaves it
``running``: nobody is left to write how it ended. Readers (``hsm status``, ``hsm monitor watch``)
call :func:`settle_ended_sweep`, which records ``completed`` or ``incomplete`` once no controller
holds the sweep and every task's own ``status.yaml`` is final, holding the sweep's lease for that
moment (a controller starting meanwhile is never overwritten). A task whose runner recorded a
signal nobody has confirmed yet (:func:`hsm_core.verdicts.needs_verdict`) may have been requeued
by its scheduler: the sweep is not over while one is left.
"""

from __future__ import annotations

from typing import Any, Mapping

from hsm_core.state import SweepDir, now_iso, read_status, reconcile_status
from hsm_core.taskstate import DONE, TaskState

__all__ = ["ACTIVE_SWEEP_STATUSES", "settle_ended_sweep", "task_is_over"]

#: Sweep statuses (``sweep_metadata.yaml``) of a sweep whose controller is (or should be) at work.
ACTIVE_SWEEP_STATUSES = ("running", "submitted")


def task_is_over(status: Mapping[str, Any] | None) -> bool:
    """True when a task's status is final and nothing (a requeue) can change it by itself."""
    from hsm_core.verdicts import needs_verdict

    if not status:
        return False
    try:
        state = TaskState(str(status.get("state")))
    except ValueError:
        return False
    return state.finished and not needs_verdict(status)


def settle_ended_sweep(sweep: SweepDir, *, reader: str = "hsm status") -> str | None:
    """Record the end of a sweep nobody watches any more; returns the status written (None when
    the sweep is not over, already says how it ended, or a controller holds it)."""
    from hsm_core.lease import ControllerLease, LeaseHeld, current_holder

    try:
        meta = sweep.read_metadata()
    except Exception:
        return None
    if meta.get("status") not in ACTIVE_SWEEP_STATUSES or current_holder(sweep.path) is not None:
        return None
    records = sweep.records()
    if not records or any(not TaskState(r.state).finished for r in records.values()):
        return None
    for rec in records.values():
        d = sweep.record_dir(rec)
        if not task_is_over(reconcile_status(d, read_status(d))):
            return None
    # (a pruned task was stopped early on purpose: it is done, as a completed one is)
    state = "completed" if all(r.state in DONE for r in records.values()) else "incomplete"
    try:
        lease = ControllerLease.acquire(sweep, command=reader)
    except (LeaseHeld, OSError):
        return None
    try:
        if sweep.read_metadata().get("status") not in ACTIVE_SWEEP_STATUSES:
            return None
        sweep.update_metadata(status=state, updated=now_iso())
        sweep.log("sweep.log", f"end: {state} (every job had ended; recorded by {reader})")
    except OSError:
        return None  # a read-only or full disk: the task dirs remain the truth
    finally:
        lease.release()
    return state
