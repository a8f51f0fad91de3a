"""The sweep's task manifest: every task's identity in one file, so task dirs can wait.

A 100,000-task sweep used to make 100,000 directories and 200,000 files before its first task
ran (and a parallel file system charges for each). Now ``task_manifest.jsonl``, one line per
task in index order (``{"index": N, "id": TASK_ID, "params": {...}}``, plus ``"dir"`` for a dir
named by the sweep), is written once when the sweep is made (one fsync), and a task's dir is made
when the task is first started. It is what says which tasks a sweep has: the index
(``task_index.json``) is rebuilt from it and the task dirs that exist; a task of the manifest
without a dir is a task nobody started (pending).

A sweep made before the manifest existed has every task dir: its readers find no manifest and
read the dirs, as before.

:func:`materialize` makes a missing task dir from what a controller wrote for it (an array job
element whose dir does not exist yet: see :mod:`hsm_core.runner`), complete before anyone sees it
(made under a temporary name, then renamed), and once, when two elements race.

Kept light (stdlib and the task-file owner): the task runner imports it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from hsm_core.atomic import atomic_write_text
from hsm_core.taskdir import write_command, write_params_once

#: The manifest's file name, in the sweep dir.
MANIFEST_FILE = "task_manifest.jsonl"


def manifest_path(sweep_path: Path) -> Path:
    """Where the manifest of the sweep at ``sweep_path`` is."""
    return Path(sweep_path) / MANIFEST_FILE


def entry(index: int, task_id: str, params: Mapping[str, Any], dir_name: str | None = None) -> dict[str, Any]:
    """One task's manifest entry (index first: :func:`find_entry` reads it without parsing the line)."""
    out: dict[str, Any] = {"index": int(index), "id": str(task_id), "params": dict(params)}
    if dir_name:
        out["dir"] = str(dir_name)
    return out


def write_manifest(sweep_path: Path, entries: Iterable[Mapping[str, Any]]) -> int:
    """Write the manifest (atomically, one fsync), entries sorted by index. Returns how many.

    Called when the sweep is made, and by ``hsm complete`` when an edited sweep file adds tasks
    (the whole file again: tasks are never removed from it, and their lines never change)."""
    rows = sorted(entries, key=lambda e: int(e["index"]))
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode
    text = "".join([_line(row, dumps) for row in rows])
    atomic_write_text(manifest_path(sweep_path), text)
    return len(rows)


def _line(row: Mapping[str, Any], dumps: Any) -> str:
    # By hand around the parameters (a third of the time of dumping each row whole).
    extra = f',"dir":{dumps(str(row["dir"]))}' if row.get("dir") else ""
    return f'{{"index":{int(row["index"])},"id":{dumps(str(row["id"]))},"params":{dumps(row["params"])}{extra}}}\n'


def has_manifest(sweep_path: Path) -> bool:
    """True when the sweep keeps a manifest (made by this hsm or a later one)."""
    return manifest_path(sweep_path).is_file()


