"""The Slurm job script: a pure function of an :class:`~hsm_core.plugin.ArrayJob` (golden-tested).

Generic resources map to ``#SBATCH`` options one by one:

==============  ================
A chunk's dependencies (``job.after``: the chunk before it in its throttle lane, ``hsm run
--after``) go on the ``sbatch`` command line (``--dependency=afterany:ID:ID``), not in the script.
"""

from __future__ import annotations

from hsm_core.plugin import (
    STATUS_FILE,
    STDERR_LOG,
    STDOUT_LOG,
    LAUNCHER_VARIABLE,
    ArrayJob,
    ConfigError,
    Resources,
    check_constraint,
    check_name,
    directive_path,
    finish_directives,
    format_memory,
    format_walltime,
    script_body,
)

PREFIX = "#SBATCH"

#: The job under hsm's names (``HSM_JOB_*``, see hsm_core.jobenv): the task runner takes its line of
#: the list from ``HSM_ARRAY_INDEX`` and records the others in status.yaml.
JOB_ENV = (
    f"# This job under hsm's names: the task runner records them in {STATUS_FILE}.",
    'export HSM_ARRAY_INDEX="$SLURM_ARRAY_TASK_ID" HSM_JOB_ID="$SLURM_JOB_ID" HSM_JOB_RESTART="${SLURM_RESTART_COUNT:-}"',
)


def slurm_resource_lines(r: Resources) -> list[str]:
    """The ``#SBATCH`` lines of ``r``, in one order for every script the plugin writes. What
    Slurm cannot express (see :func:`slurm_cannot_express`) is a ConfigError, never dropped."""
    problems = slurm_cannot_express(r)
    if problems:
        key, why = problems[0]
        raise ConfigError(why, key=key)
    lines = []
    if r.walltime:
        lines.append(f"--time={format_walltime(r.walltime)}")
    if r.nodes:
        lines.append(f"--nodes={r.nodes}")
    if r.cpus:
        lines.append(f"--cpus-per-task={r.cpus}")
    if r.memory_mb:
        lines.append(f"--mem={format_memory(r.memory_mb, 'G')}")
    if r.memory_per_cpu_mb:
        lines.append(f"--mem-per-cpu={format_memory(r.memory_per_cpu_mb, 'G')}")
    if r.gpus:
        gpu = f"gpu:{check_name(r.gpu_type, 'gpus')}:{r.gpus}" if r.gpu_type else f"gpu:{r.gpus}"
        lines.append(f"--gres={gpu}")
    if r.gpus_per_task:
        lines.append(f"--gpus-per-task={r.gpus_per_task}")
    if r.partition:
        lines.append(f"--partition={check_name(r.partition, 'partition')}")
    if r.account:
        lines.append(f"--account={check_name(r.account, 'account')}")
    if r.qos:
        lines.append(f"--qos={check_name(r.qos, 'qos')}")
    if r.exclusive:
        lines.append("--exclusive")
    if r.constraint:
        lines.append(f"--constraint={check_constraint(r.constraint)}")
    if r.reservation:
        lines.append(f"--reservation={check_name(r.reservation, 'reservation')}")
    if r.mail_user:
        lines.append(f"--mail-user={check_name(r.mail_user, 'mail_user')}")
    if r.mail_type:
        lines.append("--mail-type=" + ",".join(_MAIL[t] for t in r.mail_type))
    return [f"{PREFIX} {line}" for line in lines]


#: Generic mail events -> Slurm's --mail-type words.
_MAIL = {"begin": "BEGIN", "end": "END", "fail": "FAIL", "all": "ALL", "none": "NONE", "requeue": "REQUEUE",
         "time_limit": "TIME_LIMIT"}


def slurm_cannot_express(r: Resources) -> list[tuple[str, str]]:
    """(key, one line) for each request of ``r`` Slurm cannot take as asked."""
    out = []
    if r.memory_mb and r.memory_per_cpu_mb:
        out.append(("memory_per_cpu", "Slurm takes memory or memory_per_cpu, not both (--mem and --mem-per-cpu exclude each other)"))
    return out


