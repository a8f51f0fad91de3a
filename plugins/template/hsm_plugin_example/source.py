"""A minimal compute source: one ``hsm-task`` runner process per task, on this machine.

This is the shape of every source: ``launch`` starts tasks somewhere, the task runner writes
``status.yaml`` where the task runs, ``poll`` reports what finished, ``cancel`` and ``interrupt``
stop tasks, ``attach`` follows tasks another controller started. A scheduler plugin would submit
a job script instead of starting a process; an SSH plugin would start the runner on another machine
and copy the task dir back before reporting it final.

What makes a task run exactly once, even when the controller is killed at any moment:

* ``launch`` writes ``submitted`` to ``status.yaml`` *before* the task can start, starts the runner
  held on a pipe, records the runner's identity (pid and start time) in ``status.yaml`` under
  ``source_data`` (the one place a source keeps its own keys: every rewrite keeps it), and only
  then lets it go. A controller killed before that last step closes the pipe, and a held runner that
  reads the end of its pipe exits without running anything: every task that runs was recorded
  first, so a later ``hsm complete`` finds it (``attach``) instead of running it a second time.
* The runner is in a session of its own: it outlives the controller, runs the task and writes
  its final status, watched or not (``detach`` is True).
* A task is over when its runner has ended (it records the end first); stopping one is SIGTERM
  to the runner (which passes it on to the command), ``kill_grace`` seconds, then SIGKILL for all
  that is left of the task (training scripts start helpers), and the final state on disk.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from hsm_core.plugin import (
    RUNNER_MODULE,
    SOURCE_DATA,
    ComputeSource,
    HealthReport,
    SourceContext,
    SourceUnavailable,
    TaskSpec,
    TaskState,
    TaskUpdate,
    now_iso,
    processes,
    read_status,
    source_data,
    with_source_data,
    write_status,
)

# Waits for one byte on stdin, then becomes the task runner. End of file (the controller died
# before recording this process) means: run nothing.
_HELD_RUNNER = (
    "import os, sys\n"
    "if sys.stdin.buffer.read(1) != b'1':\n"
    "    sys.exit(75)\n"
    f"os.execv(sys.executable, [sys.executable, '-m', {RUNNER_MODULE!r}, *sys.argv[1:]])\n"
)


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class _Task:
    spec: TaskSpec
    runner: str | None  #: identity of the runner process ("PID:START")
    proc: subprocess.Popen | None = None  #: when this controller started it

    def status(self) -> dict[str, Any]:
        return read_status(self.spec.task_dir) or {}

    def leader(self) -> int | None:
        """The pid leading the command's process group (the runner's wrapper), once recorded."""
        status = self.status()
        # "process" while it runs; the runner keeps it as "last_process" in the final status.
        parsed = processes.parse_identity(status.get("process") or status.get("last_process"))
        return parsed[0] if parsed else None

    def leftovers(self, *, unknown: bool = True) -> list[int]:
        """Live processes of the task's command (confirmed by their environment)."""
        leader = self.leader()
        return processes.task_members(leader, self.spec.task_dir, unknown=unknown) if leader else []

    def runner_pid(self) -> int | None:
        parsed = processes.parse_identity(self.runner)
        return parsed[0] if parsed else None

    def runner_alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return processes.is_running(self.runner) is not False  # unknown counts as running

    def anything_alive(self) -> bool:
        return self.runner_alive() or bool(self.leftovers())


