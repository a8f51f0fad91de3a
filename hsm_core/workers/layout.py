"""The worker sweep directory: deterministic run ids, task dir names and output locations.

A worker sweep is an ordinary sweep directory (:class:`hsm_core.state.SweepDir`, so ``hsm status``
reads it) whose task dirs are named after the run instead of a position::

    {storage_root}/{project}/{group}/          # without a storage root: <output_dir>/{group}
        sweep_metadata.yaml  worker_sweep.yaml  task_index.json  task_mapping.yaml
        .locks/{run_id}.lock                   # claims (see hsm_core.workers.claims)
        tasks/{run_id}_s{seed}/                # one per configuration; "{run_id}" without a seed
            params.yaml command.json status.yaml stdout.log stderr.log
            results/ checkpoints/              # HSM_OUTPUT_DIR, HSM_CHECKPOINT_DIR
        logs/workers/{host}-{pid}.log

The run id is the task id of the parameter set (``hsm_make_task_id``, default: a hash of the
canonical parameters), so every worker on every cluster computes the same id, dir and
``WANDB_RUN_ID`` for the same configuration, and adding values to the grid moves nothing.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from hsm_core import __version__
from hsm_core.atomic import atomic_write_text
from hsm_core.config.lines import display_path, line_of
from hsm_core.plugin import ConfigError, HsmError, TaskSpec
from hsm_core.state import SweepDir, TaskRecord, now_iso, validate_sweep_id
from hsm_core.sweep import SweepSpec, count, expand, task_id_maker
from hsm_core.taskdir import checkpoints_dir, write_command, write_params_once
from hsm_core.workers.settings import resolve_settings

LOCKS_DIR = ".locks"
SWEEP_COPY = "worker_sweep.yaml"
MAX_TASKS = 1_000_000
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(text: str, what: str) -> str:
    """``text`` as one safe path component (other characters become ``-``).

    A name with no letter or digit to keep (``.``, ``..``, ``---``, only non-ASCII letters) is
    refused: every such name would map to the same directory, and so share one sweep.
    """
    name = _UNSAFE.sub("-", str(text)).strip("-.")
    if not name:
        raise HsmError(f"cannot make a directory name from {what} {text!r}: it needs an ASCII letter or digit",
                       hint="use letters, digits, '_', '-' and '.'")
    try:
        return validate_sweep_id(name[:128])
    except HsmError:
        raise HsmError(f"cannot make a directory name from {what} {text!r}") from None


def sweep_group(spec: SweepSpec, sweep_file: Path) -> str:
    """The group of a sweep: its ``name:``, else the sweep file's stem."""
    name = spec.settings.get("name")
    try:
        return safe_name(str(name or Path(sweep_file).stem), "the sweep name" if name else "the sweep file's name")
    except HsmError as exc:
        if not name:
            raise HsmError(exc.message, hint="rename the file, or give the sweep a name: in it") from None
        raise ConfigError(exc.message, file=display_path(sweep_file), line=line_of(spec.settings, ["name"]), key="name",
                          hint=exc.hint) from None


def sweep_location(output_dir: Path, project_name: str, group: str, storage_root: Path | None) -> Path:
    """``{storage_root}/{project}/{group}``, or ``{output_dir}/{group}`` without a storage root
    (inside the project already, where ``hsm status {group}`` finds it)."""
    if storage_root is None:
        return Path(output_dir) / group
    return Path(storage_root) / safe_name(project_name, "the project name") / group


def storage_parent(project: Any, env: Mapping[str, str] | None = None) -> Path | None:
    """``{storage_root}/{project}``: where this project's pull-based sweeps live when a storage root
    is configured for this machine's cluster (``HSM_CLUSTER``, default ``local``), else None. Lets
    ``hsm status/export/report/sync GROUP`` find them outside the project's output dir."""
    env = os.environ if env is None else env
    try:
        settings = resolve_settings(project.root, project.data, cluster=env.get("HSM_CLUSTER") or "local", env=env)
    except HsmError:
        return None  # a settings problem is reported by hsm worker itself, not by every command
    if settings.storage_root is None:
        return None
    return sweep_location(project.output_dir, project.name, "_", settings.storage_root).parent


