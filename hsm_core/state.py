"""The sweep directory: the product's database.

``tasks/task_NNN/status.yaml``, written where the task ran, is the truth. ``task_index.json``
(fast, internal) and ``task_mapping.yaml`` (for people) are summaries rebuilt from the task dirs
whenever they are missing or stale. Everything is written atomically.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import json
import operator
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import yaml

from hsm_core import processes
from hsm_core.atomic import atomic_write_text, atomic_write_yaml, read_json, read_yaml
from hsm_core.errors import HsmError
from hsm_core.start_lock import start_lock_held
from hsm_core.taskdir import (  # noqa: F401 - the task files' names and readers, re-exported for core
    EXIT_MARKER,
    PID_FILE,
    WRAPPER_NAME,
    clear_markers,
    left_exit_code,
    pruned_decision,
    read_params,
    read_status,
    started_process,
    with_kept_on_disk,
    write_status,
)
from hsm_core.taskstate import TaskState

_SWEEP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_STATES = frozenset(s.value for s in TaskState)
_FINISHED = frozenset(s.value for s in TaskState if s.finished)
#: Final states whose status.yaml is not read again on refresh (a preempted task may be requeued).
_SETTLED = _FINISHED - {TaskState.PREEMPTED.value}
INDEX_FILE = "task_index.json"
METADATA_FILE = "sweep_metadata.yaml"
#: Keys of ``sweep_metadata.yaml`` that hsm reads, and the types it can use (times may have been
#: read back by YAML as datetimes). Other keys are informational and taken as they are.
_METADATA_TYPES: dict[str, type | tuple[type, ...]] = {
    "sweep_id": str,
    "status": str,
    "mode": str,
    "sources": str,
    "strategy": str,
    "project_root": str,
    "config_file": str,
    "total_tasks": int,
    "total_combinations": int,
    "max_runs": int,
    "metadata": dict,
    "created": (str, _dt.datetime),
    "updated": (str, _dt.datetime),
    "last_complete": (str, _dt.datetime),
}
MAPPING_FILE = "task_mapping.yaml"
#: ``process`` of a status written just before the task's process is started.
STARTING = "starting"
#: A ``starting`` status older than this, or whose controller is gone, with no process behind it
#: never started.
STARTING_GRACE = 10.0
#: Seconds a wrapper may take, once its controller asked for it, to be a process of its own
#: (fork and exec): a controller killed in that moment leaves no trace of it to find.
EXEC_WINDOW = 2.0


def still_starting(task_dir: Path, status: Mapping[str, Any]) -> bool:
    """A ``process: starting`` task whose wrapper wrote no pid file yet may still be starting:
    its controller is alive and starting it, or (the controller died right after asking for the
    wrapper) a wrapper of this task is alive, or was asked for a moment ago. Rerunning it then
    would run it twice, side by side."""
    age = time.time() - float(status.get("start_epoch") or 0)
    if age >= STARTING_GRACE:
        return False
    if not _gone(status.get("starter")) or age < EXEC_WINDOW:
        return True
    return bool(processes.wrappers_of(task_dir, WRAPPER_NAME))


def _shown(path: Path) -> str:
    """``path`` as the user would type it: relative to the cwd when below it."""
    try:
        return str(Path(path).absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class DamagedSweepError(HsmError):
    """A sweep whose own files hsm cannot read (``sweep_metadata.yaml`` damaged by hand or by a
    disk fault). Commands about that sweep stop with the one-line message; listings of every
    sweep skip it with that line and go on."""

    def __init__(self, message: str, *, hint: str | None = None, sweep_id: str = "") -> None:
        super().__init__(message, hint=hint)
        self.sweep_id = sweep_id


def validate_sweep_id(sweep_id: str) -> str:
    """Return ``sweep_id`` if it is a safe single path component, else raise HsmError."""
    if not isinstance(sweep_id, str) or not _SWEEP_ID.match(sweep_id) or ".." in sweep_id:
        raise HsmError(
            f"invalid sweep id {sweep_id!r}",
            hint="use letters, digits, '_', '-' and '.', no '/' and no '..'",
        )
    return sweep_id


def new_sweep_id(now: _dt.datetime | None = None) -> str:
    """``sweep_YYYYMMDD_HHMMSS`` in local time."""
    return (now or _dt.datetime.now()).strftime("sweep_%Y%m%d_%H%M%S")


def now_iso() -> str:
    """Current local time, ISO 8601 with offset, second precision."""
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def task_dir_name(index: int) -> str:
    """``task_001`` for index 1; wider numbers just grow (``task_1234``)."""
    return f"task_{index:03d}"


@dataclass
class TaskRecord:
    """One row of the index."""

    index: int
    task_id: str
    params: dict[str, Any]
    state: str = TaskState.PENDING.value
    source: str | None = None
    duration: float | None = None
    exit_code: int | None = None
    attempt: int = 0
    host: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The task dir's name (``extra['dir']`` when the sweep names its dirs itself, see
        :meth:`SweepDir.record_dir`)."""
        return str(self.extra.get("dir") or task_dir_name(self.index))

    def to_json(self) -> dict[str, Any]:
        d = {
            "index": self.index,
            "id": self.task_id,
            "params": self.params,
            "state": self.state,
            "source": self.source,
            "duration": self.duration,
            "exit_code": self.exit_code,
            "attempt": self.attempt,
            "host": self.host,
            "start_time": self.start_time,
            "end_time": self.end_time,
        }
        if self.extra:
            d["extra"] = self.extra
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "TaskRecord":
        """A record from its index entry. Raises ValueError for an entry hsm did not write (an
        unknown state, a field of the wrong type): the index is a cache, and its readers rebuild
        it from the task dirs rather than trust, or crash on, a damaged one."""
        if type(d) is not dict and not isinstance(d, Mapping):
            raise ValueError(f"an index entry must be a mapping, not {type(d).__name__}")
        state = d.get("state") or TaskState.PENDING.value
        if state not in _STATES:
            raise ValueError(f"unknown task state {state!r} in the index")
        for key, kinds, optional in _FIELD_TYPES:
            # The exact types json.load gives pass at once (100,000 entries for one `hsm status`);
            # anything else gets the full check (bool is no int here).
            value = d.get(key)
            if value is None:
                if not optional:
                    _expect(d, key, kinds)
            elif type(value) not in kinds:
                _expect(d, key, kinds, optional=optional)
        return cls(
            index=d["index"],
            task_id=d["id"],
            params=dict(d.get("params") or {}),
            state=str(state),
            source=d.get("source"),
            duration=d.get("duration"),
            exit_code=d.get("exit_code"),
            attempt=d.get("attempt") or 0,
            host=d.get("host"),
            start_time=d.get("start_time"),
            end_time=d.get("end_time"),
            extra=dict(d.get("extra") or {}),
        )

    def update_from_status(self, status: Mapping[str, Any]) -> None:
        """Copy the fields a ``status.yaml`` knows into this record."""
        self.state = str(status.get("state") or self.state)
        if self.state in _FINISHED:
            self.extra.pop("unrecorded", None)  # status.yaml says how it ended now
        for key in ("source", "duration", "exit_code", "host", "start_time", "end_time"):
            if key in status:
                setattr(self, key, status[key])
        self.attempt = int(status.get("attempt") or self.attempt)


