"""The public plugin API of hsm.

Plugin authors import from here (and from :mod:`hsm_core.testing` in their tests) and from nowhere
else in ``hsm_core``. Everything in this module is a stable contract:

* :data:`hookimpl` marks hook implementations (see :mod:`hsm_core.hookspecs` for the specs).
* Registration records (:class:`ComponentRecord` and its subclasses) describe a component by name,
  one-line summary, JSON-Schema fragment for its options, and a *lazy* factory ``"module:attr"``
  so that heavy libraries are imported only when the component is used.
* Small ABCs carry behaviour: :class:`ComputeSource`, :class:`DispatchStrategy`,
  :class:`Expander`, :class:`ResultCollector`, :class:`SyncTransport`, :class:`Host`.
* Value types the core hands to components: :class:`TaskSpec`, :class:`TaskState`,
  :class:`HealthReport`, :class:`SourceContext`.
* Errors: :class:`HsmError` and subclasses; the CLI prints them as one line and exits 2.
"""

from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator, Mapping, Sequence

import pluggy

# Errors and task states live in small modules of their own, so that the task runner (started once
# per array job element) can use them without importing this one; they are part of this API.
from hsm_core.errors import ComponentNotFound, ConfigError, HsmError, SourceUnavailable
from hsm_core.taskstate import TaskState

PROJECT_NAME = "hsm"

#: The version of this API, ``(major, minor)``. A plugin declares the version it was written for in
#: its entry-point module, ``HSM_PLUGIN_API = "1.0"``, and hsm loads it only when the majors are
#: equal and the plugin's minor is not newer than this one. The major grows when something a plugin
#: may use changes or goes away (plugins written for the old major are then listed as failed, "upgrade
#: the plugin"); the minor grows when something is only added (a plugin that needs the addition
#: declares the new minor, and an older core says "upgrade hsm-core"). A new major comes only with a
#: new hsm-core release line (0.1 -> 0.2), so a plugin for API 1.0 requires ``hsm-core>=0.1,<0.2``.
PLUGIN_API_VERSION: tuple[int, int] = (1, 1)
#: 1.1 added: ComputeSourceRecord.batch_scheduler, config_section, job_from_env; ComputeSource.submit_workers,
#: WorkerArray, WorkersSubmitted, WorkerFeature and the hsm_worker_feature hook.

#: Decorator marking a function as an implementation of an ``hsm_*`` hook.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# --------------------------------------------------------------------------------------------
# Registration records
# --------------------------------------------------------------------------------------------


