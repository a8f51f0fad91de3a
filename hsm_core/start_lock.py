"""The start lock of a task: controllers on one machine start a task one at a time.

A controller asks whether it still holds the sweep's lease (:mod:`hsm_core.lease`) right before it
starts a task. A controller stopped between that answer and the start (Ctrl-Z, SIGSTOP) for longer
than the lease timeout is replaced; continued, it would go on with the start next to the copy its
replacement started. So a local start is made under this lock: the lease question, the look at the
task's status and the ``process: starting`` record plus the start of the command happen while it is
held. Whoever takes it second sees the outcome of the first: a continued controller finds the
lease gone and starts nothing; the replacement finds the task started and watches it.

The lock is ``flock`` on the task directory itself: no file is added to the task, and the kernel
lets go of it when its holder dies (even by SIGKILL), so a crash never leaves a task locked. Held
for the few milliseconds of a start (fork and exec of the wrapper), or for as long as its holder is
stopped inside one. Where the file system has no ``flock`` for a directory (some network file
systems), starts are made without it, as before: the race is back there, and only there.

Kept light (stdlib only): the task runner imports it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

#: Seconds a start waits for the lock before it says once why it waits (the holder is stopped).
WAIT_NOTE_AFTER = 5.0
#: How often a waiting start looks again.
WAIT_POLL = 0.02


class StartLockBusy(Exception):
    """The task's start lock is held by another start (``wait=False``)."""


def _open(task_dir: Path) -> int | None:
    try:
        return os.open(task_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None  # no directory yet, or none to open: the start itself says what is wrong


@contextmanager
def start_lock(task_dir: Path, *, wait: bool = True, on_wait: Callable[[], None] | None = None,
               abort: Callable[[], bool] | None = None) -> Iterator[bool]:
    """Hold the start lock of ``task_dir``; yields True when held, False where it cannot be had
    (no ``flock`` here: the start goes on without it). ``wait=False`` raises
    :class:`StartLockBusy` when another start holds it; else it waits, calling ``on_wait()`` once
    after :data:`WAIT_NOTE_AFTER` seconds, and raises :class:`StartLockBusy` as soon as
    ``abort()`` says so (Ctrl-C, a cancel: a holder stopped for good must not hold them up)."""
    fd = _open(Path(task_dir))
    if fd is None:
        yield False
        return
    try:
        began = time.monotonic()
        noted = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait or (abort is not None and abort()):
                    raise StartLockBusy(str(task_dir)) from None
            except OSError as exc:
                if exc.errno in (errno.EINTR,):
                    continue
                yield False  # EBADF/ENOLCK/EOPNOTSUPP: a file system without directory locks
                return
            if not noted and on_wait is not None and time.monotonic() - began >= WAIT_NOTE_AFTER:
                noted = True
                on_wait()
            time.sleep(WAIT_POLL)
        yield True
    finally:
        os.close(fd)  # closing the only descriptor of the lock lets it go


def start_lock_held(task_dir: Path) -> bool:
    """True while another process (or thread) is inside a start of ``task_dir``: a ``process:
    starting`` record behind it is being made good, however old it looks."""
    fd = _open(Path(task_dir))
    if fd is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False
