"""A completed task's metrics kept beside the sweep's index, so ``hsm export`` of 100,000 tasks reads
one file instead of 100,000 (issue 19).

When a controller records a completed task it reads the task's ``metrics.json`` (the script's, or
the one hsm wrote from the result collectors) and appends it, flattened as export shows it, to
``task_metrics.jsonl`` in the sweep dir: one line ``{"id", "attempt", "values"}`` per completed
attempt (an append, no rewrite; the index itself stays as small as ``hsm status`` needs it). Export
takes a task's metrics from its latest line while that line's attempt is the one the index
records; a task with no line (finished with no controller watching: ``--no-wait``, workers) or run
again since has its own file read, as before.

Each line also names the task's dir and the ``metrics.json`` it was read from (inode, size,
modification time): an evaluation that rewrites the file after the sweep changes that stamp, and
export reads that task's file again (:mod:`hsm_core.metrics_freshness`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

#: The file, in the sweep dir.
METRICS_INDEX = "task_metrics.jsonl"


def file_stamp(path: str) -> list[int] | None:
    """``[inode, size, mtime_ns]`` of the file at ``path``; None when there is none. Taken before
    the file is read, so a write racing the read changes the stamp and is read again later."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def remember(sweep_path: Path, task_id: str, attempt: int, values: Mapping[str, Any], *,
             task_dir: str | None = None, stamp: list[int] | None = None) -> None:
    """Append the completed attempt's metrics (flattened) to the sweep's metrics file, with the
    task's dir name and the :func:`file_stamp` of the ``metrics.json`` they were read from. Never
    raises: export reads the task's own file when this line is missing."""
    row: dict[str, Any] = {"id": task_id, "attempt": attempt, "values": dict(values)}
    if task_dir is not None:
        row["dir"] = task_dir
        row["stamp"] = stamp
    line = json.dumps(row, separators=(",", ":"), ensure_ascii=False, default=str)
    try:
        with open(os.path.join(str(sweep_path), METRICS_INDEX), "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    except OSError:
        pass


def known(sweep_path: Path) -> dict[str, tuple[int, dict[str, Any]]]:
    """task id -> (attempt, metrics) from the sweep's metrics file, the latest line of each task
    winning; {} when there is none. A torn line (a controller killed mid-append) is skipped."""
    from hsm_core import metrics_columns

    out: dict[str, tuple[int, dict[str, Any]]] = {}
    try:
        with open(os.path.join(str(sweep_path), METRICS_INDEX), "rb") as fh:
            st = os.fstat(fh.fileno())
            stamp = [st.st_ino, st.st_size, st.st_mtime_ns]
            cached = metrics_columns.load(str(sweep_path), stamp)  # (made from exactly these bytes)
            if cached is not None:
                return cached
            lines = fh.read(st.st_size).splitlines()  # (lines appended since: the next reader's)
    except OSError:
        return out
    out = _parse(lines)
    metrics_columns.write(str(sweep_path), stamp, out)
    return out


def _parse(lines: list[bytes]) -> dict[str, tuple[int, dict[str, Any]]]:
    out: dict[str, tuple[int, dict[str, Any]]] = {}
    try:  # one parse for the whole file (a third of the time of one per line) ...
        rows = json.loads(b"[" + b",".join(line for line in lines if line.strip()) + b"]")
        for row in rows:
            if not isinstance(row["values"], dict):
                raise TypeError("metrics are not an object")
            out[row["id"]] = (int(row["attempt"]), row["values"])
        return out
    except (ValueError, KeyError, TypeError):
        out.clear()  # ... and line by line when a line is torn or damaged
    for raw in lines:
        try:
            row = json.loads(raw)
            out[row["id"]] = (int(row["attempt"]), dict(row["values"]))
        except (ValueError, KeyError, TypeError):
            continue
    return out
