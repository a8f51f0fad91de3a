"""PBS Pro / OpenPBS and Torque job scripts: pure functions of an ArrayJob (golden-tested).

=============  ===================================  ===================================
generic        PBS Pro / OpenPBS                    Torque
=============  ===================================  ===================================
array          ``-J 0-N`` (none for one task)       ``-t 0-N``
parallelism    ``-W max_run_subjobs=P``             ``-t 0-N%P``
index var      ``PBS_ARRAY_INDEX``                  ``PBS_ARRAYID``
nodes          ``-l select=N``                      ``-l nodes=N``
cpus           ``select=N:ncpus=C``                 ``nodes=N:ppn=C``
memory         ``select=N:...:mem=16gb``            ``-l mem=16gb``
gpus           ``select=N:...:ngpus=G``             ``nodes=N:ppn=C:gpus=G``
walltime       ``-l walltime=HH:MM:SS``             ``-l walltime=HH:MM:SS``
partition      ``-q QUEUE``                         ``-q QUEUE``
account        ``-A ACCOUNT``                       ``-A ACCOUNT``
qos            (none: use extra_directives)         ``-l qos=QOS`` (Moab)
requeue        ``-r y`` / ``-r n``                  ``-r y`` / ``-r n``
warning        ``HSM_WARNING_AT``: the runner       ``HSM_WARNING_AT``: the runner
dependencies   ``qsub -W depend=afterany:ID``       ``qsub -W depend=afteranyarray:ID[]``
=============  ===================================  ===================================

The script reads its index from the first of ``PBS_ARRAY_INDEX``, ``PBS_ARRAYID`` and
``SLURM_ARRAY_TASK_ID`` that is set (Slurm's ``qsub`` front-end sets only the last), 0 when none is
(a one-task PBS Pro job is not an array: PBS Pro refuses arrays of one).
"""

from __future__ import annotations

import posixpath
import shlex

from hsm_core.plugin import (
    STATUS_FILE,
    STDERR_LOG,
    STDOUT_LOG,
    ArrayJob,
    ConfigError,
    check_name,
    finish_directives,
    format_memory,
    format_walltime,
    script_body,
    timer_lines,
)

PREFIX = "#PBS"
FLAVOURS = ("pbs", "torque")

#: The job under hsm's names (``HSM_JOB_*``, see hsm_core.jobenv), which the task runner records.
INDEX_LINES = (
    "# PBS Pro sets PBS_ARRAY_INDEX, Torque PBS_ARRAYID, Slurm's qsub front-end SLURM_ARRAY_TASK_ID.",
    'HSM_ARRAY_INDEX="${PBS_ARRAY_INDEX:-${PBS_ARRAYID:-${SLURM_ARRAY_TASK_ID:-0}}}"',
    'export HSM_JOB_ID="${SLURM_JOB_ID:-${PBS_JOBID:-}}" HSM_JOB_RESTART="${SLURM_RESTART_COUNT:-}"',
)


def element_log_lines(job: ArrayJob) -> list[str]:
    """Send the element's output to a log of its own, ``<job name>_<array id>_<index>.out`` in
    ``logs/jobs/`` (Slurm's ``%x_%A_%a.out``), appended to by a rerun. ``-o DIR/`` alone is not
    enough: Slurm's qsub front-end (and some servers) write every element of an array to the
    same ``<script>.o<id>``, where they overwrite each other. The log dir is absolute here (the
    script starts in the home directory on Torque); ``job.log_dir`` is relative to the list's dir."""
    log_dir = posixpath.normpath(posixpath.join(posixpath.dirname(job.list_file), job.log_dir))
    name = check_name(job.name, "job_name")
    return [
        "# One log per array element, appended to by a rerun.",
        'HSM_ARRAY_ID="${SLURM_ARRAY_JOB_ID:-${PBS_JOBID%%[.[]*}}"',
        f'exec >>{shlex.quote(log_dir)}/{name}_"$HSM_ARRAY_ID"_"$HSM_ARRAY_INDEX".out 2>&1',
    ]


def pbs_is_array(job: ArrayJob, flavour: str) -> bool:
    """PBS Pro refuses a one-element array, so a one-task chunk is a plain job there."""
    return job.size > 1 or flavour == "torque"


