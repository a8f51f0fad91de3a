"""Reading sweeps from Python: :class:`Sweep` and :class:`Task`, :func:`load_sweep`, :func:`list_sweeps`.

Reading never changes a task or a sweep (it may be running, or belong to a colleague); what a
sweep loads it reads when first asked, and again after :meth:`Sweep.refresh`.
"""

from __future__ import annotations

import datetime as _dt
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from hsm_core.errors import HsmError
from hsm_core.taskdir import stderr_path, stdout_path

if TYPE_CHECKING:  # pragma: no cover
    from hsm_core.config.project_config import ProjectConfig
    from hsm_core.state import SweepDir, TaskRecord


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
        return _read_text(stdout_path(self.dir))

    def stderr(self) -> str:
        """The task's ``stderr.log`` ("" when there is none yet)."""
        return _read_text(stderr_path(self.dir))

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
        from hsm_core.api.background import CONTROLLER_DIR

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
        from hsm_core.api.starting import complete_sweep

        controller = complete_sweep(self.id, self.path, self._project, retry_failed=retry_failed, sources=sources,
                                    parallel_limit=parallel_limit, strategy=strategy, config=config, wait=wait)
        if controller is not None:
            self._controller = controller
        return self.refresh()

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


def project_of(project: str | Path | None) -> ProjectConfig:
    """The project holding ``project`` (a directory; default: the cwd), like the ``hsm`` command finds it."""
    from hsm_core.config.project_config import load_project_config
    from hsm_core.config.project_root import resolve_project_root

    return load_project_config(resolve_project_root(project, climb=True))


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
    from hsm_core.api.starting import start_run

    sweep_dir, project_config, controller = start_run(
        config, project=project, sources=sources, parallel_limit=parallel_limit, max_runs=max_runs, sweep_id=sweep_id,
        strategy=strategy, wait=wait)
    sweep = Sweep(sweep_dir, project_config)
    sweep._controller = controller
    return sweep


def load_sweep(sweep_id: str | None = "latest", *, project: str | Path | None = None) -> Sweep:
    """The sweep ``sweep_id`` (default ``latest``: the one created last) of the project holding
    ``project`` (default: the current directory; a notebook in ``proj/notebooks/`` finds ``proj``)."""
    from hsm_core.sweep_select import resolve_sweep

    proj = project_of(project)
    return Sweep(resolve_sweep(proj, sweep_id), proj)


def list_sweeps(*, project: str | Path | None = None) -> list[Sweep]:
    """Every sweep of the project, oldest first (tasks are read when first used)."""
    from hsm_core.sweep_select import sweeps_by_creation

    proj = project_of(project)
    return [Sweep(s, proj) for s in sweeps_by_creation(proj.output_dir)]