def continue_command(meta: Mapping[str, Any], *, retry_failed: bool = False) -> str:
    """The ``hsm worker`` command that carries on a pull-based sweep, from its metadata."""
    import shlex

    sweep_file = shlex.quote(str(meta["config_file"])) if meta.get("config_file") else "SWEEP.yaml"
    return f"hsm worker --sweep {sweep_file}" + (" --retry-failed" if retry_failed else "")


def find_sweep(project: Any, sweep_id: str) -> SweepDir:
    """The sweep ``sweep_id`` of ``project``: in its output dir, else a pull-based sweep under the
    workers' storage root (looked up only then); the output dir's clear error when neither has it."""
    try:
        return SweepDir.locate(project.output_dir, sweep_id)
    except HsmError as not_here:
        parent = storage_parent(project)
        if parent is None or not (parent / sweep_id / "sweep_metadata.yaml").exists():
            raise not_here from None
        return SweepDir(parent / sweep_id)


def seed_of(params: Mapping[str, Any]) -> Any:
    """The value of the ``seed`` parameter (or ``<anything>.seed``), None when there is none."""
    if "seed" in params:
        return params["seed"]
    for key, value in params.items():
        if str(key).rsplit(".", 1)[-1] == "seed":
            return value
    return None


def run_dir_name(run_id: str, params: Mapping[str, Any]) -> str:
    """``{run_id}_s{seed}``, or ``{run_id}`` when the configuration has no seed."""
    seed = seed_of(params)
    if seed is None:
        return run_id
    return f"{run_id}_s{_UNSAFE.sub('-', str(seed))}"


@dataclass
class WorkTask:
    """One configuration of a worker sweep."""

    index: int  #: 1-based position in the sweep file's expansion
    run_id: str
    params: dict[str, Any]
    name: str  #: task dir name

    def record(self) -> TaskRecord:
        """An index record pointing at this task's dir."""
        return TaskRecord(self.index, self.run_id, dict(self.params), extra={"dir": self.name})


def expand_tasks(spec: SweepSpec, registry: Any) -> list[WorkTask]:
    """Every distinct configuration of the sweep, in file order, with run id and dir name."""
    total = count(spec, registry)
    if total > MAX_TASKS:
        raise HsmError(f"the sweep has {total:,} combinations; workers handle at most {MAX_TASKS:,}",
                       hint="narrow the grid")
    out: list[WorkTask] = []
    seen: set[str] = set()
    run_id_of = task_id_maker(registry)
    for params in expand(spec, registry):
        run_id = run_id_of(params)
        if run_id in seen:
            continue
        seen.add(run_id)
        out.append(WorkTask(len(out) + 1, run_id, params, run_dir_name(run_id, params)))
    return out


