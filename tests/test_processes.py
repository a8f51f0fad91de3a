"""hsm_core.processes: process identity, a task's processes, stopping them, and the safe side.

Real processes throughout; psutil is replaced only to make a process impossible to inspect (the
"unknown" answer of a hidden /proc or another user's process), which cannot be arranged here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hsm_core import processes
from hsm_core.runner import start_task, terminate
from hsm_core.state import EXEC_WINDOW, PID_FILE, STARTING, WRAPPER_NAME, read_status, reconcile_status, started_process, write_status
from hsm_core.taskstate import TaskState


def _spawn(code: str, **kw: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], **kw)  # type: ignore[call-overload]


def test_identity_names_one_process_and_tells_a_reused_pid_apart() -> None:
    proc = _spawn("import time; time.sleep(30)")
    try:
        ident = processes.identity(proc.pid)
        assert ident and ident.startswith(f"{proc.pid}:")
        assert processes.is_running(ident) is True
        # The same pid with another start time is another process (the pid was reused).
        pid, start = processes.parse_identity(ident)
        assert processes.is_running(f"{pid}:{start - 5:.3f}") is False
        assert processes.is_running(f"{pid}:?") is True  # no start time: the pid must do
    finally:
        proc.kill()
        proc.wait()
    assert processes.is_running(ident) is False
    assert processes.identity(proc.pid) is None


def test_a_zombie_counts_as_gone() -> None:
    proc = _spawn("pass")
    ident = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # exited, not yet reaped: a zombie
        if processes.identity(proc.pid) is None:
            break
        ident = processes.identity(proc.pid)
        time.sleep(0.02)
    assert processes.identity(proc.pid) is None and processes.pid_exists(proc.pid)
    if ident:
        assert processes.is_running(ident) is False
    proc.wait()


def test_members_are_the_group_and_the_session_of_the_wrapper(tmp_path: Path) -> None:
    # A wrapper in its own session, a child in its group, and a grandchild that made a group of
    # its own inside the session (what a shell with job control does): all three are the task.
    script = (
        "import os, subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import os, time; os.setpgid(0, 0); time.sleep(30)'])\n"
        "time.sleep(30)\n"
    )
    wrapper = subprocess.Popen(["/bin/sh", "-c", f'"{sys.executable}" -c "$0"; :', script], start_new_session=True)
    try:
        found = lambda: processes.members(wrapper.pid)  # noqa: E731
        deadline = time.monotonic() + 10
        while len(found()) < (2 if processes.portable() else 3) and time.monotonic() < deadline:
            time.sleep(0.05)
        # Without sessions (macOS refuses the session of another process), the grandchild that
        # made a group of its own is out of reach: the group alone counts there.
        expected = 2 if processes.portable() else 3
        assert wrapper.pid in found() and len(found()) == expected
        assert processes.group_alive(wrapper.pid)
    finally:
        processes.signal_group(wrapper.pid, signal.SIGKILL)
        wrapper.wait()
    assert processes.wait_gone(wrapper.pid, 5)


def _task_dir(tmp_path: Path, code: str) -> Path:
    import json

    d = tmp_path / "tasks" / "task_001"
    d.mkdir(parents=True)
    (d / "command.json").write_text(json.dumps({"argv": [sys.executable, "-c", code], "task_id": "t1", "index": 1}))
    return d


TRAPS_TERM = (
    "import signal, sys, time\n"
    "def stop(*a):\n"
    "    time.sleep(0.5)  # saving a checkpoint\n"
    "    sys.exit({code})\n"
    "signal.signal(signal.SIGTERM, stop)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def _ready(d: Path) -> None:
    deadline = time.monotonic() + 20
    while b"ready" not in (d / "stdout.log").read_bytes():
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.02)


@pytest.mark.parametrize("code,state", [(0, "completed"), (3, "interrupted")])
def test_a_stopped_task_keeps_its_commands_own_exit_code(tmp_path: Path, code: int, state: str) -> None:
    from hsm_core.runner import finish_task

    d = _task_dir(tmp_path, TRAPS_TERM.format(code=code))
    task = start_task(d, source="local")
    _ready(d)
    terminate(task, grace=10, reason=TaskState.INTERRUPTED)
    status = finish_task(task, task.process.returncode)
    assert (status["state"], status["exit_code"]) == (state, code)
    assert not processes.group_alive(task.process.pid)


def test_a_task_ignoring_sigterm_is_killed_after_the_grace_and_the_kill_recorded(tmp_path: Path) -> None:
    from hsm_core.runner import finish_task

    d = _task_dir(tmp_path, "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(60)\n")
    task = start_task(d, source="local")
    _ready(d)
    began = time.monotonic()
    terminate(task, grace=1.0, reason=TaskState.CANCELLED)
    assert time.monotonic() - began >= 1.0  # it had its grace
    status = finish_task(task, task.process.returncode)
    # The wrapper outlived its command and recorded how it ended: killed by SIGKILL.
    assert (status["state"], status["exit_code"], status.get("signal")) == ("cancelled", 137, "SIGKILL")
    assert not processes.group_alive(task.process.pid)


def test_a_pid_file_naming_another_process_is_not_adopted(tmp_path: Path) -> None:
    d = tmp_path / "t"
    d.mkdir()
    # A live process that started before the file was written, but is no task wrapper (it leads
    # no group of its own): corruption, or a pid reused between two runs.
    other = _spawn("import time; time.sleep(30)")
    try:
        (d / PID_FILE).write_text(str(other.pid))
        assert started_process(d) is None
        # A process that started after the file was written cannot have written it.
        (d / PID_FILE).write_text(str(os.getpid()))
        old = time.time() - 3600
        os.utime(d / PID_FILE, (old, old))
        assert started_process(d) is None
        # The real thing is recognised.
        wrapper = subprocess.Popen(["/bin/sh", "-c", 'printf %s $$ > "$0/.hsm_pid"; sleep 30', str(d)],
                                   start_new_session=True)
        try:
            deadline = time.monotonic() + 10
            while not (d / PID_FILE).read_text().strip() == str(wrapper.pid):
                assert time.monotonic() < deadline
                time.sleep(0.02)
            # $0 is the task dir here, not "hsm-task": not a wrapper of hsm's.
            assert started_process(d) is None
        finally:
            wrapper.kill()
            wrapper.wait()
    finally:
        other.kill()
        other.wait()


def _running_status(tmp_path: Path, process: str) -> tuple[Path, dict]:
    import socket

    d = tmp_path / "t"
    d.mkdir(exist_ok=True)
    status = {"state": "running", "runner": "local", "host": socket.gethostname(), "process": process,
              "attempt": 1, "start_epoch": time.time()}
    write_status(d, status)
    return d, status


def test_a_process_that_cannot_be_checked_is_never_taken_for_dead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where a fact cannot be known (permission denied, a hidden /proc), hsm stays on the safe
    side: the task stays running, so nothing starts a second copy next to it."""
    import psutil

    d, status = _running_status(tmp_path, "999999:12345.000")

    class Hidden:
        def __init__(self, pid: int) -> None:
            raise psutil.AccessDenied(pid)

    monkeypatch.setattr(psutil, "Process", Hidden)
    assert processes.is_running(status["process"]) is None
    assert reconcile_status(d, status)["state"] == "running"
    monkeypatch.undo()
    # Visible and provably gone: the attempt is over.
    assert reconcile_status(d, status)["state"] == "interrupted"


