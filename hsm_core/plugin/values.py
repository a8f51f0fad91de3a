"""The value types core and components hand each other (part of :mod:`hsm_core.plugin`).

Plain data, no behaviour: a task as a source receives it (:class:`TaskSpec`) and reports it
(:class:`TaskUpdate`, :class:`TaskState`), what a source is created with (:class:`SourceContext`)
and answers (:class:`HealthReport`), a source as a strategy sees it (:class:`SourceSlot`), what a
command on a :class:`~hsm_core.plugin.Host` returns (:class:`CommandResult`), and what ``hsm sync``
moves (:class:`SyncItem`, :class:`TransferResult`); what a source is told before a run starts
(:class:`RunStart`) and when ``hsm test`` checks it (:class:`TargetTest`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

# The task states live in a module of their own, so that the task runner (started once per array
# job element) can use them without importing this package; they are part of the contract.
from hsm_core.taskstate import TaskState

if TYPE_CHECKING:  # pragma: no cover
    from hsm_core.plugin.components import Host

__all__ = [
    "TaskState",
    "TaskSpec",
    "TaskUpdate",
    "HealthReport",
    "SourceContext",
    "SourceSlot",
    "CommandResult",
    "TransferResult",
    "SyncItem",
    "WorkerArray",
    "WorkersSubmitted",
    "RunStart",
    "TargetTest",
]


@dataclass(frozen=True)
class TaskSpec:
    """One task of a sweep, as handed to a compute source.

    The task directory already holds ``params.yaml`` and ``command.json`` when a source receives
    the spec; a source only has to run ``hsm-task <task_dir>`` (or the equivalent
    ``python -m hsm_core.runner``) wherever the task runs, and make the task dir's content come
    back to ``task_dir`` if it ran elsewhere.
    """

    task_id: str  #: stable id: hash of the canonical parameter set
    index: int  #: 1-based position in the sweep; names the dir ``tasks/task_001``
    params: Mapping[str, Any]
    task_dir: Path  #: absolute path of the task dir in the local sweep directory
    sweep_id: str
    sweep_dir: Path

    @property
    def name(self) -> str:
        """The task dir's name, e.g. ``task_001``."""
        return self.task_dir.name


@dataclass
class TaskUpdate:
    """What a source reports about one task when polled."""

    task_id: str
    state: TaskState
    #: For failures: was the task's own command at fault (False) or the infrastructure (True)?
    infrastructure_failure: bool = False
    message: str = ""


@dataclass
class HealthReport:
    """Result of :meth:`ComputeSource.health`."""

    healthy: bool
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class SourceContext:
    """What the core gives a compute source when it is created."""

    sweep_id: str
    sweep_dir: Path
    project_root: Path
    #: The project's ``hsm_config.yaml`` content (already validated), for defaults such as ``hpc:``.
    project_config: Mapping[str, Any]
    #: Call to wake the engine early (e.g. a local task finished) instead of waiting for the next poll.
    wake: Callable[[], None] = lambda: None
    #: Returns a :class:`Host` for a name (``"local"`` or a configured remote); provided by plugins.
    get_host: Callable[[str], "Host"] | None = None
    #: Stream task output to the terminal (``--show-output``).
    show_output: bool = False
    #: True while this controller holds the sweep (its lease, :mod:`hsm_core.lease`); None where no
    #: lease is kept (a test's engine). The engine asks it before every launch batch; a source that
    #: starts the task's process itself asks it again right before each start, under the task's
    #: start lock (:func:`hsm_core.runner.start_task` does both for the processes it starts), and
    #: raises :class:`NotInCharge` when it says no: a controller stopped inside a launch and
    #: replaced meanwhile must not start a second copy next to its replacement's.
    may_launch: Callable[[], bool] | None = None


@dataclass
class SourceSlot:
    """A view of one source for a :class:`DispatchStrategy`."""

    name: str
    capacity: int
    active: int
    launched_total: int

    @property
    def free(self) -> int:
        """Slots left."""
        return max(0, self.capacity - self.active)


