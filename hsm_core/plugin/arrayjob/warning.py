"""A warning signal before the walltime, by default (part of the array-job toolkit of
:mod:`hsm_core.plugin`).

A training job killed at its walltime loses everything since its last checkpoint. Schedulers can
warn it first: Slurm sends a signal N seconds before the limit (``--signal=B:USR1@N``, B: to the
batch shell, which is the task runner after its ``exec``); PBS Pro and Torque have no such
directive, so their job scripts tell the runner when (``HSM_WARNING_AT``, :func:`timer_lines`) and
the runner sends itself SIGUSR1 then. The runner forwards the signal to the task, which may
save a checkpoint and exit; it is recorded ``preempted`` and ``hsm complete`` runs it again
(docs/hpc.md shows the pattern).

``signal_before_walltime``: seconds (default :data:`DEFAULT_SECONDS`), or ``off`` / ``false`` /
``0``. The default gives way when the walltime is known and too short for it (not more than twice
the warning: a task would be warned before it did anything); a value set explicitly that is not
shorter than the walltime is an error.

:func:`element_resources`: an array element that runs ``tasks_per_element: K`` tasks one after the
other asks for K times the walltime of one task, so packed elements are not killed halfway.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from hsm_core.errors import ConfigError
from hsm_core.plugin.arrayjob.resources import Resources, format_walltime, parse_walltime

# Only timer_lines is part of the plugin API (hsm_core.plugin); the rest serves the toolkit.
__all__ = ["timer_lines"]

#: The variable the task runner reads the warning time from (``hsm_core.jobenv.WARNING_AT``; named
#: here, as the plugin API loads nothing of the runner's side).
WARNING_AT = "HSM_WARNING_AT"

#: Seconds before the walltime at which a task is warned, unless configured.
DEFAULT_SECONDS = 60

_OFF = ("off", "false", "no", "none", "0")


def warning_seconds(options: Mapping[str, Any], walltime: int | None) -> int | None:
    """The warning of ``signal_before_walltime`` in seconds, None when there is none.

    ``walltime``: the walltime an array element asks for (seconds), None when the scheduler's
    default applies."""
    value = options.get("signal_before_walltime")
    if value is None:
        if walltime is not None and walltime <= 2 * DEFAULT_SECONDS:
            return None
        return DEFAULT_SECONDS
    if value is False or str(value).strip().lower() in _OFF:
        return None
    if value is True:
        return DEFAULT_SECONDS
    seconds = parse_walltime(value, key="signal_before_walltime") if isinstance(value, str) and not value.strip().isdigit() \
        else _seconds(value)
    if walltime is not None and seconds >= walltime:
        raise ConfigError(f"signal_before_walltime is {seconds} s but the walltime is {format_walltime(walltime)}",
                          key="signal_before_walltime", hint="give fewer seconds than the walltime, or off")
    return seconds


def _seconds(value: Any) -> int:
    if isinstance(value, bool) or not str(value).strip().isdigit() or int(value) < 1:
        raise ConfigError(f"must be a number of seconds or off, got {value!r}", key="signal_before_walltime")
    return int(value)


def timer_lines(seconds: int | None, walltime: int | None) -> list[str]:
    """Job-script lines for a scheduler with no warning-signal directive: export when the task
    runner is to warn the task (``HSM_WARNING_AT``, epoch seconds: ``seconds`` before ``walltime``
    from the job's start). The runner, which the script execs, sends itself SIGUSR1 then
    from a timer thread and forwards it to the task: nothing outlives the job, and no other
    process can get the signal (the shell fast path, :mod:`hsm_core.fastrun`, does the same with
    a timer process it stops when the task ends). No lines when either is unknown."""
    if not seconds or not walltime or walltime <= seconds:
        return []
    return [
        f"# Warning signal {seconds} s before the walltime ({format_walltime(walltime)}): the task runner sends",
        "# SIGUSR1 to the task then (save a checkpoint and exit; hsm complete resumes it).",
        # bash's clock where there is one (no `date` process per element), else date's.
        f"export {WARNING_AT}=$(( ${{EPOCHSECONDS:-$(date +%s)}} + {walltime - seconds} ))",
    ]


def element_resources(resources: Resources, per_element: int) -> Resources:
    """What one array element asks for when it runs ``per_element`` tasks one after the other:
    the walltime of one task times ``per_element`` (the rest is per task already)."""
    if per_element <= 1 or not resources.walltime:
        return resources
    return dataclasses.replace(resources, walltime=resources.walltime * per_element)
