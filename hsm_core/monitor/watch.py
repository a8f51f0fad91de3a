"""The live view's rounds (``hsm monitor watch``): which sweeps it follows and when it is over.

One sweep (given by id) is followed until every task is final; without an id, every active sweep
is, sweeps that start meanwhile are picked up (every :data:`REDISCOVER_EVERY` seconds, and once
more when the others are done), and a finished sweep is shown finished once, then dropped. When all
is done, the view waits up to :data:`SETTLE_SECONDS` for a controller still at work to record how
its sweep ended. Drawing the frames is the caller's (:mod:`hsm_core.monitor.view`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterator

#: In "all active sweeps" mode, look for newly started sweeps this often (seconds).
REDISCOVER_EVERY = 30.0
#: How long a finished watch waits for the controller to record how the sweep ended (seconds).
SETTLE_SECONDS = 5.0


class SweepWatch:
    """The sweeps a live view follows, with what each round of snapshots needs kept between rounds."""

    def __init__(self, out: Path, only: Any | None = None) -> None:
        from hsm_core.monitor.snapshot import active_sweeps

        self.out = out
        #: One sweep was asked for (it is followed whatever its state).
        self.fixed = only is not None
        self.tracked: list[Any] = [only] if self.fixed else active_sweeps(out)
        self._caches: dict[str, Any] = {}
        self._trackers: dict[str, Any] = {}
        self._last_discovery = time.monotonic()

    def snapshots(self) -> list[Any]:
        """A snapshot of every followed sweep (task files read incrementally between rounds)."""
        from hsm_core.monitor.logs import HealthTracker
        from hsm_core.monitor.snapshot import RecordCache, take_snapshot

        snaps = []
        for sweep in self.tracked:
            cache = self._caches.setdefault(sweep.sweep_id, RecordCache(sweep))
            health = self._trackers.setdefault(sweep.sweep_id, HealthTracker(sweep.logs_dir / "health_status.log"))
            snaps.append(take_snapshot(sweep, cache=cache, health=health))
        return snaps

    def _new_sweeps(self) -> list[Any]:
        from hsm_core.monitor.snapshot import active_sweeps

        known = {s.sweep_id for s in self.tracked}
        return [s for s in active_sweeps(self.out) if s.sweep_id not in known]

    def rounds(self, interval: float, sleep: Callable[[float], None] = time.sleep) -> Iterator[list[Any]]:
        """Snapshots of the followed sweeps every ``interval`` seconds, until every one is finished
        (and, following all active sweeps, none started meanwhile)."""
        while True:
            snaps = self.snapshots()
            yield snaps
            if all(s.finished for s in snaps):
                if not self.fixed:
                    fresh = self._new_sweeps()  # sweeps that started while we watched the others
                    if fresh:
                        self.tracked[:] = fresh
                        continue
                return
            if not self.fixed:
                # Finished sweeps were shown finished once; keep watching the others.
                self.tracked[:] = [sw for sw, s in zip(self.tracked, snaps) if not s.finished]
                if time.monotonic() - self._last_discovery >= REDISCOVER_EVERY:
                    self._last_discovery = time.monotonic()
                    self.tracked.extend(self._new_sweeps())
            sleep(interval)

    def settled(self, snaps: list[Any], seconds: float = SETTLE_SECONDS) -> list[Any]:
        """Every task is final, but a controller at work ("running") writes the sweep's own status a
        moment later: wait up to ``seconds`` for it, so the last line says how the sweep ended."""
        deadline = time.monotonic() + seconds
        while any(s.status == "running" for s in snaps) and time.monotonic() < deadline:
            time.sleep(0.2)
            snaps = self.snapshots()
        from hsm_core.monitor.snapshot import ACTIVE_SWEEP_STATUSES
        from hsm_core.sweep_end import settle_ended_sweep

        # Nobody left to say how it ended (--no-wait, a controller that died): say it now.
        if any(settle_ended_sweep(sw, reader="hsm monitor watch")
               for sw, s in zip(self.tracked, snaps) if s.status in ACTIVE_SWEEP_STATUSES):
            snaps = self.snapshots()
        return snaps


def frame_signature(snaps: list[Any]) -> list[Any]:
    """What a frame shows that matters when only changes are printed (not on a terminal): the
    sweeps' states and counts, and which sources are out."""
    return [(s.sweep_id, s.status, sorted(s.counts.items()),
             [(o.get("source"), o.get("tasks"), o.get("run_elsewhere_epoch")) for o in s.outages])
            for s in snaps]


def ending_line(snap: Any) -> str:
    """``Sweep X finished: <how> (N completed, M failed).``"""
    from hsm_core.monitor.snapshot import ACTIVE_SWEEP_STATUSES

    status = "all tasks done" if snap.status in ACTIVE_SWEEP_STATUSES else snap.status
    return f"Sweep {snap.sweep_id} finished: {status} ({snap.completed} completed, {snap.failed} failed)."
