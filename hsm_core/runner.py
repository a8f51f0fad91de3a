"""The task runner: what actually runs a task, wherever it runs.

``hsm-task TASK_DIR`` (or ``python -m hsm_core.runner``) runs the command in ``command.json`` with
the task's environment, sends stdout/stderr to the task dir, and writes ``status.yaml`` (state,
times, exit code, host, attempts). Array jobs call ``hsm-task --list FILE`` and the runner picks its
line from ``--index`` or ``HSM_ARRAY_INDEX``, which the scheduler plugin's job script sets (with the
other ``HSM_JOB_*`` variables of :mod:`hsm_core.jobenv`, recorded in ``status.yaml``). SIGTERM, SIGINT and
SIGUSR1/2 are forwarded to the task (SIGUSR1, the warning before the walltime, only when a process
of the task handles it); a task stopped by such a signal is recorded as preempted.

The local source uses :func:`start_task` / :func:`finish_task` in-process (no extra Python start-up
per task). Either way the command runs under a tiny ``/bin/sh`` wrapper that writes its pid to
``.hsm_pid`` before starting the command (and does not start it if it cannot) and leaves the exit
code in ``.exit_code`` when the command ends, so a task finishing after its controller died is still
recorded exactly (see :func:`hsm_core.state.reconcile_status`).

Array job scripts first try the shell fast path (:mod:`hsm_core.fastrun`), generated from this
module's definitions, which records the same without starting Python; this runner runs the
elements it leaves (requeues, packed elements, unusual commands).

This module is imported on execution hosts, once per array job element: it must stay light
(stdlib + PyYAML only; tests/test_batch.py checks that the plugin API, pluggy, click and rich
stay out).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Mapping, Sequence

from hsm_core.state import (
    STARTING,
    finalize_status,
    now_iso,
    process_identity,
    still_starting,
)
from hsm_core import jobenv
from hsm_core.errors import NotInCharge
from hsm_core.start_lock import start_lock, start_lock_held
from hsm_core.taskdir import (
    PID_FILE,
    WRAPPER_NAME,
    carry_kept,
    clear_markers,
    left_exit_code,
    open_output,
    pid_recorded,
    read_command,
    read_status,
    remove_status,
    results_dir,
    started_process,
    with_kept_on_disk,
    wrapper_script,
    write_status,
)
from hsm_core.taskstate import TaskState

#: The wrapper's exit code when it could not write its pid file (a full disk): it does not start
#: the command then, because nothing could tell afterwards whether the command ran (EX_TEMPFAIL).
NOT_STARTED_EXIT = 75

# The task's /bin/sh wrapper (see taskdir.wrapper_script: what it writes, and why).
_WRAPPER = wrapper_script(NOT_STARTED_EXIT)
#: The line written to the task's output before every attempt after the first.
ATTEMPT_BANNER = "==== hsm: attempt {attempt} on {host} at {time} ====\n"
#: The error recorded when the wrapper itself was killed and left no exit code.
WRAPPER_LOST_ERROR = "the task runner was killed ({signal}); its command was stopped"


def task_environment(
    command: Mapping[str, Any], task_dir: Path, extra_env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a task: inherited, plus ``command.json``'s env, plus paths of *this* host."""
    env = dict(os.environ)
    env.update({k: str(v) for k, v in (command.get("env") or {}).items()})
    task_dir = task_dir.resolve()
    env["HSM_TASK_DIR"] = str(task_dir)
    env["HSM_OUTPUT_DIR"] = str(results_dir(task_dir))
    env["HSM_SWEEP_DIR"] = str(task_dir.parent.parent)
    env["HSM_SWEEP_ID"] = str(command.get("sweep_id", ""))
    env["HSM_TASK_ID"] = str(command.get("task_id", ""))
    env["HSM_TASK_INDEX"] = str(command.get("index", ""))
    env["PYTHONUNBUFFERED"] = env.get("PYTHONUNBUFFERED", "1")
    # Plugins write command.json before the task runs and cannot know where its dir will be on the
    # host that runs it: "${HSM_TASK_DIR}" (and the other path variables) in a value mean this host's.
    for key, value in (command.get("env") or {}).items():
        if "${HSM_" in str(value):
            env[key] = expand_task_paths(str(value), env)
    if extra_env:
        env.update({k: str(v) for k, v in extra_env.items()})
    return env