#: The type of each field of an index entry, and whether it may be missing (None).
_FIELD_TYPES: tuple[tuple[str, tuple[type, ...], bool], ...] = (
    ("index", (int,), False), ("id", (str,), False), ("attempt", (int,), True), ("params", (dict,), True),
    ("extra", (dict,), True), ("exit_code", (int,), True), ("duration", (int, float), True),
    ("source", (str,), True), ("host", (str,), True), ("start_time", (str,), True), ("end_time", (str,), True),
)


def _expect(d: Mapping[str, Any], key: str, kind: type | tuple[type, ...], *, optional: bool = False) -> None:
    """Raise ValueError unless ``d[key]`` is a ``kind`` (or missing/None when ``optional``)."""
    value = d.get(key)
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, kind):  # True is an int to Python, not to us
        raise ValueError(f"{key}: unexpected {type(value).__name__} {value!r:.40}")


def process_identity(pid: int) -> str | None:
    """A string identifying a live process (pid + start time), or None when it is gone."""
    return processes.identity(pid)


def _gone(ident: object) -> bool:
    """True only when the process ``ident`` names is provably gone: a process that cannot be
    checked counts as running (never start a second copy because the first could not be seen)."""
    return processes.is_running(ident) is False


def reconcile_status(task_dir: Path, status: dict[str, Any] | None) -> dict[str, Any] | None:
    """Finish the bookkeeping of a task whose controller died.

    A local task leaves ``.exit_code`` when its command exits, even if nobody is waiting for it;
    a ``running`` status with that marker is finalised from it. A ``running`` local task whose
    process is gone without a marker is marked ``interrupted``. Returns the (possibly new) status.
    """
    if not status or status.get("state") != TaskState.RUNNING.value:
        return status
    left = left_exit_code(task_dir)
    if left is not None:
        code, end = left
        try:
            return finalize_status(task_dir, status, code, end_time=end)
        except OSError:
            # Cannot record it now (disk full, read-only, not ours): report it all the same; the
            # marker stays, so the next look records it.
            return _final_status(status, code, end_time=end)
    proc = status.get("process")
    if proc and status.get("host") == socket.gethostname() and status.get("runner") == "local":
        if proc == STARTING:
            # The controller died between writing this and recording the process it started: the
            # wrapper's pid file says whether a process is running the task (adopt it, never run
            # it a second time) or none was ever started.
            started = started_process(task_dir)
            if started:
                new = dict(status, process=started)
                try:
                    write_status(task_dir, new)
                except OSError:
                    pass
                return new
            if still_starting(task_dir, status) or start_lock_held(task_dir):
                # Its controller, or the wrapper it asked for, is starting it (one that holds the
                # start lock makes it good however long it was stopped: hsm_core.start_lock).
                return status
        parsed = processes.parse_identity(proc) if proc != STARTING else None
        pid = parsed[0] if parsed else 0
        if pid and _gone(proc) and processes.task_members(pid, task_dir):
            # Only the wrapper was killed: its command still runs in the wrapper's process group.
            # Still running, then: a rerun now would run it twice at once.
            return status
        if not pid or _gone(proc):
            # Its controller may have just recorded the end (status first, then the markers
            # removed): read again, or this would overwrite a completed task with "vanished".
            fresh = read_status(task_dir)
            if fresh is not None and fresh.get("state") != TaskState.RUNNING.value:
                return fresh
            # The wrapper writes the exit code before it exits: one that ended between the look
            # for the marker above and this look at its process left it by now.
            left = left_exit_code(task_dir)
            if left is not None:
                return reconcile_status(task_dir, status)
            # (A task its pruner had decided to stop was stopped as asked: pruned.)
            ended = TaskState.PRUNED if pruned_decision(task_dir) else TaskState.INTERRUPTED
            new = closed_attempt(status, ended, "process vanished")
            try:
                write_status(task_dir, new)
            except OSError:
                pass  # as above: the next look writes it
            return new
    return status


