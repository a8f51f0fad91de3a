"""The dispatch loop: capacity per source, strategy, polling, health, failover, interrupts.

The engine holds no state that is not also on disk: every state change is in the task's
``status.yaml`` (written by the runner) and mirrored in the index, so killing the controller at
any moment loses nothing that ``hsm complete`` cannot pick up.

Each source's calls (launch, poll, health) run on a thread of its own, one call at a time, and
their results are applied on the engine's thread in the order the calls were made. So a slow source
(an SSH round trip, a scheduler command) never keeps the others waiting, and Ctrl-C never lands in
the middle of a launch: a task whose process was started is always known, and stopped, on interrupt.
"""

from __future__ import annotations

import collections
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from hsm_core import runner
from hsm_core.metrics import collect_metrics, load_collectors
from hsm_core.outages import Outage, backoff, write_outages
from hsm_core.plugin import (
    ComputeSource,
    DispatchStrategy,
    HsmError,
    NotInCharge,
    SourceSlot,
    SourceUnavailable,
    TaskSpec,
    TaskState,
    TaskUpdate,
)
from hsm_core.spec_queue import SpecQueue
from hsm_core.state import SweepDir, TaskRecord, count_states, read_status, reconcile_status

if TYPE_CHECKING:  # pragma: no cover
    from hsm_core.failfast import FailFast
    from hsm_core.plugin import PrunerSettings

INDEX_SAVE_INTERVAL = 2.0


class Interrupted(HsmError):
    """The user interrupted the sweep; state is saved and ``hsm complete`` continues it."""

    exit_code = 130


class _NotInCharge(Exception):
    """A launch refused because another controller took the sweep over (``may_launch``)."""


class _CancelRequested(Exception):
    """A launch refused because ``hsm cancel`` asked this controller to launch nothing more."""


class WakeEvent(threading.Event):
    """Wakes the engine. ``set()``, what sources call through ``context.wake()``, also asks for a
    poll of every source before its ``poll_interval`` is up (the plugin contract); the engine's own
    wake-ups when a call on a source returns (:meth:`notify`) do not, or each poll would wake the
    engine for the next one, for ever.
    """

    def __init__(self) -> None:
        super().__init__()
        self.poll_requested = False

    def set(self) -> None:
        self.poll_requested = True
        super().set()

    def notify(self) -> None:
        super().set()


@dataclass
class _Op:
    """A call made on a source and not yet applied: ``launch`` (of ``batch``), ``poll``, ``health``
    or ``prune`` (a cancel of the task in ``batch``, which its pruner decided to stop)."""

    kind: str
    future: "Future[Any]"
    batch: list[TaskSpec] = field(default_factory=list)


@dataclass
class SourceRuntime:
    """The engine's bookkeeping for one source."""

    source: ComputeSource
    capacity: int
    io: ThreadPoolExecutor | None = None
    ops: "collections.deque[_Op]" = field(default_factory=collections.deque)
    active: set[str] = field(default_factory=set)
    launched_total: int = 0
    consecutive_failures: int = 0
    enabled: bool = True
    next_poll: float = 0.0
    next_health: float = 0.0
    woken: bool = False
    last_health: str = "not checked"
    #: Polls that raised SourceUnavailable in a row: the next poll waits for their backoff.
    poll_failures: int = 0
    #: Set while calls on the source fail (from the first failure to the first success).
    outage: Outage | None = None

    @property
    def name(self) -> str:
        return self.source.name