TASK_PATH_VARS = ("HSM_TASK_DIR", "HSM_OUTPUT_DIR", "HSM_SWEEP_DIR")


def expand_task_paths(value: str, env: Mapping[str, str]) -> str:
    """``value`` with ``${HSM_TASK_DIR}``, ``${HSM_OUTPUT_DIR}`` and ``${HSM_SWEEP_DIR}`` replaced by
    their values in ``env`` (nothing else is expanded: a value stays data, never shell code)."""
    for var in TASK_PATH_VARS:
        value = value.replace("${" + var + "}", str(env.get(var, "")))
    return value


@dataclass
class StartedTask:
    """A task whose process is running."""

    task_dir: Path
    process: subprocess.Popen
    status: dict[str, Any]
    _files: list[IO[bytes]] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    stop_reason: TaskState | None = None  #: set when hsm itself stops the task

    def close_files(self) -> None:
        for t in self._threads:
            t.join(timeout=5)
        for f in self._files:
            try:
                f.close()
            except OSError:
                pass


def _tee(src: IO[bytes], dest: IO[bytes], echo: Callable[[bytes], None]) -> None:
    for line in iter(src.readline, b""):
        dest.write(line)
        dest.flush()
        echo(line)
    src.close()


def start_task(
    task_dir: Path,
    *,
    source: str,
    runner: str = "local",
    project_root: str | None = None,
    python: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    echo: Callable[[str, bytes], None] | None = None,
    status_extra: Mapping[str, Any] | None = None,
    may_start: Callable[[], bool] | None = None,
    wait: bool = True,
    on_wait: Callable[[], None] | None = None,
    abort: Callable[[], bool] | None = None,
) -> StartedTask:
    """Start the task's command and write its ``running`` status. Raises OSError if it cannot start.

    ``project_root`` / ``python`` override the working directory and interpreter recorded in
    ``command.json`` (a remote host has its own). ``echo(task_name, line)`` receives output lines
    for ``--show-output``.

    ``may_start``: a controller's lease question (``SourceContext.may_launch``). Given, the start
    is made under the task's start lock (:mod:`hsm_core.start_lock`), asking it first: raises
    :class:`NotInCharge` (nothing started, nothing written) when it says no, and
    :class:`StartedElsewhere` when another controller of this machine started the task meanwhile
    (watch that one). ``wait=False`` raises :class:`~hsm_core.start_lock.StartLockBusy` instead of
    waiting for a start of the task in progress, and so does a wait that ``abort()`` ends;
    ``on_wait()`` is called once if it is long in coming.
    """
    if may_start is None:
        return _start(Path(task_dir), source, runner, project_root, python, extra_env, echo, status_extra)
    with start_lock(Path(task_dir), wait=wait, on_wait=on_wait, abort=abort):
        if not may_start():
            raise NotInCharge()
        if _started_elsewhere(Path(task_dir)):
            raise StartedElsewhere(str(task_dir))
        return _start(Path(task_dir), source, runner, project_root, python, extra_env, echo, status_extra)


class StartedElsewhere(Exception):
    """Another controller on this machine started the task while this one was about to."""


def _started_elsewhere(task_dir: Path) -> bool:
    """True when the task's status shows an attempt of another process of this machine that runs
    or is being started: a controller stopped inside its launch, continued after its replacement
    planned, made it (its record was written before the replacement took the lease)."""
    status = read_status(task_dir)
    if not status or status.get("state") != TaskState.RUNNING.value or status.get("host") != socket.gethostname():
        return False
    if status.get("runner") != "local":
        return False  # another source's run on this machine: that source decides, as before
    if status.get("starter") == process_identity(os.getpid()):
        return False  # this controller's own earlier start: what it left is stopped as usual
    if left_exit_code(task_dir) is not None:
        return False  # its command has ended
    ident = recorded_process(task_dir, status)
    if ident:
        from hsm_core import processes

        return processes.is_running(ident) is not False
    return status.get("process") == STARTING and still_starting(task_dir, status)