def _log_lines(job: ArrayJob, name: str) -> list[str]:
    # Absolute, so the script works whatever directory it is submitted from; one log per array
    # element, appended to, so that a requeued attempt keeps the earlier one. --error names the
    # same file: stderr and stdout interleave as the task wrote them.
    path = directive_path(f"{job.log_dir.rstrip('/')}/{name}")
    return [f"{PREFIX} --output={path}", f"{PREFIX} --error={path}", f"{PREFIX} --open-mode=append"]


def _requeue_lines(job: ArrayJob) -> list[str]:
    if job.requeue is True:
        return [f"{PREFIX} --requeue"]
    if job.requeue is False:
        return [f"{PREFIX} --no-requeue"]
    return []


def slurm_directives(job: ArrayJob) -> list[str]:
    """The ``#SBATCH`` lines of ``job``, escape hatches applied."""
    array = f"0-{job.size - 1}" + (f"%{job.parallelism}" if job.parallelism else "")
    lines = [
        f"{PREFIX} --job-name={check_name(job.name, 'job_name')}",
        f"{PREFIX} --array={array}",
        *_log_lines(job, "%x_%A_%a.out"),
        *slurm_resource_lines(job.resources),
        *_requeue_lines(job),
    ]
    if job.signal_before:
        # The warning before the walltime, to the batch shell only (B:), which is the task runner
        # after its exec: it forwards SIGUSR1 to the task (checkpoint and exit; see docs/hpc.md).
        lines.append(f"{PREFIX} --signal=B:USR1@{job.signal_before}")
    return finish_directives(PREFIX, lines, job.extra_directives, job.skip_directives)


def launcher_lines(job: ArrayJob) -> list[str]:
    """A task asking for more than one node runs its command under ``srun`` (one process per
    node, as a hand-written multi-node sbatch script does); the runner stays alone on the first."""
    if (job.resources.nodes or 1) <= 1:
        return []
    return ["# More than one node: the task's command runs under srun, once per node.",
            f'export {LAUNCHER_VARIABLE}="srun --kill-on-bad-exit=1"']


def render_slurm_script(job: ArrayJob) -> str:
    """The complete ``sbatch`` script running array element ``$SLURM_ARRAY_TASK_ID`` of ``job``."""
    header = [
        "# Generated by hsm-plugin-slurm. Array element i runs the task dir on line i+1 of the list;",
        f"# the task runner writes {STATUS_FILE}, {STDOUT_LOG} and {STDERR_LOG} in that dir.",
        *JOB_ENV,
    ]
    header += launcher_lines(job)
    lines = ["#!/bin/bash", *slurm_directives(job), "", *script_body(job, index_expr="$HSM_ARRAY_INDEX", header=header)]
    return "\n".join(lines) + "\n"


def render_slurm_worker_script(job: ArrayJob) -> str:
    """The ``sbatch`` script of ``hsm worker submit``: one worker per array element, requeued with
    its output appended (a requeued element's worker resumes its task and adds to the same log)."""
    d = [
        f"{PREFIX} --job-name={check_name(job.name, 'job_name')}",
        f"{PREFIX} --array=0-{job.size - 1}",
        *_log_lines(job, "slurm-%A_%a.out"),
        *slurm_resource_lines(job.resources),
        f"{PREFIX} --requeue",
    ]
    if job.signal_before:
        # The warning before the walltime, to the batch shell (the worker after its exec), which
        # passes it on to a task that handles SIGUSR1 (checkpoint and exit) and takes no new task.
        d.append(f"{PREFIX} --signal=B:USR1@{job.signal_before}")
    d = finish_directives(PREFIX, d, job.extra_directives, job.skip_directives)
    return "\n".join(["#!/bin/bash", *d, "", *script_body(job)]) + "\n"