def load_object(ref: str) -> Any:
    """Import ``"package.module:attr"`` and return the attribute (used for lazy factories)."""
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ValueError(f"factory reference must look like 'module:attr', got {ref!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class ComponentRecord:
    """What a registration hook returns for one component.

    ``factory`` is either a callable or a ``"module:attr"`` string imported on first use, so that
    registering a component costs nothing at start-up.
    """

    name: str
    summary: str
    factory: str | Callable[..., Any]
    #: JSON Schema (draft 2020-12) of the component's options; merged into ``hsm config schema``.
    config_schema: Mapping[str, Any] = field(default_factory=dict)
    #: Filled in by the plugin manager: the distribution that registered it.
    distribution: str | None = None

    kind: ClassVar[str] = "component"

    def load(self) -> Any:
        """Return the factory, importing it if it was given as a string."""
        return load_object(self.factory) if isinstance(self.factory, str) else self.factory


@dataclass(frozen=True)
class ExpanderRecord(ComponentRecord):
    """An expander turns one section of a sweep file (e.g. ``grid:``) into parameter sets."""

    #: The sweep-file key this expander handles (``grid``, ``paired``, ``random`` ...).
    section: str = ""
    kind: ClassVar[str] = "expander"


@dataclass(frozen=True)
class StrategyRecord(ComponentRecord):
    """A dispatch strategy: which source gets the next task."""

    kind: ClassVar[str] = "strategy"


@dataclass(frozen=True)
class ComputeSourceRecord(ComponentRecord):
    """A kind of compute source (``local``, ``ssh``, a batch scheduler ...).

    Core learns everything it needs about a kind from this record and its class (docs/hpc.md,
    "Scheduler plugins"): where its options live, whether it is a batch scheduler, its aliases,
    how to detect it, and how to recognise its own jobs from their environment.
    """

    #: Other spellings accepted in ``--sources`` and ``hpc.system``.
    aliases: tuple[str, ...] = ()
    #: Optional ``"module:attr"`` of a zero-argument callable returning True when this kind of
    #: source is usable on this machine (``--sources hpc`` asks every batch scheduler's record).
    detect: str | Callable[[], bool] | None = None
    #: Programs the source runs on this machine when its options name no login-node ``host:``
    #: (a scheduler's client commands, e.g. submit, query, cancel): ``hsm run``, ``--dry-run`` and
    #: ``hsm config validate`` refuse up front, naming the first one missing.
    local_commands: tuple[str, ...] = ()
    #: A batch scheduler (array jobs): ``hpc.system`` and ``--sources hpc[:CLUSTER]`` may name it, its
    #: options are also read from ``hpc:`` and ``hpc.clusters.NAME``, and ``hsm worker submit``,
    #: ``hsm queue`` and ``hsm test`` accept it (its class is a ``hsm_core.batch.ArrayJobSource``).
    batch_scheduler: bool = False
    #: Where the kind's options live in ``hsm_config.yaml`` (dotted; ``config_schema`` validates them
    #: there). Default ``compute.<name>``. A section ending in ``.*`` holds one entry per instance,
    #: selected as ``KIND:NAME`` (the ssh plugin: ``distributed.remotes.*``).
    config_section: str = ""
    #: Optional ``"module:attr"`` of ``f(environ) -> dict | None``: when ``environ`` is that of one
    #: of this scheduler's jobs, the job as ``HSM_JOB_*`` variables (``hsm_core.jobenv``), else None.
    #: Pull-based workers started by hand inside a job (``sbatch run_worker.sh``) use it for claims.
    job_from_env: str | Callable[[Mapping[str, str]], Mapping[str, str] | None] | None = None
    kind: ClassVar[str] = "compute_source"

    def detected(self) -> bool:
        """True when ``detect`` says this source kind is available here."""
        if self.detect is None:
            return False
        fn = load_object(self.detect) if isinstance(self.detect, str) else self.detect
        return bool(fn())

    def options_section(self) -> str:
        """``config_section``, or ``compute.<name>`` when the record names none."""
        return self.config_section or f"compute.{self.name}"

    def running_job(self, environ: Mapping[str, str]) -> dict[str, str] | None:
        """The job of this scheduler that ``environ`` belongs to, as ``HSM_JOB_*`` variables, or None."""
        if self.job_from_env is None:
            return None
        fn = load_object(self.job_from_env) if isinstance(self.job_from_env, str) else self.job_from_env
        job = fn(environ)
        return {str(k): str(v) for k, v in job.items()} if job else None


@dataclass(frozen=True)
class CollectorRecord(ComponentRecord):
    """A result collector: extracts metrics from a finished task."""

    kind: ClassVar[str] = "result_collector"


@dataclass(frozen=True)
class SyncTransportRecord(ComponentRecord):
    """A sync transport (``rsync``...): moves a directory tree to or from a target."""

    kind: ClassVar[str] = "sync_transport"


@dataclass(frozen=True)
class HostProviderRecord(ComponentRecord):
    """Provides :class:`Host` objects for a scheme (``local``, ``ssh``)."""

    kind: ClassVar[str] = "host_provider"


@dataclass(frozen=True)
class TaskRegistryRecord(ComponentRecord):
    """A task-state registry: answers "is this run finished elsewhere" for pull-based workers."""

    kind: ClassVar[str] = "task_registry"


# --------------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Component ABCs
# --------------------------------------------------------------------------------------------


class ComputeSource(abc.ABC):
    """Somewhere tasks run. One instance per entry of ``--sources``.

    The engine calls :meth:`launch` with as many tasks as :meth:`capacity` leaves room for, calls
    :meth:`poll` regularly (every :attr:`poll_interval` seconds, or sooner when woken), and reads
    the final truth from each task's ``status.yaml``, which the task runner writes wherever the
    task ran. Implementations must be safe to :meth:`poll` after a failed :meth:`launch`.

    The engine calls each source's methods from a thread of that source's own, one call at a time
    (never two at once): a slow source never holds up the others.
    """

    #: Seconds between polls when nothing wakes the engine; schedulers use longer intervals.
    poll_interval: float = 1.0

    def __init__(self, name: str, options: Mapping[str, Any], context: SourceContext) -> None:
        self.name = name
        self.options = dict(options)
        self.context = context

    @abc.abstractmethod
    def capacity(self) -> int:
        """How many tasks this source may run (or hold queued) at once."""

    @abc.abstractmethod
    def launch(self, tasks: Sequence[TaskSpec]) -> None:
        """Start (or submit) these tasks. Raise :class:`SourceUnavailable` on infrastructure failure.

        After a successful return every task is either running or queued on the source. When the
        failure comes after some tasks started, pass their ids as ``started=`` so that only the
        others are run again.
        """

    @abc.abstractmethod
    def poll(self) -> list[TaskUpdate]:
        """Report tasks whose state changed since the last poll (at least every finished task once)."""

    @abc.abstractmethod
    def cancel(self, task_ids: Iterable[str]) -> None:
        """Stop these tasks (SIGTERM then SIGKILL, scancel, qdel ...). Unknown ids are ignored."""

    def attach(self, tasks: Sequence[TaskSpec]) -> None:
        """Track tasks an earlier controller launched on this source (``hsm complete``, ``hsm cancel``).

        Everything needed (pid, job id, host) must come from the task dirs (``status.yaml``), since
        the launching process may be gone. After this call :meth:`poll` reports these tasks and
        :meth:`cancel` stops them. Default: not supported (the tasks are left alone).
        """
        raise NotImplementedError(f"{type(self).__name__} cannot attach to running tasks")

    def wants_poll(self) -> bool:
        """True to be polled before :attr:`poll_interval` is up (an update is already queued).

        Default: False. ``context.wake()`` has the same effect for every source; this is for a
        source whose own calls (``launch``, ``cancel``) queued updates without waking the engine.
        """
        return False

    def health(self) -> HealthReport:
        """Check the source can run tasks now. Default: healthy."""
        return HealthReport(True)

    def interrupt(self) -> None:
        """The user pressed Ctrl-C: stop running tasks and mark them ``interrupted``.

        Default: nothing is stopped (the tasks keep running where they are, and a later
        ``hsm complete`` picks up their results).
        """

    def close(self) -> None:
        """Release connections; called once when the engine stops using the source."""

    def detach(self) -> bool:
        """Keep launched tasks running after the controller exits (``--no-wait``).

        Return True if this source's tasks survive the controller; the default is False.
        """
        return False

    def submit_workers(self, workers: "WorkerArray", *, dry_run: bool = False) -> "WorkersSubmitted":
        """Start ``workers.count`` pull-based workers as one job of this source (``hsm worker submit
        --sources KIND``): write the job script into ``workers.script_dir``, then submit it unless
        ``dry_run``. Default: not supported (``hsm_core.batch.ArrayJobSource`` implements it)."""
        raise NotImplementedError(f"the {self.name} source cannot start workers")


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


class WorkerFeature:
    """Something a pull-based worker does around every task it runs, turned on by a worker option.

    ``hsm worker --wandb-buffer`` asks the ``hsm_worker_feature`` hook for ``"wandb-buffer"``; the
    plugin that provides it returns one of these. Every method has a default that does nothing.
    """

    def task_env(self, task_dir: Path, project_root: Path, environ: Mapping[str, str]) -> dict[str, str]:
        """Extra environment for the task; ``environ`` is what it gets otherwise. Default: none."""
        return {}

    def task_started(self, task_dir: Path, checkpoint_dir: Path, environ: Mapping[str, str]) -> None:
        """The task starts with ``environ`` (its whole environment)."""

    def heartbeat(self) -> None:
        """Called on every heartbeat of the worker's claim while the task runs (keep it short)."""

    def task_ended(self, state: str, stopping: bool) -> None:
        """The task ended in ``state``; ``stopping``: the worker was signalled and exits soon (a
        preempted job: the scheduler's SIGKILL follows)."""


class DispatchStrategy(abc.ABC):
    """Chooses which source gets the next task."""

    @abc.abstractmethod
    def choose(self, task: TaskSpec, sources: Sequence["SourceSlot"]) -> "SourceSlot | None":
        """Pick one of ``sources`` (all healthy with a free slot), or None to hold the task back."""


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


class Expander(abc.ABC):
    """Expands one section of a sweep file into a list of parameter dicts."""

    @abc.abstractmethod
    def validate(self, section: Any, where: str) -> None:
        """Raise :class:`ConfigError` when ``section`` is malformed. ``where`` names its location."""

    @abc.abstractmethod
    def count(self, section: Any) -> int:
        """Number of parameter sets, without expanding them (must be fast for 10**9)."""

    @abc.abstractmethod
    def expand(self, section: Any) -> Iterator[dict[str, Any]]:
        """Yield the parameter sets, lazily."""


class ResultCollector(abc.ABC):
    """Extracts metrics from a finished task's directory."""

    @abc.abstractmethod
    def collect(self, task_dir: Path) -> dict[str, Any]:
        """Return metrics found for this task (empty dict when none)."""


class SyncTransport(abc.ABC):
    """Moves files between this machine and a target.

    The factory of a :class:`SyncTransportRecord` is called as ``factory(name, settings)`` with the
    target's name and its settings from ``.hsm/sync_config.yaml`` (``host``, ``user``, ``port``,
    ``identity_file``, ``known_hosts``, ``ssh_options``, ``rsync_options``; no ``host`` means a
    path on this machine). ``hsm sync`` calls :meth:`open` once, then :meth:`list_remote` and
    :meth:`send` (from several threads at once), and :meth:`close` at the end.
    """

    @abc.abstractmethod
    def push(self, sources: Sequence[Path], dest: str, *, dry_run: bool = False) -> "TransferResult":
        """Copy ``sources`` (files or dirs) into ``dest`` without deleting anything there."""

    @abc.abstractmethod
    def pull(self, source: str, dest: Path, *, dry_run: bool = False) -> "TransferResult":
        """Copy ``source`` on the target into the local ``dest``."""

    @abc.abstractmethod
    def list_remote(self, path: str) -> list[str]:
        """Names of the entries directly under ``path`` on the target (empty if it is missing)."""

    def open(self) -> None:
        """Connect (e.g. one multiplexed SSH connection); raise :class:`HsmError` saying how to fix
        access problems. Default: nothing to do."""

    def close(self) -> None:
        """Release what :meth:`open` set up. Default: nothing to do."""

    def send(
        self,
        entries: Sequence[tuple[Path, str]],
        dest: str,
        *,
        dry_run: bool = False,
        excludes: Sequence[str] = (),
        on_file: Callable[[str, int], None] | None = None,
        prune_empty_dirs: bool = False,
    ) -> "TransferResult":
        """Copy each ``(local path, relative path)`` to ``dest/<relative path>`` in one transfer.

        Nothing is deleted on the target and an interrupted transfer never leaves a half-written
        file in place of a complete one. ``excludes`` are rsync-style patterns anchored at ``dest``
        (``/outputs/s1/*/*/*``), ``prune_empty_dirs`` drops directories they leave empty;
        ``on_file(relative path, size)`` is called as files arrive.
        Default: :meth:`push` per entry, which only works when an entry keeps its own name.
        """
        total = TransferResult()
        for local, rel in entries:
            rel = rel.strip("/")
            if Path(rel).name != Path(local).name:
                raise NotImplementedError(f"{type(self).__name__} cannot copy {local} under another name ({rel})")
            parent = rel.rpartition("/")[0]
            part = self.push([Path(local)], f"{dest.rstrip('/')}/{parent}" if parent else dest, dry_run=dry_run)
            total.files += part.files
            total.bytes += part.bytes
            total.skipped += part.skipped
            total.messages += part.messages
            if on_file is not None:
                on_file(rel, part.bytes)
        return total


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


class TaskRegistry(abc.ABC):
    """Answers "is this run finished elsewhere?" for pull-based workers (e.g. from W&B run states).

    The factory of a :class:`TaskRegistryRecord` is called as ``factory(options)``; ``options`` is
    a mapping (``sweep_id``, ``project_root``, ``project_config`` and the registry's own settings).
    """

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = dict(options or {})

    @abc.abstractmethod
    def is_finished(self, run_id: str) -> bool | None:
        """True when the run finished, False when it is known and not finished (running, crashed),
        None when the registry cannot tell (unknown run, service unreachable)."""

    def finished(self, run_ids: Iterable[str]) -> dict[str, bool | None]:
        """:meth:`is_finished` for many runs (implementations answer with one query)."""
        return {r: self.is_finished(r) for r in run_ids}

    def run_id(self, sweep_id: str, task_id: str) -> str:
        """The id this registry knows a task's run by. Default: the task id."""
        return task_id

    def refresh(self) -> None:
        """Forget cached answers, so the next question asks the service again."""

    def close(self) -> None:
        """Release connections."""


@dataclass(frozen=True)
class SweepLocation:
    """Where a sweep lives: what commands of plugins need to work on one sweep."""

    sweep_id: str
    sweep_dir: Path
    project_root: Path
    #: The project's validated ``hsm_config.yaml`` content (defaults applied).
    project_config: Mapping[str, Any]


def locate_sweep(sweep_id: str | None = None, project_dir: str | Path | None = None) -> SweepLocation:
    """The sweep ``sweep_id`` of the project at ``project_dir`` (default: the project holding the
    current directory); the most recent sweep when ``sweep_id`` is None. Raises :class:`HsmError`
    for an unknown sweep or a bad ``hsm_config.yaml``."""
    from hsm_core.config import find_project_root, load_project_config
    from hsm_core.state import SweepDir

    root = Path(project_dir).expanduser().absolute() if project_dir else find_project_root(Path.cwd())
    project = load_project_config(root)
    out = project.output_dir
    if sweep_id is None:
        found = sorted(Path(out).glob("*/sweep_metadata.yaml"), key=lambda p: (p.stat().st_mtime, p.parent.name))
        if not found:
            raise HsmError(f"no sweeps in {out}", hint="give a sweep id, or start a sweep with 'hsm run'")
        sweep = SweepDir(found[-1].parent)
    else:
        from hsm_core.workers.layout import find_sweep  # a pull-based sweep may live under its storage root

        sweep = find_sweep(project, sweep_id)
    return SweepLocation(sweep.sweep_id, sweep.path.absolute(), project.root, project.data)


class Host(abc.ABC):
    """A machine commands can run on: this one (core) or one reached over SSH (ssh plugin).

    Scheduler plugins submit through a Host so that they work from a workstation against a remote
    login node without importing any SSH library.
    """

    name: str = "local"

    @abc.abstractmethod
    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """Run ``argv`` (never through a shell on our side; quoted for the remote shell)."""

    @abc.abstractmethod
    def put(self, local: Path, remote: str) -> None:
        """Copy a local file or directory tree to ``remote``."""

    @abc.abstractmethod
    def get(self, remote: str, local: Path) -> None:
        """Copy a remote file or directory tree to ``local``."""

    def put_many(self, local_parent: Path, names: Sequence[str], remote_parent: str) -> None:
        """Copy ``local_parent/NAME`` to ``remote_parent/NAME`` for each name (default: one ``put``
        each; a remote host does it in one transfer)."""
        for n in names:
            self.put(Path(local_parent) / n, f"{str(remote_parent).rstrip('/')}/{n}")

    def get_many(self, remote_parent: str, names: Sequence[str], local_parent: Path) -> None:
        """Copy ``remote_parent/NAME`` to ``local_parent/NAME`` for each name (default: one ``get``
        each; a remote host does it in one transfer)."""
        for n in names:
            self.get(f"{str(remote_parent).rstrip('/')}/{n}", Path(local_parent) / n)

    def write_text(self, remote: str, text: str) -> None:
        """Write a text file on the host atomically (default: via a temp file and ``put``)."""
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / "f"
            p.write_text(text)
            self.put(p, remote)

    def close(self) -> None:
        """Release the connection."""

    @property
    def is_local(self) -> bool:
        """True when paths on this host are paths on this machine."""
        return False


__all__ = [
    "PROJECT_NAME",
    "PLUGIN_API_VERSION",
    "hookimpl",
    "HsmError",
    "ConfigError",
    "ComponentNotFound",
    "SourceUnavailable",
    "load_object",
    "ComponentRecord",
    "ExpanderRecord",
    "StrategyRecord",
    "ComputeSourceRecord",
    "CollectorRecord",
    "SyncTransportRecord",
    "HostProviderRecord",
    "TaskRegistryRecord",
    "TaskState",
    "TaskSpec",
    "TaskUpdate",
    "HealthReport",
    "SourceContext",
    "ComputeSource",
    "DispatchStrategy",
    "SourceSlot",
    "Expander",
    "ResultCollector",
    "SyncTransport",
    "TransferResult",
    "SyncItem",
    "TaskRegistry",
    "SweepLocation",
    "locate_sweep",
    "WorkerArray",
    "WorkersSubmitted",
    "WorkerFeature",
    "CommandResult",
    "Host",
]
