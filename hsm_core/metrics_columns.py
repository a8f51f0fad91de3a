"""``task_metrics.jsonl`` as one JSON document beside it (ids, attempts and metrics as three lists),
so ``hsm export`` of 100,000 tasks decodes the latest metrics of each task in one go, with no
line-by-line bookkeeping and no superseded attempts (issue 19).

A cache, used only for the very file it was made from: it names the metrics file's inode, size
and modification time, and the reader takes exactly that many bytes of it. The metrics file is
only ever appended to, so any new line changes its size and the cache is made again by the next
export (atomically; a disk that says no just leaves it out). A damaged or foreign cache is
ignored, never trusted: the metrics file stays what is read (:mod:`hsm_core.indexed_metrics`).
"""

from __future__ import annotations

import json
import os
from typing import Any

from hsm_core.atomic import atomic_write_text

#: The file, in the sweep dir.
COLUMNS_FILE = "task_metrics.columns.json"
_FORMAT = 1


def load(sweep_path: str, stamp: list[int]) -> dict[str, tuple[int, dict[str, Any]]] | None:
    """task id -> (attempt, metrics) from the cache of the metrics file of ``stamp``; None when
    there is none for that file or it is not what :func:`write` writes."""
    try:
        with open(os.path.join(sweep_path, COLUMNS_FILE), "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    head = json.dumps({"format": _FORMAT, "of": stamp}, separators=(",", ":"))[:-1]
    if not raw.startswith(head.encode()):
        return None
    try:
        doc = json.loads(raw)
        ids, attempts, values = doc["ids"], doc["attempts"], doc["values"]
        n = len(ids)
        if type(ids) is not list or not set(map(type, ids)) <= {str}:
            return None
        if type(attempts) is not list or len(attempts) != n or not set(map(type, attempts)) <= {int}:
            return None
        if type(values) is not list or len(values) != n or not set(map(type, values)) <= {dict}:
            return None
        dicts = values
        return dict(zip(ids, zip(attempts, dicts)))
    except (ValueError, TypeError, KeyError):
        return None


def write(sweep_path: str, stamp: list[int], known: dict[str, tuple[int, dict[str, Any]]]) -> None:
    """Cache ``known`` (what the metrics file of ``stamp`` says) for the next reader."""
    ids = list(known)
    found = list(known.values())
    # Metrics stay one object per task (json decodes those in C); ids and attempts are lists.
    doc: dict[str, Any] = {"format": _FORMAT, "of": stamp, "ids": ids, "attempts": [a for a, _ in found],
                           "values": [v for _, v in found]}
    try:
        atomic_write_text(os.path.join(sweep_path, COLUMNS_FILE),
                          json.JSONEncoder(separators=(",", ":"), default=str).encode(doc), fsync=False)
    except OSError:
        pass
