"""``hsm logs TASK [-f]``: a task's output, and following it while the task runs.

The task's ``stdout.log`` goes to standard output and its ``stderr.log`` to standard error, as the
command wrote them (every attempt appends to the same files). With ``follow``, what the files gain
is printed as it arrives (read by offset: nothing is printed twice, a file that does not exist
yet is waited for) until the task is over: its ``status.yaml`` says a final state. A task stopped
by a signal (``preempted``) may be requeued by its scheduler and run again into the same files, so
following goes on for ``requeue_grace`` seconds after such an attempt, and on with the next one if
it starts.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable

from hsm_core.taskdir import read_status, stderr_path, stdout_path
from hsm_core.taskstate import TaskState


@dataclass
class _Tail:
    """One file read from where the last read stopped."""

    path: Path
    sink: BinaryIO
    offset: int = 0
    _inode: int | None = field(default=None, repr=False)

    def pump(self, limit: int = 1 << 20) -> int:
        """Copy what the file gained to the sink; returns the bytes copied."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return 0
        if self._inode is not None and (st.st_ino != self._inode or st.st_size < self.offset):
            self.offset = 0  # replaced or truncated (a task run again from scratch): start over
        self._inode = st.st_ino
        copied = 0
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            while True:
                data = fh.read(limit)
                if not data:
                    break
                self.sink.write(data)
                copied += len(data)
        if copied:
            self.offset += copied
            self.sink.flush()
        return copied


def _over(state: str | None) -> bool:
    try:
        return TaskState(str(state)).finished
    except ValueError:
        return False


def print_logs(task_dir: Path, out: BinaryIO, err: BinaryIO, *, follow: bool = False, interval: float = 0.5,
               requeue_grace: float = 30.0, sleep: Callable[[float], None] = time.sleep,
               clock: Callable[[], float] = time.monotonic) -> str | None:
    """Print the task's output (``stdout.log`` to ``out``, ``stderr.log`` to ``err``); with
    ``follow``, keep printing until the task is over. Returns the task's last known state."""
    tails = [_Tail(stdout_path(task_dir), out), _Tail(stderr_path(task_dir), err)]
    state = (read_status(task_dir) or {}).get("state")
    for t in tails:
        t.pump()
    if not follow:
        return state
    preempted_since: float | None = None
    while True:
        state = (read_status(task_dir) or {}).get("state")  # before the read: no output is missed
        moved = sum(t.pump() for t in tails)
        if _over(state):
            if state != TaskState.PREEMPTED.value:
                return state
            now = clock()
            if preempted_since is None or moved:
                preempted_since = now
            elif now - preempted_since >= requeue_grace:
                return state
        else:
            preempted_since = None
        sleep(interval)
