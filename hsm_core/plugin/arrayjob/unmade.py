"""Array-job tasks submitted before their task dir exists (part of the array-job toolkit of
:mod:`hsm_core.plugin`).

Submitting 10,000 tasks used to make 10,000 task dirs and write four files into each (params,
command, the fast path's ``command.sh``, a ``submitted`` status) before ``sbatch`` ran: seconds on
a local disk, far more on Lustre or NFS. For a large submission (see :func:`wanted`) the controller
now writes, per array job, one task file beside its list file (``<list>.tasks.jsonl``: line i says
how to make element i's task dir, :mod:`hsm_core.task_manifest`), and each element makes its own
task dir when it starts. Until then the task is ``submitted`` per array job: the sweep's index
says so, and ``jobs.jsonl`` names the job and element of every task.

Whoever must write into such a task before its element did — a verdict of the queue watcher (the
element was cancelled while pending, or its node failed before it ran anything), ``hsm cancel``'s
``cancelled`` — makes the dir first from the same line (:func:`make_dir`), so the task then looks
exactly like one whose dir was made at submission, and is recorded, and run again by ``hsm
complete``, the same way.

An :class:`UnmadeTaskSpec` is a :class:`~hsm_core.plugin.TaskSpec` carrying what its dir is made
from; only array-job sources on this machine's file system are handed one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from hsm_core.plugin.values import TaskSpec
from hsm_core.task_manifest import ChunkRows, chunk_tasks_path, ensure_task_dir, write_chunk_tasks

__all__ = ["ChunkRows", "UnmadeTaskSpec", "UNMADE_FROM", "wanted", "unmade", "unmade_flags", "write_chunk_file", "make_dir", "make_dir_from_jobs"]

#: Submissions of at least this many tasks leave the task dirs to the elements. Smaller ones get
#: their dirs (and the shell fast path's ``command.sh``, which saves an element the Python task
#: runner's start) from the controller, right after the job is submitted (:mod:`.late_dirs`).
UNMADE_FROM = 1000


@dataclass(frozen=True)
class UnmadeTaskSpec(TaskSpec):
    """A task whose dir does not exist yet: ``made_from`` is ``{"params": {task_id, index,
    params}, "command": {...}}``, what :func:`hsm_core.task_manifest.materialize` makes it from."""

    made_from: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)


def wanted(sources: Sequence[Any], tasks: int) -> bool:
    """Whether a run of ``tasks`` tasks on ``sources`` hands its tasks over without their dirs: only
    when every source says it can (:attr:`accepts_unmade_dirs`), and the run is large (the elements
    make the dirs) or every source makes the dirs itself once the job is submitted
    (:attr:`makes_dirs_after_submission`, :mod:`.late_dirs`)."""
    if not sources or not all(getattr(s, "accepts_unmade_dirs", False) for s in sources):
        return False
    return tasks >= UNMADE_FROM or all(getattr(s, "makes_dirs_after_submission", False) for s in sources)


def unmade(spec: Any) -> bool:
    """True for a task handed over without its dir, whose dir is still missing (a retry of a task
    whose element made it is submitted like any other: its status says ``submitted`` again)."""
    return isinstance(spec, UnmadeTaskSpec) and not spec.task_dir.is_dir()


def unmade_flags(specs: Sequence[Any]) -> list[bool]:
    """:func:`unmade` of each of ``specs``, with one listing of each parent dir instead of one
    ``is_dir`` per task (10,000 stats were about 30 ms of a submission, made twice per chunk);
    a name that is listed is checked as :func:`unmade` checks it (a file is not a dir)."""
    listed: dict[str, set[str] | None] = {}
    flags = []
    for spec in specs:
        if not isinstance(spec, UnmadeTaskSpec):
            flags.append(False)
            continue
        parent, name = str(spec.task_dir.parent), spec.task_dir.name
        if parent not in listed:
            try:
                listed[parent] = set(os.listdir(parent))
            except FileNotFoundError:  # (no tasks dir yet: no task has its dir)
                listed[parent] = set()
            except OSError:  # (unreadable: looked at task by task)
                listed[parent] = None
        names = listed[parent]
        flags.append(unmade(spec) if names is None or name in names else True)
    return flags


def write_chunk_file(list_file: Path, chunk: Sequence[Any], missing: Sequence[bool] | None = None) -> Path | None:
    """Write the task file of the chunk whose list file is ``list_file`` (``chunk``: its specs in
    list order) when any of its tasks has no dir; a task that has one gets an empty line object.
    ``missing``: :func:`unmade` of each spec, when the caller knows it already. The file is the
    owner's only when a command's environment holds a plugin's token."""
    missing = unmade_flags(chunk) if missing is None else missing
    if not any(missing):
        return None
    from hsm_core.secrecy import is_secret_name

    rows = [s.made_from if m else {} for s, m in zip(chunk, missing)]
    # Each variable name once (the tasks of a sweep share their names), not once per task.
    names = {k for row in rows for k, v in ((row.get("command") or {}).get("env") or {}).items() if v not in (None, "")}
    private = any(is_secret_name(k) for k in names)
    return write_chunk_tasks(list_file, rows, private=private)


def make_dir(task_dir: Path, list_file: Path, line: int, rows: ChunkRows | None = None) -> bool:
    """Make the missing ``task_dir`` of line ``line`` of the chunk whose list file is
    ``list_file`` (as its element would). True when the dir exists now. ``rows``: a
    :class:`~hsm_core.task_manifest.ChunkRows` kept by a caller making the dirs of many tasks of
    one chunk, so that the chunk's task file is read once, not once per task."""
    return ensure_task_dir(Path(task_dir), list_file=Path(list_file), line=line, rows=rows)


def make_dir_from_jobs(task_dir: Path, job_dir: Path, task_id: str, chunks: Mapping[str, Any],
                       rows: ChunkRows | None = None) -> bool:
    """Make the missing ``task_dir`` of ``task_id`` from the latest array job of ``chunks`` (the
    sweep's ``jobs.jsonl`` in ``job_dir``, as :func:`.manifest.read_manifest` reads it) that names
    it. True when the dir exists now. ``rows``: as for :func:`make_dir`."""
    if Path(task_dir).is_dir():
        return True
    for chunk in reversed(list(chunks.values())):
        try:
            line = chunk.line_of(task_id)
        except ValueError:
            continue
        if chunk.list_file:
            list_file = Path(job_dir) / chunk.list_file
            if chunk_tasks_path(list_file).is_file():
                return make_dir(task_dir, list_file, line, rows)
    return False


def submitted_record(spec: Any, *, source: str, array_index: int, script: str) -> dict[str, Any]:
    """The ``submitted`` status a task made at submission would have had (what a verdict written
    into a dir made late starts from)."""
    return {"task_id": spec.task_id, "index": spec.index, "state": "submitted", "source": source,
            "runner": "batch", "attempt": 0, "array_index": array_index, "job_script": script}
