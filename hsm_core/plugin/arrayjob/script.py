"""Job-script inputs and the parts every job script shares (part of the array-job toolkit of
:mod:`hsm_core.plugin`).

A scheduler plugin renders its job script with a *pure* function of an :class:`ArrayJob`
(golden-tested); :func:`script_body` gives the lines after the directives (cd, setup commands,
``exec`` of the task runner), and :func:`chunk_ranges` splits a sweep into array jobs of at most
``MaxArraySize`` tasks: every chunk uses array indices ``0..size-1`` and its own list file maps an
index to a task dir, so the scheduler's limit on the highest index never bites.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Callable, Sequence

from hsm_core.plugin.arrayjob.directives import check_line
from hsm_core.plugin.arrayjob.resources import Resources

#: What the task runner puts before the task's command when set (``srun ...``): a job script of
#: a task of several nodes exports it. The same name as hsm_core.jobenv.TASK_LAUNCHER.
LAUNCHER_VARIABLE = "HSM_TASK_LAUNCHER"

#: The first lines of a job script whose scheduler sends the warning before the walltime
#: (``ArrayJob.signal_before``). A scheduler may send it early (up to a minute before the time asked,
#: its timer's step): a shell that has not yet ``exec``-ed the runner would die of SIGUSR1, and
#: the element with it before its task ran. Caught here instead, it is passed on as
#: ``HSM_WARNING_AT`` (a time already past): the task runner, or the worker, warns at once. A trap
#: is reset by ``exec`` and in the setup commands, so nothing else sees it.
EARLY_WARNING_LINES = (
    "# The warning before the walltime, come before the task runner is up: noted, and passed on.",
    "trap 'export HSM_WARNING_AT=${EPOCHSECONDS:-0}' USR1",
)

__all__ = ["ArrayJob", "script_body", "chunk_ranges", "ScriptRenderer", "LAUNCHER_VARIABLE"]


@dataclass(frozen=True)
class ArrayJob:
    """Everything a job script is rendered from (input of the plugins' pure render functions).

    Paths are as seen on the execution host; ``log_dir`` is absolute (the script may be submitted
    from any directory), or, as plugin API 1.x had it, relative to ``scripts/job_scripts``.
    """

    name: str  #: job name
    size: int  #: array indices 0..size-1
    list_file: str  #: task dirs, one per line, line i for index i
    project_root: str  #: where the tasks run (cwd of the setup commands and of the runner)
    runner: tuple[str, ...]  #: argv of the task runner, e.g. (python, "-m", "hsm_core.runner")
    source: str  #: source name recorded in status.yaml
    resources: Resources = Resources()
    parallelism: int | None = None  #: at most this many elements run at once (``%N``)
    log_dir: str = "../../logs/jobs"
    setup_commands: tuple[str, ...] = ()
    extra_directives: tuple[str, ...] = ()
    skip_directives: tuple[str, ...] = ()
    requeue: bool | None = None  #: True/False: ask the scheduler to (not) requeue on node failure/preemption
    python: str | None = None  #: interpreter for the task command on the execution host (``--python``)
    pass_project_root: bool = False  #: pass ``--project-root`` (execution host differs from this one)
    per_element: int = 1  #: tasks run one after the other by each array element (packing)
    #: When set, every element runs this argv instead of the task runner (``hsm worker submit``:
    #: one pull-based worker per element); ``list_file``, ``runner`` and ``--index`` are unused then.
    command: tuple[str, ...] = ()
    #: The task runner's shell fast path (:mod:`hsm_core.fastrun`) as the execution host sees it:
    #: the script sources it before starting the runner (which runs when it does not apply).
    fast_runner: str | None = None
    #: Job ids this array job starts after, however they ended (``afterany``): the chunk before it
    #: in its throttle lane (see :mod:`.throttle`), or the jobs of ``hsm run --after``. Plugins put
    #: it on the submission command (``sbatch --dependency``, ``qsub -W depend``).
    after: tuple[str, ...] = ()
    #: Seconds before the walltime at which the task runner gets SIGUSR1 (None: no warning; see
    #: :mod:`.warning`).
    signal_before: int | None = None


def script_body(job: ArrayJob, *, index_expr: str | None = None, header: Sequence[str] = ()) -> list[str]:
    """The shell lines after the directives: cd, setup commands (each checked: see
    :func:`setup_lines`), ``exec`` of the task runner (or of ``job.command``).

    ``index_expr``: a shell expression for the array index passed as ``--index``; None lets the
    runner read ``$HSM_ARRAY_INDEX`` itself. Every path is shell-quoted.
    """
    q = shlex.quote
    lines = [*header]
    if job.signal_before:
        lines += EARLY_WARNING_LINES
    lines.append(f"cd {q(job.project_root)} || exit 1")
    argv = [*job.runner, "--list", job.list_file, "--source", job.source]
    if job.pass_project_root:
        argv += ["--project-root", job.project_root]
    if job.python:
        argv += ["--python", job.python]
    if job.per_element > 1:
        argv += ["--count", str(job.per_element)]
    cmd = " ".join(q(a) for a in argv)
    if index_expr is not None:
        cmd += f' --index "{index_expr}"'
    lines += setup_lines(job, None if job.command else cmd)
    if job.command:
        # exec: the command is the job's main process, so the scheduler's signals reach it directly.
        lines.append("exec " + " ".join(q(a) for a in job.command))
        return lines
    if index_expr is not None and job.fast_runner and job.per_element == 1:
        fast = [q(job.fast_runner), *(q(a) for a in argv[len(job.runner):]), "--index", f'"{index_expr}"']
        lines.append("# The task runner's shell fast path (hsm_core/fastrun.py, bash only): runs the task and")
        lines.append("# exits; returns when it does not apply, and the Python task runner below runs the task.")
        lines.append('[ -n "${BASH_VERSION:-}" ] && . ' + " ".join(fast))
    # exec: the runner is the job's main process, so the scheduler's signals reach it directly.
    lines.append(f"exec {cmd}")
    return lines


def setup_lines(job: ArrayJob, runner_cmd: str | None) -> list[str]:
    """The setup commands, each checked: one that fails (a ``module load`` of a missing module, a
    ``conda activate`` of a missing env) ends the element before the task runs in the wrong
    environment, and the runner records the task ``failed`` with the command and its exit code
    (``runner_cmd --setup-failed``; a worker element just exits 1 saying why). Each command stays
    on its own line, so a trailing comment or ``&`` in it changes nothing."""
    if not job.setup_commands:
        return []
    q = shlex.quote
    if runner_cmd is not None:
        fail = f'{runner_cmd} --setup-failed "setup command $2 exited $1: $3"'
        body = f"exec {fail}"
    else:
        body = 'echo "hsm: setup command $2 exited $1: $3" >&2; exit 1'
    lines = ["# setup_commands from hsm_config.yaml: one that fails fails the task, which then does not run",
             f"hsm_setup_failed() {{ {body}; }}"]
    for i, command in enumerate(job.setup_commands, start=1):
        lines.append(check_line(command, f"setup_commands[{i - 1}]"))
        lines.append(f'hsm_rc=$?; [ "$hsm_rc" -eq 0 ] || hsm_setup_failed "$hsm_rc" {i} {q(command.strip())}')
    return lines


def chunk_ranges(total: int, max_size: int) -> list[tuple[int, int]]:
    """Split ``total`` tasks into (start, size) chunks of at most ``max_size`` (>= 1)."""
    max_size = max(1, int(max_size))
    return [(start, min(max_size, total - start)) for start in range(0, total, max_size)]


#: Type of the pure render functions plugins provide.
ScriptRenderer = Callable[[ArrayJob], str]
