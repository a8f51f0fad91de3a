"""How often an array-job source checks its task files: as often as stays cheap.

A poll between scheduler queries reads only the stat of each followed task's ``status.yaml`` (and
the files that changed), so its cost grows with the number of tasks followed: about 1 ms for 200
tasks, tens of ms for 10,000 (the CPU time of the check, measured by the watcher: its wall time
grows with whatever else runs on the machine, the array's own elements first). A fixed interval is either slow to see the last task end (1 s: on
average half a second of ``hsm run`` after the sweep is done, a tenth of a 200-task run of trivial
tasks) or costly at scale. :class:`PollPace` chooses the next interval from the cost of the last
file check: the checks take at most :data:`BUDGET` of the controller's time, never more often than
every :data:`FASTEST` s nor less often than every :data:`SLOWEST` s. A ``poll_interval`` set in the
config is kept as it is.
"""

from __future__ import annotations

__all__ = ["BUDGET", "FASTEST", "SLOWEST", "PollPace"]

#: Shortest interval between two file checks, seconds (a hand-written script polling ``squeue``
#: typically waits 0.5 s).
FASTEST = 0.2
#: Longest interval, seconds: the fixed interval array-job sources used before.
SLOWEST = 1.0
#: Share of the controller's time the file checks may take.
BUDGET = 0.02


class PollPace:
    """The interval between an array-job source's polls (``poll_interval``, in seconds)."""

    def __init__(self, configured: float | None) -> None:
        #: The interval the config sets, or None to pace by cost.
        self.configured = float(configured) if configured else None
        self.interval = self.configured if self.configured is not None else FASTEST

    def after_check(self, seconds: float) -> float:
        """The interval after a file check that took ``seconds`` (the query of the scheduler
        excluded: it has its own backoff)."""
        if self.configured is None:
            self.interval = min(SLOWEST, max(FASTEST, seconds / BUDGET))
        return self.interval
