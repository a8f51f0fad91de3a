"""A worker's pick of its next task at a cost that does not grow with the sweep (issue 19).

A worker used to look at every configuration of the sweep before each claim (list ``tasks/``,
read the status of every started task it had not seen finish): 4-7 ms per pick at 10,000 tasks,
more at 100,000. Now the sweep dir keeps what a pick needs, in files the size of the *unfinished*
work, never of the sweep:

* **Held** tasks are the lock files of ``.locks/`` (one per running worker, plus those a killed
  worker left, which are taken over as before: :mod:`hsm_core.workers.claims`).
* **Started but unfinished** tasks that nobody holds have a marker, an empty file named by the
  run id, in ``.queue/resume/`` (preempted, lost, stopped before it started...); failed ones one
  in ``.queue/failed/`` (for ``--retry-failed`` and ``retries:``), pruned ones in
  ``.queue/pruned/`` (the sweep's end state). The holder of a claim writes the marker that
  matches the task's state *before* it gives the claim up (:meth:`PickQueue.note`), and removes
  markers that no longer apply; a worker killed before that leaves its lock, which says the
  same. So at every moment a started, unfinished task has a lock or a marker.
* **Never started** tasks (no task dir) are the worker's own queue, in file order, made once when
  it starts (one listing of ``tasks/``): each pick takes the next one whose dir does not exist
  yet (one ``stat``) and claims it (its lock created whole, :mod:`hsm_core.whole_file`). The ones other workers took meanwhile are
  passed over, one ``stat`` each: with W workers about W per pick, whatever the sweep's size.

Markers are hints, never permissions: the claim (a lock made by an atomic ``link``, taken over once) still decides
who runs a task, and the worker that holds it reads the task's status before running it (a task
finished in the meantime is left alone). A stale or duplicated marker costs one claim attempt; a
missing one would leave a task unrun, hence the order above (marker first, then release) and the
order of a pick's look (locks first, then markers: a claim released between the two looks has
written its marker already).

A sweep made by an hsm without markers gets them from one full look at its task dirs (statuses
read once, as a pick used to do each time), by the first worker that starts on it; ``.queue/format``
then says the markers are complete. Workers of an older hsm must not share a sweep with newer ones:
they release claims without writing markers.

Stdlib only (the worker loop imports it).
"""

from __future__ import annotations

import collections
import os
from pathlib import Path
from typing import Callable, Iterable, Sequence

from hsm_core.atomic import unlink_if_present
from hsm_core.plugin import TaskState
from hsm_core.workers.layout import WorkTask

QUEUE_DIR = ".queue"
#: Marker kinds: a sub-directory of ``.queue/`` each.
RESUME, FAILED, PRUNED = "resume", "failed", "pruned"
KINDS = (RESUME, FAILED, PRUNED)
#: Written once every started task of the sweep has its marker or its lock.
FORMAT_FILE = "format"
FORMAT = "1\n"


def marker_kind(state: str | None) -> str | None:
    """The marker a task in ``state`` carries when nobody holds it (None: completed, no marker)."""
    if state == TaskState.COMPLETED.value:
        return None
    if state == TaskState.PRUNED.value:
        return PRUNED
    if state == TaskState.FAILED.value:
        return FAILED
    return RESUME  # preempted, lost, interrupted, never recorded...: to be run (again)


class PickQueue:
    """What one worker knows of the sweep's open work, and the markers it keeps up to date."""

    def __init__(self, sweep_path: Path, tasks: Sequence[WorkTask]) -> None:
        self.root = Path(sweep_path) / QUEUE_DIR
        self.tasks_dir = Path(sweep_path) / "tasks"
        self.by_id = {t.run_id: t for t in tasks}
        self._tasks = tasks
        #: Tasks without a task dir when this worker started, in file order.
        self.fresh: collections.deque[WorkTask] = collections.deque()

    # -- start-up --------------------------------------------------------------------------------
    def load(self, locked: Iterable[str], state_of: Callable[[WorkTask], str | None]) -> int:
        """Make the queue of never-started tasks (one listing of ``tasks/``). On a sweep without
        complete markers, first give every started task nobody holds its marker (``state_of``
        reads its status). Returns how many markers were written that way."""
        for kind in KINDS:
            (self.root / kind).mkdir(parents=True, exist_ok=True)
        try:
            dirs = set(os.listdir(self.tasks_dir))
        except FileNotFoundError:
            dirs = set()
        held = set(locked)
        complete = (self.root / FORMAT_FILE).is_file()
        written = 0
        for t in self._tasks:
            if t.name not in dirs:
                if t.run_id not in held:
                    self.fresh.append(t)
                continue
            if not complete and t.run_id not in held:
                kind = marker_kind(state_of(t))
                if kind is not None:
                    self._mark(kind, t.run_id)
                    written += 1
        if not complete:
            # Only now: a worker killed during the look leaves the job to the next one.
            tmp = self.root / f".{FORMAT_FILE}.{os.getpid()}.tmp"
            tmp.write_text(FORMAT, encoding="utf-8")
            os.replace(tmp, self.root / FORMAT_FILE)
        return written

    # -- a pick --------------------------------------------------------------------------------
    def marked(self, kind: str) -> list[str]:
        """Run ids of this worker's tasks with a ``kind`` marker (one directory listing)."""
        try:
            names = os.listdir(self.root / kind)
        except FileNotFoundError:
            return []
        return [n for n in names if n in self.by_id]

    def next_fresh(self) -> WorkTask | None:
        """The next never-started task, dropping those another worker started meanwhile (their
        dir exists: until they finish, a lock or a marker stands for them). Not taken off the
        queue: :meth:`drop` does that once the claim was tried."""
        while self.fresh:
            t = self.fresh[0]
            if not os.path.isdir(self.tasks_dir / t.name):
                return t
            self.fresh.popleft()
        return None

    def drop(self, t: WorkTask) -> None:
        """Take ``t`` off the front of the never-started queue."""
        if self.fresh and self.fresh[0] is t:
            self.fresh.popleft()

    # -- keeping markers -------------------------------------------------------------------------
    def note(self, run_id: str, state: str | None) -> None:
        """Record the state a claimed task is left in, *before* its claim is released: its
        marker is written first, then the markers that no longer apply are removed. Raises
        OSError when the marker cannot be written (the caller then keeps the claim)."""
        kind = marker_kind(state)
        if kind is not None:
            self._mark(kind, run_id)
        for other in KINDS:
            if other != kind:
                unlink_if_present(self.root / other / run_id)

    def _mark(self, kind: str, run_id: str) -> None:
        if "/" in run_id or run_id.startswith("."):
            raise ValueError(f"bad run id {run_id!r}")
        path = self.root / kind / run_id
        try:
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o666)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o666)
        os.close(fd)

