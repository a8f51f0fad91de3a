"""When a task ends on its own, what it started ends too (local and SSH tasks).

On Slurm a job's processes live in the job's cgroup, and whatever the task left running (a
TensorBoard, a data-loader server started with ``nohup setsid``, a background ``&`` child) is
killed when the job ends. A local or SSH task has no such container: a script that forgot to stop
its helper left it running forever, holding a port, a GPU's memory or a file of the task dir.
This module gives those tasks Slurm's behaviour: when the task's command has ended (completed or
failed, not stopped: a stop already takes its daemons), every process of this user whose
environment names the task's dir (``HSM_TASK_DIR``: its background children and its daemons that
left the session alike, :func:`hsm_core.processes.escaped`) and that started before the task
ended gets SIGTERM, ``kill_grace`` seconds, then SIGKILL. Never hsm itself or its ancestors,
never another user's process, never one started after the task ended (a new attempt's); each is
pinned by its start time, so a pid taken over meanwhile is never signalled. What was stopped is
noted at the end of the task's ``stderr.log``.

The search is one pass over the machine's processes (20-50 ms). A sweep of many short local tasks
must not pay it per task: :class:`Sweeper` (the local source's) collects the tasks that ended and
searches for all of them in one pass, at most once per :data:`MIN_INTERVAL` seconds, in a thread
of its own, and once more, at once, when the source closes (``hsm run`` waits for it). The SSH
source's runner (``hsm-task TASK_DIR`` on the remote host) searches once when its task ended,
after recording the task's status, with the source's ``kill_grace`` (``HSM_KILL_GRACE``).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Iterable

#: Seconds between two searches of the local source's sweeper.
MIN_INTERVAL = 1.0
#: The variable the SSH source passes its ``kill_grace`` in (to ``hsm-task`` on the remote host).
GRACE_VARIABLE = "HSM_KILL_GRACE"


def left_running(task_dir: "os.PathLike[str] | str", ended: float, *,
                 found: dict[str, list[int]] | None = None) -> list[int]:
    """This user's processes (not hsm itself) whose environment names ``task_dir`` and that
    started before ``ended`` (epoch seconds). ``found``: a search already made (task dir's real
    path -> pids), else one is made now."""
    from hsm_core import processes

    if found is None:
        pids = processes.escaped(task_dir)
    else:
        pids = list(found.get(os.path.realpath(os.fspath(task_dir)), ()))
    out = []
    for pid in pids:
        started = processes.start_time(pid)
        if started is not None and started < ended:
            out.append(pid)
    return out


def stop_left_running(task_dirs: Iterable[tuple["os.PathLike[str] | str", float]], grace: float) -> dict[str, list[int]]:
    """Stop what each ended task (``(task dir, end time)``) left running: one search for all of
    them, SIGTERM, up to ``grace`` seconds, SIGKILL. Returns task dir -> pids stopped; each task
    with any has a line about them at the end of its ``stderr.log``."""
    from hsm_core import processes

    ended = [(Path(d), t) for d, t in task_dirs]
    if not ended:
        return {}
    found = processes.by_task_dir()
    stopped: dict[str, list[int]] = {}
    for task_dir, when in ended:
        pids = left_running(task_dir, when, found=found)
        if pids:
            stopped[str(task_dir)] = pids
    if not stopped:
        return stopped
    described = {pid: _describe(pid) for pids in stopped.values() for pid in pids}
    processes.stop_pids(sorted(described), grace)
    for task_dir, pids in stopped.items():
        _note(Path(task_dir), [described[p] for p in pids], grace)
    return stopped


def _describe(pid: int) -> str:
    from hsm_core import processes

    argv = processes.cmdline(pid) or []
    text = " ".join(argv)
    return f"pid {pid}" + (f" ({text[:120]})" if text else "")


def _note(task_dir: Path, described: list[str], grace: float) -> None:
    """A line at the end of the task's stderr.log: the user sees what hsm stopped, and why."""
    from hsm_core.taskdir import stderr_path

    line = (f"hsm: the task ended and left {len(described)} process(es) running; stopped them as a batch "
            f"scheduler does at the job's end (SIGTERM, {grace:g} s, SIGKILL): {'; '.join(described)}\n")
    try:
        with open(stderr_path(task_dir), "a", encoding="utf-8") as fh:
            fh.write(line)
    except OSError:
        pass


def grace_from_environment(default: float = 10.0) -> float:
    """The ``kill_grace`` the SSH source passed to its runner (:data:`GRACE_VARIABLE`)."""
    try:
        return max(0.0, float(os.environ.get(GRACE_VARIABLE, default)))
    except ValueError:
        return default


class Sweeper:
    """The local source's: stops what ended tasks left running, many tasks per search.

    :meth:`ended` only notes the task (no search on the thread that saw it end); a thread of its
    own searches for every task noted so far at most once per :data:`MIN_INTERVAL`, and
    :meth:`close` makes the last search at once and waits for it."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self._pending: list[tuple[Path, float]] = []
        self._cond = threading.Condition()
        self._closing = False
        self._busy = False
        self._thread: threading.Thread | None = None

    def ended(self, task_dir: Path) -> None:
        """Note that ``task_dir``'s command ended just now, on its own."""
        with self._cond:
            self._pending.append((task_dir, time.time()))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="hsm-ended-task-processes", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _run(self) -> None:
        last = 0.0
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending and self._closing:
                    return
                wait = last + MIN_INTERVAL - time.monotonic()
                if wait > 0 and not self._closing:
                    self._cond.wait(wait)  # (more tasks end meanwhile: one search for all)
                    continue
                batch, self._pending = self._pending, []
                self._busy = True
            last = time.monotonic()
            try:
                stop_left_running(batch, self.grace)
            except Exception:  # never let a failed search take the controller down
                pass
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def close(self, timeout: float | None = None) -> None:
        """Search at once for the tasks noted and not yet searched for, and wait until their
        leftovers are stopped (at most ``timeout`` seconds; default: the grace and 5 s)."""
        with self._cond:
            if self._thread is None:
                return
            self._closing = True
            self._cond.notify_all()
        self._thread.join(self.grace + 5.0 if timeout is None else timeout)
