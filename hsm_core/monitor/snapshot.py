"""One sweep at one moment: counts, duration, ETA and per-source rows, read cheaply.

The monitor refreshes every few seconds, so a refresh must not read 10,000 ``status.yaml`` files:
it reads ``task_index.json`` (only when the file changed), then the ``status.yaml`` of the few
tasks the index says are running or queued (the engine saves the index every 2 s, so pending tasks
that started since are picked up on the next save). It never writes anything: a monitor must not
race the engine that owns the index.
"""

from __future__ import annotations

import datetime as _dt
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from hsm_core.monitor.logs import HealthTracker, SourceHealth, Utilization, latest_utilization, parse_time
from hsm_core.outages import read_outages
from hsm_core.plugin import TaskState
from hsm_core.progress import finished_tasks, progress_percent, progress_text
from hsm_core.state import INDEX_FILE, DamagedSweepError, SweepDir, TaskRecord, read_status
from hsm_core.sweep_end import task_is_over
from hsm_core.taskdir import status_path
from hsm_core.taskstate import FAILED_STATES as _FAILED_STATES

#: Sweep statuses (``sweep_metadata.yaml``) of a sweep whose controller is (or should be) at work.
ACTIVE_SWEEP_STATUSES = ("running", "submitted")
#: Task states that count as failures in the monitor (and in ``hsm monitor errors``).
FAILED_STATES = _FAILED_STATES
STOPPED_STATES = ("interrupted", "cancelled")


_FINISHED = frozenset(s.value for s in TaskState if s.finished)
_ACTIVE = frozenset(s.value for s in TaskState if s.active)
#: Waiting tasks probed per refresh for a start the index does not show yet. Tasks are launched
#: in index order, so the first few waiting ones are those that may have started; probing all of
#: a 100,000-task sweep every 5 s would cost a stat each.
PENDING_PROBE = 512


def _finished(state: str) -> bool:
    return state in _FINISHED


def _active(state: str) -> bool:
    return state in _ACTIVE


class RecordCache:
    """Keeps a sweep's index in memory and reloads it only when ``task_index.json`` changed.

    On every :meth:`load`, the ``status.yaml`` of each task the index calls queued or running is
    read again, and that of any other unfinished task whose ``status.yaml`` is newer than the
    index: that catches tasks that started or ended since the engine's last index save (one
    ``stat`` per unfinished task, a read only for the few that are active or changed). An older
    ``status.yaml`` (a failed attempt of a task queued again) is left alone.
    """

    def __init__(self, sweep: SweepDir) -> None:
        self.sweep = sweep
        self._stamp: tuple[int, int] | None = None
        self._records: dict[str, TaskRecord] = {}
        #: Tasks recorded ``preempted`` whose scheduler has not said whether it requeued them.
        self.unsettled: set[str] = set()

    def _index_stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.sweep.path / INDEX_FILE)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def load(self) -> dict[str, TaskRecord]:
        """The records, with tasks changed since the last index save brought up to date."""
        stamp = self._index_stamp()
        if stamp is None or stamp != self._stamp:
            # No index yet: load_index rebuilds it from the task dirs (once).
            self._records = self.sweep.records(refresh=False)
            self._stamp = self._index_stamp()
        index_mtime = self._stamp[0] if self._stamp else 0
        probes = 0
        self.unsettled = set()
        for rec in self._records.values():
            # A task whose runner recorded a signal may be requeued by its scheduler and run
            # again with nobody watching: its status.yaml, not the index, says how it goes.
            if rec.state in _FINISHED and rec.state != TaskState.PREEMPTED.value:
                continue
            d = self.sweep.record_dir(rec)
            if rec.state == TaskState.PREEMPTED.value:
                status = read_status(d)
                if status and status.get("state") and status.get("state") != rec.state:
                    rec.update_from_status(status)
                if rec.state == TaskState.PREEMPTED.value and not task_is_over(status):
                    self.unsettled.add(rec.task_id)
                continue
            # Queued/running in the index: the engine may not have saved its end (or, for
            # "submitted", its start) yet. Others: only when the file changed after the index.
            changed = rec.state in _ACTIVE
            if not changed:
                probes += 1
                if probes > PENDING_PROBE:
                    continue
                try:
                    changed = os.stat(status_path(d)).st_mtime_ns >= index_mtime
                except OSError:
                    continue
            if changed:
                status = read_status(d)
                if status and status.get("state") and status.get("state") != rec.state:
                    rec.update_from_status(status)
                if rec.state == TaskState.PREEMPTED.value and not task_is_over(status):
                    self.unsettled.add(rec.task_id)
        return self._records


