"""hsm from Python (notebooks, scripts): load sweeps, read their tasks, start and complete sweeps.

``import hsm`` gives the same names (the ``hsm`` package re-exports this module)::

    import hsm

    sw = hsm.load_sweep()                       # the latest sweep of the project at the cwd
    for task in sw:                             # parameters, state and metrics of every task
        print(task.name, task.params, task.state, task.metrics.get("loss"))
    df = sw.to_dataframe()                      # the columns of `hsm export` (needs pandas)

    sw = hsm.run("sweeps/sweep.yaml", sources="local:4")            # blocks until the sweep ends
    sw = hsm.run("sweeps/sweep.yaml", wait=False); sw.wait()        # runs in the background
    sw.complete(retry_failed=True)

Reading never changes a task or a sweep (it may be running, or belong to a colleague). Everything
is imported when first used, so ``import hsm`` costs almost nothing. Errors are
:class:`~hsm_core.errors.HsmError` with the same one-line message the command prints.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from hsm_core.errors import HsmError

if TYPE_CHECKING:  # pragma: no cover
    from hsm_core.config import ProjectConfig
    from hsm_core.state import SweepDir, TaskRecord

__all__ = ["HsmError", "Sweep", "Task", "list_sweeps", "load_sweep", "run"]

#: Where a background controller (``wait=False``) writes its output: ``<output_dir>/.controllers/<sweep id>.log``.
CONTROLLER_DIR = ".controllers"
#: How long ``wait=False`` waits for the background controller to take the sweep (seconds).
START_TIMEOUT = 120.0


# -- tasks and sweeps --------------------------------------------------------------------------------


class Task:
    """One task of a sweep as it was when the sweep was (re)loaded.

    ``params`` are the task's parameters, ``state`` its state (``pending``, ``running``,
    ``completed``, ``failed``, ...), ``metrics`` what its ``metrics.json`` says, flattened with dots
    (``{"val": {"loss": 1}}`` is ``{"val.loss": 1}``: the names of ``hsm export``'s columns).
    """

    def __init__(self, record: TaskRecord, directory: Path) -> None:
        self._record = record
        #: The task directory (``tasks/task_001``): status.yaml, stdout.log, stderr.log, results/.
        self.dir = directory
        self._metrics: dict[str, Any] | None = None

    index = property(lambda self: self._record.index, doc="The task's number in the sweep (1, 2, ...).")
    id = property(lambda self: self._record.task_id, doc="The stable id: a hash of the parameters.")
    name = property(lambda self: self._record.name, doc="The task directory's name (``task_001``).")
    params = property(lambda self: dict(self._record.params), doc="The parameters, by name.")
    state = property(lambda self: self._record.state, doc="``pending``, ``running``, ``completed``, ``failed``, ...")
    source = property(lambda self: self._record.source, doc="Where it ran (``local``, ``ssh:gpu1``, ...), None before.")
    duration = property(lambda self: self._record.duration, doc="Seconds it ran, None before it ended.")
    exit_code = property(lambda self: self._record.exit_code, doc="Its command's exit code, None before it ended.")
    attempt = property(lambda self: self._record.attempt, doc="How many times it was started.")
    host = property(lambda self: self._record.host, doc="The host it ran on.")

    @property
    def metrics(self) -> dict[str, Any]:
        """The task's ``metrics.json``, flattened (``{}`` when it has none); read once."""
        if self._metrics is None:
            from hsm_core.monitor.export import read_metrics

            self._metrics = read_metrics(self.dir) if self.state != "pending" else {}
        return self._metrics

    def stdout(self) -> str:
        """The task's ``stdout.log`` ("" when there is none yet)."""
        return _read_text(self.dir / "stdout.log")

    def stderr(self) -> str:
        """The task's ``stderr.log`` ("" when there is none yet)."""
        return _read_text(self.dir / "stderr.log")

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self._record.params.items())
        return f"<Task {self.name} {self.state}: {params}>"


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