@dataclass
class TransferResult:
    """What a transfer moved."""

    files: int = 0
    bytes: int = 0
    skipped: int = 0
    messages: list[str] = field(default_factory=list)
    #: Relative paths of the files copied (or that would be, in a dry run).
    changed: list[str] = field(default_factory=list)


@dataclass
class SyncItem:
    """One unit of ``hsm sync``: files that go to a target together (the sweep's metadata, one W&B
    run with its artifact payloads ...). Plugins return these from ``hsm_sync_items``.
    """

    #: Groups the summary: ``"sweep"``, ``"wandb_run"`` ...
    kind: str
    #: Shown in the progress bar and the summary (``run 3f9a2c (2 dirs)``).
    label: str
    #: Which path of the target receives it: ``"sweeps"``, ``"wandb"`` or ``"project_root"``.
    dest_root: str
    #: ``(local file or directory, path relative to the dest root)`` pairs.
    entries: list[tuple[Path, str]] = field(default_factory=list)
    #: Bytes on this machine, for the progress bar.
    size: int = 0
    #: Set for finished items: with ``check_remote_first`` a target that already received this
    #: fingerprint skips the item. None means always send (e.g. a run still writing).
    fingerprint: str | None = None
    #: rsync-style exclude patterns relative to the dest root (``/outputs/s1/tasks/*/wandb/``).
    excludes: tuple[str, ...] = ()
    #: Also drop directories left empty by the excludes.
    prune_empty_dirs: bool = False
    #: When set the item is listed in the summary with this reason and not sent.
    skip_reason: str | None = None
    #: Counts for the summary ("older artifact versions not sent": 3).
    details: dict[str, int] = field(default_factory=dict)
    #: One-line notes shown after the summary.
    notes: list[str] = field(default_factory=list)
    #: Free-form facts for plugins and ``--json`` output (``{"run_id": ..., "finished": True}``).
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class CommandResult:
    """Result of :meth:`Host.run`."""

    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class WorkerArray:
    """What ``hsm worker submit`` asks a scheduler for: ``count`` identical workers, one per element."""

    count: int
    #: The argv each worker runs (``python -m hsm_core worker --sweep FILE --cluster NAME ...``).
    command: tuple[str, ...]
    job_name: str
    #: The workers' working directory.
    project_root: Path
    #: Where the job script is written (and kept, to be read, edited or submitted again by hand).
    script_dir: Path
    #: Where the scheduler writes each worker's output.
    log_dir: Path
    #: Makes the script's file name unique (``workers_<stamp><suffix>``).
    stamp: str


@dataclass
class WorkersSubmitted:
    """What :meth:`ComputeSource.submit_workers` did."""

    script: Path
    #: The scheduler's job id (None for a dry run).
    job_id: str | None
    #: How the script is submitted, run in its directory (``["sbatch", "--parsable", "workers_1.sbatch"]``).
    submit_command: list[str]
    #: What stops the workers (``hsm cancel`` of the sweep prints it); empty for a dry run.
    cancel_command: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunStart:
    """What :meth:`ComputeSource.before_run` is told: how the run that is about to start was asked for.

    The run's sweep id, project root and configuration are in the source's
    :class:`SourceContext`. New fields may be added in later minor versions of the plugin API.
    """

    #: False with ``--no-verify-sync``: do not check that a remote copy of the project matches this one.
    verify_sync: bool = True
    #: A terminal is attached: the source may ask the user (``click.confirm``) before it fixes something.
    interactive: bool = False


@dataclass(frozen=True)
class TargetTest:
    """What :meth:`ComputeSource.test` is asked for by ``hsm test TARGET``."""

    #: The target as the user gave it (``hpc``, ``slurm:cluster1``, ``ssh:gpu1``), for messages.
    target: str
    #: Seconds a test task may take before the check counts as failed.
    timeout: float
    #: Prints one line for the user (say one line per check: ``  [ok] connect``).
    echo: Callable[[str], None]
    #: For a check that runs a task: ``make_probe_task(directory, code, task_id=...)`` makes a
    #: throw-away one-task sweep of this project (:func:`hsm_core.plugin.make_probe_task`, bound
    #: to the project root). Core always sets it for ``hsm test``.
    make_probe_task: Callable[..., Any] | None = None
