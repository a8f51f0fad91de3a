"""A finished task's metrics kept in the sweep's index, so ``hsm export`` of 100,000 tasks reads one
file instead of 100,000 (issue 19).

When the controller records a completed task it reads the task's ``metrics.json`` (the script's,
or the one hsm wrote from the result collectors) and keeps it, flattened, in the task's index
entry (``extra.metrics``) with the attempt it belongs to. Export uses that copy while the index
says the same attempt; a task run again (another attempt, recorded by whoever ran it) has its
copy dropped, and export reads its file as before. A task finished with no controller watching
(``--no-wait``, workers) has no copy either: its file is read.
"""

from __future__ import annotations

from typing import Any

from hsm_core.state import TaskRecord

#: The key of a record's ``extra`` holding ``{"attempt": N, "values": {flattened metrics}}``.
KEY = "metrics"


def remember(record: TaskRecord, values: dict[str, Any]) -> None:
    """Keep ``values``, the completed task's metrics file as export reads it now (flattened), in
    its index entry."""
    record.extra[KEY] = {"attempt": record.attempt, "values": values}


def known(record: TaskRecord) -> dict[str, Any] | None:
    """The metrics kept for ``record``'s current attempt, or None (read its file)."""
    kept = record.extra.get(KEY)
    if isinstance(kept, dict) and kept.get("attempt") == record.attempt and isinstance(kept.get("values"), dict):
        return kept["values"]
    return None