class Sweep:
    """A sweep on disk: its metadata and tasks, read when loaded and on :meth:`refresh`.

    Iterating gives its :class:`Task` objects in task order; ``len(sweep)`` is the number of tasks.
    """

    def __init__(self, sweep_dir: SweepDir, project: ProjectConfig) -> None:
        self._dir = sweep_dir
        self._project = project
        self._tasks: list[Task] | None = None
        self._meta: dict[str, Any] | None = None
        self._controller: subprocess.Popen | None = None

    # identity
    @property
    def id(self) -> str:
        """The sweep id (``sweep_20261206_120000``)."""
        return self._dir.sweep_id

    @property
    def path(self) -> Path:
        """The sweep directory."""
        return self._dir.path

    @property
    def project_root(self) -> Path:
        """The root of the project the sweep belongs to."""
        return self._project.root

    @property
    def controller_log(self) -> Path:
        """Output of a controller started with ``wait=False`` (it may not exist)."""
        return self._dir.path.parent / CONTROLLER_DIR / f"{self.id}.log"

    # what it says about itself
    @property
    def metadata(self) -> dict[str, Any]:
        """``sweep_metadata.yaml`` (as of the last load or refresh)."""
        if self._meta is None:
            self._meta = self._dir.read_metadata()
        return self._meta

    @property
    def status(self) -> str:
        """The sweep's status: ``running``, ``completed``, ``incomplete``, ``interrupted``, ..."""
        return str(self.metadata.get("status") or "unknown")

    @property
    def created(self) -> _dt.datetime | None:
        """When the sweep was created (aware datetime), None when unknown."""
        from hsm_core.monitor.logs import parse_time

        return parse_time(self.metadata.get("created"))

    # its tasks
    @property
    def tasks(self) -> list[Task]:
        """Every task, in task order."""
        if self._tasks is None:
            from hsm_core.monitor.snapshot import load_records

            records = sorted(load_records(self._dir).values(), key=lambda r: r.index)
            self._tasks = [Task(r, self._dir.record_dir(r)) for r in records]
        return self._tasks

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    def task(self, key: int | str) -> Task:
        """The task with this index (3), directory name (``task_003``) or id; KeyError if none."""
        for t in self.tasks:
            if key in (t.index, t.name, t.id):
                return t
        raise KeyError(f"no task {key!r} in sweep {self.id}")

    @property
    def counts(self) -> dict[str, int]:
        """Number of tasks per state."""
        out: dict[str, int] = {}
        for t in self.tasks:
            out[t.state] = out.get(t.state, 0) + 1
        return out

    @property
    def progress(self) -> float:
        """Percent of tasks in a final state, as ``hsm status`` and ``hsm monitor watch`` show it."""
        from hsm_core.progress import progress_percent

        return progress_percent(self.counts, len(self.tasks))

    @property
    def finished(self) -> bool:
        """True when nothing will change by itself: no controller is at work, or every task is final."""
        from hsm_core.monitor.snapshot import ACTIVE_SWEEP_STATUSES
        from hsm_core.progress import finished_tasks

        if self.status not in ACTIVE_SWEEP_STATUSES:
            return True
        return bool(self.tasks) and finished_tasks(self.counts) == len(self.tasks)

    def refresh(self) -> "Sweep":
        """Read the sweep again (tasks, states, metrics, metadata); returns the sweep."""
        self._tasks = None
        self._meta = None
        return self

    def rows(self) -> list[dict[str, Any]]:
        """One dict per task with the columns of ``hsm export`` (parameters, status, metrics)."""
        from hsm_core.monitor.export import build_table

        table = build_table(self._dir, [t._record for t in self.tasks])
        return [{c: row.get(c) for c in table.columns} for row in table.rows]

    def to_dataframe(self) -> Any:
        """A pandas DataFrame with one row per task and the columns of ``hsm export``.

        Raises :class:`HsmError` saying how to install pandas when it is not installed.
        """
        try:
            import pandas as pd
        except ImportError:
            raise HsmError("Sweep.to_dataframe() needs pandas, which is not installed",
                           hint=f"install it with: {sys.executable} -m pip install pandas; "
                                "without pandas, Sweep.rows() gives the same columns as dicts") from None
        from hsm_core.monitor.export import build_table

        table = build_table(self._dir, [t._record for t in self.tasks])
        return pd.DataFrame(table.rows, columns=table.columns)

    # doing things
    def complete(self, *, retry_failed: bool = False, sources: str | None = None, parallel_limit: int | None = None,
                 strategy: str | None = None, config: str | Path | Mapping[str, Any] | None = None,
                 wait: bool = True) -> "Sweep":
        """Run the tasks that have not completed, as ``hsm complete`` does (never a completed one).

        ``retry_failed`` runs failed tasks again; ``config`` (a sweep file or a dict) replaces the
        sweep's grid, e.g. with more values: only the combinations without a completed task run,
        and the old sweep file is kept beside the new one. ``wait=True`` runs the controller here
        and returns when it ends (interrupting the kernel stops the tasks, as Ctrl-C does);
        ``wait=False`` starts it in the background and returns once it holds the sweep (then
        :meth:`wait`). Another controller running the sweep is an :class:`HsmError`. Returns the
        sweep, refreshed.
        """
        path = _config_file(config, self._project) if config is not None else None
        written = path if isinstance(config, Mapping) else None
        keep = False
        try:
            if not wait:
                argv = ["complete", self.id, *_flags(sources=sources, parallel_limit=parallel_limit, strategy=strategy,
                                                     config=path)]
                if retry_failed:
                    argv.append("--retry-failed")
                self._controller, started = _start_controller(argv, self._project.root, self.path.parent, self.id, new=False)
                keep = not started
                return self.refresh()
            from hsm_core.lifecycle import plan_complete
            from hsm_core.plugins import get_registry

            registry = get_registry()
            plan = plan_complete(self.id, registry, project_root=self._project.root, retry_failed=retry_failed,
                                 config_file=path)
            meta = plan.sweep.read_metadata()
            _execute(plan, registry, sources or meta.get("sources") or "local",
                     strategy or meta.get("strategy") or "round_robin", parallel_limit,
                     f"hsm.Sweep({self.id!r}).complete()", given_sources=sources, given_strategy=strategy)
            return self.refresh()
        finally:
            if written is not None and not keep:
                written.unlink(missing_ok=True)

    def wait(self, timeout: float | None = None, interval: float = 1.0) -> "Sweep":
        """Block until the sweep is finished and no controller runs it; returns it refreshed.

        Raises TimeoutError after ``timeout`` seconds. Interrupting the wait stops nothing: a
        background controller goes on.
        """
        from hsm_core.lease import current_holder

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._controller is not None and self._controller.poll() is not None:
                self._controller = None  # reaped: no zombie left in a long-lived kernel
            self.refresh()
            if self._controller is None and current_holder(self.path) is None and self.finished:
                return self
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"sweep {self.id} is not finished after {timeout:g}s ({self.progress:.1f}% done)")
            time.sleep(interval)

    def __repr__(self) -> str:
        from hsm_core.progress import progress_text

        return f"<Sweep {self.id}: {self.status}, {progress_text(self.counts, len(self.tasks))}>"