def _start(
    task_dir: Path,
    source: str,
    runner: str,
    project_root: str | None,
    python: str | None,
    extra_env: Mapping[str, str] | None,
    echo: Callable[[str, bytes], None] | None,
    status_extra: Mapping[str, Any] | None,
) -> StartedTask:
    command = read_command(task_dir)
    argv = list(command["argv"])
    if python and command.get("python_arg0"):
        argv[0] = python
    argv = jobenv.launcher_prefix() + argv  # srun in a job of several nodes (the job script says)
    cwd = project_root or command.get("cwd") or os.getcwd()
    env = task_environment(command, task_dir, extra_env)
    results_dir(task_dir).mkdir(exist_ok=True)
    clear_markers(task_dir)

    previous = read_status(task_dir) or {}
    _stop_leftovers(task_dir, previous)
    attempt = int(previous.get("attempt") or 0) + 1
    out, err = open_output(task_dir)
    if attempt > 1:
        banner = ATTEMPT_BANNER.format(attempt=attempt, host=socket.gethostname(), time=now_iso()).encode()
        out.write(banner)
        err.write(banner)
        out.flush()
        err.flush()
    stdout_target: Any = subprocess.PIPE if echo else out
    stderr_target: Any = subprocess.PIPE if echo else err
    started = time.time()
    status: dict[str, Any] = {
        "task_id": command.get("task_id"),
        "index": command.get("index"),
        "state": TaskState.RUNNING.value,
        "source": source,
        "runner": runner,
        "host": socket.gethostname(),
        "attempt": attempt,
        "start_time": now_iso(),
        "start_epoch": round(started, 3),
        "process": STARTING,
    }
    if previous.get("attempts"):
        status["attempts"] = previous["attempts"]
    status = carry_kept(previous, status)  # what the task's sources keep (source_data)
    if status_extra:
        status.update(status_extra)
    # Recorded before the process starts, so that a controller killed at any moment leaves a
    # trace of this attempt: reconcile_status finds the process through the wrapper's pid file.
    # No fsync: only processes read it before the one written next, which is synced. "starter"
    # says which controller is starting it, so that nobody waits for a dead one.
    write_status(task_dir, {**status, "starter": process_identity(os.getpid())}, fsync=False)
    try:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", _WRAPPER, WRAPPER_NAME, *argv],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout_target,
            stderr=stderr_target,
            start_new_session=True,  # our own process group: signals reach the whole task
        )
    except (OSError, ValueError):  # ValueError: a NUL in an argument or variable ("embedded null byte")
        out.close()
        err.close()
        # Nothing started: put back what was there (the caller records the failure).
        try:
            if previous:
                write_status(task_dir, previous)
            else:
                remove_status(task_dir)
        except OSError:
            pass
        raise
    status["process"] = process_identity(proc.pid) or f"{proc.pid}:?"
    try:
        status = with_kept_on_disk(task_dir, status)
        # No fsync (one per task less, issue 19): only a crash of the machine loses it, and that
        # ends the task too, which the wrapper's files and the next look record as interrupted.
        write_status(task_dir, status, fsync=False)
    except OSError:
        # Started but not recorded (disk full): stop it rather than let it run unwatched while
        # the caller counts the launch as failed and runs the task again later.
        signal_task_group(proc.pid, signal.SIGKILL)
        proc.wait()
        out.close()
        err.close()
        raise
    task = StartedTask(task_dir, proc, status, [out, err])
    if echo:
        name = task_dir.name
        for pipe, dest in ((proc.stdout, out), (proc.stderr, err)):
            t = threading.Thread(target=_tee, args=(pipe, dest, lambda b, n=name: echo(n, b)), daemon=True)
            t.start()
            task._threads.append(t)
    return task