class WorkerSweep(SweepDir):
    """A sweep directory shared by pull-based workers."""

    @property
    def locks_dir(self) -> Path:
        """``.locks/``: one lock file per claimed run."""
        return self.path / LOCKS_DIR

    def path_of(self, task: WorkTask) -> Path:
        """The task dir of ``task``."""
        return self.tasks_dir / task.name

    def checkpoint_dir(self, task: WorkTask) -> Path:
        """Where the task keeps checkpoints (``HSM_CHECKPOINT_DIR``)."""
        return checkpoints_dir(self.path_of(task))

    def worker_log(self) -> Path:
        """This worker's own log file."""
        return self.logs_dir / "workers" / f"{socket.gethostname()}-{os.getpid()}.log"

    def ensure(self, *, project_root: Path, sweep_file: Path, tasks: list[WorkTask], cluster: str) -> None:
        """Create the layout, the metadata and the index if missing or out of date (idempotent,
        safe with many workers starting at once: every write is atomic and equivalent)."""
        meta_path = self.path / "sweep_metadata.yaml"
        if meta_path.exists():
            mode = (self.read_metadata() or {}).get("mode")
            if mode != "workers":
                # A sweep of hsm run / hsm complete: its tasks live in task_NNN dirs under a
                # controller's lease, ours in run-id dirs under claims. Sharing the dir would run
                # the same parameters twice.
                from hsm_core.errors import HsmError

                raise HsmError(
                    f"{self.path} is a sweep run by hsm run / hsm complete, not by workers",
                    hint=f"give the worker sweep another name (name: in {Path(sweep_file).name}), "
                         f"or finish that sweep with: hsm complete {self.sweep_id}",
                )
        self.path.mkdir(parents=True, exist_ok=True)
        for sub in ("tasks", LOCKS_DIR, "logs/workers", "scripts/job_scripts"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        text = Path(sweep_file).read_text(encoding="utf-8")
        if not meta_path.exists():
            self.write_metadata(
                {
                    "sweep_id": self.sweep_id,
                    "mode": "workers",
                    "created": now_iso(),
                    "hsm_version": __version__,
                    "host": socket.gethostname(),
                    "user": os.environ.get("USER") or os.environ.get("LOGNAME") or "",
                    "project_root": str(Path(project_root).resolve()),
                    "config_file": str(Path(sweep_file).resolve()),
                    "sources": f"workers:{cluster}",
                    "total_tasks": len(tasks),
                    "status": "running",
                }
            )
        copy = self.path / SWEEP_COPY
        try:
            same = copy.read_text(encoding="utf-8") == text
        except OSError:
            same = False
        if not same:
            atomic_write_text(copy, text)
        self.ensure_index(tasks)

    def ensure_index(self, tasks: list[WorkTask]) -> None:
        """Write ``task_index.json`` when it does not list exactly these tasks (new or edited sweep)."""
        try:  # (from its columns when they are of this very file: 100,000 entries checked in 0.1 s, not 0.4)
            have = self.read_index()
        except (OSError, ValueError, KeyError, TypeError):
            have = {}
        wanted = {t.run_id for t in tasks}
        if have and wanted <= set(have) and all(have[t.run_id].extra.get("dir") == t.name for t in tasks):
            return
        records: dict[str, TaskRecord] = {}
        for t in tasks:
            rec = t.record()
            old = have.get(t.run_id)
            if old is not None:  # keep what is known; refresh() re-reads unfinished ones
                rec.state, rec.attempt, rec.source = old.state, old.attempt, old.source
            records[t.run_id] = rec
        # Tasks of an earlier version of the sweep file keep their place in the index.
        extra_index = len(tasks)
        for run_id, old in have.items():
            if run_id not in records and old.extra.get("dir"):
                extra_index += 1
                old.index = extra_index
                records[run_id] = old
        self.save_index(records.values(), mapping=True)


def write_task_files(
    sweep: WorkerSweep,
    task: WorkTask,
    argv: list[str],
    python_arg0: bool,
    cwd: Path,
    env: Mapping[str, str],
) -> Path:
    """Create ``tasks/<name>/`` with ``params.yaml`` (once) and ``command.json`` (each claim)."""
    d = sweep.path_of(task)
    d.mkdir(parents=True, exist_ok=True)
    checkpoints_dir(d).mkdir(exist_ok=True)
    write_params_once(d, task.run_id, task.index, task.params)
    command = {
        "sweep_id": sweep.sweep_id,
        "task_id": task.run_id,
        "index": task.index,
        "argv": argv,
        "python_arg0": python_arg0,
        "cwd": str(cwd),
        "env": dict(env),
    }
    write_command(d, command)
    return d


def task_spec(sweep: WorkerSweep, task: WorkTask) -> TaskSpec:
    """The :class:`TaskSpec` of a worker task (for plugin hooks such as ``hsm_task_env``)."""
    return TaskSpec(task.run_id, task.index, task.params, sweep.path_of(task).resolve(), sweep.sweep_id,
                    sweep.path.resolve())