# -- finding sweeps ----------------------------------------------------------------------------------


def _project(project: str | Path | None) -> ProjectConfig:
    """The project holding ``project`` (a directory; default: the cwd), like the ``hsm`` command finds it."""
    from hsm_core.config import find_project_root, load_project_config

    start = Path(project).expanduser().resolve() if project is not None else Path.cwd()
    if project is not None and not start.is_dir():
        raise HsmError(f"project directory {project} does not exist")
    return load_project_config(find_project_root(start))


def load_sweep(sweep_id: str | None = "latest", *, project: str | Path | None = None) -> Sweep:
    """The sweep ``sweep_id`` (default ``latest``: the one created last) of the project holding
    ``project`` (default: the current directory; a notebook in ``proj/notebooks/`` finds ``proj``)."""
    from hsm_core.sweep_select import resolve_sweep

    proj = _project(project)
    return Sweep(resolve_sweep(proj, sweep_id), proj)


def list_sweeps(*, project: str | Path | None = None) -> list[Sweep]:
    """Every sweep of the project, oldest first (tasks are read when first used)."""
    from hsm_core.sweep_select import sweeps_by_creation

    proj = _project(project)
    return [Sweep(s, proj) for s in sweeps_by_creation(proj.output_dir)]


# -- starting sweeps ---------------------------------------------------------------------------------