#: Seconds the processes an ended attempt left behind get to exit after SIGTERM before a new
#: attempt of the task starts.
LEFTOVER_GRACE = 10.0


def _stop_leftovers(task_dir: Path, previous: Mapping[str, Any]) -> None:
    """Never start an attempt while processes of an earlier one run: a daemon child of an attempt
    that ended (a data loader, a logging service) would share the task dir and its checkpoint with
    the new one. Only processes that provably belong to this task (``HSM_TASK_DIR``) are stopped:
    those of the earlier wrapper's group and session, and this user's daemons anywhere on the
    machine that left it (``setsid``, a double fork; one search of the machine per new attempt)."""
    if previous.get("host") != socket.gethostname():
        return  # never ran here (or nowhere yet): nothing of it can run on this machine
    from hsm_core import processes

    # (An attempt closed without its process, as ``interrupted`` by a later look, has no
    # ``process`` left: its daemons are found by the search all the same.)
    parsed = processes.parse_identity(previous.get("process") or previous.get("last_process"))
    left = set(processes.task_members(parsed[0], task_dir, unknown=False)) if parsed else set()
    left.update(processes.escaped(task_dir))
    if left:
        processes.stop_pids(sorted(left), LEFTOVER_GRACE)


def signal_task(task: StartedTask, signum: int) -> None:
    """Send ``signum`` to the task's whole process group."""
    signal_task_group(task.process.pid, signum)


def signal_task_group(pgid: int, signum: int) -> None:
    """Send ``signum`` to every process of the task whose wrapper is ``pgid`` (its process group
    and session: the wrapper and everything it started)."""
    from hsm_core import processes

    processes.signal_group(pgid, signum)


def finish_task(task: StartedTask, returncode: int) -> dict[str, Any]:
    """Write the final status of a task whose process exited with ``returncode``."""
    task.close_files()
    state: TaskState | None = None
    extra: dict[str, Any] | None = None
    if returncode == NOT_STARTED_EXIT and not pid_recorded(task.task_dir):
        # The wrapper could not write its pid file and did not start the command: nothing ran,
        # so the attempt is lost (run again by hsm complete), not failed.
        state = TaskState.LOST
        extra = {"error": f"could not write {PID_FILE} (no space left on device?): the command was not started"}
    elif returncode == 0:
        state = TaskState.COMPLETED  # even when stopped: it finished (saved its work) in the grace
    elif task.stop_reason is not None:
        state = task.stop_reason
    elif returncode != 0 and task.status.get("signal_received"):
        # The job was told to stop (a preemption, a walltime kill, a cancel, or the warning signal
        # of --signal=B:USR1@N, which the task may trap to checkpoint) and the task ended on it:
        # the scheduler, not the task, ended the attempt. Which of these it was, only the
        # scheduler knows: the source asks it (see hsm_core.verdicts).
        state = TaskState.PREEMPTED
    elif returncode < 0 and not task.status.get("signal_received"):
        # The /bin/sh wrapper itself was killed from outside (a command killed by a signal makes it
        # exit 128+N, never negative), so its command may still be running, unwatched: left alone
        # it would finish behind our back and a rerun would repeat it. Use the exit code it left if
        # it got that far, else stop the whole group and record the attempt as lost.
        left = left_exit_code(task.task_dir)
        if left is not None:
            return finalize_status(task.task_dir, task.status, left[0])
        signal_task(task, signal.SIGKILL)
        state = TaskState.LOST
        extra = {"error": WRAPPER_LOST_ERROR.format(signal=_signal_name(-returncode))}
    return finalize_status(task.task_dir, task.status, returncode, state=state, extra=extra)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def terminate(task: StartedTask, grace: float = 10.0, reason: TaskState = TaskState.INTERRUPTED) -> None:
    """Stop the task: SIGTERM to all its processes, up to ``grace`` seconds for all of them to end
    (not only the wrapper: a training script traps SIGTERM to save a checkpoint), then SIGKILL.
    Returns once the wrapper has ended; the command's own exit code is what it recorded (a script
    that exits 0 in the grace is ``completed``, see :func:`finish_task`).

    A task whose process has already exited is left as it ended: it finished by itself (a
    completed task stopped "too late" must not be recorded as interrupted and run again).
    """
    from hsm_core import processes

    if task.process.poll() is not None:
        return
    task.stop_reason = reason
    processes.stop_group(task.process.pid, grace, task_dir=task.task_dir)
    task.process.wait()