def load_records(sweep: SweepDir) -> dict[str, TaskRecord]:
    """The index of a sweep with its running tasks refreshed (see :class:`RecordCache`)."""
    return RecordCache(sweep).load()


@dataclass
class SourceRow:
    """One line of the source utilization table."""

    name: str
    active: int
    capacity: int | None
    health: SourceHealth
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class Snapshot:
    """What the monitor shows for one sweep."""

    sweep_id: str
    path: Path
    status: str  #: from sweep_metadata.yaml (running, completed, incomplete, interrupted ...)
    created: _dt.datetime | None
    total: int
    counts: dict[str, int]
    sources: list[SourceRow]
    mean_duration: float | None
    elapsed: float | None  #: seconds since the sweep was created (to its end when it is over)
    eta: float | None  #: seconds until every task is done, None when unknown or over
    metadata: dict[str, Any] = field(default_factory=dict)
    #: Sources the controller cannot reach, with the tasks waiting on them (hsm_core.outages).
    outages: list[dict[str, Any]] = field(default_factory=list)
    #: Tasks stopped by a signal whose scheduler has not said yet whether it queued them again.
    unsettled: int = 0

    def n(self, *states: str) -> int:
        """Number of tasks in any of ``states``."""
        return sum(self.counts.get(s, 0) for s in states)

    @property
    def completed(self) -> int:
        return self.n("completed")

    @property
    def failed(self) -> int:
        return self.n(*FAILED_STATES)

    @property
    def running(self) -> int:
        return self.n("running")

    @property
    def queued(self) -> int:
        return self.n("submitted")

    @property
    def pending(self) -> int:
        return self.n("pending")

    @property
    def stopped(self) -> int:
        return self.n(*STOPPED_STATES)

    @property
    def pruned(self) -> int:
        """Tasks the sweep's pruner stopped early (a final outcome, not a failure)."""
        return self.n("pruned")

    @property
    def done(self) -> int:
        """Tasks in a final state (:mod:`hsm_core.progress`), less those stopped by a signal
        whose scheduler may still run them again (a requeued element pending with nobody
        watching is not done: no "6/6 100%" while it waits)."""
        return max(0, finished_tasks(self.counts) - self.unsettled)

    @property
    def progress(self) -> float:
        """Percent of tasks in a final state, one decimal (:mod:`hsm_core.progress`)."""
        if not self.unsettled:
            return progress_percent(self.counts, self.total)
        return round(100.0 * self.done / self.total, 1) if self.total else 0.0

    @property
    def progress_text(self) -> str:
        """``done/total (pct%)``, as ``hsm status`` prints it too."""
        if not self.unsettled:
            return progress_text(self.counts, self.total)
        return f"{self.done}/{self.total} ({self.progress:.1f}%)"

    @property
    def finished(self) -> bool:
        """True when nothing will change any more: the controller is done, or every task is final.

        A sweep submitted with ``--no-wait`` stays "submitted" in its metadata while the scheduler
        runs it, so the task states decide as well.
        """
        if self.status not in ACTIVE_SWEEP_STATUSES:
            return True
        # A task stopped by a signal may be queued again by its scheduler: not over until it
        # runs again or its scheduler's verdict is recorded (hsm complete asks).
        return self.total > 0 and self.done == self.total and not self.unsettled