def run(config: str | Path | Mapping[str, Any], *, project: str | Path | None = None, sources: str | None = None,
        parallel_limit: int | None = None, max_runs: int | None = None, sweep_id: str | None = None,
        strategy: str | None = None, wait: bool = True) -> Sweep:
    """Start a sweep, as ``hsm run`` does: ``config`` is a sweep file (relative to the cwd or the
    project root) or the sweep as a dict (``{"grid": {"lr": [0.1, 0.01]}}``).

    Every check ``hsm run`` makes is made first; a refused run raises :class:`HsmError` and
    creates nothing. ``wait=True`` runs the controller in this process and returns the finished
    sweep (failed tasks do not raise: look at ``sweep.counts``); interrupting the kernel stops the
    tasks as Ctrl-C does, and ``sweep.complete()`` continues. ``wait=False`` starts the controller
    as a background process that outlives the notebook's kernel, returns the sweep as soon as it
    exists, and ``sweep.wait()`` blocks until it ends.
    """
    from hsm_core.lifecycle import plan_run
    from hsm_core.plugins import get_registry

    proj = _project(project)
    registry = get_registry()
    path = _config_file(config, proj)
    # A dict is written to a file for the controller to read; the sweep keeps its own copy.
    written = path if isinstance(config, Mapping) else None
    keep = False
    try:
        if not wait:
            if sweep_id is None:
                sweep_id = _free_sweep_id(proj.output_dir)
            plan = plan_run(path, registry, project_root=proj.root, sweep_id=sweep_id, max_runs=max_runs)
            _preflight(plan, registry, sources, strategy)  # a refused run fails here, not in a log file
            argv = ["run", "-c", str(path), "--sweep-id", sweep_id,
                    *_flags(sources=sources, parallel_limit=parallel_limit, strategy=strategy, max_runs=max_runs)]
            proc, started = _start_controller(argv, proj.root, proj.output_dir, sweep_id, new=True)
            keep = not started  # still starting: it has not read the file yet
            sweep = load_sweep(sweep_id, project=proj.root)
            sweep._controller = proc
            return sweep
        plan = plan_run(path, registry, project_root=proj.root, sweep_id=sweep_id, max_runs=max_runs)
        chosen_sources, chosen_strategy = _preflight(plan, registry, sources, strategy)
        _execute(plan, registry, chosen_sources, chosen_strategy, parallel_limit, f"hsm.run({str(path)!r})")
        return Sweep(plan.sweep, plan.project)
    finally:
        if written is not None and not keep:
            written.unlink(missing_ok=True)


def _config_file(config: str | Path | Mapping[str, Any], project: ProjectConfig) -> Path:
    """The sweep file to run: a path as given (cwd, else project root), or a dict written to
    ``<output_dir>/.controllers/`` (the sweep keeps its own copy as sweep_config.yaml)."""
    if isinstance(config, Mapping):
        import tempfile

        import yaml

        where = project.output_dir / CONTROLLER_DIR
        where.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="sweep-", suffix=".yaml", dir=where)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yaml.safe_dump(dict(config), fh, sort_keys=False)
        return Path(name)
    return _config_path(config, project.root)


def _config_path(config: str | Path, root: Path) -> Path:
    path = Path(config).expanduser()
    if not path.is_absolute() and not path.exists() and (root / path).exists():
        path = root / path
    if not path.is_file():
        raise HsmError(f"sweep file {config} does not exist", hint=f"give a path relative to {Path.cwd()} or to {root}")
    return path.absolute()


def _free_sweep_id(output_dir: Path) -> str:
    from hsm_core.state import new_sweep_id

    base = candidate = new_sweep_id()
    n = 1
    while (Path(output_dir) / candidate).exists():
        n += 1
        candidate = f"{base}_{n}"
    return candidate


def _preflight(plan: Any, registry: Any, sources: str | None, strategy: str | None) -> tuple[str, str]:
    """The checks of ``hsm run`` (sources, strategy, command, script): returns (sources, strategy)."""
    from hsm_core.preflight import Origin, check_run, sources_setting, strategy_setting

    chosen_sources = sources_setting(sources, plan.project, plan.spec)
    chosen_strategy = strategy_setting(strategy, plan.project, plan.spec)
    if sources:
        chosen_sources = (sources, Origin("sources="))
    if strategy:
        chosen_strategy = (strategy, Origin("strategy="))
    check_run(plan.project, plan.spec, [(r.name, r.params) for r in plan.to_run], registry,
              sources=chosen_sources, strategy=chosen_strategy)
    return chosen_sources[0], chosen_strategy[0]


