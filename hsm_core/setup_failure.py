"""A job script's setup command failed (``module load``, ``conda activate``, ``source venv``): the
task is recorded ``failed`` with that reason and its command is not run, rather than run in the
wrong environment. The job script calls ``hsm-task --setup-failed REASON`` (same list, index and
count as the run it replaces), which lands here.

Standard library and the task files only: it runs on the execution host, in place of the runner.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from hsm_core.state import finalize_status, now_iso
from hsm_core.taskdir import read_status
from hsm_core.taskstate import TaskState

__all__ = ["SETUP_FAILED_EXIT", "record_setup_failure"]

#: The exit code of an element whose setup failed (the shell's "general error").
SETUP_FAILED_EXIT = 1


def record_setup_failure(task_dirs: Iterable[Path], reason: str, *, source: str,
                         status_extra: Mapping[str, Any] | None = None) -> int:
    """Write a ``failed`` attempt with ``error: reason`` into each task dir (a task already
    ``completed`` keeps its status: a requeued element must not undo finished work). Returns the
    number of tasks recorded."""
    recorded = 0
    for task_dir in task_dirs:
        previous = read_status(task_dir) or {}
        if previous.get("state") == TaskState.COMPLETED.value:
            continue
        status: dict[str, Any] = {
            "task_id": previous.get("task_id"),
            "index": previous.get("index"),
            "state": TaskState.RUNNING.value,
            "source": source,
            "host": socket.gethostname(),
            "attempt": int(previous.get("attempt") or 0) + 1,
            "start_time": now_iso(),
            "start_epoch": round(time.time(), 3),
        }
        for key in ("attempts", "source_data"):
            if previous.get(key):
                status[key] = previous[key]
        status.update(status_extra or {})
        # As any attempt ends: the attempts history and the kept source data stay consistent.
        finalize_status(task_dir, {k: v for k, v in status.items() if v is not None}, SETUP_FAILED_EXIT,
                        state=TaskState.FAILED, extra={"error": reason})
        recorded += 1
    return recorded
