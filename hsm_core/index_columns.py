"""The sweep's index by columns, beside ``task_index.json``, so ``hsm status`` and ``hsm export`` of
100,000 tasks load it in a fraction of the time (issue 19).

``task_index.json`` (one JSON object per task) stays what it was: the file people, tests and
older hsm versions read. Decoding 100,000 objects and checking each field of each one took about
0.7 s; the same facts as one JSON list per field (``index``, ``id``, ``state`` ...) decode several
times faster, and are checked a column at a time (the set of types in a column, not each value).

It is a cache of a cache and never trusted on its own:

* it names the ``task_index.json`` it was made from: that file's inode, size and modification
  time, and the random generation each index save writes in the index's first line. A reader
  uses it only while the index it opened has exactly these; a crash between the two writes, an
  index written by an older hsm, by hand or by another process since, or a damaged file: it
  decodes ``task_index.json`` as before and writes this file again for the next reader.
* both files are written atomically (temporary file, then rename), like every sweep file.
* the task dirs stay the truth: ``task_index.json`` is rebuilt from them when missing or stale
  (:meth:`hsm_core.state.SweepDir.rebuild_index`), and that rebuild writes this file too.
"""

from __future__ import annotations

import json
import os
import re
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hsm_core.atomic import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:
    from hsm_core.state import TaskRecord

#: The file, in the sweep dir.
COLUMNS_FILE = "task_index.columns.json"
_FORMAT = 1
_GEN = re.compile(rb'"gen":"([0-9a-f]{1,64})"')
_NONE = type(None)
#: Each scalar field of a record: its column and the types a value may have.
_SCALARS: tuple[tuple[str, frozenset[type]], ...] = (
    ("index", frozenset({int})), ("id", frozenset({str})), ("state", frozenset({str})),
    ("source", frozenset({str, _NONE})), ("duration", frozenset({int, float, _NONE})),
    ("exit_code", frozenset({int, _NONE})), ("attempt", frozenset({int, _NONE})),
    ("host", frozenset({str, _NONE})), ("start_time", frozenset({str, _NONE})), ("end_time", frozenset({str, _NONE})),
)
_ATTRS = {"id": "task_id"}


def new_generation() -> str:
    """A fresh generation for one index save."""
    return os.urandom(8).hex()


def header_generation(first_line: bytes) -> str | None:
    """The generation in ``task_index.json``'s first line, None when it has none."""
    m = _GEN.search(first_line)
    return m.group(1).decode() if m else None


def stamp_of(fd: int) -> list[int]:
    """What identifies one written ``task_index.json``: inode, size, mtime (ns) of the open file."""
    st = os.fstat(fd)
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def write_index(path: str, text: str) -> list[int]:
    """Write ``task_index.json`` atomically (no fsync: a cache) and return its :func:`stamp_of`,
    taken from the written file itself, before the rename makes it visible."""
    return atomic_write_bytes(Path(path), text.encode("utf-8"), fsync=False, on_written=stamp_of)


def write(sweep_path: str, records: list["TaskRecord"], generation: str | None, stamp: list[int]) -> None:
    """Write the columns of ``records`` (sorted by index) for the index of ``generation`` (None:
    an index without one) and ``stamp`` (:func:`stamp_of`)."""
    doc: dict[str, Any] = {"format": _FORMAT, "gen": generation, "of": stamp, "n": len(records)}
    for field, _ in _SCALARS:
        attr = _ATTRS.get(field, field)
        doc[field] = list(map(attrgetter(attr), records))  # (C-level: no Python call per record)
    # Parameters stay one object per task: json decodes those in C, faster than any rebuild.
    doc["params"] = list(map(attrgetter("params"), records))
    doc["extra"] = {str(i): r.extra for i, r in enumerate(records) if r.extra}
    text = json.JSONEncoder(separators=(",", ":"), default=str).encode(doc)
    atomic_write_text(os.path.join(sweep_path, COLUMNS_FILE), text, fsync=False)


def load(sweep_path: str, generation: str | None, stamp: list[int], record: "type[TaskRecord]",
         states: frozenset[str]) -> "dict[str, TaskRecord] | None":
    """task id -> ``record`` (the class, :class:`hsm_core.state.TaskRecord`) from the columns of
    the index of ``generation`` and ``stamp``, every state one of ``states``; None when
    there is no such file, it is of another index, or anything in it is not what :func:`write`
    writes (the caller then decodes ``task_index.json``)."""
    try:
        with open(os.path.join(sweep_path, COLUMNS_FILE), "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    head = json.dumps({"format": _FORMAT, "gen": generation, "of": stamp}, separators=(",", ":"))[:-1]
    if not raw.startswith(head.encode()):
        return None  # another index's columns: not decoded at all
    try:
        doc = json.loads(raw)
        return _records(doc, record, states) if type(doc) is dict else None
    except (ValueError, TypeError, KeyError, AttributeError, IndexError):
        return None


def _records(doc: dict[str, Any], record: "type[TaskRecord]", states: frozenset[str]) -> "dict[str, TaskRecord] | None":
    n = doc["n"]
    if doc.get("format") != _FORMAT or type(n) is not int:
        return None
    cols = []
    for field, kinds in _SCALARS:
        col = doc[field]
        # One set of types per column: bool is no int here (its type is bool, not in the set).
        if type(col) is not list or len(col) != n or not set(map(type, col)) <= kinds:
            return None
        cols.append(col)
    if not set(doc["state"]) <= states:
        return None
    params = doc["params"]
    if type(params) is not list or len(params) != n or not set(map(type, params)) <= {dict}:
        return None
    extras: list[dict[str, Any]] = [{} for _ in range(n)]
    for pos, extra in doc["extra"].items():
        if type(extra) is not dict or not 0 <= int(pos) < n:
            return None
        extras[int(pos)] = extra
    index, ids, state_col, source, duration, exit_code, attempt, host, start, end = cols
    if None in set(attempt):
        attempt = [a or 0 for a in attempt]
    records = map(record, index, ids, params, state_col, source, duration, exit_code, attempt, host, start,
                  end, extras)
    return dict(zip(ids, records))