def recorded_process(task_dir: Path, status: Mapping[str, Any] | None) -> str | None:
    """Identity of the wrapper of a ``running`` task as its files record it (``status.yaml``'s
    ``process``, or the verified ``.hsm_pid`` when the status says it was only ``starting``)."""
    if not status or status.get("state") != TaskState.RUNNING.value:
        return None
    ident = status.get("process")
    if ident == STARTING or not ident:
        return started_process(task_dir)
    return str(ident)


def stop_recorded(task_dir: Path, grace: float) -> None:
    """Stop a running task of this machine that is not our child (a task adopted from a controller
    that died), from what its files say: SIGTERM to all its processes, SIGKILL after ``grace``."""
    from hsm_core import processes

    status = read_status(task_dir)
    if not status or status.get("host") != socket.gethostname():
        return
    ident = recorded_process(task_dir, status)
    parsed = processes.parse_identity(ident)
    if not parsed:
        return
    if processes.is_running(ident):
        processes.stop_group(parsed[0], grace, task_dir=task_dir)
    else:
        # The wrapper is gone (its pid may be a stranger's): stop what provably runs the task,
        # in the wrapper's group and session or (a daemon that left it) anywhere on the machine.
        left = set(processes.task_members(parsed[0], task_dir, unknown=False)) | set(processes.escaped(task_dir))
        processes.stop_pids(sorted(left), grace)


def settle_stopped(task_dir: Path, reason: TaskState) -> dict[str, Any] | None:
    """The status of a task hsm stopped that is not its child, recorded once its processes are
    gone: the command's own exit code decides (0: completed, it finished in the grace), any other
    ending reads ``reason``. Returns the status unchanged while the task still runs."""
    from hsm_core import processes

    status = read_status(task_dir)
    if not status or status.get("state") != TaskState.RUNNING.value:
        return status
    left = left_exit_code(task_dir)
    if left is not None:
        code, end = left
        return finalize_status(task_dir, status, code, end_time=end, state=None if code == 0 else reason)
    ident = recorded_process(task_dir, status)
    parsed = processes.parse_identity(ident)
    if parsed and (processes.is_running(ident) is not False or processes.task_members(parsed[0], task_dir)):
        return status
    if status.get("process") == STARTING and not parsed and (still_starting(task_dir, status) or start_lock_held(task_dir)):
        return status  # its controller, or the wrapper it asked for, may still be starting it
    # Nothing recorded how it ended (its wrapper was killed as well): it was stopped, not finished.
    # Unless its own controller recorded the end meanwhile (the status first, then the markers
    # removed): read again rather than overwrite that.
    fresh = read_status(task_dir)
    if fresh is not None and fresh.get("state") != TaskState.RUNNING.value:
        return fresh
    if left_exit_code(task_dir) is not None:
        return settle_stopped(task_dir, reason)  # the wrapper ended after the look above: its exit code decides
    return finalize_status(task_dir, status, -int(signal.SIGKILL), state=reason,
                           extra={"error": "stopped by hsm; its exit code was not recorded"})


# ---------------------------------------------------------------------------------------------
# Standalone runner (remote hosts, array jobs, workers)
# ---------------------------------------------------------------------------------------------