def pbs_directives(job: ArrayJob, flavour: str) -> list[str]:
    """The ``#PBS`` lines of ``job`` for ``flavour`` (``pbs`` or ``torque``), escape hatches applied."""
    if flavour not in FLAVOURS:
        raise ConfigError(f"unknown PBS flavour {flavour!r}", key="system", hint="use pbs or torque")
    r = job.resources
    lines = [f"{PREFIX} -N {check_name(job.name, 'job_name')}"]
    if flavour == "pbs":
        if pbs_is_array(job, flavour):
            lines.append(f"{PREFIX} -J 0-{job.size - 1}")
            if job.parallelism:
                lines.append(f"{PREFIX} -W max_run_subjobs={job.parallelism}")
        chunk = [f"select={r.nodes or 1}"]
        if r.cpus:
            chunk.append(f"ncpus={r.cpus}")
        if r.memory_mb:
            chunk.append(f"mem={format_memory(r.memory_mb, 'gb')}")
        if r.gpus:
            chunk.append(f"ngpus={r.gpus}")
        if r.nodes or len(chunk) > 1:
            lines.append(f"{PREFIX} -l {':'.join(chunk)}")
        if r.qos:
            raise ConfigError(
                "PBS Pro has no QOS directive", key="qos", hint="remove qos, or pass your site's directive with extra_directives"
            )
    else:
        lines.append(f"{PREFIX} -t 0-{job.size - 1}" + (f"%{job.parallelism}" if job.parallelism else ""))
        if r.nodes or r.cpus or r.gpus:
            spec = f"nodes={r.nodes or 1}"
            if r.cpus:
                spec += f":ppn={r.cpus}"
            if r.gpus:
                spec += f":gpus={r.gpus}"
            lines.append(f"{PREFIX} -l {spec}")
        if r.memory_mb:
            lines.append(f"{PREFIX} -l mem={format_memory(r.memory_mb, 'gb')}")
        if r.qos:
            lines.append(f"{PREFIX} -l qos={check_name(r.qos, 'qos')}")
    if r.walltime:
        lines.append(f"{PREFIX} -l walltime={format_walltime(r.walltime)}")
    if r.partition:
        lines.append(f"{PREFIX} -q {check_name(r.partition, 'queue')}")
    if r.account:
        lines.append(f"{PREFIX} -A {check_name(r.account, 'account')}")
    if job.requeue is not None:
        lines.append(f"{PREFIX} -r {'y' if job.requeue else 'n'}")
    # One output file per element, in logs/jobs/ (relative to the submission dir).
    lines.append(f"{PREFIX} -j oe")
    lines.append(f"{PREFIX} -o {check_name(job.log_dir, 'log_dir')}/")
    return finish_directives(PREFIX, lines, job.extra_directives, job.skip_directives)


def render_pbs_script(job: ArrayJob, flavour: str = "pbs") -> str:
    """The complete ``qsub`` script for ``job`` (``flavour``: ``pbs`` = PBS Pro/OpenPBS, ``torque``)."""
    label = "PBS Pro/OpenPBS" if flavour == "pbs" else "Torque"
    header = [
        f"# Generated by hsm-plugin-pbs ({label}). Array element i runs the task dir on line i+1 of",
        f"# the list; the task runner writes {STATUS_FILE}, {STDOUT_LOG} and {STDERR_LOG} in that dir.",
        *INDEX_LINES,
        *element_log_lines(job),
        # PBS has no directive for a warning signal before the walltime: the runner keeps the time.
        *timer_lines(job.signal_before, job.resources.walltime),
    ]
    lines = ["#!/bin/bash", *pbs_directives(job, flavour), "", *script_body(job, index_expr="$HSM_ARRAY_INDEX", header=header)]
    return "\n".join(lines) + "\n"


def render_pbs_worker_script(job: ArrayJob, flavour: str = "pbs") -> str:
    """The ``qsub`` script of ``hsm worker submit``: one worker per array element, rerun by the
    server when preempted (``-r y``). The job name is cut to 15 characters, the limit of older servers."""
    import dataclasses

    job = dataclasses.replace(job, name=job.name[:15], parallelism=None)
    header = ["# Generated by hsm-plugin-pbs: each array element runs one hsm worker."]
    lines = ["#!/bin/bash", *pbs_directives(job, flavour), "", *script_body(job, header=header)]
    return "\n".join(lines) + "\n"
