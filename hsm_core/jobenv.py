"""The scheduler job a process runs in, told through ``HSM_JOB_*`` variables.

Core names no scheduler: it learns about the job it runs in from these variables alone. A
scheduler plugin's job scripts export them (from the scheduler's own variables), and a plugin's
``ComputeSourceRecord.job_from_env`` answers with the same variables for a process started by a
script the user wrote (``sbatch run_worker.sh``):

``HSM_JOB_ID``
    the scheduler's id of this job or array element; recorded as ``job_id`` in ``status.yaml``
    (the plugin's ``status_keys`` read it back).
``HSM_ARRAY_INDEX``
    this element's index in its array job: the line of ``hsm-task --list FILE`` it runs (unless the
    script passes ``--index``); recorded as ``array_index`` by workers.
``HSM_JOB_RESTART``
    how many times the scheduler requeued this job (empty: unknown); recorded as ``restart_count``.
    A worker's claim held by an earlier run of its own job (a smaller count) is known to be dead.
``HSM_JOB_KEY``
    names the job across requeues, for claims (default: ``HSM_JOB_ID``).
``HSM_JOB_STEP``
    tells apart several workers inside one job (a job step and process id).
``HSM_TASK_LAUNCHER``
    a command the task runner puts before the task's command (``srun ...`` in a job of more than
    one node, so that the command runs on every node); not a job variable, never recorded.
``HSM_WARNING_AT``
    when to warn the task before the walltime (epoch seconds): the task runner sends itself
    SIGUSR1 then, as Slurm's ``--signal=B:USR1@N`` would (set by the job scripts of schedulers
    without such a directive: PBS, Torque).

Standard library only: the task runner reads these once per array element.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

JOB_ID = "HSM_JOB_ID"
ARRAY_INDEX = "HSM_ARRAY_INDEX"
JOB_RESTART = "HSM_JOB_RESTART"
JOB_KEY = "HSM_JOB_KEY"
JOB_STEP = "HSM_JOB_STEP"
VARIABLES = (JOB_ID, ARRAY_INDEX, JOB_RESTART, JOB_KEY, JOB_STEP)
WARNING_AT = "HSM_WARNING_AT"
TASK_LAUNCHER = "HSM_TASK_LAUNCHER"


def warning_delay(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds until ``HSM_WARNING_AT`` (epoch seconds, exported by job scripts of schedulers
    without a warning directive; negative when past), None when unset or not a number."""
    import time

    environ = os.environ if environ is None else environ
    try:
        return float(environ.get(WARNING_AT, "")) - time.time()
    except ValueError:
        return None


def warn_self_after(delay: float) -> None:
    """Send this process SIGUSR1 in ``delay`` seconds (at once when past), from a daemon timer
    thread: it ends with the process, so it never signals one that took this pid later."""
    import signal
    import threading

    timer = threading.Timer(max(0.0, delay), os.kill, (os.getpid(), signal.SIGUSR1))
    timer.daemon = True
    timer.name = "hsm-walltime-warning"
    timer.start()


def launcher_prefix(environ: Mapping[str, str] | None = None) -> list[str]:
    """The argv ``HSM_TASK_LAUNCHER`` puts before a task's command (empty when unset)."""
    import shlex

    environ = os.environ if environ is None else environ
    return shlex.split(environ.get(TASK_LAUNCHER) or "")


def job_from_variables(environ: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """The ``HSM_JOB_*`` variables set in ``environ`` (default: this process's), or None when no
    job id is set."""
    environ = os.environ if environ is None else environ
    if not environ.get(JOB_ID):
        return None
    return {name: str(environ[name]) for name in VARIABLES if environ.get(name) not in (None, "")}


def current_job(environ: Mapping[str, str] | None = None, registry: Any = None) -> dict[str, str] | None:
    """The job this process runs in: the ``HSM_JOB_*`` variables when a job script set them, else
    the first batch scheduler of ``registry`` whose ``job_from_env`` recognises ``environ``; None
    outside any job. A plugin failing to answer counts as "not its job"."""
    environ = os.environ if environ is None else environ
    job = job_from_variables(environ)
    if job is not None or registry is None:
        return job
    for _, record in sorted(registry.components("compute_source").items()):
        if not getattr(record, "batch_scheduler", False):
            continue
        try:
            found = record.running_job(environ)
        except Exception:  # a broken plugin must not stop a worker; it only loses this shortcut
            continue
        if found and found.get(JOB_ID):
            return found
    return None


def status_fields(job: Mapping[str, str] | None) -> dict[str, str]:
    """What ``status.yaml`` records of the job: ``job_id``, ``array_index``, ``restart_count``."""
    out: dict[str, str] = {}
    for var, key in ((JOB_ID, "job_id"), (ARRAY_INDEX, "array_index"), (JOB_RESTART, "restart_count")):
        if job and job.get(var) not in (None, ""):
            out[key] = str(job[var])
    return out


def claim_job(job: Mapping[str, str] | None) -> dict[str, Any] | None:
    """What a worker's claim says about its job: ``{"key", "restart", "step"}`` (see
    :mod:`hsm_core.workers.claims`), or None outside a job."""
    if not job or not job.get(JOB_ID):
        return None
    try:
        restart = int(job.get(JOB_RESTART) or 0)
    except ValueError:
        restart = 0
    return {"key": job.get(JOB_KEY) or job[JOB_ID], "restart": restart, "step": job.get(JOB_STEP, "")}