def run_blocking(
    task_dir: Path,
    *,
    source: str,
    runner: str,
    project_root: str | None = None,
    python: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    status_extra: Mapping[str, Any] | None = None,
    forward_signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2),
    force: bool = False,
) -> dict[str, Any]:
    """Run one task to its end in this process, forwarding signals. Returns the final status.

    A task already ``completed`` is not run again (a requeued array job must not repeat finished
    work) unless ``force``.
    """
    previous = read_status(task_dir)
    if previous and previous.get("state") == TaskState.COMPLETED.value and not force:
        return previous
    received: list[int] = []
    held: list[int] = []
    started: list[StartedTask] = []

    def forward(signum: int, _frame: Any) -> None:
        if not started:
            # The task is being started: passed on once its start is recorded. At its default
            # action the signal would kill this runner between the fork and the record, and the
            # task would run on with nobody to stop it (a scheduler signals only the processes
            # it found; the task's own may not have been forked yet).
            held.append(signum)
            return
        task = started[0]
        if signum == signal.SIGUSR1 and not task_catches(task.process.pid, signum):
            # The warning before the walltime, and no process of the task handles it: passed on,
            # SIGUSR1's default action would kill the task a minute early. It runs on instead,
            # to the walltime (a timeout, as without a warning).
            return
        received.append(signum)
        if not task.status.get("signal_received"):
            task.status["signal_received"] = signal.Signals(signum).name
            task.status.update(with_kept_on_disk(task_dir, task.status))
            write_status(task_dir, task.status)
        signal_task(task, signum)
        if signum in (signal.SIGTERM, signal.SIGINT):
            _signal_escaped(task_dir, signum)  # its daemons that left the session: the same stop

    # The warning before the walltime keeps the handling it has (a packed element's, which notes
    # it) until the task has started; the stop signals are held from before its start, and so is
    # the warning where nothing handles it: at its default action (the job script's trap is gone
    # with its exec) it would kill this runner between the fork and the record as well.
    early = [s for s in forward_signals if s != signal.SIGUSR1 or signal.getsignal(s) == signal.SIG_DFL]
    old = {s: signal.signal(s, forward) for s in early}
    try:
        task = start_task(
            task_dir,
            source=source,
            runner=runner,
            project_root=project_root,
            python=python,
            extra_env=extra_env,
            status_extra=status_extra,
        )
        started.append(task)
        old.update({s: signal.signal(s, forward) for s in forward_signals if s not in old})
        for signum in held:
            forward(signum, None)
        while True:
            try:
                rc = task.process.wait()
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for safety
                continue
        if rc in (-signal.SIGTERM, 128 + signal.SIGTERM) and not received:
            # A scheduler (a cancel, a preemption) signals every process of the job at once:
            # the task may die of it before our own handler runs. Give that signal a moment, so
            # the attempt is recorded as stopped by a signal, not as a failure of the task.
            deadline = time.monotonic() + 2.0
            while not received and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if received:
        # The job is being stopped and its command has ended: what it left behind (a helper that
        # ignores SIGTERM) goes too. The scheduler may not: a process reparented to init escapes
        # proctrack/linuxproc and PBS without cpusets, and would outlive the job.
        signal_task(task, signal.SIGKILL)
        _signal_escaped(task_dir, signal.SIGKILL)
    return finish_task(task, rc)


def _signal_escaped(task_dir: Path, signum: int) -> None:
    """Send ``signum`` to the task's daemons that left its session (``setsid``, a double fork),
    found by ``HSM_TASK_DIR`` in their environment (see :func:`hsm_core.processes.escaped`)."""
    from hsm_core import processes

    processes.signal_pids(processes.escaped(task_dir), signum)


def task_catches(wrapper_pid: int, signum: int) -> bool:
    """True when a process of the task (its command and what that started; not the ``/bin/sh``
    wrapper, which traps the stop signals only to outlive its command) has a handler for
    ``signum``, from ``SigCgt`` in ``/proc/PID/status``. True where that cannot be read (no
    ``/proc``): the signal is forwarded then, as it always was."""
    if not os.path.isdir("/proc/self"):
        return True
    from hsm_core import processes

    try:
        pids = processes.members(wrapper_pid)
    except Exception:  # the processes could not be listed: forward, as before
        return True
    bit = 1 << (signum - 1)
    for pid in pids:
        if pid == wrapper_pid:
            continue
        try:
            with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
                caught = next((ln.split()[1] for ln in fh if ln.startswith("SigCgt:")), "0")
        except OSError:
            continue
        if int(caught, 16) & bit:
            return True
    return False


