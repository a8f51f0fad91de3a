"""The component ABCs: the behaviour a plugin implements (part of :mod:`hsm_core.plugin`).

A registration record's factory builds one of these: :class:`ComputeSource` (where tasks run),
:class:`DispatchStrategy` (which source gets the next task), :class:`Expander` (a sweep-file
section into parameter sets), :class:`ResultCollector` (metrics of a finished task),
:class:`SyncTransport` (moves files to a target), :class:`TaskRegistry` (is a run finished
elsewhere) and :class:`Host` (a machine commands run on). Hooks only register and notify; the
behaviour lives here.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from hsm_core.plugin.values import (
    CommandResult,
    HealthReport,
    RunStart,
    SourceContext,
    SourceSlot,
    TargetTest,
    TaskSpec,
    TaskState,
    TaskUpdate,
    TransferResult,
    WorkerArray,
    WorkersSubmitted,
)

__all__ = [
    "ComputeSource",
    "DispatchStrategy",
    "Expander",
    "ResultCollector",
    "SyncTransport",
    "TaskRegistry",
    "Host",
    "WorkerFeature",
]


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

    def settle(self, tasks: Sequence[TaskSpec]) -> dict[str, TaskState]:
        """Optional: how tasks ended that nobody watched end, and whose runner recorded that a
        signal stopped them (state ``preempted``): ``hsm complete`` asks before it runs them
        again. A batch scheduler asks its queue and accounting and writes the verdict into each
        ``status.yaml`` (``timeout``, ``cancelled``, ``preempted``, or ``preempted`` with
        ``unconfirmed: true`` when nobody can tell); a task it reports active (``submitted``,
        ``running``: the scheduler requeued it) is watched, not run again. Default: ``{}``
        (nothing to ask: the tasks run again)."""
        return {}

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

    def before_run(self, run: RunStart) -> None:
        """Check or prepare this source before a run writes anything (``hsm run``, ``hsm sweep``,
        ``hsm complete``): e.g. connect, find the remote project, verify it matches this one.

        Called once per source of the run, after every source is created and before the sweep
        directory is written or a task is launched. Raise :class:`HsmError` for what the user must
        fix first: the run stops (exit 2) and nothing is written. Raise :class:`SourceUnavailable`
        when the source cannot be reached right now: the run stops only when every source of the
        run is unavailable; otherwise hsm prints a warning and starts this source unhealthy (the
        engine uses it once :meth:`health` says it answers). Default: nothing to check.
        """

    def test(self, check: TargetTest) -> bool:
        """``hsm test TARGET`` for a target naming this source (``ssh:gpu1``, ``hpc``, ``slurm``).

        The source is created as ``--sources TARGET`` would create it, outside any sweep: its
        context names the project, and ``context.sweep_dir`` is the project's output directory
        (write nothing there). To run a test task, write a throw-away sweep with
        :func:`~hsm_core.plugin.make_probe_task` and launch it on a new instance of this class
        whose context names that sweep. Print one line per check through ``check.echo``; return
        True when every check passed, False when one failed (the command then exits 1).
        Default: this kind has no test (``hsm test`` says so, exit 2).
        """
        raise NotImplementedError(f"{type(self).__name__} has no test")

    def submit_workers(self, workers: "WorkerArray", *, dry_run: bool = False) -> "WorkersSubmitted":
        """Start ``workers.count`` pull-based workers as one job of this source (``hsm worker submit
        --sources KIND``): write the job script into ``workers.script_dir``, then submit it unless
        ``dry_run``. Default: not supported (``hsm_core.plugin.ArrayJobSource`` implements it)."""
        raise NotImplementedError(f"the {self.name} source cannot start workers")

    def describe_tasks(self, tasks: Sequence[TaskSpec], *, live: bool = False) -> dict[str, dict[str, Any]]:
        """Optional: each task's link back to where it runs, for ``hsm status --tasks`` and
        ``hsm export`` (task id -> flat mapping; a task left out has nothing to say). Keys a
        scheduler fills in: ``scheduler_id`` (``12345_7``, ``123[7]``), ``job_id`` (the element's
        own id, once it ran); with ``live`` (ask the scheduler now, one call): ``scheduler_state``,
        ``reason`` (why it is pending), ``held``; from accounting, when the site keeps it:
        ``elapsed`` (s), ``max_rss`` (bytes), ``cpu_efficiency`` (0..1), ``nodes``. Must not fail
        because the scheduler cannot be asked: say less. Default: ``{}``."""
        return {}

    def control(self, tasks: Sequence[TaskSpec], action: str) -> dict[str, str]:
        """Optional: ``hold``, ``release`` or ``requeue`` these queued or running tasks through
        the scheduler (``hsm hold|release|requeue SWEEP --tasks ...``). Returns task id -> ``""``
        when done, else one line saying why not. Raise :class:`HsmError` when the source cannot do
        ``action`` at all. Default: not supported."""
        from hsm_core.plugin.errors import HsmError

        raise HsmError(f"the {self.name} source cannot {action} single tasks (only a scheduler source can)")


class DispatchStrategy(abc.ABC):
    """Chooses which source gets the next task."""

    @abc.abstractmethod
    def choose(self, task: TaskSpec, sources: Sequence["SourceSlot"]) -> "SourceSlot | None":
        """Pick one of ``sources`` (all healthy with a free slot), or None to hold the task back."""


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

    def describe(self, section: Any) -> "list[tuple[str, str]] | None":
        """Optional: ``(parameter, text)`` rows for ``--dry-run`` (``("lr", "3 values")``; a name
        in parentheses is a note). Core also uses the names to refuse a parameter that two
        sections set. Default None: one row for the whole section."""
        return None


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