def _execute(plan: Any, registry: Any, sources: str, strategy: str, parallel_limit: int | None, command_line: str,
             *, given_sources: str | None = None, given_strategy: str | None = None) -> None:
    """Carry out ``plan`` in this process (what ``hsm run``/``hsm complete`` do after planning)."""
    from hsm_core.lifecycle import ExecOptions, execute, settle_sweep_status

    try:
        if not plan.new_sweep:
            from hsm_core.preflight import Origin, check_run

            check_run(plan.project, plan.spec, [(r.name, r.params) for r in plan.to_run], registry,
                      sources=(sources, Origin("sources=" if given_sources else "sources")),
                      strategy=(strategy, Origin("strategy=" if given_strategy else "strategy")))
        if not plan.to_run and not plan.to_adopt:
            if not plan.new_sweep:
                settle_sweep_status(plan)
            return
        opts = ExecOptions(sources=sources, strategy=strategy, parallel_limit=parallel_limit, command_line=command_line)
        from hsm_core.engine import Interrupted

        try:
            execute(plan, opts, registry)
        except Interrupted:
            # The engine stopped the tasks (Ctrl-C, "interrupt kernel"): to Python code this is
            # the KeyboardInterrupt it asked for, not an error of the sweep.
            raise KeyboardInterrupt(f"sweep {plan.sweep.sweep_id} interrupted; its tasks were stopped, "
                                    "continue with sweep.complete()") from None
        if plan.lease is not None and plan.lease.lost:
            raise plan.lease.lost_error()
    finally:
        plan.release_lease()


def _flags(**options: Any) -> list[str]:
    """Command-line flags for the options that are set (``parallel_limit=4`` -> ``--parallel-limit 4``)."""
    out: list[str] = []
    for name, value in options.items():
        if value is not None:
            out += [f"--{name.replace('_', '-')}", str(value)]
    return out


def _start_controller(argv: list[str], root: Path, output_dir: Path, sweep_id: str, *,
                      new: bool) -> tuple[subprocess.Popen, bool]:
    """Start ``hsm ARGV`` as a background controller in its own session (it outlives the kernel and
    ignores its interrupts), and return ``(process, True)`` once it is at work on the sweep (holds
    its lease and has recorded its start in the metadata) or has already ended; if it fails first,
    its error line becomes an :class:`HsmError`. ``(process, False)``: it was not at work within
    :data:`START_TIMEOUT` and goes on starting (``sweep.wait()`` follows it)."""
    from hsm_core.lease import current_holder
    from hsm_core.state import INDEX_FILE, SweepDir

    log_dir = Path(output_dir) / CONTROLLER_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{sweep_id}.log"
    sweep_path = Path(output_dir) / sweep_id

    def last_start() -> Any:
        # hsm complete records "last_complete" when it starts its tasks, hsm run creates the
        # metadata; either then saves the index with every task (the sweep's tasks are visible).
        if not (sweep_path / "sweep_metadata.yaml").exists():
            return None
        try:
            meta = SweepDir(sweep_path).read_metadata()
            indexed = len(json.loads((sweep_path / INDEX_FILE).read_text(encoding="utf-8"))["tasks"])
        except (HsmError, OSError, ValueError, KeyError, TypeError):
            return None
        if indexed < int(meta.get("total_tasks") or 0):
            return None
        return meta.get("last_complete", "created")

    before = None if new else last_start()
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "hsm_core", *argv], cwd=root, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            if code in (0, 1):  # it ran (and ended already; 1: some tasks failed)
                return proc, True
            lines = [ln for ln in _read_text(log).splitlines() if ln.strip()]
            message = lines[-1].removeprefix("Error: ") if lines else f"hsm {argv[0]} exited with {code}"
            raise HsmError(f"{message} [the background hsm {argv[0]}'s output: {log}]")
        started = last_start()
        if started is not None and started != before:
            holder = current_holder(sweep_path)
            if holder is not None and str(holder.pid) == str(proc.pid):
                return proc, True
        time.sleep(0.1)
    return proc, False