class Engine:
    """Runs ``tasks`` of ``sweep`` on ``sources`` until each reaches a final state."""

    def __init__(
        self,
        sweep: SweepDir,
        records: dict[str, TaskRecord],
        sources: Sequence[ComputeSource],
        strategy: DispatchStrategy,
        registry: Any,
        *,
        parallel_limit: int | None = None,
        health_interval: float = 300.0,
        max_failures: int = 3,
        wake_event: WakeEvent | None = None,
        on_update: Callable[[TaskRecord], None] | None = None,
        detach: bool = False,
        prepare: Callable[[TaskSpec], TaskSpec] | None = None,
        on_outage: Callable[[str, Outage], None] | None = None,
        kill_grace: float = 10.0,
        may_launch: Callable[[], bool] | None = None,
        retry: Callable[[TaskRecord], float | None] | None = None,
        fail_fast: "FailFast | None" = None,
        pruning: "PrunerSettings | None" = None,
        cancel_requested: Callable[[], bool] | None = None,
    ) -> None:
        self.sweep = sweep
        self.records = records
        self.registry = registry
        self.strategy = strategy
        self.parallel_limit = parallel_limit
        self.health_interval = health_interval
        self.max_failures = max_failures
        self.wake_event = wake_event or WakeEvent()
        self.on_update = on_update
        #: Called with ("down" | "changed" | "back", outage) when a source stops answering, when
        #: what waits on it changes, and when it answers again (``hsm run`` prints them).
        self.on_outage = on_outage
        self.detach = detach
        # Task dirs are written when a task is first dispatched, not all up front: a 100,000-task
        # sweep starts at once and holds only what is running.
        self._prepare = prepare
        self._prepared: set[str] = set()
        # Asked before every launch batch: False once another controller took the sweep over
        # (hsm_core.lease); from then on this engine launches nothing and writes no index.
        self._may_launch = may_launch
        self.launch_stopped = False
        self._stop_logged = False
        self.sources = [SourceRuntime(s, max(1, int(s.capacity()))) for s in sources]
        self.by_name = {rt.name: rt for rt in self.sources}
        self._owner: dict[str, SourceRuntime] = {}
        self._dirty = False
        self._all_down_logged = False
        self._last_save = 0.0
        self._save_cost = 0.0
        self._mapping_saved = False
        self._mapping_current = False  # the last save wrote task_mapping.yaml too
        self._collectors = load_collectors(registry)
        #: Adopted tasks watched through their files (no source of this run can attach them).
        self._watched: dict[str, TaskSpec] = {}
        self.kill_grace = kill_grace
        #: Asked when a task fails: seconds until it runs again, or None (hsm_core.retries).
        self._retry = retry
        self._retry_at: list[tuple[float, TaskSpec]] = []
        self._interrupting = False
        #: No more launches once the first finished tasks all failed alike (hsm_core.failfast).
        self.fail_fast = fail_fast
        #: The sweep's early stopping (hsm_core.pruning): running tasks judged in a thread, the ones
        #: to stop queued here and cancelled on their source by the loop.
        self.pruning = pruning
        self._pruner: Any = None
        self._to_prune: "collections.deque[str]" = collections.deque()
        #: Asked before every launch batch: True once ``hsm cancel`` ran (hsm_core.cancel_request);
        #: from then on nothing more is launched and the rest stays pending.
        self._cancel_requested = cancel_requested
        self.cancel_seen = False

    # ------------------------------------------------------------------------------------------
    def run(self, tasks: Sequence[TaskSpec], adopted: Sequence[TaskSpec] = ()) -> dict[str, int]:
        """Dispatch ``tasks`` (and watch ``adopted`` ones already running) until all are final."""
        # (a SpecQueue makes its specs as they are reached: hsm_core.spec_queue)
        pending = tasks if isinstance(tasks, SpecQueue) else collections.deque(tasks)
        adopted_left = self._watched = self._attach(adopted)
        self.registry.hook.hsm_sweep_started(
            sweep_id=self.sweep.sweep_id, sweep_dir=str(self.sweep.path), total_tasks=len(tasks) + len(adopted)
        )
        self._log_sources()
        old_term = _install_term_handler()
        for rt in self.sources:
            rt.io = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"hsm-source-{rt.name}")
        self._start_pruner()
        try:
            while pending or self._owner or adopted_left or self._retry_at:
                self._prune()
                self._release_retries(pending)
                self._reap(pending)
                self._health_checks()
                self._dispatch(pending)
                self._reap(pending)
                if (
                    self.detach
                    and not pending
                    and not self._retry_at
                    and not any(rt.ops for rt in self.sources)
                    and all(rt.source.detach() for rt in self.sources if rt.active)
                ):
                    break
                all_down = pending and not any(rt.enabled for rt in self.sources)
                if all_down and not self._all_down_logged:
                    self._log_health("all sources disabled; waiting for one to recover (Ctrl-C to stop)")
                self._all_down_logged = bool(all_down)
                self._wait(bool(adopted_left))
                self._reap(pending)
                self._poll(pending)
                self._reap(pending)
                self._watch_adopted(adopted_left)
                self._maybe_save()
        except KeyboardInterrupt:
            self._interrupt()
            raise Interrupted("interrupted", hint=f"state saved; continue with: hsm complete {self.sweep.sweep_id}")
        finally:
            _restore_signal(signal.SIGTERM, old_term)
            if self._pruner is not None:
                self._pruner.close()
            self._settle()
            if self._dirty or not self._mapping_current:
                # (else the last save wrote this very index and mapping: ``hsm run --no-wait`` of
                # 10,000 tasks wrote both twice; the index's columns are then the first reader's)
                self._save(mapping=True)
            self._end_outages()
            for rt in self.sources:
                if rt.io is not None:
                    rt.io.shutdown(wait=True)
                try:
                    rt.source.close()
                except Exception:  # closing must not hide the real outcome
                    pass
            counts = count_states(self.records.values())
            self.registry.hook.hsm_sweep_finished(sweep_id=self.sweep.sweep_id, sweep_dir=str(self.sweep.path), counts=counts)
        return counts

    # ------------------------------------------------------------------------------------------
    def _total_active(self) -> int:
        return sum(len(rt.active) for rt in self.sources)

    def _in_charge(self) -> bool:
        """True while this engine may launch tasks and write the index (see ``may_launch``)."""
        if self._may_launch is not None and not self.launch_stopped and not self._may_launch():
            self.launch_stopped = True
        return not self.launch_stopped

    def _stop_launching(self, pending: "collections.deque[TaskSpec]") -> None:
        """Leave what is not launched yet to the controller that holds the sweep now."""
        self.launch_stopped = True
        if pending or not self._stop_logged:
            self._stop_logged = True
            self.sweep.log("sweep.log", f"launching stopped: {len(pending)} task(s) left to the controller holding the sweep; "
                                        f"{self._total_active()} started here are watched to their end")
        pending.clear()

    def _dispatch(self, pending: "collections.deque[TaskSpec]") -> None:
        if not pending:
            return
        if self.launch_stopped:
            pending.clear()
            return
        if self._cancelled():
            self._stop_for_cancel(pending)
            return
        if self.fail_fast is not None and self.fail_fast.stops(len(pending), self._total_active()):
            pending.clear()  # they stay pending on disk, for hsm complete
            return
        batches: dict[str, list[TaskSpec]] = collections.defaultdict(list)
        planned = {rt.name: len(rt.active) for rt in self.sources}
        total = self._total_active()
        while pending:
            if self.parallel_limit is not None and total >= self.parallel_limit:
                break
            slots = [
                SourceSlot(rt.name, rt.capacity, planned[rt.name], rt.launched_total)
                for rt in self.sources
                if rt.enabled and planned[rt.name] < rt.capacity
            ]
            if not slots:
                break
            if not batches and not self._in_charge():
                self._stop_launching(pending)
                return
            if self._prepare is not None and pending[0].task_id not in self._prepared:
                pending[0] = self._prepare(pending[0])
                self._prepared.add(pending[0].task_id)
            choice = self.strategy.choose(pending[0], slots)
            if choice is None:
                break
            batches[choice.name].append(pending.popleft())
            planned[choice.name] += 1
            total += 1
        for name, batch in batches.items():
            rt = self.by_name[name]
            # The tasks hold their slots from now on; a failed launch gives them back (_launched).
            for spec in batch:
                rt.active.add(spec.task_id)
                self._owner[spec.task_id] = rt
            rt.launched_total += len(batch)
            self._submit(rt, "launch", self._launch_if_in_charge, rt, batch, batch=batch)

    def _launch_if_in_charge(self, rt: SourceRuntime, batch: list[TaskSpec]) -> None:
        """``rt.source.launch(batch)`` on the source's thread, asking ``may_launch`` once more right
        before: a controller stopped (SIGSTOP, a suspended laptop) since the engine's own check may
        have been replaced meanwhile."""
        if self._may_launch is not None and not self._may_launch():
            raise _NotInCharge()
        if self._cancelled():
            raise _CancelRequested()
        rt.source.launch(batch)

    def _cancelled(self) -> bool:
        if not self.cancel_seen and self._cancel_requested is not None and self._cancel_requested():
            self.cancel_seen = True
        return self.cancel_seen

    def _stop_for_cancel(self, pending: "collections.deque[TaskSpec]") -> None:
        """``hsm cancel`` ran: launch nothing more (the tasks stay pending on disk, for hsm complete)."""
        if pending:
            self.sweep.log("sweep.log", f"hsm cancel: {len(pending)} task(s) not launched; "
                                        f"{self._total_active()} started here are watched to their end")
        pending.clear()

    def _launched(self, rt: SourceRuntime, batch: list[TaskSpec], error: BaseException | None, pending: "collections.deque[TaskSpec]") -> None:
        """Apply the outcome of ``rt.source.launch(batch)``."""
        if isinstance(error, (_NotInCharge, _CancelRequested)):
            for spec in batch:
                rt.active.discard(spec.task_id)
                self._owner.pop(spec.task_id, None)
            rt.launched_total -= len(batch)
            pending.extendleft(reversed(batch))
            if isinstance(error, _CancelRequested):
                self._stop_for_cancel(pending)
            else:
                self._stop_launching(pending)
            return
        if isinstance(error, NotInCharge):
            # Replaced while stopped inside this launch (each start asks the lease): what started
            # is watched here to its end; the rest is the new holder's, and nothing more launches.
            failed = [spec for spec in batch if spec.task_id not in error.started]
            for spec in failed:
                rt.active.discard(spec.task_id)
                self._owner.pop(spec.task_id, None)
            rt.launched_total -= len(failed)
            pending.extendleft(reversed(failed))
            self._stop_launching(pending)
            self.sweep.log("sweep.log", f"{rt.name}: {error}")
            batch = [spec for spec in batch if spec.task_id in error.started]
            if not batch:
                return
            error = None
        elif error is not None:
            started = error.started if isinstance(error, SourceUnavailable) else frozenset()
            failed = [spec for spec in batch if spec.task_id not in started]
            for spec in failed:
                rt.active.discard(spec.task_id)
                self._owner.pop(spec.task_id, None)
            rt.launched_total -= len(failed)
            if not isinstance(error, SourceUnavailable):
                raise error
            # Infrastructure trouble: the tasks that did not start go back to the queue, the source
            # loses health; those that started stay with it (they run, and are polled as usual).
            for spec in reversed(failed):
                pending.appendleft(spec)
            self._source_failed(rt, f"launch failed: {error}", "launch", error)
            batch = [spec for spec in batch if spec.task_id in started]
            if not batch:
                return
        now = time.time()
        for spec in batch:
            rec = self.records[spec.task_id]
            rec.source = rt.name
            if TaskState(rec.state).finished or rec.state == TaskState.PENDING.value:
                rec.state = TaskState.SUBMITTED.value
            self._dirty = True
        # One write for the batch (a file opened per task was 0.4 s of 10,000 tasks' submission).
        self.sweep.log_lines("task_assignments.log", [f"{spec.name} {spec.task_id} -> {rt.name}" for spec in batch])
        if error is None:
            rt.consecutive_failures = 0
            rt.poll_failures = 0
            self._recovered(rt)
        rt.next_poll = min(rt.next_poll or now + rt.source.poll_interval, now + rt.source.poll_interval)
        self._log_utilization()

    # -- calls on sources ---------------------------------------------------------------------
    def _submit(self, rt: SourceRuntime, kind: str, fn: Callable[..., Any], *args: Any,
                batch: Sequence[TaskSpec] = ()) -> None:
        """Call ``fn(*args)`` on the source's own thread; ``batch``: the tasks a launch starts."""
        assert rt.io is not None, "sources are called only while the engine runs"
        future = rt.io.submit(fn, *args)
        future.add_done_callback(lambda _f: self.wake_event.notify())
        rt.ops.append(_Op(kind, future, list(batch)))

    def _reap(self, pending: "collections.deque[TaskSpec]") -> None:
        """Apply the calls that have returned, per source in the order they were made."""
        for rt in self.sources:
            while rt.ops and rt.ops[0].future.done():
                op = rt.ops.popleft()
                error = op.future.exception()
                if op.kind == "launch":
                    self._launched(rt, op.batch, error, pending)
                elif op.kind == "poll":
                    self._polled(rt, None if error else op.future.result(), error, pending)
                elif op.kind == "prune":
                    if error is not None:  # the task runs on; its decision stays on disk for the next controller
                        self.sweep.log("sweep.log", f"prune: could not stop {op.batch[0].task_id if op.batch else 'a task'} on {rt.name}: {error}")
                else:
                    self._checked(rt, None if error else op.future.result(), error)

    def _settle(self) -> None:
        """Wait for every call in flight and apply it (before interrupting or closing the sources)."""
        pending: "collections.deque[TaskSpec]" = collections.deque()
        for rt in self.sources:
            for op in list(rt.ops):
                try:
                    op.future.exception()  # waits
                except BaseException:
                    pass
        try:
            self._reap(pending)
        except Exception:  # an unexpected launch error was already raised once from the loop
            pass

    def _wait(self, watching_adopted: bool) -> None:
        now = time.time()
        # A call in flight wakes us when it returns (_submit), so only the idle sources count here.
        deadlines = [rt.next_poll for rt in self.sources if rt.active and not rt.ops]
        deadlines += [rt.next_health for rt in self.sources if rt.next_health]
        deadlines += [at for at, _spec in self._retry_at]
        timeout = max(0.0, min(deadlines) - now) if deadlines else 1.0
        if watching_adopted:
            timeout = min(timeout, 0.5)
        if self._retry_at and self._cancel_requested is not None:
            timeout = min(timeout, 1.0)  # a backoff may be long: look for an hsm cancel meanwhile
        if self._dirty:
            timeout = min(timeout, INDEX_SAVE_INTERVAL)
        self.wake_event.wait(timeout=min(timeout, 30.0))
        self.wake_event.clear()

    def _poll(self, pending: "collections.deque[TaskSpec]") -> None:
        now = time.time()
        requested, self.wake_event.poll_requested = self.wake_event.poll_requested, False
        for rt in self.sources:
            if not rt.active or any(op.kind == "poll" for op in rt.ops):
                continue
            if rt.poll_failures and now < rt.next_poll:
                # Backing off after a failed poll: no wake-up brings it forward (other sources'
                # tasks ending must not have a dead host polled 20 times a second).
                continue
            if now < rt.next_poll and not requested and not rt.source.wants_poll():
                continue
            if self.detach and not pending and rt.source.detach() and not rt.source.wants_poll():
                # --no-wait with everything handed over: only news a source holds is still
                # fetched (a poll in flight would keep the run from ending; a long poll
                # always is).
                continue
            rt.next_poll = now + rt.source.poll_interval
            self._submit(rt, "poll", _poll_list, rt.source)

    def _polled(self, rt: SourceRuntime, updates: Any, error: BaseException | None, pending: "collections.deque[TaskSpec]") -> None:
        """Apply the outcome of ``rt.source.poll()``."""
        if error is not None:
            if not isinstance(error, SourceUnavailable):
                raise error
            rt.poll_failures += 1
            now = time.time()
            wait = max(rt.source.poll_interval, backoff(rt.poll_failures), error.retry_after or 0.0)
            rt.next_poll = now + wait
            if error.lost_at is not None and error.lost_at > now:
                # The source gives its tasks up then: look on time, so they run elsewhere on time.
                rt.next_poll = min(rt.next_poll, error.lost_at + 0.01)
            self._source_failed(rt, f"poll failed: {error}", "poll", error)
            return
        rt.poll_failures = 0
        for upd in updates:
            self._apply(rt, upd, pending)
        if not any(u.infrastructure_failure and u.state.finished for u in updates):
            # It answered (tasks it gives up on, as after lost_after, prove nothing).
            self._recovered(rt)
        elif rt.outage is not None:
            self._outage_changed(rt)

    def _apply(self, rt: SourceRuntime, upd: TaskUpdate, pending: "collections.deque[TaskSpec]") -> None:
        rec = self.records.get(upd.task_id)
        if rec is None:
            return
        d = self.sweep.task_dir(rec.index)
        # Only a final update takes what the file says (a 'running' one uses nothing of it: a file
        # that says the task ended already is the next poll's final update, so that _finished runs
        # once per end; a status.yaml parsed per update was half the controller's CPU in a run).
        status = (read_status(d) or {}) if upd.state.finished else {}
        if upd.state.finished and upd.infrastructure_failure and upd.state != TaskState.COMPLETED:
            # Lost to the infrastructure (host down, node failure): run it again elsewhere.
            rt.active.discard(upd.task_id)
            self._owner.pop(upd.task_id, None)
            rec.state = TaskState.PENDING.value
            self._dirty = True
            pending.append(self._spec(rec))
            self._source_failed(rt, f"{rec.name} lost: {upd.message or upd.state.value}")
            return
        if status.get("state") and TaskState(status["state"]).finished:
            rec.update_from_status(status)
        else:
            rec.state = upd.state.value
            if upd.state.finished:
                # The source could not write status.yaml (disk full): the index, only a cache,
                # must not be the one place that says so. Readers re-read this task's files and
                # record it from what its wrapper left (state.left_exit_code), or run it again.
                rec.extra["unrecorded"] = True
        if rec.source is None:
            rec.source = rt.name
        if rec.state not in (TaskState.COMPLETED.value, TaskState.CANCELLED.value) and TaskState(rec.state).finished \
                and self._cancelled():
            # Stopped by hsm cancel, which records it cancelled (maybe only after this poll): the
            # index says the same, and the task is not retried.
            rec.state = TaskState.CANCELLED.value
        self._dirty = True
        if TaskState(rec.state).finished:
            rt.active.discard(upd.task_id)
            self._owner.pop(upd.task_id, None)
            self._finished(rec)
        if self.on_update:
            self.on_update(rec)

    def _finished(self, rec: TaskRecord) -> None:
        d = self.sweep.task_dir(rec.index)
        retry_in = None
        if self._retry is not None and not self._interrupting and rec.state != TaskState.COMPLETED.value:
            retry_in = self._retry(rec)
        if self.fail_fast is not None and retry_in is None:
            self.fail_fast.observe(rec)  # (a transient failure about to be retried says nothing about the script)
        if rec.state in (TaskState.COMPLETED.value, TaskState.PRUNED.value):
            self._collect_metrics(d)
            from hsm_core import indexed_metrics
            from hsm_core.monitor.export import read_metrics
            from hsm_core.taskdir import metrics_path

            # export reads one file, not 100,000 (the stamp first: a later rewrite is seen)
            stamp = indexed_metrics.file_stamp(str(metrics_path(d)))
            indexed_metrics.remember(self.sweep.path, rec.task_id, rec.attempt, read_metrics(d),
                                     task_dir=d.name, stamp=stamp)
        else:
            self.sweep.log(
                f"sources/{rec.source}.log", f"{rec.name} {rec.state} exit_code={rec.exit_code}"
            )
        self.registry.hook.hsm_task_finished(
            sweep_id=self.sweep.sweep_id, task_id=rec.task_id, state=rec.state, task_dir=str(d)
        )
        if retry_in is not None:
            rec.state = TaskState.PENDING.value
            self._retry_at.append((time.time() + retry_in, self._spec(rec)))

    def _start_pruner(self) -> None:
        if self.pruning is None:
            return
        from hsm_core.pruning import PruneMonitor

        def stop(task_id: str, _task_dir: Any) -> None:
            self._to_prune.append(task_id)
            self.wake_event.notify()

        self._pruner = PruneMonitor(self.sweep.path, self.pruning, self.registry, stop).start()

    def _prune(self) -> None:
        """Tell the pruner which tasks run now; stop those it decided to prune, as a cancel does."""
        if self._pruner is None:
            return
        self._pruner.watch({tid: (self.records[tid].index, self.sweep.record_dir(self.records[tid]))
                            for tid in self._owner if tid in self.records})
        while self._to_prune:
            task_id = self._to_prune.popleft()
            rt = self._owner.get(task_id)
            if rt is not None:
                self._submit(rt, "prune", rt.source.cancel, [task_id], batch=[self._spec(self.records[task_id])])

    def _release_retries(self, pending: "collections.deque[TaskSpec]") -> None:
        """Queue the retries whose backoff is over (none once another controller took over)."""
        if self.launch_stopped or (self._retry_at and self._cancelled()):
            self._retry_at.clear()  # (after hsm cancel they stay pending, for hsm complete)
            return
        now = time.time()
        pending.extend(spec for at, spec in self._retry_at if at <= now)
        self._retry_at = [(at, spec) for at, spec in self._retry_at if at > now]

    def _collect_metrics(self, task_dir: Any) -> None:
        collect_metrics(task_dir, self._collectors)

    def _spec(self, rec: TaskRecord) -> TaskSpec:
        d = self.sweep.task_dir(rec.index).resolve()
        return TaskSpec(rec.task_id, rec.index, rec.params, d, self.sweep.sweep_id, self.sweep.path.resolve())

    def _attach(self, adopted: Sequence[TaskSpec]) -> dict[str, TaskSpec]:
        """Hand tasks an earlier controller launched to the source that runs them.

        Returns the tasks to watch through their files instead (local orphans whose source is not
        in this run, or a source that cannot attach); tasks running on a source that is not part
        of this run and cannot be watched from here are left alone (logged).
        """
        watch: dict[str, TaskSpec] = {}
        by_source: dict[str, list[TaskSpec]] = collections.defaultdict(list)
        for spec in adopted:
            status = read_status(spec.task_dir) or {}
            by_source[str(status.get("source") or "")].append(spec)
        for name, specs in by_source.items():
            rt = self.by_name.get(name)
            if rt is not None:
                try:
                    rt.source.attach(specs)
                except NotImplementedError:
                    pass
                else:
                    for spec in specs:
                        rt.active.add(spec.task_id)
                        self._owner[spec.task_id] = rt
                    continue
            for spec in specs:
                status = read_status(spec.task_dir) or {}
                if status.get("runner") == "local":
                    watch[spec.task_id] = spec
                else:
                    self.sweep.log("sweep.log", f"{spec.name} still running on {name or 'an unknown source'}; not watched")
        return watch

    def _watch_adopted(self, adopted: dict[str, TaskSpec]) -> None:
        for task_id, spec in list(adopted.items()):
            status = reconcile_status(spec.task_dir, read_status(spec.task_dir))
            if status and TaskState(status.get("state", "running")).finished:
                rec = self.records[task_id]
                rec.update_from_status(status)
                self._dirty = True
                del adopted[task_id]
                self._finished(rec)
                if self.on_update:
                    self.on_update(rec)

    # -- health -------------------------------------------------------------------------------
    def _health_checks(self) -> None:
        now = time.time()
        for rt in self.sources:
            if rt.next_health and now < rt.next_health:
                continue
            if any(op.kind == "health" for op in rt.ops):
                continue
            rt.next_health = now + self.health_interval
            self._submit(rt, "health", rt.source.health)

    def _checked(self, rt: SourceRuntime, report: Any, error: BaseException | None) -> None:
        """Apply the outcome of ``rt.source.health()``."""
        if error is None:
            ok, msg = report.healthy, report.message
        else:  # an unreachable source may raise anything
            ok, msg = False, f"{type(error).__name__}: {error}"
        rt.last_health = ("healthy" if ok else "unhealthy") + (f": {msg}" if msg else "")
        self._log_health(f"{rt.name} {rt.last_health}")
        if ok:
            if not rt.enabled:
                rt.enabled = True
                self._log_health(f"{rt.name} recovered: enabled again")
            rt.consecutive_failures = 0
            if rt.poll_failures and rt.active:
                # Reachable again, but only a poll says its tasks can be watched: poll now.
                rt.next_poll = time.time()
            else:
                self._recovered(rt)
        else:
            self._source_failed(rt, msg or "health check failed", "health", error)

    def _source_failed(self, rt: SourceRuntime, why: str, kind: str = "lost", error: BaseException | None = None) -> None:
        """A call on ``rt`` failed (``kind``: poll, launch, health) or it lost a task (``lost``).

        A lost task is logged each time; failed calls are logged when an outage starts (and for
        the first failure of each kind in it), then only counted until the source answers.
        """
        rt.consecutive_failures += 1
        log = f"sources/{rt.name}.log"
        if kind == "lost":
            self.sweep.log(log, f"failure {rt.consecutive_failures}: {why}")
        else:
            o = rt.outage
            started = o is None
            if o is None:
                o = rt.outage = Outage(rt.name, time.time(), why)
                self.sweep.log(log, f"failure {rt.consecutive_failures}: {why}; not answering: further failures "
                                    "are counted, and logged when it answers again")
            elif kind not in o.failed:
                self.sweep.log(log, f"failure {rt.consecutive_failures}: {why}")
            o.failed[kind] = o.failed.get(kind, 0) + 1
            o.error = why
            if isinstance(error, SourceUnavailable) and error.lost_at is not None:
                o.lost_at, o.lost_setting = error.lost_at, error.lost_setting
            self._outage_changed(rt, "down" if started else None)
        if rt.enabled and rt.consecutive_failures >= self.max_failures:
            rt.enabled = False
            self._log_health(f"{rt.name} disabled after {rt.consecutive_failures} consecutive failures ({why})")
        # Check again soon so a recovered source comes back quickly. Only ever bring the check
        # forward: polls failing every second must not postpone it forever (no health check, no
        # "unhealthy" in health_status.log, no recovery while tasks are stuck on the source). In a
        # long outage the checks follow the backoff, up to its last step.
        soon = time.time() + min(self.health_interval, max(5.0, backoff(rt.consecutive_failures)))
        rt.next_health = min(rt.next_health, soon) if rt.next_health else soon

    # -- outages -------------------------------------------------------------------------------
    def _outage_changed(self, rt: SourceRuntime, event: str | None = None) -> None:
        """Bring ``rt.outage``'s waiting tasks up to date; write the outages; tell ``on_outage``."""
        o = rt.outage
        if o is None:
            return
        before = (list(o.tasks), o.lost_at)
        o.tasks = sorted(self.records[t].name for t in rt.active if t in self.records)
        if event is None and (list(o.tasks), o.lost_at) != before:
            event = "changed"
        self._write_outages()
        if event and self.on_outage:
            self.on_outage(event, o)

    def _recovered(self, rt: SourceRuntime) -> None:
        """``rt`` answered: end its outage (logged once, with what failed meanwhile)."""
        o = rt.outage
        if o is None:
            return
        rt.outage = None
        took = time.time() - o.since
        self.sweep.log(f"sources/{rt.name}.log", f"answering again after {took:.1f}s ({o.failures_text()})")
        self._write_outages()
        if self.on_outage:
            self.on_outage("back", o)

    def _write_outages(self) -> None:
        try:
            write_outages(self.sweep.logs_dir, self.sweep.sweep_id, [rt.outage for rt in self.sources if rt.outage])
        except OSError:
            pass  # a status display must never stop the sweep (disk full)

    def _end_outages(self) -> None:
        """The run is over: note sources still not answering, and remove the outage file."""
        for rt in self.sources:
            if rt.outage is not None:
                took = time.time() - rt.outage.since
                try:
                    self.sweep.log(f"sources/{rt.name}.log", "still not answering when the run ended, after "
                                   f"{took:.1f}s ({rt.outage.failures_text()})")
                except OSError:
                    pass
                rt.outage = None
        self._write_outages()

    def _log_health(self, line: str) -> None:
        self.sweep.log("health_status.log", line)

    def _log_sources(self) -> None:
        for rt in self.sources:
            self.sweep.log(f"sources/{rt.name}.log", f"source {rt.name} ({type(rt.source).__name__}) capacity {rt.capacity}")

    def _log_utilization(self) -> None:
        parts = " ".join(f"{rt.name}={len(rt.active)}/{rt.capacity}" for rt in self.sources)
        self.sweep.log("source_utilization.log", parts)

    # -- persistence ---------------------------------------------------------------------------
    def _maybe_save(self) -> None:
        # Saving costs O(tasks): on huge sweeps save less often, so it stays a small share of time.
        interval = max(INDEX_SAVE_INTERVAL, 20 * self._save_cost)
        if self._dirty and time.time() - self._last_save >= interval:
            self._save()

    def _save(self, mapping: bool = False) -> None:
        if not self._in_charge():
            return  # the controller holding the sweep now keeps its index
        start = time.time()
        # The first save writes task_mapping.yaml too (a new sweep starts its first tasks before it).
        mapping = mapping or not self._mapping_saved
        # The first save comes as the first tasks start: its columns (0.1-0.2 s at 100,000 tasks)
        # are left to the first reader rather than taken from the tasks' start.
        self.sweep.save_index(self.records.values(), mapping=mapping, columns=self._mapping_saved)
        self._mapping_saved = True
        self._mapping_current = mapping
        self._dirty = False
        self._last_save = time.time()
        self._save_cost = self._last_save - start

    def _interrupt(self) -> None:
        old_int = _restore_signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        self._interrupting = True  # what ends now is stopped, not retried
        try:
            self._settle()  # launches in flight finish first: their tasks must be stopped too
            for rt in self.sources:
                if rt.active:
                    try:
                        rt.source.interrupt()
                    except Exception:
                        pass
                    for upd in _safe_poll(rt.source):
                        self._apply(rt, upd, collections.deque())
            self._stop_watched()
            for task_id, rt in list(self._owner.items()):
                rec = self.records[task_id]
                status = read_status(self.sweep.task_dir(rec.index)) or {}
                if status.get("state"):
                    rec.update_from_status(status)
        finally:
            _restore_signal(signal.SIGINT, old_int if old_int is not None else signal.default_int_handler)

    def _stop_watched(self) -> None:
        """Ctrl-C stops the adopted tasks watched through their files too (local ones of this
        machine): left running, they would read ``running`` with nobody watching them."""
        specs = list(self._watched.values())
        threads = [threading.Thread(target=runner.stop_recorded, args=(spec.task_dir, self.kill_grace)) for spec in specs]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        for spec in specs:
            status = runner.settle_stopped(spec.task_dir, TaskState.INTERRUPTED)
            deadline = time.monotonic() + 5.0
            while status and status.get("state") == TaskState.RUNNING.value and time.monotonic() < deadline:
                time.sleep(0.05)
                status = runner.settle_stopped(spec.task_dir, TaskState.INTERRUPTED)
            if status and status.get("state"):
                self.records[spec.task_id].update_from_status(status)
                self._dirty = True

    def source_table(self) -> list[dict[str, Any]]:
        """Per-source utilization and health (for status displays)."""
        return [
            {
                "source": rt.name,
                "active": len(rt.active),
                "capacity": rt.capacity,
                "launched": rt.launched_total,
                "enabled": rt.enabled,
                "health": rt.last_health,
            }
            for rt in self.sources
        ]


def _poll_list(source: ComputeSource) -> list[TaskUpdate]:
    """``source.poll()`` run to the end on the source's own thread (it may be a generator)."""
    return list(source.poll())


def _safe_poll(source: ComputeSource) -> Iterable[TaskUpdate]:
    try:
        return source.poll()
    except Exception:
        return []


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _restore_signal(signum: int, handler: Any) -> Any:
    """``signal.signal`` that is a no-op outside the main thread (engines driven from a thread)."""
    try:
        return signal.signal(signum, handler)
    except ValueError:
        return None


def _install_term_handler() -> Any:
    """SIGTERM to the controller behaves like Ctrl-C: stop cleanly, save state, exit 130."""
    try:
        return signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:  # not in the main thread (tests driving the engine from a thread)
        return signal.getsignal(signal.SIGTERM)