def _array_line(list_file: Path, index: int) -> Path:
    with open(list_file, encoding="utf-8") as fh:
        lines = [ln.rstrip("\n") for ln in fh if ln.strip()]
    if not 0 <= index < len(lines):
        raise SystemExit(f"hsm-task: array index {index} out of range (0-{len(lines) - 1}) in {list_file}")
    p = Path(lines[index])
    return p if p.is_absolute() else (list_file.parent / p).resolve()


def _element_task_dir(list_file: Path, index: int) -> Path:
    """The task dir of line ``index`` of the list, made now from the chunk's task file or the
    sweep's manifest if its controller left that to the element (hsm_core.task_manifest)."""
    task_dir = _array_line(list_file, index)
    if not task_dir.is_dir():
        from hsm_core.task_manifest import ensure_task_dir

        if not ensure_task_dir(task_dir, list_file=list_file, line=index):
            raise SystemExit(f"hsm-task: {task_dir} does not exist, and neither the chunk's task file nor the "
                             "sweep's manifest says how to make it (run the task again with hsm complete)")
    return task_dir


def _array_index(offset: int) -> int:
    value = os.environ.get(jobenv.ARRAY_INDEX)
    if value not in (None, ""):
        return int(value) - offset
    raise SystemExit(f"hsm-task: --list given without --index, and {jobenv.ARRAY_INDEX} is not set "
                     "(a job script written by an older hsm: run the sweep's tasks again with hsm complete)")


def _scheduler_extra() -> dict[str, Any]:
    # job_id and restart_count from the HSM_JOB_* variables the plugin's job script exported.
    fields: dict[str, Any] = jobenv.status_fields(jobenv.job_from_variables())
    fields.pop("array_index", None)  # the task's line is recorded with the chunk at submission
    return fields


#: SIGUSR1 arrived while no task ran (between the tasks of a packed element): run no further task.
_WARNED: list[int] = []


def _arm_warning(packed: bool) -> None:
    """The warning before the walltime for schedulers without a directive for it: at
    ``HSM_WARNING_AT`` (epoch seconds, set by the job script) this runner sends itself SIGUSR1,
    which it forwards to the task running then. A daemon timer thread: it ends with the runner,
    so it never signals a process that took this pid later. Between the tasks of a packed element
    SIGUSR1 (this timer's, or Slurm's ``--signal``) is noted, not fatal: no further task starts."""
    _WARNED.clear()
    delay = jobenv.warning_delay()
    if delay is None and not packed:
        return
    try:
        signal.signal(signal.SIGUSR1, lambda signum, _frame: _WARNED.append(signum))
    except ValueError:  # not the main thread (an in-process caller): no signals to handle here
        return
    if delay is not None:
        jobenv.warn_self_after(delay)


def _run_packed(list_file: Path, element: int, args: Any) -> int:
    """Run the ``args.count`` tasks of array element ``element`` one after the other.

    Stops after a task ended by a signal (the element is being preempted or cancelled: the rest
    must wait for the next attempt); tasks already completed are skipped as always.
    """
    with open(list_file, encoding="utf-8") as fh:
        total = sum(1 for ln in fh if ln.strip())
    first = element * args.count
    if not 0 <= first < total:
        raise SystemExit(f"hsm-task: array element {element} out of range for {total} tasks in {list_file}")
    worst = 0
    for i in range(first, min(first + args.count, total)):
        if _WARNED:
            return 128 + signal.SIGUSR1  # warned before the walltime: the rest waits for the next attempt
        status = run_blocking(
            _element_task_dir(list_file, i),
            source=args.source,
            runner=args.runner,
            project_root=args.project_root,
            python=args.python,
            status_extra=_scheduler_extra(),
            force=args.force,
        )
        code = status.get("exit_code")
        code = int(code) if isinstance(code, int) and 0 <= code < 256 else (0 if status.get("state") == "completed" else 1)
        worst = worst or code
        if status.get("state") == TaskState.PREEMPTED.value:
            return code or 143
    return worst


