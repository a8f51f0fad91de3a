"""The warning before the walltime for a worker job (``hsm worker submit`` on a batch scheduler).

Array jobs of tasks warn the task runner before the walltime: Slurm with ``--signal=B:USR1@N``,
PBS Pro and Torque through ``HSM_WARNING_AT`` (epoch seconds, exported by the job script), at
which the runner sends itself SIGUSR1 (:mod:`hsm_core.plugin.arrayjob.warning`). A worker job's
script does the same, and the worker, which the script execs, is the process warned: it passes
SIGUSR1 on to the running task when a process of the task handles it (a training script that
saves a checkpoint on SIGUSR1; :class:`hsm_core.workers.execute.Signals`) and takes no new task,
so a worker killed at its walltime has not lost the work since the task's last checkpoint.

This module is the worker's side of ``HSM_WARNING_AT``: a daemon timer thread that sends the
worker SIGUSR1 then. A thread of the worker (not a process of its own), so it ends with the
worker and never signals a process that later got the worker's pid.
"""

from __future__ import annotations

import os
from typing import Mapping

from hsm_core import jobenv


def arm(environ: Mapping[str, str] = os.environ) -> float | None:
    """Send this process SIGUSR1 at ``HSM_WARNING_AT`` (now when that is past). Returns the
    seconds until then, None when the job script set no warning time (Slurm's scripts ask the
    scheduler for the signal instead; local workers have no walltime)."""
    delay = jobenv.warning_delay(environ)
    if delay is None:
        return None
    jobenv.warn_self_after(delay)  # (the task runner's timer, the same)
    return max(0.0, delay)