class ExampleSource(ComputeSource):
    """Each task is ``python -m hsm_core.runner TASK_DIR`` (:data:`RUNNER_MODULE`) in a session of its own."""

    poll_interval = 0.2

    def __init__(self, name: str, options: Mapping[str, Any], context: SourceContext) -> None:
        super().__init__(name, options, context)
        self._capacity = int(options.get("max_parallel_jobs") or 2)
        self._grace = float(options.get("kill_grace", 10.0))
        self._tasks: dict[str, _Task] = {}
        self._stopped: list[TaskUpdate] = []

    def capacity(self) -> int:
        return self._capacity

    def detach(self) -> bool:
        return True  # runners live in sessions of their own and record the end themselves

    # -- launch -------------------------------------------------------------------------------
    def launch(self, tasks: Sequence[TaskSpec]) -> None:
        started: list[str] = []
        for spec in tasks:
            previous = read_status(spec.task_dir) or {}
            # Recorded before the task can start; the runner counts the attempt on from here. What
            # sources keep (source_data) is carried over; an earlier attempt's runner is forgotten.
            status = {k: previous[k] for k in ("attempt", "attempts", SOURCE_DATA) if k in previous}
            status.update(task_id=spec.task_id, index=spec.index, state=TaskState.SUBMITTED.value,
                          source=self.name, submit_time=now_iso())
            status = with_source_data(status, self.name, {"runner": None})
            write_status(spec.task_dir, status)
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-c", _HELD_RUNNER, "--source", self.name, str(spec.task_dir)],
                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except OSError as exc:
                write_status(spec.task_dir, previous or {**status, "state": TaskState.PENDING.value})
                raise SourceUnavailable(f"cannot start hsm-task: {exc}", started=started) from exc
            runner = processes.identity(proc.pid) or f"{proc.pid}:?"
            try:
                # The runner waits on its pipe, so nothing else writes the status meanwhile.
                write_status(spec.task_dir, with_source_data(status, self.name, {"runner": runner}))
            except OSError as exc:
                proc.kill()  # not recorded: it must not run (its pipe closes, it runs nothing)
                proc.wait()
                raise SourceUnavailable(f"cannot record the runner of {spec.name}: {exc}", started=started) from exc
            assert proc.stdin is not None
            proc.stdin.write(b"1")  # recorded: let it run
            proc.stdin.close()
            self._tasks[spec.task_id] = _Task(spec, runner, proc)
            started.append(spec.task_id)

    def attach(self, tasks: Sequence[TaskSpec]) -> None:
        """Follow tasks another controller launched, from the runner identity it kept in their status."""
        for spec in tasks:
            # None: its controller died before recording a runner, so nothing runs.
            runner = source_data(read_status(spec.task_dir), self.name).get("runner")
            self._tasks[spec.task_id] = _Task(spec, runner)

    # -- poll -----------------------------------------------------------------------------------
    def poll(self) -> list[TaskUpdate]:
        updates, self._stopped = self._stopped, []
        for task_id, task in list(self._tasks.items()):
            if task.runner_alive():
                continue  # the runner records the end, then exits
            state = TaskState(task.status().get("state") or TaskState.LOST.value)
            if not state.finished and task.leftovers():
                continue  # the runner was killed but the command runs on: not over yet
            del self._tasks[task_id]
            updates.append(self._ended(task))
        return updates

    def _ended(self, task: _Task) -> TaskUpdate:
        """The update of a task whose runner is gone (recording the end if nobody did)."""
        status = task.status()
        state = TaskState(status.get("state") or TaskState.LOST.value)
        if state.finished:
            return TaskUpdate(task.spec.task_id, state)
        # Its runner ended without recording the end: it never started the task (submitted), or
        # was killed from outside. Either way the task may run again.
        why = "never started" if state == TaskState.SUBMITTED else "its runner was killed"
        write_status(task.spec.task_dir, {**status, "state": TaskState.LOST.value, "end_time": now_iso(), "error": why})
        return TaskUpdate(task.spec.task_id, TaskState.LOST, infrastructure_failure=True, message=why)

    # -- stopping -------------------------------------------------------------------------------
    def cancel(self, task_ids: Iterable[str], reason: TaskState = TaskState.CANCELLED) -> None:
        """Stop these tasks (all at once: one grace period in all) and record them ``reason``."""
        targets = [self._tasks.pop(t) for t in list(task_ids) if t in self._tasks]
        if not targets:
            return
        for task in targets:
            self._wait_recorded(task)
            pid = task.runner_pid()
            if pid and task.runner_alive():
                _kill(pid, signal.SIGTERM)  # the runner passes it on to the command
        deadline = time.monotonic() + self._grace
        while any(t.anything_alive() for t in targets) and time.monotonic() < deadline:
            time.sleep(0.05)
        for task in targets:
            for pid in task.leftovers(unknown=False):  # helpers that ignore SIGTERM
                _kill(pid, signal.SIGKILL)
            pid = task.runner_pid()
            if pid and task.runner_alive():
                _kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while any(t.anything_alive() for t in targets) and time.monotonic() < deadline:
            time.sleep(0.05)
        for task in targets:
            status = task.status()
            if status.get("state") != TaskState.COMPLETED.value:  # finished in the grace: it did its work
                status.update(state=reason.value, end_time=status.get("end_time") or now_iso())
                write_status(task.spec.task_dir, status)
            self._stopped.append(TaskUpdate(task.spec.task_id, TaskState(status["state"])))

    def _wait_recorded(self, task: _Task) -> None:
        """A runner signalled before it recorded the command's process would die without
        stopping it: give a starting runner a moment to write ``running`` with the process."""
        deadline = time.monotonic() + 5.0
        while task.runner_alive() and task.leader() is None and time.monotonic() < deadline:
            time.sleep(0.02)

    def interrupt(self) -> None:
        """Ctrl-C: stop every task this source follows; each reads ``interrupted`` on disk."""
        self.cancel(list(self._tasks), reason=TaskState.INTERRUPTED)

    def health(self) -> HealthReport:
        return HealthReport(True, f"{len(self._tasks)}/{self._capacity} running")