def _setup_failed(args: Any) -> int:
    from hsm_core.setup_failure import SETUP_FAILED_EXIT, record_setup_failure

    if args.list_file:
        list_file = Path(args.list_file)
        index = args.index - args.offset if args.index is not None else _array_index(args.offset)
        with open(list_file, encoding="utf-8") as fh:
            total = sum(1 for ln in fh if ln.strip())
        first = index * args.count
        dirs = [_array_line(list_file, i) for i in range(first, min(first + args.count, total))]
    else:
        dirs = [Path(args.task_dir)] if args.task_dir else []
    record_setup_failure(dirs, args.setup_failed, source=args.source, status_extra=_scheduler_extra())
    print(f"hsm-task: {args.setup_failed}; the task was not run", file=sys.stderr)
    return SETUP_FAILED_EXIT


def main(argv: Sequence[str] | None = None) -> int:
    """``hsm-task [--source S] [--project-root P] [--python PY] (TASK_DIR | --list FILE [--offset K])``."""
    import argparse

    parser = argparse.ArgumentParser(prog="hsm-task", description="Run one hsm task and record its status.")
    parser.add_argument("task_dir", nargs="?", help="the task directory (tasks/task_NNN)")
    parser.add_argument("--list", dest="list_file", help="array job: file of task dirs, one per line")
    parser.add_argument("--offset", type=int, default=0, help="subtract from the array index (chunked arrays)")
    # A job script that already worked out its index (from the scheduler's own variables) passes it here.
    parser.add_argument("--index", type=int, default=None, help=f"array index (default: ${jobenv.ARRAY_INDEX})")
    # Packed array jobs (many short tasks): element i runs lines i*N .. i*N+N-1 one after the other,
    # so the scheduler starts one job and one runner per N tasks.
    parser.add_argument("--count", type=int, default=1, help="tasks per array element (default 1)")
    parser.add_argument("--source", default=os.environ.get("HSM_SOURCE", "unknown"))
    parser.add_argument("--runner", default="standalone", help=argparse.SUPPRESS)
    parser.add_argument("--project-root", default=None)
    parser.add_argument("--python", default=None)
    parser.add_argument("--force", action="store_true", help="run even if the task already completed")
    # The job script's setup commands failed: record the element's tasks failed, run nothing.
    parser.add_argument("--setup-failed", metavar="REASON", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.setup_failed is not None:
        return _setup_failed(args)
    if args.list_file:
        _arm_warning(packed=args.count > 1)
    if args.list_file and args.count > 1:
        index = args.index - args.offset if args.index is not None else _array_index(args.offset)
        return _run_packed(Path(args.list_file), index, args)
    if args.list_file:
        index = args.index - args.offset if args.index is not None else _array_index(args.offset)
        task_dir = _element_task_dir(Path(args.list_file), index)
    elif args.task_dir:
        task_dir = Path(args.task_dir)
        if not task_dir.is_dir():
            from hsm_core.task_manifest import ensure_task_dir

            ensure_task_dir(task_dir)  # (from the sweep's manifest, when it holds the command)
    else:
        parser.error("give TASK_DIR or --list FILE")
    status = run_blocking(
        task_dir,
        source=args.source,
        runner=args.runner,
        project_root=args.project_root,
        python=args.python,
        status_extra=_scheduler_extra(),
        force=args.force,
    )
    if not args.list_file and status.get("state") in (TaskState.COMPLETED.value, TaskState.FAILED.value):
        # An SSH task (no job container) that ended on its own: what it left running ends too.
        from hsm_core.ended_task_processes import grace_from_environment, stop_left_running

        stop_left_running([(task_dir, time.time())], grace_from_environment())
    code = status.get("exit_code")
    return int(code) if isinstance(code, int) and 0 <= code < 256 else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