def _metadata_times(meta: dict[str, Any]) -> tuple[_dt.datetime | None, _dt.datetime | None]:
    created = parse_time(meta.get("created"))
    ended = parse_time(meta.get("updated"))
    return created, ended


def source_rows(
    records: Iterable[TaskRecord],
    utilization: Utilization | None,
    health: dict[str, SourceHealth],
) -> list[SourceRow]:
    """Per-source rows: active tasks from the index, capacity from the utilization log."""
    per: dict[str, dict[str, int]] = {}
    for r in records:
        if r.source:
            d = per.setdefault(r.source, {})
            d[r.state] = d.get(r.state, 0) + 1
    names = list((utilization.sources if utilization else {}).keys())
    names += sorted(n for n in set(per) | set(health) if n not in names)
    rows = []
    for name in names:
        counts = per.get(name, {})
        active = sum(v for k, v in counts.items() if _active(k))
        cap = utilization.sources[name][1] if utilization and name in utilization.sources else None
        rows.append(SourceRow(name, active, cap, health.get(name) or SourceHealth(), counts))
    return rows


def estimate_eta(mean: float | None, remaining: int, active: int, capacity: int | None) -> float | None:
    """Seconds left: mean task duration x remaining tasks / tasks running at once.

    Parallelism is the number of tasks active now; between two launches (nothing active) the
    sources' total capacity stands in. Never more than the tasks left.
    """
    if mean is None or remaining <= 0:
        return None if remaining > 0 else 0.0
    parallel = active if active > 0 else (capacity or 1)
    parallel = max(1, min(parallel, remaining))
    return mean * remaining / parallel


def take_snapshot(
    sweep: SweepDir,
    *,
    cache: RecordCache | None = None,
    health: HealthTracker | None = None,
    now: _dt.datetime | None = None,
) -> Snapshot:
    """A :class:`Snapshot` of ``sweep``; pass the same ``cache``/``health`` on every refresh."""
    cache = cache or RecordCache(sweep)
    records = cache.load()
    meta = sweep.read_metadata()
    if health is None:
        health = HealthTracker(sweep.logs_dir / "health_status.log")
    health.update()
    counts: dict[str, int] = {}
    durations: list[float] = []
    for r in records.values():
        counts[r.state] = counts.get(r.state, 0) + 1
        if r.state == "completed" and isinstance(r.duration, (int, float)):
            durations.append(float(r.duration))
    utilization = latest_utilization(sweep.logs_dir)
    rows = source_rows(records.values(), utilization, health.current)
    mean = sum(durations) / len(durations) if durations else None
    status = str(meta.get("status") or "unknown")
    created, ended = _metadata_times(meta)
    now = now or _dt.datetime.now().astimezone()
    snap = Snapshot(
        sweep_id=sweep.sweep_id,
        path=sweep.path,
        status=status,
        created=created,
        total=len(records),
        counts=counts,
        sources=rows,
        mean_duration=mean,
        elapsed=None,
        eta=None,
        metadata=meta,
        unsettled=len(getattr(cache, "unsettled", ())),  # a fixed set of records (a report) has none
    )
    over = snap.finished
    if not over:
        outages = read_outages(sweep.logs_dir)
        snap.outages = outages["sources"] if outages else []
    end = (ended or now) if over else now
    if created is not None:
        snap.elapsed = max(0.0, (end - created).total_seconds())
    if not over:
        remaining = snap.total - snap.done
        active = snap.running + snap.queued
        capacity = sum(r.capacity or 0 for r in rows) or None
        snap.eta = estimate_eta(mean, remaining, active, capacity)
    return snap


# -- finding sweeps ---------------------------------------------------------------------------------


