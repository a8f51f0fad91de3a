"""A minimal compute source: one ``hsm-task`` runner process per task, on this machine.

This is the shape of every source: ``launch`` starts tasks somewhere, the task runner writes
``status.yaml`` where the task runs, ``poll`` reports what finished, ``cancel`` and ``interrupt``
stop tasks, ``attach`` follows tasks another controller started. A scheduler plugin would submit
a job script instead of starting a process; an SSH plugin would start the runner on another machine
and copy the task dir back before reporting it final.

What makes a task run exactly once, even when the controller is killed at any moment:

* ``launch`` writes ``submitted`` to ``status.yaml`` *before* the task can start, starts the runner
  held on a pipe, records the runner's identity (pid and start time) in the task dir, and only then
  lets it go. A controller killed before that last step closes the pipe, and a held runner that
  reads the end of its pipe exits without running anything: every task that runs was recorded
  first, so a later ``hsm complete`` finds it (``attach``) instead of running it a second time.
* The runner is in a session of its own: it outlives the controller, runs the task and writes
  its final status, watched or not (``detach`` is True).
* A task is over when its runner and every process of its command are gone (training scripts
  start helpers); stopping one is SIGTERM to the runner (which passes it on to the command),
  ``kill_grace`` seconds, then SIGKILL for all that is left, and the final state on disk.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import psutil
import yaml

from hsm_core.plugin import (
    ComputeSource,
    HealthReport,
    SourceContext,
    SourceUnavailable,
    TaskSpec,
    TaskState,
    TaskUpdate,
)

#: Where the runner's identity is kept: the runner rewrites status.yaml with its own keys only.
RUNNER_FILE = ".example_runner"

# Waits for one byte on stdin, then becomes the task runner. End of file (the controller died
# before recording this process) means: run nothing.
_HELD_RUNNER = (
    "import os, sys\n"
    "if sys.stdin.buffer.read(1) != b'1':\n"
    "    sys.exit(75)\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'hsm_core.runner', *sys.argv[1:]])\n"
)


# -- the task's files ---------------------------------------------------------------------------
def read_status(task_dir: Path) -> dict[str, Any]:
    """The task's ``status.yaml`` (empty when missing or unreadable)."""
    try:
        data = yaml.safe_load((task_dir / "status.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def write_status(task_dir: Path, status: Mapping[str, Any]) -> None:
    """Write ``status.yaml`` atomically: a reader sees the old file or the new one, never half."""
    tmp = task_dir / f".status.yaml.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        yaml.safe_dump(dict(status), fh, sort_keys=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, task_dir / "status.yaml")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


# -- processes ------------------------------------------------------------------------------------
def identity(pid: int) -> str | None:
    """``"PID:START"``: names one process for good (a pid alone may be reused by another)."""
    try:
        return f"{pid}:{psutil.Process(pid).create_time():.3f}"
    except psutil.Error:
        return None


def alive(ident: str | None) -> bool:
    """True while the process ``ident`` names runs (a zombie has ended)."""
    try:
        pid, start = str(ident).split(":")
        proc = psutil.Process(int(pid))
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return abs(proc.create_time() - float(start)) < 0.05
    except (ValueError, psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.Error:
        return True  # cannot look (permission): never assume it ended


def group_members(leader: int) -> list[int]:
    """Live processes of the task whose wrapper is ``leader``: its process group (the runner
    starts the command in a session of its own, led by the wrapper)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == leader and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except (OSError, psutil.Error):
            continue
    return found


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class _Task:
    spec: TaskSpec
    runner: str | None  #: identity of the runner process
    proc: subprocess.Popen | None = None  #: when this controller started it

    def leader(self) -> int | None:
        """The pid leading the command's process group (the runner's wrapper), once recorded."""
        status = read_status(self.spec.task_dir)
        # "process" while it runs; the runner keeps it as "last_process" in the final status.
        head = str(status.get("process") or status.get("last_process") or "").split(":")[0]
        return int(head) if head.isdigit() else None

    def runner_alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return alive(self.runner)

    def anything_alive(self) -> bool:
        leader = self.leader()
        return self.runner_alive() or bool(leader and group_members(leader))


class ExampleSource(ComputeSource):
    """Each task is ``python -m hsm_core.runner TASK_DIR`` in a session of its own."""

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
            previous = read_status(spec.task_dir)
            try:
                (spec.task_dir / RUNNER_FILE).unlink()
            except FileNotFoundError:
                pass
            # Recorded before the task can start; the runner counts the attempt on from here.
            status = {k: previous[k] for k in ("attempt", "attempts") if k in previous}
            status.update(task_id=spec.task_id, index=spec.index, state=TaskState.SUBMITTED.value,
                          source=self.name, submit_time=_now())
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
            runner = identity(proc.pid) or f"{proc.pid}:0"
            tmp = spec.task_dir / (RUNNER_FILE + ".tmp")
            tmp.write_text(runner)
            os.replace(tmp, spec.task_dir / RUNNER_FILE)
            assert proc.stdin is not None
            proc.stdin.write(b"1")  # recorded: let it run
            proc.stdin.close()
            self._tasks[spec.task_id] = _Task(spec, runner, proc)
            started.append(spec.task_id)

    def attach(self, tasks: Sequence[TaskSpec]) -> None:
        """Follow tasks another controller launched, from the runner identity in their task dir."""
        for spec in tasks:
            try:
                runner: str | None = (spec.task_dir / RUNNER_FILE).read_text().strip()
            except OSError:
                runner = None  # its controller died before starting it: nothing runs
            self._tasks[spec.task_id] = _Task(spec, runner)

    # -- poll -----------------------------------------------------------------------------------
    def poll(self) -> list[TaskUpdate]:
        updates, self._stopped = self._stopped, []
        for task_id, task in list(self._tasks.items()):
            if task.runner_alive():
                continue  # the runner records the end, then exits
            status = read_status(task.spec.task_dir)
            leader = task.leader()
            if not TaskState(status.get("state") or "lost").finished and leader and group_members(leader):
                continue  # the runner was killed but the command runs on: not over yet
            del self._tasks[task_id]
            updates.append(self._ended(task))
        return updates

    def _ended(self, task: _Task) -> TaskUpdate:
        """The update of a task whose processes are all gone (recording the end if nobody did)."""
        status = read_status(task.spec.task_dir)
        state = TaskState(status.get("state") or TaskState.LOST.value)
        if state.finished:
            return TaskUpdate(task.spec.task_id, state)
        # Its runner ended without recording the end: it never started the task (submitted), or
        # was killed from outside. Either way the task may run again.
        why = "never started" if state == TaskState.SUBMITTED else "its runner was killed"
        write_status(task.spec.task_dir, {**status, "state": TaskState.LOST.value, "end_time": _now(), "error": why})
        return TaskUpdate(task.spec.task_id, TaskState.LOST, infrastructure_failure=True, message=why)

    # -- stopping -------------------------------------------------------------------------------
    def cancel(self, task_ids: Iterable[str], reason: TaskState = TaskState.CANCELLED) -> None:
        """Stop these tasks (all at once: one grace period in all) and record them ``reason``."""
        targets = [self._tasks.pop(t) for t in list(task_ids) if t in self._tasks]
        if not targets:
            return
        for task in targets:
            self._wait_recorded(task)
            if task.runner_alive() and task.runner:
                _signal(int(task.runner.split(":")[0]), signal.SIGTERM)  # the runner passes it on
        deadline = time.monotonic() + self._grace
        while any(t.anything_alive() for t in targets) and time.monotonic() < deadline:
            time.sleep(0.05)
        for task in targets:
            leader = task.leader()
            for pid in group_members(leader) if leader else []:
                _signal(pid, signal.SIGKILL)
            if task.runner_alive() and task.runner:
                _signal(int(task.runner.split(":")[0]), signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while any(t.anything_alive() for t in targets) and time.monotonic() < deadline:
            time.sleep(0.05)
        for task in targets:
            status = read_status(task.spec.task_dir)
            if status.get("state") != TaskState.COMPLETED.value:  # finished in the grace: it did its work
                status.update(state=reason.value, end_time=status.get("end_time") or _now())
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
