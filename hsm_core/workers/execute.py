"""Running one claimed task: heartbeat, signals, an earlier attempt still running, the core runner.

The task runs under the core runner (:func:`hsm_core.runner.start_task` /
:func:`~hsm_core.runner.finish_task`, the pieces :func:`~hsm_core.runner.run_blocking` is made of),
so ``status.yaml``, ``stdout.log`` and ``stderr.log`` land exactly as for any other source. The
worker needs the process handle itself for one thing ``run_blocking`` cannot do: when the
heartbeat finds the claim taken over, the task is killed at once and *nothing* more is written to
its dir, since the task now belongs to another worker.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from hsm_core.plugin import TaskState
from hsm_core import processes
from hsm_core.runner import StartedTask, finish_task, recorded_process, signal_task, start_task, task_catches
from hsm_core.state import (
    closed_attempt,
    finalize_status,
    left_exit_code,
    pruned_decision,
    read_status,
    reconcile_status,
    started_process,
    write_status,
)
from hsm_core.workers.claims import Claim, ClaimStore

#: Signals a scheduler (or a user) sends to stop a worker; forwarded to the running task.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)
#: States of an attempt that stopped before the task finished: the task is resumed.
RESUMABLE_STATES = frozenset(
    {
        TaskState.PREEMPTED.value,
        TaskState.INTERRUPTED.value,
        TaskState.LOST.value,
        TaskState.TIMEOUT.value,
        TaskState.CANCELLED.value,
        TaskState.RUNNING.value,  # only ever seen without a live lock: its worker died
        TaskState.SUBMITTED.value,
    }
)


class Signals:
    """The worker's handlers for :data:`STOP_SIGNALS`: remember the signal, forward it to the task."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self._task: StartedTask | None = None
        self._forwarded = 0
        self._old: dict[int, Any] = {}

    def install(self) -> None:
        """Install the handlers (main thread only)."""
        for s in STOP_SIGNALS:
            self._old[s] = signal.signal(s, self._handle)

    def restore(self) -> None:
        """Put the previous handlers back."""
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old.clear()

    @property
    def stop_signal(self) -> int | None:
        """The first signal received, or None."""
        return self.received[0] if self.received else None

    def attach(self, task: StartedTask | None) -> None:
        """Forward further signals to ``task`` (None: no task running). Signals that arrived while
        the task was being started are forwarded now."""
        self._task = task
        if task is not None:
            self._forwarded = 0
            for s in list(self.received):
                self._forward(task, s)

    @property
    def forwarded(self) -> bool:
        """True once a signal was passed on to the running task (its grace then runs)."""
        return self._forwarded > 0

    def _handle(self, signum: int, _frame: Any) -> None:
        self.received.append(signum)
        task = self._task
        if task is not None:
            self._forward(task, signum)

    def _forward(self, task: StartedTask, signum: int) -> None:
        if signum == signal.SIGUSR1 and not task_catches(task.process.pid, signum):
            # The warning before the walltime, and no process of the task handles it: as the task
            # runner does, it is not passed on (its default action would kill a script that only
            # traps SIGTERM at once, without its checkpoint). The task runs on, to its end or to
            # the walltime's SIGTERM; the worker, having received it, takes no new task.
            return
        if not task.status.get("signal_received"):
            task.status["signal_received"] = signal.Signals(signum).name
        self._forwarded += 1
        signal_task(task, signum)


class Heartbeat(threading.Thread):
    """Refreshes a claim every ``interval`` seconds; calls ``on_lost`` once if it is taken over."""

    def __init__(
        self,
        store: ClaimStore,
        claim: Claim,
        interval: float,
        on_lost: Callable[[], None],
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name=f"heartbeat-{claim.run_id}", daemon=True)
        self.store, self.claim, self.interval = store, claim, interval
        self.on_lost, self.on_tick = on_lost, on_tick
        self.lost = threading.Event()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            if not self.store.refresh(self.claim):
                self.lost.set()
                self.on_lost()
                return
            if self.on_tick is not None:
                try:
                    self.on_tick()
                except Exception:  # a failing extra (wandb sync) must never stop the heartbeat
                    pass

    def stop(self) -> None:
        """Stop refreshing (the claim stays held until released)."""
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join()