def stop_orphaned_command(task_dir: Path, status: Mapping[str, Any] | None) -> bool:
    """SIGKILL the command of a ``running`` local task whose wrapper was killed together with its
    controller (``kill -9`` of the hsm processes, e.g. ``pkill -9 -f hsm``, but not of the
    command): nothing could record how it ends, so it would finish unrecorded and be run again.
    True when something was stopped. For controllers only (``hsm status`` just looks)."""
    if not status or status.get("state") != TaskState.RUNNING.value or left_exit_code(task_dir) is not None:
        return False
    proc = status.get("process")
    parsed = processes.parse_identity(proc)
    if not parsed or status.get("host") != socket.gethostname() or not _gone(proc):
        return False
    # The wrapper is gone, so its pid (the group's id) may be a stranger's now: only processes
    # that provably run this task are stopped.
    # Its daemons that left the session (``setsid``, a double fork) too: one search of the
    # machine, once per task whose wrapper was killed (then the task is settled).
    victims = set(processes.task_members(parsed[0], task_dir, unknown=False)) | set(processes.escaped(task_dir))
    if not victims:
        return False
    processes.stop_pids(sorted(victims), 0.0)
    return True


def finalize_status(
    task_dir: Path,
    status: Mapping[str, Any],
    exit_code: int,
    *,
    end_time: float | None = None,
    state: TaskState | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the final ``status.yaml`` of an attempt from its exit code and return it (with the
    ``source_data`` on disk now: ``status`` may have been read when the attempt started).

    A task the sweep's pruner decided to stop ends ``pruned`` however its command ended (a
    training script that checkpoints on SIGTERM and exits 0 was still stopped early), whoever
    records the end: the decision is in the task dir before the stop starts (hsm_core.pruning)."""
    decided = pruned_decision(task_dir)
    judged = decided.get("judged_epoch") if decided is not None else None
    if decided is not None and end_time is not None and isinstance(judged, (int, float)) and end_time < judged:
        decided = None  # it ended by itself before the decision (its exit code's time says so)
    if decided is not None:
        state = TaskState.PRUNED
        extra = {**(extra or {}), "message": f"pruned: {decided.get('reason') or 'stopped early by the pruner'}"}
        extra.pop("error", None)
    new = _final_status(with_kept_on_disk(task_dir, status), exit_code, end_time=end_time, state=state, extra=extra)
    write_status(task_dir, new)
    clear_markers(task_dir)  # the wrapper's files have served
    return new


def _final_status(
    status: Mapping[str, Any],
    exit_code: int,
    *,
    end_time: float | None = None,
    state: TaskState | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The final status of an attempt (what :func:`finalize_status` writes)."""
    end = end_time if end_time is not None else time.time()
    new = dict(status)
    if state is None:
        state = TaskState.COMPLETED if exit_code == 0 else TaskState.FAILED
    started = new.get("start_epoch")
    new.update(
        state=state.value,
        exit_code=exit_code,
        end_time=_dt.datetime.fromtimestamp(end).astimezone().isoformat(timespec="seconds"),
        # start_epoch is kept to the millisecond, so an attempt that ends within the same
        # millisecond can look a hair older than its start: never a negative (or -0.0) duration.
        duration=max(0.0, round(end - started, 3)) if isinstance(started, (int, float)) else None,
    )
    if exit_code < 0 or exit_code > 128:
        import signal as _signal

        signum = -exit_code if exit_code < 0 else exit_code - 128
        try:
            new["signal"] = _signal.Signals(signum).name
        except ValueError:
            pass
    if extra:
        new.update(extra)
    new = with_history(new)
    # Kept so that the next attempt can make sure nothing of this one still runs (a daemon child).
    last = new.pop("process", None)
    if last and last != STARTING:
        new["last_process"] = last
    return new


