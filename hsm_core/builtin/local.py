"""Built-in plugin: the ``local`` compute source (processes on this machine).

Tasks run in-process through :mod:`hsm_core.runner` (no extra interpreter per task); one small
thread per running task waits for its exit, writes the final status and wakes the engine, so the
controller never busy-polls. ``gpus: [0, 1]`` (or ``gpus_per_task``) hands each running task its
own ``CUDA_VISIBLE_DEVICES`` slot.
"""

from __future__ import annotations

import errno
import os
import queue
import socket
import sys
import threading
import time
from typing import Any, Iterable, Mapping, Sequence

from hsm_core import runner
from hsm_core.start_lock import StartLockBusy
from hsm_core.state import now_iso, read_status, reconcile_status, stop_orphaned_command, with_history, write_status
from hsm_core.taskdir import carry_kept
from hsm_core.plugin import (
    ComputeSource,
    ComputeSourceRecord,
    ConfigError,
    HealthReport,
    NotInCharge,
    SourceContext,
    SourceUnavailable,
    TaskSpec,
    TaskState,
    TaskUpdate,
    hookimpl,
)

LOCAL_SCHEMA = {
    "type": "object",
    "properties": {
        "max_parallel_jobs": {"type": "integer", "minimum": 1, "description": "parallel tasks (default: CPUs)"},
        "gpus": {"type": "array", "items": {"type": ["integer", "string"]}, "description": "GPU ids to share out"},
        "gpus_per_task": {"type": "integer", "minimum": 1, "description": "GPUs per task (default 1 when gpus set)"},
        "kill_grace": {"type": "number", "minimum": 0, "description": "seconds between SIGTERM and SIGKILL"},
    },
    "additionalProperties": False,
}