def sweep_dirs(output_dir: Path) -> list[SweepDir]:
    """Every sweep under ``output_dir`` (dirs with a ``sweep_metadata.yaml``), by name."""
    out = Path(output_dir)
    if not out.is_dir():
        return []
    found = []
    for meta in out.glob("*/sweep_metadata.yaml"):
        try:
            found.append(SweepDir(meta.parent))
        except Exception:  # a directory whose name is not a valid sweep id is not ours
            continue
    return sorted(found, key=lambda s: s.path.name)


_warned: set[str] = set()


def warn_damaged(exc: DamagedSweepError) -> None:
    """Say once per process, in one line on stderr, that a listing skips a damaged sweep."""
    if str(exc) in _warned:
        return
    _warned.add(str(exc))
    sys.stderr.write(f"Warning: skipped a damaged sweep: {exc}\n")
    sys.stderr.flush()


def sweeps_with_metadata(output_dir: Path) -> list[tuple[SweepDir, dict[str, Any]]]:
    """(sweep, metadata) of every sweep under ``output_dir`` whose metadata can be read, by name.
    A damaged sweep is skipped with one warning line (:func:`warn_damaged`): one sweep must not
    break the listing of all the others."""
    found = []
    for sweep in sweep_dirs(output_dir):
        try:
            found.append((sweep, sweep.read_metadata()))
        except DamagedSweepError as exc:
            warn_damaged(exc)
    return found


def created_time(sweep: SweepDir, meta: dict[str, Any] | None = None) -> _dt.datetime:
    """When the sweep was created (metadata), else the mtime of its metadata file."""
    meta = sweep.read_metadata() if meta is None else meta
    when = parse_time(meta.get("created"))
    if when is None:
        try:
            when = _dt.datetime.fromtimestamp((sweep.path / "sweep_metadata.yaml").stat().st_mtime).astimezone()
        except OSError:
            when = _dt.datetime.fromtimestamp(0).astimezone()
    return when


def last_activity(sweep: SweepDir, meta: dict[str, Any] | None = None) -> _dt.datetime:
    """The latest of created / last complete / last update: how old a sweep is for ``cleanup``."""
    meta = sweep.read_metadata() if meta is None else meta
    times = [created_time(sweep, meta)]
    for key in ("updated", "last_complete"):
        t = parse_time(meta.get(key))
        if t is not None:
            times.append(t)
    return max(times)


def active_sweeps(output_dir: Path) -> list[SweepDir]:
    """Sweeps whose metadata says running or submitted, oldest first."""
    out = []
    for sweep, meta in sweeps_with_metadata(output_dir):
        if meta.get("status") in ACTIVE_SWEEP_STATUSES:
            out.append((created_time(sweep, meta), sweep))
    return [s for _, s in sorted(out, key=lambda t: (t[0], t[1].path.name))]


def recent_sweeps(output_dir: Path, days: float, now: _dt.datetime | None = None) -> list[SweepDir]:
    """Sweeps created (or last run) within ``days`` days, newest first."""
    now = now or _dt.datetime.now().astimezone()
    cutoff = now - _dt.timedelta(days=days)
    found = []
    for sweep, meta in sweeps_with_metadata(output_dir):
        when = last_activity(sweep, meta)
        if when >= cutoff:
            found.append((created_time(sweep, meta), sweep))
    return [s for _, s in sorted(found, key=lambda t: (t[0], t[1].path.name), reverse=True)]


def has_active_tasks(sweep: SweepDir) -> bool:
    """True when a task of the sweep runs or is queued according to its own ``status.yaml``.

    Every unfinished task is checked (not only those the index calls running: the index may be up
    to 2 s behind), and a local task whose process is gone counts as not running.
    """
    from hsm_core.state import reconcile_status

    for rec in sweep.records(refresh=False).values():
        if _finished(rec.state):
            continue
        d = sweep.record_dir(rec)
        status = reconcile_status(d, read_status(d))
        if status and _active(str(status.get("state"))):
            return True
    return False