def test_a_starting_task_whose_controller_died_reaches_a_verdict(tmp_path: Path) -> None:
    d, status = _running_status(tmp_path, STARTING)
    dead = _spawn("pass")
    dead.wait()
    # Asked for a few seconds ago by a controller now dead, and no wrapper of the task alive.
    status = dict(status, starter=f"{dead.pid}:1.000", start_epoch=time.time() - EXEC_WINDOW - 1)
    write_status(d, status)
    assert reconcile_status(d, status)["state"] == "interrupted"  # never started: run it again


def test_a_wrapper_whose_controller_died_before_it_wrote_its_pid_is_waited_for(tmp_path: Path) -> None:
    """The controller is killed right after asking for the wrapper, which is a process of its own
    but has not written .hsm_pid yet (a loaded machine): the task is still starting, not
    'interrupted' (rerunning it ran it twice, side by side); once the pid is written, the wrapper
    is adopted."""
    d, status = _running_status(tmp_path, STARTING)
    dead = _spawn("pass")
    dead.wait()
    status = dict(status, starter=f"{dead.pid}:1.000", start_epoch=time.time() - EXEC_WINDOW - 1)
    write_status(d, status)
    release = tmp_path / "go"
    # Stands in for the task wrapper between its exec and its pid file (same $0 and environment).
    script = f'while [ ! -e {release} ]; do sleep 0.05; done; echo $$ > {d / PID_FILE}; sleep 30'
    wrapper = subprocess.Popen(["/bin/sh", "-c", script, WRAPPER_NAME], env=dict(os.environ, HSM_TASK_DIR=str(d)),
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not processes.wrappers_of(d, WRAPPER_NAME):
            assert time.monotonic() < deadline, "the stand-in wrapper never showed up"
            time.sleep(0.02)
        assert reconcile_status(d, status)["state"] == "running"
        release.touch()
        while not (d / PID_FILE).exists() or not (d / PID_FILE).read_text().strip():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        adopted = reconcile_status(d, read_status(d))
        assert adopted["state"] == "running" and adopted["process"] == processes.identity(wrapper.pid)
    finally:
        wrapper.kill()
        wrapper.wait()


def test_portable_mode_reads_nothing_from_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    """The behaviour of a system without /proc (macOS): no pid namespace in the machine id, no
    sessions of other processes; identities, groups and stops still work through psutil."""
    monkeypatch.setenv("HSM_PROCESS_PORTABLE", "1")
    processes.machine_id.cache_clear()
    try:
        assert processes.machine_id().endswith("|?")
        wrapper = subprocess.Popen(["/bin/sh", "-c", "sleep 30 & wait"], start_new_session=True)
        try:
            deadline = time.monotonic() + 10
            while len(processes.members(wrapper.pid)) < 2:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert processes.stop_group(wrapper.pid, 2.0)
        finally:
            wrapper.kill()
            wrapper.wait()
    finally:
        processes.machine_id.cache_clear()


def test_a_retry_never_starts_next_to_a_daemon_child_of_the_earlier_attempt(tmp_path: Path) -> None:
    """An attempt that failed but left a child running (a data-loader worker, a logging service)
    in the task dir: the next attempt starts only once that child is gone, and a stranger in no
    way related to the task is left alone."""
    from hsm_core.runner import finish_task

    code = (
        "import subprocess, sys\n"
        "p = subprocess.Popen(['sleep', '60'])\n"
        "open('child.pid', 'w').write(str(p.pid))\n"
        "sys.exit(1)\n"
    )
    d = _task_dir(tmp_path, code)
    import json

    command = json.loads((d / "command.json").read_text())
    command["cwd"] = str(d)
    (d / "command.json").write_text(json.dumps(command))
    stranger = _spawn("import time; time.sleep(60)", start_new_session=True)
    try:
        first = start_task(d, source="local")
        assert finish_task(first, first.process.wait())["state"] == "failed"
        child = int((d / "child.pid").read_text())
        assert processes.identity(child) is not None  # the daemon child outlived its attempt
        second = start_task(d, source="local")
        assert processes.identity(child) is None  # stopped before the new attempt started
        finish_task(second, second.process.wait())
        assert processes.identity(stranger.pid) is not None
    finally:
        stranger.kill()
        stranger.wait()


def test_a_wrapper_that_ends_while_it_is_looked_at_is_recorded_from_its_exit_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race behind a double run under `kill -9` of controllers: the reader looks for the exit
    marker (none yet), the command ends, the wrapper writes the marker and exits, the reader finds
    the wrapper gone. The task completed: it must read completed, not 'interrupted' (which ran it
    a second time)."""
    import hsm_core.state as state_mod

    wrapper = _spawn("pass")
    ident = processes.identity(wrapper.pid)
    d, status = _running_status(tmp_path, ident)
    real = state_mod.left_exit_code
    looks = []

    def marker_written_after_the_first_look(task_dir: Path):  # noqa: ANN202
        looks.append(task_dir)
        if len(looks) == 1:
            wrapper.wait()  # the wrapper ends, leaving its exit code, right after the first look
            (task_dir / state_mod.EXIT_MARKER).write_text("0\n")
            return None
        return real(task_dir)

    monkeypatch.setattr(state_mod, "left_exit_code", marker_written_after_the_first_look)
    final = reconcile_status(d, status)
    assert final["state"] == "completed" and final["exit_code"] == 0


def _wait_started(procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + 10
    while not all(processes.identity(p.pid) for p in procs):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.1)  # past exec: the environment read is the new program's


def test_escaped_finds_the_tasks_daemons_anywhere_on_the_machine_and_nothing_else(tmp_path: Path) -> None:
    """A daemon that left the task's session (its own session) is found by the task dir in its
    environment, also when that names the dir through a symlink; a process of another task dir
    (a sibling, the sweep dir above it) or without one is not; a member of the wrapper's session is
    left to :func:`members`."""
    task = tmp_path / "tasks" / "task_001"
    task.mkdir(parents=True)
    (tmp_path / "link").symlink_to(task)
    base = {k: v for k, v in os.environ.items() if k != "HSM_TASK_DIR"}
    sleeper = "import time; time.sleep(60)"
    daemon = _spawn(sleeper, env=dict(base, HSM_TASK_DIR=str(tmp_path / "link")), start_new_session=True)
    sibling = _spawn(sleeper, env=dict(base, HSM_TASK_DIR=f"{task}-other"), start_new_session=True)
    above = _spawn(sleeper, env=dict(base, HSM_TASK_DIR=str(task.parent)), start_new_session=True)
    bare = _spawn(sleeper, env=base, start_new_session=True)
    member = _spawn(sleeper, env=dict(base, HSM_TASK_DIR=str(task)), start_new_session=True)
    everyone = [daemon, sibling, above, bare, member]
    try:
        _wait_started(everyone)
        assert sorted(processes.escaped(task)) == sorted([daemon.pid, member.pid])
        assert processes.escaped(task, member.pid) == [daemon.pid]  # in the session of "wrapper" member
        assert processes.stop_pids(processes.escaped(task, member.pid), 2.0)
        assert daemon.wait(5) == -signal.SIGTERM
        assert all(p.poll() is None for p in (sibling, above, bare, member))
    finally:
        for p in everyone:
            p.kill()
            p.wait()


def test_escaped_never_counts_hsm_itself_nor_its_ancestors(tmp_path: Path) -> None:
    """An hsm started from inside the task (its shell's environment names the task dir) must not
    find itself, nor the shell that started it, as a daemon of the task to stop."""
    task = tmp_path / "task_001"
    task.mkdir()
    env = dict(os.environ, HSM_TASK_DIR=str(task))
    look = f"from hsm_core import processes; print(processes.escaped({str(task)!r}))"
    # "; true": the shell stays the parent instead of exec'ing python in its place.
    out = subprocess.run(["/bin/sh", "-c", f"{sys.executable} -c \"{look}\"; true"], env=env, capture_output=True,
                         text=True, timeout=60, start_new_session=True)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start another user's process")
def test_escaped_never_counts_another_users_process_even_when_hsm_runs_as_root(tmp_path: Path) -> None:
    """Root can read every process's environment; a process of another user that names the task
    dir is still not the user's task, never to be stopped."""
    import pwd

    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody")
    task = tmp_path / "task_001"
    task.mkdir()
    tmp_path.chmod(0o755)
    other = subprocess.Popen(["sleep", "60"], env=dict(os.environ, HSM_TASK_DIR=str(task)), user=nobody.pw_uid,
                             group=nobody.pw_gid, start_new_session=True)
    try:
        _wait_started([other])
        assert processes._environ(other.pid) is not None  # readable: only its owner keeps it out
        assert processes.escaped(task) == []
    finally:
        other.kill()
        other.wait()


def test_stop_group_with_the_task_dir_gives_a_daemon_that_left_the_session_the_same_grace(tmp_path: Path) -> None:
    """Ctrl-C / cancel: the daemon gets SIGTERM with the task and its grace to save, then SIGKILL
    if it ignores it; the wrapper's exit still reaches its parent."""
    task = tmp_path / "task_001"
    task.mkdir()
    saved = tmp_path / "saved"
    daemon_code = (
        "import signal, sys, time\n"
        f"def stop(*a):\n    time.sleep(0.3); open({str(saved)!r}, 'w').write('ok'); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "time.sleep(60)\n"
    )
    env = dict(os.environ, HSM_TASK_DIR=str(task))
    wrapper = subprocess.Popen(["/bin/sh", "-c", "sleep 60 & wait"], env=env, start_new_session=True)
    daemon = _spawn(daemon_code, env=env, start_new_session=True)
    try:
        _wait_started([wrapper, daemon])
        assert processes.stop_group(wrapper.pid, 3.0, task_dir=task)
        assert daemon.wait(5) == 0 and saved.read_text() == "ok"
        assert wrapper.wait(5) is not None
    finally:
        for p in (wrapper, daemon):
            p.kill()
            p.wait()


def test_kill_now_with_the_task_dir_kills_a_daemon_that_left_the_session(tmp_path: Path) -> None:
    """A worker whose claim went to another machine kills its copy at once, daemons included: one
    left running would write to the task dir beside the other machine's copy."""
    task = tmp_path / "task_001"
    task.mkdir()
    env = dict(os.environ, HSM_TASK_DIR=str(task))
    wrapper = subprocess.Popen(["/bin/sh", "-c", "sleep 60 & wait"], env=env, start_new_session=True)
    daemon = _spawn("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)",
                    env=env, start_new_session=True)
    bystander = _spawn("import time; time.sleep(60)", start_new_session=True)
    try:
        _wait_started([wrapper, daemon, bystander])
        assert processes.kill_now(wrapper.pid, task_dir=task)
        assert daemon.wait(5) == -signal.SIGKILL
        assert bystander.poll() is None
    finally:
        for p in (wrapper, daemon, bystander):
            p.kill()
            p.wait()


def test_escaped_never_answers_from_a_pass_older_than_the_call_and_shares_passes_between_threads(tmp_path: Path) -> None:
    """The stops of many tasks at once share passes over the machine, but a daemon started before
    a call is always in its answer (a pass made before it started is never reused)."""
    import threading

    task = tmp_path / "task_001"
    task.mkdir()
    assert processes.escaped(task) == []  # a pass made before the daemon existed
    daemon = _spawn("import time; time.sleep(60)", env=dict(os.environ, HSM_TASK_DIR=str(task)), start_new_session=True)
    try:
        _wait_started([daemon])
        answers: list[list[int]] = []
        threads = [threading.Thread(target=lambda: answers.append(processes.escaped(task))) for _ in range(16)]
        before = processes._tag_state["started"]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert answers == [[daemon.pid]] * 16
        assert processes._tag_state["started"] - before < 16  # shared, not one pass per thread
    finally:
        daemon.kill()
        daemon.wait()