def _echo(name: str, line: bytes) -> None:
    sys.stdout.write(f"[{name}] {line.decode('utf-8', 'replace')}")
    if not line.endswith(b"\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()


def _cannot_exec(exc: BaseException) -> bool:
    """True for a launch error caused by the task's command itself, not by this machine: E2BIG
    (arguments plus environment too long) or a ValueError ("embedded null byte")."""
    return isinstance(exc, ValueError) or getattr(exc, "errno", None) == errno.E2BIG


def _waiting_note(spec: TaskSpec) -> None:
    print(f"hsm: {spec.name}: waiting for another controller that is starting it (stopped, e.g. by Ctrl-Z? "
          "continue it with fg, or end it)", file=sys.stderr, flush=True)


def _record_not_started(spec: TaskSpec, source: str, exc: BaseException) -> TaskUpdate:
    """Write a ``failed`` status for a task whose command could not be started, and its update."""
    previous = read_status(spec.task_dir) or {}
    now = now_iso()
    status = {"task_id": spec.task_id, "index": spec.index, "state": TaskState.FAILED.value, "source": source,
              "runner": "local", "host": socket.gethostname(), "attempt": int(previous.get("attempt") or 0) + 1,
              "start_time": now, "end_time": now, "exit_code": None,
              "error": f"the command could not be started: {exc}"}
    status = with_history(carry_kept(previous, {**status, "attempts": previous.get("attempts") or []}))
    try:
        write_status(spec.task_dir, status)
    except OSError:
        pass  # the engine records the failure in the index all the same
    return TaskUpdate(spec.task_id, TaskState.FAILED, message=status["error"])


class LocalSource(ComputeSource):
    """Runs tasks as child processes of the controller."""

    poll_interval = 2.0  # finished tasks wake the engine at once; this is only a safety net

    def __init__(self, name: str, options: Mapping[str, Any], context: SourceContext) -> None:
        super().__init__(name, options, context)
        gpus = [str(g) for g in options.get("gpus") or []]
        per_task = int(options.get("gpus_per_task") or (1 if gpus else 0))
        if gpus and per_task > len(gpus):
            raise ConfigError(f"gpus_per_task={per_task} but only {len(gpus)} GPUs listed", key=f"{name}.gpus_per_task")
        self._gpu_slots: list[str] = (
            [",".join(gpus[i : i + per_task]) for i in range(0, len(gpus) - per_task + 1, per_task)] if gpus else []
        )
        default = len(self._gpu_slots) if self._gpu_slots else (os.cpu_count() or 1)
        requested = options.get("max_parallel_jobs")
        self._capacity = int(requested) if requested else default
        if self._gpu_slots:
            self._capacity = min(self._capacity, len(self._gpu_slots))
        self._grace = float(options.get("kill_grace", 10.0))
        from hsm_core.ended_task_processes import Sweeper

        #: What a task that ended on its own left running is stopped (hsm_core/ended_task_processes.py).
        self._ended = Sweeper(self._grace)
        self._running: dict[str, runner.StartedTask] = {}
        self._slot_of: dict[str, str] = {}
        self._free_slots = list(self._gpu_slots)
        self._attached: dict[str, TaskSpec] = {}
        #: Adopted tasks being stopped, and why (their watcher records the end).
        self._stopping: dict[str, TaskState] = {}
        #: Tasks whose start waits for another start to let go of their lock (see _launch_one).
        self._deferred: dict[str, TaskSpec] = {}
        #: Set by interrupt(): deferred starts give up, nothing more starts.
        self._closing = False
        self._updates: "queue.SimpleQueue[TaskUpdate]" = queue.SimpleQueue()
        self._lock = threading.Lock()

    def capacity(self) -> int:
        return self._capacity

    def launch(self, tasks: Sequence[TaskSpec]) -> None:
        started_ids: list[str] = []
        for spec in tasks:
            self._launch_one(spec, started_ids)

    def _launch_one(self, spec: TaskSpec, started_ids: list[str], *, deferred: bool = False) -> None:
        """Start one task and note it in ``started_ids``. A task whose start lock another start
        holds (a controller stopped inside its start, see hsm_core.start_lock) is started by a
        thread of its own once the lock is free: one stopped start must not hold up the batch,
        the engine, or Ctrl-C."""
        env: dict[str, str] = {}
        with self._lock:
            if self._gpu_slots:
                slot = self._free_slots.pop(0)
                self._slot_of[spec.task_id] = slot
                env["CUDA_VISIBLE_DEVICES"] = slot
        try:
            started = runner.start_task(
                spec.task_dir,
                source=self.name,
                runner="local",
                extra_env=env,
                echo=_echo if self.context.show_output else None,
                may_start=self.context.may_launch,
                wait=deferred,
                on_wait=lambda: _waiting_note(spec),
                abort=lambda: self._closing or spec.task_id in self._stopping,
            )
        except StartLockBusy:
            self._release(spec.task_id)
            if deferred:
                # Ctrl-C or a cancel while it waited: nothing was started or written.
                with self._lock:
                    self._deferred.pop(spec.task_id, None)
                    reason = self._stopping.pop(spec.task_id, TaskState.INTERRUPTED)
                self._report(TaskUpdate(spec.task_id, reason, message="not started: another controller was starting it"))
                return
            with self._lock:
                self._deferred[spec.task_id] = spec
            started_ids.append(spec.task_id)
            threading.Thread(target=self._launch_one, args=(spec, []), kwargs={"deferred": True}, daemon=True).start()
            return
        except NotInCharge as exc:
            # Replaced while stopped inside this launch: nothing more starts here.
            self._release(spec.task_id)
            message = f"not started here: {spec.name}; another controller holds the sweep now"
            if deferred:
                with self._lock:
                    self._deferred.pop(spec.task_id, None)
                self._report(TaskUpdate(spec.task_id, TaskState.INTERRUPTED, message=message))
                return
            raise NotInCharge(message, started=started_ids) from exc
        except runner.StartedElsewhere:
            # The controller this one replaced had started it (its record predates our lease):
            # watch that copy, as one adopted from a controller that died.
            self._release(spec.task_id)
            with self._lock:
                self._deferred.pop(spec.task_id, None)
                stop = spec.task_id in self._stopping  # a cancel came while it waited
            self.attach([spec])
            started_ids.append(spec.task_id)
            if stop:
                runner.stop_recorded(spec.task_dir, self._grace)
            return
        except (OSError, ValueError) as exc:
            self._release(spec.task_id)
            with self._lock:
                self._deferred.pop(spec.task_id, None)
            if _cannot_exec(exc) or deferred:
                # This task's own command can never start (too long for exec, a NUL in it): the
                # task fails, the source stays healthy (retrying it anywhere fails the same way,
                # and counting it against the source would disable and re-enable it forever).
                # (A deferred start has no launch to fail: its failure is the task's.)
                self._report(_record_not_started(spec, self.name, exc))
                started_ids.append(spec.task_id)
                return
            # The ones started before this one run on: only the rest are to be started again.
            raise SourceUnavailable(f"cannot start a process: {exc}", started=started_ids) from exc
        with self._lock:
            self._deferred.pop(spec.task_id, None)
            self._running[spec.task_id] = started
            late = self._closing or spec.task_id in self._stopping
        started_ids.append(spec.task_id)
        threading.Thread(target=self._wait, args=(spec.task_id, started), daemon=True).start()
        if late:
            # A deferred start that got its lock as Ctrl-C or a cancel came: stop it as they do.
            with self._lock:
                reason = self._stopping.pop(spec.task_id, TaskState.INTERRUPTED)
            runner.terminate(started, self._grace, reason)

    def _report(self, update: TaskUpdate) -> None:
        self._updates.put(update)
        self.context.wake()

    def _release(self, task_id: str) -> None:
        with self._lock:
            slot = self._slot_of.pop(task_id, None)
            if slot is not None:
                self._free_slots.append(slot)

    def _wait(self, task_id: str, started: runner.StartedTask) -> None:
        rc = started.process.wait()
        if started.stop_reason is None:
            self._ended.ended(started.task_dir)  # (a stop took its daemons already)
        try:
            update = TaskUpdate(task_id, TaskState(runner.finish_task(started, rc)["state"]))
        except OSError as exc:
            # The status could not be written (disk full, directory removed): the engine must still
            # hear about the end, or it would wait for this task forever.
            state = TaskState.COMPLETED if rc == 0 else TaskState.FAILED
            update = TaskUpdate(task_id, state, message=f"could not record the result: {exc}")
        finally:
            with self._lock:
                self._running.pop(task_id, None)
            self._release(task_id)
        self._updates.put(update)
        self.context.wake()

    def attach(self, tasks: Sequence[TaskSpec]) -> None:
        """Watch tasks a previous controller started on this machine, through their files: also
        one it died while starting (``process: starting``), which reaches a verdict from its
        wrapper's pid file (adopted if it runs, ``interrupted`` if it never started)."""
        for spec in tasks:
            with self._lock:
                self._attached[spec.task_id] = spec
            threading.Thread(target=self._watch_attached, args=(spec,), daemon=True).start()

    def _watch_attached(self, spec: TaskSpec) -> None:
        while True:
            with self._lock:
                reason = self._stopping.get(spec.task_id)
            if reason is not None:
                status = runner.settle_stopped(spec.task_dir, reason) or {}
            else:
                stop_orphaned_command(spec.task_dir, read_status(spec.task_dir))
                with self._lock:
                    # cancel() notes a stop under this lock before it sends a signal: an end read
                    # here under the lock was not caused by a stop (else it would read failed, not
                    # cancelled).
                    if spec.task_id in self._stopping:
                        continue
                    status = reconcile_status(spec.task_dir, read_status(spec.task_dir)) or {}
            state = TaskState(status.get("state", "lost"))
            if state.finished:
                with self._lock:
                    self._attached.pop(spec.task_id, None)
                    self._stopping.pop(spec.task_id, None)
                self._updates.put(TaskUpdate(spec.task_id, state))
                self.context.wake()
                return
            time.sleep(0.1 if reason is not None else 0.5)

    def wants_poll(self) -> bool:
        return not self._updates.empty()

    def poll(self) -> list[TaskUpdate]:
        out = []
        while True:
            try:
                out.append(self._updates.get_nowait())
            except queue.Empty:
                return out

    def cancel(self, task_ids: Iterable[str], reason: TaskState = TaskState.CANCELLED) -> None:
        """Stop tasks: SIGTERM to all their processes, up to ``kill_grace`` for all of them to end,
        then SIGKILL; each keeps its command's own exit code (0 in the grace: completed)."""
        task_ids = list(task_ids)
        with self._lock:
            targets = [self._running[t] for t in task_ids if t in self._running]
            adopted = [self._attached[t] for t in task_ids if t in self._attached]
            for spec in adopted:
                self._stopping[spec.task_id] = reason
            for t in task_ids:
                if t in self._deferred:
                    self._stopping[t] = reason  # its waiting start gives up and reports this
        threads = [threading.Thread(target=runner.terminate, args=(t, self._grace, reason)) for t in targets]
        threads += [threading.Thread(target=runner.stop_recorded, args=(spec.task_dir, self._grace)) for spec in adopted]
        for th in threads:
            th.start()
        for th in threads:
            th.join()

    def interrupt(self) -> None:
        """Ctrl-C: stop every task this source runs or adopted (SIGTERM, SIGKILL after the grace
        period); what did not finish in the grace reads ``interrupted``."""
        with self._lock:
            self._closing = True
            ids = list(self._running) + list(self._attached) + list(self._deferred)
        self.cancel(ids, reason=TaskState.INTERRUPTED)
        # Let the waiter and watcher threads write the final statuses before the process exits.
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            with self._lock:
                if not self._running and not self._attached and not self._deferred:
                    break
            time.sleep(0.05)

    def close(self) -> None:
        """Stop what the tasks that ended last left running before the controller exits."""
        self._ended.close()

    def health(self) -> HealthReport:
        return HealthReport(True, f"{len(self._running)}/{self._capacity} running")

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._running) + len(self._attached) + len(self._deferred)


@hookimpl
def hsm_register_compute_sources() -> list[ComputeSourceRecord]:
    return [
        ComputeSourceRecord(
            "local",
            "Processes on this machine",
            LocalSource,
            config_schema=LOCAL_SCHEMA,
            detect=lambda: True,
        )
    ]
