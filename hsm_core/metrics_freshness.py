"""Which tasks' ``metrics.json`` changed since the sweep kept their metrics, so that ``hsm export``
shows what an evaluation run after the sweep added to each task's file.

A researcher's habit: the sweep ends, then an evaluation script adds test metrics to every task's
``metrics.json``. Export takes a task's metrics from ``task_metrics.jsonl``
(:mod:`hsm_core.indexed_metrics`), read when the task ended. Each line there names the task's dir
and the stamp (inode, size, modification time) of the file it was read from; a task whose file's
stamp is no longer that one (rewritten in place, replaced, removed) has its own file read again.

That check is one ``stat`` per task: 0.25 s at 100,000 tasks on a local disk, a quarter of
export's one-second goal. A big sweep's check runs in a child process forked as export starts, on
another core, while export reads the index; export waits for its answer only where it needs the
metrics. The stamps are cached beside the metrics file like its columns
(``task_metrics.stamps.json``, keyed on the metrics file's own stamp).
"""

from __future__ import annotations

import json
import os
import time
from operator import itemgetter
from typing import Any

from hsm_core.atomic import atomic_write_text
from hsm_core.indexed_metrics import METRICS_INDEX
from hsm_core.taskdir import METRICS_FILE

#: The stamps' cache, in the sweep dir.
STAMPS_FILE = "task_metrics.stamps.json"
#: Below this size of the metrics file (about 10,000 tasks) the check runs in this process.
FORK_ABOVE_BYTES = 1 << 20
#: Seconds export waits for the forked check before it kills it and checks by itself.
CHILD_TIMEOUT = 60.0

def changed(sweep_path: str) -> set[str]:
    """Ids of the tasks whose ``metrics.json`` is no longer the file their kept metrics were read
    from. Lines written by an hsm that kept no stamps are never reported (nothing to compare)."""
    ids, dirs, stamps = _stamps(sweep_path)
    paths = map(f"{sweep_path}/tasks/{{}}/{METRICS_FILE}".format, dirs)
    return {task_id for task_id, now, then in zip(ids, map(_stamp_of, paths), stamps) if now != then}


def _stamp_of(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns]


class Check:
    """:func:`changed` started now, answered by :meth:`result`: in a forked child for a big sweep
    (its stats overlap the caller's own reading), else in this process when asked."""

    def __init__(self, sweep_path: str) -> None:
        self._path = sweep_path
        self._pid = 0
        self._fd = -1
        self._answer: set[str] | None = None
        try:
            size = os.path.getsize(os.path.join(sweep_path, METRICS_INDEX))
        except OSError:
            self._answer = set()  # nothing kept: every task's file is read anyway
            return
        if size > FORK_ABOVE_BYTES and hasattr(os, "fork"):
            self._start_child()

    def _start_child(self) -> None:
        read_fd, write_fd = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            return
        if pid == 0:  # the child: answer through the pipe, never return into the caller's code
            code = 1
            try:
                os.close(read_fd)
                data = "\n".join(sorted(changed(self._path))).encode()
                with os.fdopen(write_fd, "wb") as out:
                    out.write(b"ok\n" + data)
                code = 0
            finally:
                os._exit(code)
        os.close(write_fd)
        self._pid, self._fd = pid, read_fd

    def result(self) -> set[str]:
        """The ids :func:`changed` gives (asked in this process if the child failed)."""
        if self._answer is not None:
            return self._answer
        if self._pid:
            raw, status = self._collect()
            if status == 0 and raw.startswith(b"ok\n"):
                body = raw[3:].decode()
                self._answer = set(body.split("\n")) if body else set()
                return self._answer
        self._answer = changed(self._path)
        return self._answer

    def _collect(self) -> tuple[bytes, int]:
        """The child's answer and exit status; a child that has not answered in
        :data:`CHILD_TIMEOUT` seconds (stuck: a lock some library held when we forked) is killed,
        and the check is made here instead."""
        import select
        import signal

        chunks: list[bytes] = []
        deadline = time.monotonic() + CHILD_TIMEOUT
        with os.fdopen(self._fd, "rb", buffering=0) as fh:
            while True:
                left = deadline - time.monotonic()
                ready = select.select([fh], [], [], max(0.0, left))[0] if left > 0 else []
                if not ready:
                    try:
                        os.kill(self._pid, signal.SIGKILL)  # (our own child, not yet reaped: its pid is ours)
                    except OSError:
                        pass
                    chunks = []
                    break
                chunk = fh.read(1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        _, status = os.waitpid(self._pid, 0)
        self._pid = 0
        return b"".join(chunks), status if chunks else -1


Stamps = tuple[list[str], list[str], list[Any]]


def _stamps(sweep_path: str) -> Stamps:
    """(task ids, their dir names, their metrics files' stamps) of each task's latest line in the
    metrics file: three lists, which json decodes in C (a dict of 100,000 entries took 0.3 s)."""
    try:
        with open(os.path.join(sweep_path, METRICS_INDEX), "rb") as fh:
            st = os.fstat(fh.fileno())
            of = [st.st_ino, st.st_size, st.st_mtime_ns]
            cached = _load(sweep_path, of)
            if cached is not None:
                return cached
            lines = fh.read(st.st_size).splitlines()
    except OSError:
        return [], [], []
    where = _parse(lines)
    ids = list(where)
    found = (list(map(itemgetter(0), where.values())), list(map(itemgetter(1), where.values())))
    try:
        atomic_write_text(os.path.join(sweep_path, STAMPS_FILE),
                          json.dumps({"of": of, "ids": ids, "dirs": found[0], "stamps": found[1]},
                                     separators=(",", ":")), fsync=False)
    except OSError:
        pass  # (a read-only sweep: parsed again next time)
    return ids, found[0], found[1]


def _load(sweep_path: str, of: list[int]) -> Stamps | None:
    try:
        with open(os.path.join(sweep_path, STAMPS_FILE), "rb") as fh:
            doc = json.loads(fh.read())
        ids, dirs, stamps = doc["ids"], doc["dirs"], doc["stamps"]
        if doc["of"] != of or not (type(ids) is type(dirs) is type(stamps) is list and len(ids) == len(dirs) == len(stamps)):
            return None
        if not set(map(type, dirs)) <= {str}:
            return None
        return ids, dirs, stamps
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _parse(lines: list[bytes]) -> dict[str, tuple[str, Any]]:
    try:  # one parse of the whole file, as indexed_metrics does ...
        rows = json.loads(b"[" + b",".join(line for line in lines if line.strip()) + b"]")
    except ValueError:
        rows = []  # ... and line by line when a line is torn
        for raw in lines:
            try:
                rows.append(json.loads(raw))
            except ValueError:
                continue
    where: dict[str, tuple[str, Any]] = {}
    for row in rows:
        try:
            task_id = row["id"]
            if "dir" in row:
                stamp = row.get("stamp")
                where[task_id] = (str(row["dir"]), [int(v) for v in stamp] if isinstance(stamp, list) else None)
            else:
                where.pop(task_id, None)  # (the latest line has no stamp: nothing to compare)
        except (KeyError, TypeError, ValueError):
            continue
    return where