#: What the ``attempts:`` history of ``status.yaml`` keeps of each attempt.
ATTEMPT_FIELDS = ("attempt", "state", "host", "source", "start_time", "end_time", "exit_code")


def with_history(status: Mapping[str, Any]) -> dict[str, Any]:
    """``status`` with its current attempt appended to its ``attempts:`` history."""
    new = dict(status)
    new["attempts"] = [*(new.get("attempts") or []), {k: new.get(k) for k in ATTEMPT_FIELDS}]
    return new


def closed_attempt(status: Mapping[str, Any], state: TaskState, error: str) -> dict[str, Any]:
    """The status of an attempt nobody finished (its process vanished, its worker died), closed as
    ``state`` now, with the attempt kept in the history as every other ending is."""
    new = dict(status)
    new.update(state=state.value, end_time=now_iso(), error=error)
    new.pop("process", None)
    return with_history(new)


class SweepDir:
    """A sweep directory ``<output_dir>/<sweep_id>`` and its files."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.sweep_id = validate_sweep_id(self.path.name)

    # -- locations -----------------------------------------------------------------------------
    @property
    def tasks_dir(self) -> Path:
        return self.path / "tasks"

    @property
    def logs_dir(self) -> Path:
        return self.path / "logs"

    def task_dir(self, index: int) -> Path:
        """Path of task ``index`` (1-based)."""
        return self.tasks_dir / task_dir_name(index)

    def record_dir(self, record: TaskRecord) -> Path:
        """The task dir of ``record``: ``tasks/<extra['dir']>`` for sweeps that name their task dirs
        themselves (pull-based workers use ``<run id>_s<seed>``), else ``tasks/task_NNN``."""
        name = record.extra.get("dir")
        return self.tasks_dir / str(name) if name else self.task_dir(record.index)

    @classmethod
    def locate(cls, output_dir: Path, sweep_id: str) -> "SweepDir":
        """The existing sweep ``sweep_id`` under ``output_dir``; a clear error when it is unknown."""
        validate_sweep_id(sweep_id)
        path = Path(output_dir) / sweep_id
        if not (path / "sweep_metadata.yaml").exists():
            recent = ", ".join(sorted((p.parent.name for p in Path(output_dir).glob("*/sweep_metadata.yaml")))[-5:])
            raise HsmError(
                f"unknown sweep id {sweep_id!r} in {output_dir}",
                hint=f"recent sweeps: {recent}" if recent else "no sweeps there yet; start one with 'hsm run'",
            )
        return cls(path)

    def create_layout(self) -> None:
        """Make the directory skeleton of DESIGN.md section 3."""
        for sub in (
            "tasks",
            "logs/sources",
            "logs/errors",
            "scripts/job_scripts",
            "scripts/setup_scripts",
            "reports",
        ):
            (self.path / sub).mkdir(parents=True, exist_ok=True)

    # -- metadata ------------------------------------------------------------------------------
    def read_metadata(self) -> dict[str, Any]:
        """``sweep_metadata.yaml`` as a dict (empty when missing). Raises :class:`DamagedSweepError`
        (one line naming the file and the problem) when it is not UTF-8, not YAML, not a mapping,
        or a key hsm relies on has the wrong type: callers never see a parser's exception, and
        listings skip such a sweep with that line."""
        path = self.path / METADATA_FILE
        try:
            data = read_yaml(path)
        except FileNotFoundError:
            return {}
        except UnicodeDecodeError:
            raise self._damaged("not UTF-8 text") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            if isinstance(exc, yaml.reader.ReaderError):
                raise self._damaged("not UTF-8 text" if exc.encoding else "holds a character YAML does not allow") from None
            raise self._damaged(f"not valid YAML{where}") from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise self._damaged(f"expected a mapping, found a {type(data).__name__}")
        for key, kinds in _METADATA_TYPES.items():
            value = data.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
                raise self._damaged(f"{key}: unexpected {type(value).__name__} {value!r:.40}")
        return dict(data)

    def _damaged(self, problem: str) -> "DamagedSweepError":
        return DamagedSweepError(
            f"{_shown(self.path / METADATA_FILE)}: {problem} (the sweep's metadata is damaged)",
            hint="fix or restore that file; the tasks under tasks/ are not affected",
            sweep_id=self.sweep_id,
        )

    def write_metadata(self, data: Mapping[str, Any]) -> None:
        atomic_write_yaml(self.path / METADATA_FILE, dict(data))

    def update_metadata(self, **changes: Any) -> dict[str, Any]:
        meta = self.read_metadata()
        meta.update(changes)
        self.write_metadata(meta)
        return meta

    # -- index ---------------------------------------------------------------------------------
    def load_index(self) -> dict[str, TaskRecord]:
        """task_id -> record, from ``task_index.json`` (rebuilt from the task dirs when missing):
        from its columns when they were made from this very file (:mod:`hsm_core.index_columns`),
        else decoded and checked entry by entry, and the columns written for the next reader."""
        from hsm_core import index_columns

        try:
            records, generation, stamp = self._decode_index()
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return self.rebuild_index()
        if stamp is not None:
            try:  # for the next reader (a cache: a disk that says no is fine)
                index_columns.write(str(self.path), sorted(records.values(), key=lambda r: r.index), generation, stamp)
            except OSError:
                pass
        return records

    def read_index(self) -> dict[str, TaskRecord]:
        """task_id -> record of ``task_index.json`` as it stands, read as :meth:`load_index`
        reads it but with nothing rebuilt or written; raises OSError, or ValueError, KeyError,
        TypeError for a damaged file."""
        return self._decode_index()[0]

    def _decode_index(self) -> tuple[dict[str, TaskRecord], str | None, list[int] | None]:
        """(records, the index's generation, its stamp) of ``task_index.json``; the stamp is None
        when the records came from the columns made from this very file (nothing to write back)."""
        from hsm_core import index_columns

        with open(self.path / INDEX_FILE, "rb") as fh:
            stamp = index_columns.stamp_of(fh.fileno())
            generation = index_columns.header_generation(fh.readline(256))
            fast = index_columns.load(str(self.path), generation, stamp, TaskRecord, _STATES)  # of this very file
            if fast is not None:
                return fast, generation, None
            fh.seek(0)
            data = json.load(fh)
        return {d["id"]: TaskRecord.from_json(d) for d in data["tasks"]}, generation, stamp

    def save_index(self, records: Iterable[TaskRecord], *, mapping: bool = False, columns: bool = True) -> None:
        """Write the index (and, when asked, the human-readable ``task_mapping.yaml``); with
        ``columns``, also its columns for fast readers (:mod:`hsm_core.index_columns`; without,
        the first reader writes them)."""
        recs = sorted(records, key=lambda r: r.index)
        # One task per line, compact: the C encoder (json's indent= falls back to Python's, 4x slower).
        dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode
        # Then the same records by columns, naming this very index file (its generation, inode,
        # size and mtime): readers use them only while the index is that file (hsm_core.index_columns).
        from hsm_core import index_columns

        generation = index_columns.new_generation()
        text = "".join([f'{{"sweep_id":{json.dumps(self.sweep_id)},"gen":"{generation}","tasks":[\n',
                        ",\n".join([dumps(r.to_json()) for r in recs]), "\n]}\n"])
        stamp = index_columns.write_index(str(self.path / INDEX_FILE), text)
        try:
            if columns:
                index_columns.write(str(self.path), recs, generation, stamp)
        except OSError:
            pass  # the index is saved; columns naming an older index are never used
        if mapping:
            self.write_mapping(recs)

    def write_mapping(self, records: Iterable[TaskRecord]) -> None:
        """``task_mapping.yaml``: one line per task. Each entry is JSON, which is valid YAML, so the
        file is written ~20x faster than through a YAML emitter (100,000 tasks in well under 1 s)."""
        lines = [f"sweep_id: {json.dumps(self.sweep_id)}", "tasks:"]
        # One encoder for all (json.dumps with options makes a new encoder for every call).
        dumps = json.JSONEncoder(ensure_ascii=False, default=str).encode
        for r in sorted(records, key=lambda r: r.index):
            entry = {"task_id": r.task_id, "state": r.state, "source": r.source, "params": r.params}
            lines.append(f"  {r.name}: {dumps(entry)}")
        atomic_write_text(self.path / MAPPING_FILE, "\n".join(lines) + "\n", fsync=False)

    def rebuild_index(self) -> dict[str, TaskRecord]:
        """Read the task manifest and every task dir (params.yaml + status.yaml) and write a fresh
        index. A task of the manifest without a dir was never started (see
        :mod:`hsm_core.task_manifest`); a sweep without a manifest has all its dirs."""
        from hsm_core.task_manifest import read_manifest

        records: dict[str, TaskRecord] = {}
        for row in read_manifest(self.path) or ():
            extra = {"dir": str(row["dir"])} if row.get("dir") else {}
            records[row["id"]] = TaskRecord(row["index"], row["id"], dict(row.get("params") or {}), extra=extra)
        if self.tasks_dir.is_dir():
            for d in self.tasks_dir.iterdir():
                m = re.fullmatch(r"task_(\d+)", d.name)
                if not m and (d.name.startswith(".") or not d.is_dir()):
                    continue
                try:
                    params_doc = read_params(d) or {}
                except Exception:
                    continue
                task_id = str(params_doc.get("task_id") or "")
                if not task_id:
                    continue
                if task_id in records:
                    rec = records[task_id]  # (its manifest entry)
                    # The dir's own params once it exists (a search trial gets them when it starts).
                    rec.params = dict(params_doc.get("params") or rec.params)
                elif m:
                    rec = TaskRecord(int(m.group(1)), task_id, dict(params_doc.get("params") or {}))
                else:
                    # A dir named by the sweep itself (workers): its index is in params.yaml.
                    index = params_doc.get("index")
                    if not isinstance(index, int):
                        continue
                    rec = TaskRecord(index, task_id, dict(params_doc.get("params") or {}), extra={"dir": d.name})
                status = reconcile_status(d, read_status(d))
                if status:
                    rec.update_from_status(status)
                records[task_id] = rec
        self._mark_submitted_without_dirs(records)
        self._save_cache(records.values(), mapping=True)
        return records

    def _mark_submitted_without_dirs(self, records: dict[str, TaskRecord]) -> None:
        """Tasks an array job runs whose element has not made their dir yet (a large submission:
        hsm_core.plugin.arrayjob.unmade) are ``submitted`` per array job: ``jobs.jsonl`` names them.
        Without this, a lost index would call them pending and hsm complete would submit them twice."""
        try:
            lines = (self.path / "scripts" / "job_scripts" / "jobs.jsonl").read_text(encoding="utf-8").splitlines()
        except OSError:
            return
        for line in lines:
            try:
                job = json.loads(line)
            except ValueError:
                continue
            if not isinstance(job, dict):
                continue
            for task_id in job.get("tasks") or ():
                rec = records.get(task_id)
                if rec is not None and rec.state == "pending" and not self.record_dir(rec).is_dir():
                    rec.state = "submitted"
                    rec.source = str(job.get("source") or rec.source or "") or None

    def _save_cache(self, records: Iterable[TaskRecord], *, mapping: bool = False) -> None:
        """Save the index from a read path: it is a cache, so a disk that is full, read-only or
        not ours must not stop ``hsm status`` from answering (the next writer saves it)."""
        try:
            self.save_index(records, mapping=mapping)
        except OSError:
            pass

    def refresh(self, records: dict[str, TaskRecord]) -> bool:
        """Re-read ``status.yaml`` of every task not final (or preempted) in the index. True if any changed."""
        changed = False
        # Only tasks not settled, or with extra facts (an "unrecorded" end), can need a look: picked
        # out in C (a 100,000-task finished sweep has none, and a loop over it cost 0.03 s).
        recs = list(records.values())
        maybe = map(operator.or_, map(operator.not_, map(_SETTLED.__contains__, map(_STATE_OF, recs))),
                    map(bool, map(_EXTRA_OF, recs)))
        for rec in itertools.compress(recs, maybe):
            # A preempted task may be requeued by its scheduler and run again with no controller
            # watching: its status.yaml, not the index, says how it went.
            # An end the controller knew but could not write (disk full) is read again too.
            if rec.state in _SETTLED and not rec.extra.get("unrecorded"):
                continue
            d = self.record_dir(rec)
            status = reconcile_status(d, read_status(d))
            if rec.extra.get("unrecorded"):
                # Only an end the files confirm replaces the controller's word (never a downgrade
                # to a state that merely was not updated).
                if status and status.get("state") in _FINISHED:
                    rec.update_from_status(status)
                    if (read_status(d) or {}).get("state") not in _FINISHED:
                        rec.extra["unrecorded"] = True  # still not written (the disk is still full)
                    changed = True
                continue
            if status and status.get("state") != rec.state:
                rec.update_from_status(status)
                changed = True
        return changed

    def records(self, *, refresh: bool = True) -> dict[str, TaskRecord]:
        """The index, brought up to date with the task dirs of unfinished tasks."""
        records = self.load_index()
        if refresh and self.refresh(records):
            self._save_cache(records.values())
        return records

    def iter_task_dirs(self) -> Iterator[Path]:
        if self.tasks_dir.is_dir():
            yield from sorted(p for p in self.tasks_dir.iterdir() if p.name.startswith("task_"))

    # -- logs ----------------------------------------------------------------------------------
    def log(self, name: str, line: str) -> None:
        """Append a timestamped line to ``logs/<name>`` (created as needed)."""
        self.log_lines(name, [line])

    def log_lines(self, name: str, lines: Iterable[str]) -> None:
        """Append timestamped lines to ``logs/<name>`` in one write (10,000 tasks assigned at once)."""
        path = self.logs_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = now_iso()
        with open(path, "a", encoding="utf-8") as fh:
            fh.write("".join(f"{stamp} {line}\n" for line in lines))


_STATE_OF = operator.attrgetter("state")
_EXTRA_OF = operator.attrgetter("extra")


def count_states(records: Iterable[TaskRecord]) -> dict[str, int]:
    """Number of tasks per state."""
    counts: dict[str, int] = {}
    for r in records:
        counts[r.state] = counts.get(r.state, 0) + 1
    return counts