def read_manifest(sweep_path: Path) -> list[dict[str, Any]] | None:
    """Every entry of the manifest, in file order; None when the sweep has none (an older sweep,
    whose task dirs all exist). A damaged line (a hand edit) is skipped."""
    try:
        with open(manifest_path(sweep_path), "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return None
    return list(_entries(data.splitlines()))


def _entries(lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("index"), int) and isinstance(row.get("id"), str):
            yield row


def find_entry(sweep_path: Path, index: int) -> dict[str, Any] | None:
    """The manifest entry of task ``index``, found by bisecting the file (lines are sorted by
    index): a few reads whatever the sweep's size. None when there is none."""
    try:
        fh = open(manifest_path(sweep_path), "rb")
    except FileNotFoundError:
        return None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        lo, hi = 0, size  # the line starting at or after offset lo ... is the first with index >= target
        while lo < hi:
            mid = (lo + hi) // 2
            line_start, row = _line_at(fh, mid)
            if row is None or line_start >= size:
                hi = mid
                continue
            if row["index"] < index:
                lo = mid + 1
            else:
                hi = mid
        _, row = _line_at(fh, lo)
        return row if row is not None and row["index"] == index else None


def _line_at(fh: Any, offset: int) -> tuple[int, dict[str, Any] | None]:
    """(start, entry) of the first whole line starting at or after ``offset``."""
    if offset > 0:
        fh.seek(offset - 1)
        fh.readline()  # the rest of the line ``offset`` falls in (nothing, when it starts one)
    else:
        fh.seek(0)
    start = fh.tell()
    line = fh.readline()
    while line and not line.strip():
        start = fh.tell()
        line = fh.readline()
    rows = list(_entries([line])) if line else []
    return start, (rows[0] if rows else None)


# -- making a task dir late -----------------------------------------------------------------------
def materialize(task_dir: Path, params_doc: Mapping[str, Any], command: Mapping[str, Any]) -> bool:
    """Make the missing ``task_dir`` with its ``params.yaml`` and ``command.json``, complete before
    it appears: the files are written in a temporary sibling dir, which is then renamed to
    ``task_dir``. When two processes race (two array elements, a requeued one and its ghost), one
    rename wins and the other's temporary dir is removed. True when this call made it; False
    when it existed already (made earlier, or by the racer)."""
    def fill(tmp: Path) -> None:
        write_params_once(tmp, str(params_doc.get("task_id")), int(params_doc.get("index") or 0),
                          dict(params_doc.get("params") or {}), atomic=False)
        write_command(tmp, command, atomic=False)

    return make_whole(task_dir, fill)


def make_whole(task_dir: Path, fill: Callable[[Path], None]) -> bool:
    """Make the missing ``task_dir``, complete before it appears: ``fill`` writes its files into a
    temporary sibling dir, which is then renamed to ``task_dir`` (one rename wins a race; the
    loser's temporary is removed). True when this call made it; False when it existed already."""
    task_dir = Path(task_dir)
    if task_dir.is_dir():
        return False
    if not task_dir.parent.is_dir():
        task_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = task_dir.parent / f".{task_dir.name}.{os.getpid()}.{os.urandom(4).hex()}.making"
    tmp.mkdir()
    try:
        # Straight into the files (no temporary file and rename each): nobody sees the dir
        # before the rename below makes it whole.
        fill(tmp)
        try:
            os.rename(tmp, task_dir)  # atomic; fails when task_dir exists (and is not empty)
        except OSError:
            if task_dir.is_dir():
                return False  # the racer's dir won: it holds the same files
            raise
        return True
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def ensure_manifest(sweep_path: Path, records: Iterable[Any], *, new_sweep: bool) -> bool:
    """Make the manifest list every task of ``records`` (:class:`~hsm_core.state.TaskRecord`):
    written whole for a new sweep; for a sweep continued by ``hsm complete``, rewritten only when
    tasks are missing from it (an edited sweep file added some, or an older sweep without a
    manifest, whose existing tasks all have their dirs). True when written."""
    rows = [entry(r.index, r.task_id, r.params, r.extra.get("dir")) for r in records]
    if not new_sweep:
        known = read_manifest(sweep_path)
        if known is not None:
            ids = {row["id"] for row in known}
            missing = [row for row in rows if row["id"] not in ids]
            if not missing:
                return False
            rows = known + missing  # lines already there never change
    write_manifest(sweep_path, rows)
    return True


# -- an array element's task dir ------------------------------------------------------------------
#: Suffix of a chunk's task file, beside its list file (``slurm_001.list`` -> ``slurm_001.tasks.jsonl``).
CHUNK_TASKS_SUFFIX = ".tasks.jsonl"


def chunk_tasks_path(list_file: Path) -> Path:
    """The task file of the chunk whose list file is ``list_file``: line i holds what element i's
    task dir is made from (``{"params": {task_id, index, params}, "command": {...}}``)."""
    list_file = Path(list_file)
    return list_file.with_name(list_file.stem + CHUNK_TASKS_SUFFIX)


def write_chunk_tasks(list_file: Path, rows: Iterable[Mapping[str, Any]], *, private: bool = False) -> Path:
    """Write a chunk's task file (one line per list line, same order): one file for the chunk
    instead of a dir and its files per task, made by each element as it starts. ``private``: the
    owner's only (a command's environment holds a token, as its ``command.json`` would be)."""
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode
    path = chunk_tasks_path(list_file)
    atomic_write_text(path, "".join(dumps(dict(row)) + "\n" for row in rows), private=private)
    return path


def _chunk_row(list_file: Path, line: int) -> dict[str, Any] | None:
    try:
        with open(chunk_tasks_path(list_file), "rb") as fh:
            for i, text in enumerate(fh):
                if i == line:
                    return _row(text)
    except OSError:
        return None
    return None


def read_chunk_tasks(list_file: Path) -> list[dict[str, Any] | None]:
    """Every line of the task file of the chunk whose list file is ``list_file``, decoded as
    :func:`ensure_task_dir` decodes one (None for a damaged line). Raises OSError when unreadable."""
    return [_row(text) for text in chunk_tasks_path(Path(list_file)).read_bytes().splitlines()]


def _row(text: bytes) -> dict[str, Any] | None:
    try:
        row = json.loads(text)
    except ValueError:
        return None
    return row if isinstance(row, dict) else None


class ChunkRows:
    """Lines of chunk task files for a caller that makes many dirs of one chunk in a row (the
    queue watcher's verdicts for a whole cancelled chunk, ``hsm cancel``): the last file read is
    kept, so a chunk costs one read instead of one read from the top per task (quadratic: 10,000
    tasks read 50 million lines). A task file is written once, before its job is submitted, and
    never changes, so what is kept stays true; a file not found is looked for again next time."""

    def __init__(self) -> None:
        self._path: Path | None = None
        self._lines: list[bytes] = []

    def row(self, list_file: Path, line: int) -> dict[str, Any] | None:
        """Line ``line`` of the task file of the chunk whose list file is ``list_file``, or None."""
        path = chunk_tasks_path(list_file)
        if path != self._path:
            try:
                data = path.read_bytes()
            except OSError:
                return None
            self._path, self._lines = path, data.splitlines()
        return _row(self._lines[line]) if 0 <= line < len(self._lines) else None


def ensure_task_dir(task_dir: Path, *, list_file: Path | None = None, line: int | None = None,
                    rows: ChunkRows | None = None) -> bool:
    """Make ``task_dir`` if it does not exist yet, from what its controller wrote for it: line
    ``line`` of the chunk's task file beside ``list_file`` (read through ``rows`` when given: see
    :class:`ChunkRows`), else the sweep manifest's entry when it holds the task's ``command``.
    True when the dir exists now (made here, by a racer, or before); False when nothing says how
    to make it."""
    task_dir = Path(task_dir)
    if task_dir.is_dir():
        return True
    row = None
    if list_file is not None and line is not None:
        row = rows.row(list_file, line) if rows is not None else _chunk_row(list_file, line)
    if row is None:
        index = _index_of(task_dir.name)
        found = find_entry(task_dir.parent.parent, index) if index is not None else None
        if found is not None and isinstance(found.get("command"), dict):
            row = {"params": {"task_id": found["id"], "index": found["index"], "params": found.get("params") or {}},
                   "command": found["command"]}
    if row is None or not isinstance(row.get("params"), dict) or not isinstance(row.get("command"), dict):
        return False
    materialize(task_dir, row["params"], row["command"])
    return True


def _index_of(name: str) -> int | None:
    """1 for ``task_001``; None for a dir a sweep named itself."""
    digits = name[len("task_"):] if name.startswith("task_") else ""
    return int(digits) if digits.isdigit() else None