@dataclass
class Session:
    """A held claim with its heartbeat: what is running under it and whether it was lost."""

    store: ClaimStore
    claim: Claim
    interval: float
    on_tick: Callable[[], None] | None = None
    task: StartedTask | None = None
    heartbeat: Heartbeat | None = field(default=None, repr=False)
    #: The claim went to a worker on this machine, which records our copy's end: it ran on.
    handed_over: bool = False
    #: Called before the claim is released (the worker's pick markers, hsm_core.workers.pick_queue);
    #: when it raises, the claim is kept, to go stale and be taken over: releasing a task that no
    #: marker stands for would leave it unrun.
    before_release: Callable[[], None] | None = None

    def __enter__(self) -> "Session":
        self.heartbeat = Heartbeat(self.store, self.claim, self.interval, self._lost, self.on_tick)
        self.heartbeat.start()
        return self

    def _lost(self) -> None:
        # Another worker owns the task now. On this machine it waits for our copy to end and then
        # records its result (settle_previous): killing it would only throw that result away. On
        # another machine it cannot see our processes and runs the task at once: stop ours now
        # (SIGKILL), all but the wrapper, which still records how its command ended.
        task = self.task
        if task is None:
            return
        view = self.store.inspect(self.claim.run_id)
        holder = (view.holder or {}) if view is not None else {}
        if holder.get("machine") == self.store.me.get("machine") and holder.get("token") != self.claim.token:
            self.handed_over = True
            return
        processes.kill_now(task.process.pid)

    @property
    def lost(self) -> bool:
        """True once the heartbeat found the claim taken over."""
        return self.claim.lost

    def __exit__(self, *exc: Any) -> None:
        assert self.heartbeat is not None
        self.heartbeat.stop()
        if not self.claim.lost:
            if self.before_release is not None:
                try:
                    self.before_release()
                except OSError:
                    return
            self.store.release(self.claim)


def stop_pruned(_task_id: str, task_dir: Path) -> None:
    """Stop the task its pruner gave up on, from its files, as a cancel does (SIGTERM to all its
    processes, SIGKILL after the grace), without waiting: :func:`run_task` waits for it as ever,
    and its end is recorded ``pruned`` (the decision is in the task dir)."""
    from hsm_core.pruning import GRACE
    from hsm_core.runner import stop_recorded

    threading.Thread(target=stop_recorded, args=(task_dir, GRACE), name="hsm-prune-stop", daemon=True).start()


def mark_attempt(task_dir: Path, status: Mapping[str, Any], state: TaskState, reason: str) -> dict[str, Any]:
    """Close an attempt that nobody finished (its worker died) as ``state``, keeping its history
    (``pruned`` when its pruner had decided to stop it: it was stopped as asked)."""
    if pruned_decision(task_dir) is not None:
        state = TaskState.PRUNED
    new = closed_attempt(status, state, reason)
    write_status(task_dir, new)
    return new


def settle_previous(
    task_dir: Path,
    store: ClaimStore,
    session: Session,
    signals: Signals,
    log: Callable[[str], None],
    poll: float = 0.2,
) -> dict[str, Any] | None:
    """Bring the status of a task we just claimed up to date before deciding to run it.

    After taking over the claim of a dead worker, its task may still run on this machine (a
    worker killed with SIGKILL leaves its task running, possibly before it even recorded the pid):
    wait for every process working in the task dir while holding the claim, so that a second copy
    never starts next to a live one. Then the exit code the last attempt left decides (completed
    stays completed); a ``running`` attempt without one is closed as ``lost``.
    """
    status = read_status(task_dir)
    running = bool(status and status.get("state") == TaskState.RUNNING.value)
    if session.claim.taken_over or running:
        # The earlier attempt's own processes (its wrapper's group and session), never "any process
        # with this task dir in its environment": a daemon child (wandb service, a data loader)
        # may outlive the attempt by far. A recorded exit code ends the wait: the attempt is over.
        ident = recorded_process(task_dir, status) if running else started_process(task_dir)
        if running and status and status.get("host") != socket.gethostname():
            ident = None  # another machine's process: its pid means nothing here
        parsed = processes.parse_identity(ident)
        if parsed and left_exit_code(task_dir) is None and _attempt_alive(ident, parsed[0], task_dir):
            log(f"{task_dir.name}: an earlier attempt still runs as pid {parsed[0]}; waiting for it")
            while left_exit_code(task_dir) is None and _attempt_alive(ident, parsed[0], task_dir):
                if session.lost or signals.stop_signal is not None:
                    return status
                time.sleep(poll)
        status = read_status(task_dir)
        running = bool(status and status.get("state") == TaskState.RUNNING.value)
    left = left_exit_code(task_dir)
    if running and session.claim.taken_over and left is not None and not 0 <= left[0] <= 128:
        # Killed by a signal while its worker had lost the claim: that worker stopped its copy (or
        # the worker's whole machine went down). Nothing says the task failed: resume it.
        code, end = left
        status = finalize_status(task_dir, status, code, end_time=end, state=TaskState.LOST,
                                 extra={"error": "stopped by a signal after its worker lost the claim"})
        log(f"{task_dir.name}: attempt {status.get('attempt')} was stopped ({code}); recorded as lost")
    elif running:
        status = reconcile_status(task_dir, status)
        if status and status.get("state") == TaskState.RUNNING.value:
            status = mark_attempt(task_dir, status, TaskState.LOST, "worker lost (killed or its node went down)")
            log(f"{task_dir.name}: attempt {status.get('attempt')} recorded as lost")
    elif left is not None:
        # An attempt ran to its end but its worker died before even recording that it started:
        # the exit code it left is the only record. Write it down instead of running it again.
        code, end = left
        base = dict(status or {})
        attempt = int(base.get("attempt") or 0) + 1
        base.update(state=TaskState.RUNNING.value, attempt=attempt, start_time=None, start_epoch=None,
                    note="attempt not recorded by its worker (killed while starting it)")
        status = finalize_status(task_dir, base, code, end_time=end)
        log(f"{task_dir.name}: unrecorded attempt {attempt} found finished with exit code {code}")
    return status


