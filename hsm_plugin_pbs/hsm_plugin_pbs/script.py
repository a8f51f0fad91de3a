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
qos            (cannot: an error)                   ``-l qos=QOS`` (Moab)
requeue        ``-r y`` / ``-r n``                  ``-r y`` / ``-r n``
exclusive      ``-l place=excl``                    ``-l naccesspolicy=singlejob``
constraint     (cannot: an error)                   node properties: ``nodes=1:a100:ib``
reservation    ``-q RESERVATION`` (its queue)       (cannot: an error)
mail           ``-M ADDRESS`` ``-m abe``            ``-M ADDRESS`` ``-m abe``
memory_per_cpu (cannot: an error)                   ``-l pmem=4gb``
gpus TYPE:N    (cannot: an error)                   (cannot: an error)
gpus_per_task  (cannot: an error)                   (cannot: an error)
logs           ``-j oe -o DIR/ -e DIR/`` (absolute) ``-j oe -o DIR/ -e DIR/`` (absolute)
warning        ``HSM_WARNING_AT``: the runner       ``HSM_WARNING_AT``: the runner
dependencies   ``qsub -W depend=afterany:ID``       ``qsub -W depend=afteranyarray:ID[]``
=============  ===================================  ===================================

The script reads its index from the first of ``PBS_ARRAY_INDEX``, ``PBS_ARRAYID`` and
``SLURM_ARRAY_TASK_ID`` that is set (Slurm's ``qsub`` front-end sets only the last), 0 when none is
(a one-task PBS Pro job is not an array: PBS Pro refuses arrays of one).
"""

from __future__ import annotations

import posixpath
import re
import shlex

from hsm_core.plugin import (
    STATUS_FILE,
    STDERR_LOG,
    STDOUT_LOG,
    ArrayJob,
    ConfigError,
    Resources,
    check_name,
    directive_path,
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
    script starts in the home directory on Torque); ``job.log_dir`` is absolute (or, from older
    callers, relative to the list's dir)."""
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


#: Generic mail events -> PBS -m letters (a: abort, i.e. failed; b: begin; e: end; n: none).
_MAIL = {"begin": "b", "end": "e", "fail": "a", "all": "abe", "none": "n"}


def pbs_cannot_express(r: Resources, flavour: str) -> list[tuple[str, str]]:
    """(key, one line) for each request of ``r`` that ``flavour`` (``pbs``/``torque``) cannot take."""
    label = "PBS Pro" if flavour == "pbs" else "Torque"
    out = []
    if r.qos and flavour == "pbs":
        out.append(("qos", "PBS Pro has no QOS directive"))
    if r.gpu_type:
        out.append(("gpus", f"{label} has no GPU types (gpus: {r.gpu_type}:{r.gpus}); ask for gpus: {r.gpus} and "
                            "the node type with your site's resource in extra_directives"))
    if r.gpus_per_task:
        out.append(("gpus_per_task", f"{label} has no GPUs per task; use gpus (GPUs per array element)"))
    if r.constraint and flavour == "pbs":
        out.append(("constraint", "PBS Pro has no node constraints; sites use custom resources in select="))
    if r.constraint and flavour == "torque" and not re.fullmatch(r"[A-Za-z0-9_.-]+(&[A-Za-z0-9_.-]+)*", r.constraint):
        out.append(("constraint", f"Torque node properties are names joined by &, not {r.constraint!r}"))
    if r.reservation and flavour == "pbs" and r.partition:
        out.append(("reservation", "a PBS Pro reservation is a queue: give it as partition/queue, not both"))
    if r.reservation and flavour == "torque":
        out.append(("reservation", "Torque has no reservation directive (Moab's -l advres is site-specific)"))
    if r.memory_per_cpu_mb and flavour == "pbs":
        out.append(("memory_per_cpu", "PBS Pro has no memory per CPU; use memory (per task)"))
    if r.memory_per_cpu_mb and r.memory_mb and flavour == "torque":
        out.append(("memory_per_cpu", "Torque takes memory or memory_per_cpu (pmem), not both"))
    unmapped = [t for t in r.mail_type if t not in _MAIL]
    if unmapped:
        out.append(("mail_type", f"{label} mail goes on begin, end, fail, all or none, not {', '.join(unmapped)}"))
    return out


def pbs_directives(job: ArrayJob, flavour: str) -> list[str]:
    """The ``#PBS`` lines of ``job`` for ``flavour`` (``pbs`` or ``torque``), escape hatches applied.
    What ``flavour`` cannot express (:func:`pbs_cannot_express`) is a ConfigError, never dropped."""
    if flavour not in FLAVOURS:
        raise ConfigError(f"unknown PBS flavour {flavour!r}", key="system", hint="use pbs or torque")
    r = job.resources
    problems = pbs_cannot_express(r, flavour)
    if problems:
        key, why = problems[0]
        raise ConfigError(why, key=key, hint="remove it, or pass your site's directive with extra_directives")
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
        if r.exclusive:
            lines.append(f"{PREFIX} -l place=excl")
    else:
        lines.append(f"{PREFIX} -t 0-{job.size - 1}" + (f"%{job.parallelism}" if job.parallelism else ""))
        if r.nodes or r.cpus or r.gpus or r.constraint:
            spec = f"nodes={r.nodes or 1}"
            if r.cpus:
                spec += f":ppn={r.cpus}"
            if r.gpus:
                spec += f":gpus={r.gpus}"
            if r.constraint:
                spec += "".join(f":{p}" for p in r.constraint.split("&"))  # node properties
            lines.append(f"{PREFIX} -l {spec}")
        if r.memory_mb:
            lines.append(f"{PREFIX} -l mem={format_memory(r.memory_mb, 'gb')}")
        if r.memory_per_cpu_mb:
            lines.append(f"{PREFIX} -l pmem={format_memory(r.memory_per_cpu_mb, 'gb')}")
        if r.qos:
            lines.append(f"{PREFIX} -l qos={check_name(r.qos, 'qos')}")
        if r.exclusive:
            lines.append(f"{PREFIX} -l naccesspolicy=singlejob")
    if r.walltime:
        lines.append(f"{PREFIX} -l walltime={format_walltime(r.walltime)}")
    if r.partition:
        lines.append(f"{PREFIX} -q {check_name(r.partition, 'queue')}")
    elif r.reservation:
        lines.append(f"{PREFIX} -q {check_name(r.reservation, 'reservation')}")  # PBS Pro: the reservation's queue
    if r.account:
        lines.append(f"{PREFIX} -A {check_name(r.account, 'account')}")
    if r.mail_user:
        lines.append(f"{PREFIX} -M {check_name(r.mail_user, 'mail_user')}")
    if r.mail_type:
        letters = "".join(dict.fromkeys("".join(_MAIL[t] for t in r.mail_type)))
        lines.append(f"{PREFIX} -m {'n' if 'n' in letters else letters}")
    if job.requeue is not None:
        lines.append(f"{PREFIX} -r {'y' if job.requeue else 'n'}")
    # Output and error of the job in logs/jobs/, absolute so that the script works whatever
    # directory it is submitted from (the element's own log is written by the script itself).
    log_dir = directive_path(job.log_dir.rstrip("/") + "/")
    lines.append(f"{PREFIX} -j oe")
    lines.append(f"{PREFIX} -o {log_dir}")
    lines.append(f"{PREFIX} -e {log_dir}")
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
    header = ["# Generated by hsm-plugin-pbs: each array element runs one hsm worker.",
              # No directive for a warning signal before the walltime: the worker keeps the time
              # and passes SIGUSR1 on to a task that handles it.
              *timer_lines(job.signal_before, job.resources.walltime)]
    lines = ["#!/bin/bash", *pbs_directives(job, flavour), "", *script_body(job, header=header)]
    return "\n".join(lines) + "\n"