def _attempt_alive(ident: str | None, leader: int, task_dir: Path) -> bool:
    """True while the wrapper ``ident`` or a process of the task in its group runs (unknown
    counts as alive; a stranger that reused the pid does not)."""
    return processes.is_running(ident) is not False or bool(processes.task_members(leader, task_dir))


@dataclass
class Outcome:
    """How one run of a task ended."""

    state: str  #: final state written, or "lost" when the claim was taken over mid-run
    status: dict[str, Any]
    claim_lost: bool = False
    signal: int | None = None


def run_task(
    task_dir: Path,
    session: Session,
    signals: Signals,
    *,
    source: str,
    extra_env: Mapping[str, str],
    status_extra: Mapping[str, Any],
    grace: float = 60.0,
) -> Outcome:
    """Run the claimed task once, to its end, under the core runner."""
    task = start_task(task_dir, source=source, runner="worker", extra_env=extra_env, status_extra=status_extra)
    session.task = task
    signals.attach(task)
    try:
        if session.lost:  # taken over while we were starting it
            processes.kill_now(task.process.pid)
        rc = _wait(task, signals, grace)
    finally:
        signals.attach(None)
        session.task = None
    if session.lost or not session.store.owns(session.claim):
        # Another worker took the task over: its status is theirs now. Leave the dir alone.
        session.claim.lost = True
        task.close_files()
        return Outcome("lost", dict(task.status), claim_lost=True)
    name = task.status.get("signal_received")
    sig = int(signal.Signals[name]) if name else None
    if sig is not None:
        # The signal also reached the runner's /bin/sh wrapper, which dies at once: the command
        # itself may still be writing its checkpoint. Let it finish before the claim is released,
        # or the next worker would resume from a half-written checkpoint next to a live process.
        _wait_for_leftovers(task, task_dir, session, grace)
    if sig is not None and rc != 0:
        # Stopped by the scheduler (or the user): the attempt is resumable, not a failure.
        task.stop_reason = TaskState.INTERRUPTED if sig == signal.SIGINT else TaskState.PREEMPTED
    status = finish_task(task, rc)
    return Outcome(str(status.get("state")), status, signal=sig)


def _wait(task: StartedTask, signals: Signals, grace: float) -> int:
    """Wait for the task's wrapper to end (it records its command's exit code). Once a stop signal
    was forwarded, the command gets ``grace`` seconds: then it and its children are SIGKILLed
    (the wrapper spared, so that it still records how its command ended)."""
    killed_at: float | None = None
    stop_by: float | None = None
    while True:
        try:
            return task.process.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            pass
        if not signals.forwarded or killed_at is not None:
            continue
        if stop_by is None:
            stop_by = time.monotonic() + grace
        elif time.monotonic() > stop_by:
            processes.signal_group(task.process.pid, signal.SIGKILL, spare=task.process.pid)
            killed_at = time.monotonic()


def _wait_for_leftovers(task: StartedTask, task_dir: Path, session: Session, grace: float) -> None:
    """Wait up to ``grace`` seconds for what the task started to exit, then SIGKILL it all."""
    leader = task.process.pid
    deadline = time.monotonic() + grace
    while processes.task_members(leader, task_dir):
        if session.lost:
            return
        if time.monotonic() > deadline:
            signal_task(task, signal.SIGKILL)
            return
        time.sleep(0.05)
