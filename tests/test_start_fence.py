"""Exactly once when a controller is stopped inside a launch (hsm_core/start_lock.py).

A controller asks whether it still holds the sweep's lease right before a launch batch. One stopped
*inside* the launch (Ctrl-Z, SIGSTOP) for longer than ``controller_lease_timeout`` is replaced by a
second terminal's ``hsm complete``; continued, it goes on with the start it was making. The local
source makes each start under the task's start lock, asking the lease there: a continued
controller whose lease is gone starts nothing more, and a replacement that finds the task started
by the controller it replaced watches that copy instead of starting its own.

The tests stop a real ``hsm run`` at an exact point of its launch (a Python launcher that makes one
function of the task runner SIGSTOP its own thread), let ``hsm complete`` take over, continue the
first, and judge from each task's own log (start and end lines with times,
hsm_core.testing.runlog): every task ran to its end once, no two copies overlapped, and both
controllers ended as a user expects.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml

from chaos_support import (
    assert_clean_exit,
    hsm,
    hsm_popen,
    lease_holder,
    output_of,
    stop,
    task_ids,
    wait_until,
    write_chaos_project,
)
from hsm_core.start_lock import StartLockBusy, start_lock, start_lock_held
from hsm_core.testing.runlog import RUNLOG_SCRIPT, check_once, overlapping, read_runs

CORE = {"HSM_DISABLE_PLUGINS": "all"}
LEASE_TIMEOUT = 1.5

#: Runs ``hsm ARGS`` (argv[3:]) in a process whose thread SIGSTOPs itself the first time the task
#: runner's function argv[2] is called (having touched argv[1] first; ``NAME+``: once it returned).
#: ``start_task``: after the engine's lease check, before the start (the lock not taken yet);
#: ``_started_elsewhere``: inside the start lock, its lease answer given; ``write_status+``: its
#: ``process: starting`` record written, the command not started yet (the lock held).
STOPPED_AT = r'''
import os, runpy, signal, sys, threading
flag, point = sys.argv[1], sys.argv[2]
after = point.endswith("+")
point = point.rstrip("+")
import hsm_core.runner as runner
original = getattr(runner, point)
done = []
def stop():
    if not done:
        done.append(1)
        open(flag, "w").close()
        # To this thread: it stops before it runs one more line (a signal to the process may be
        # taken by another thread while this one goes on for a moment).
        signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)
def stopping(*args, **kwargs):
    if not after:
        stop()
    result = original(*args, **kwargs)
    if after:
        stop()
    return result
setattr(runner, point, stopping)
sys.argv = ["hsm", *sys.argv[3:]]
runpy.run_module("hsm_core", run_name="__main__")
'''


def _project(root: Path) -> Path:
    log = root / "runs.log"
    write_chaos_project(root, script=RUNLOG_SCRIPT.format(log=str(log), fail_flag=str(root / "fail.flag")),
                        extra_config=f"  controller_lease_timeout: {LEASE_TIMEOUT}\n")
    sweep = root / "sweeps" / "sweep.yaml"
    sweep.parent.mkdir(parents=True)
    sweep.write_text(yaml.safe_dump({"grid": {"x": [0, 1, 2], "sleep": [1.0]}}))
    return log


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


class Takeover:
    """A real ``hsm run`` stopped at ``point`` of its first launch until its lease is stale, and
    a second terminal's ``hsm complete`` that has taken the sweep over and started a task."""

    def __init__(self, tmp_path: Path, point: str) -> None:
        root = tmp_path / "proj"
        self.root = root
        self.log = _project(root)
        self.sweep_dir = root / "sweeps" / "outputs" / "s"
        lease = self.sweep_dir / ".controller" / "lease.lock"
        flag = tmp_path / "stopped"
        self.first = hsm_popen(root, "run", "--config", "sweeps/sweep.yaml", "--sweep-id", "s", env=CORE,
                               python_prefix=["-c", STOPPED_AT, str(flag), point])
        self.second: subprocess.Popen | None = None
        first = self.first
        wait_until(lambda: flag.exists() and _state(first.pid) == "T" or first.poll() is not None, 60,
                   "the controller to stop inside its launch")
        assert first.poll() is None, output_of(first)
        wait_until(lambda: time.time() - lease.stat().st_mtime > LEASE_TIMEOUT + 0.3, 30, "its lease to go stale")
        second = self.second = hsm_popen(root, "complete", "s", env=CORE)
        wait_until(lambda: lease_holder(lease) == second.pid or second.poll() is not None, 60,
                   "the second controller to take over")
        # The new holder plans and starts what it can (the tasks run 1 s).
        wait_until(lambda: len(read_runs(self.log)) >= 1 or second.poll() is not None, 60, "the new holder to start a task")

    def said(self) -> str:
        return "\n--- first:\n" + output_of(self.first) + "\n--- second:\n" + (output_of(self.second) if self.second else "")

    def end(self) -> None:
        """Whatever a failed assertion left running: continued, then stopped."""
        for proc in (self.first, self.second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                stop(proc)


@pytest.fixture
def takeovers():
    made: list[Takeover] = []
    yield made
    for t in made:
        t.end()


@pytest.mark.parametrize("point", ["start_task", "_started_elsewhere", "write_status+"])
def test_controller_stopped_inside_a_launch_starts_nothing_twice(tmp_path: Path, point: str, takeovers) -> None:
    """`hsm run` stopped inside its first launch until its lease is stale; `hsm complete` from a
    second terminal takes over and starts what it can; the first is continued. Every task runs
    once, no copies overlap, the second ends 0 with every task completed."""
    t = Takeover(tmp_path, point)
    takeovers.append(t)
    time.sleep(0.3)
    t.first.send_signal(signal.SIGCONT)
    for proc in (t.first, t.second):
        proc.wait(timeout=90)
    runs = read_runs(t.log)
    problems = check_once(runs, task_ids(t.sweep_dir).values())
    assert not problems, "\n".join(problems) + t.said()
    assert sum(1 for execs in runs.values() for e in execs if e.end is not None) == 3, t.said()
    assert_clean_exit(t.second, (0,), t.said())
    assert_clean_exit(t.first, (0, 2), t.said())
    if t.first.returncode == 2:
        assert "taken over by hsm complete" in output_of(t.first), t.said()
    info = json.loads(hsm(t.root, "status", "s", "--json", env=CORE).stdout)
    assert info["counts"].get("completed") == 3 and info["status"] == "completed", info
    if point == "start_task":
        # The start the continued controller did not make is in the sweep's log.
        assert "not started here" in (t.sweep_dir / "logs" / "sweep.log").read_text()


# --------------------------------------------------------------------------------------------
# The lock itself
# --------------------------------------------------------------------------------------------


def test_the_start_lock_excludes_a_second_start_and_is_let_go_when_its_holder_ends(tmp_path: Path) -> None:
    task = tmp_path / "task_001"
    task.mkdir()
    assert not start_lock_held(task)
    with start_lock(task) as held:
        assert held
        assert start_lock_held(task)  # seen from another descriptor, as another process sees it
        with pytest.raises(StartLockBusy):
            with start_lock(task, wait=False):
                pass
    assert not start_lock_held(task)
    # A holder that dies (here: a child killed while it holds it) leaves the task unlocked.

    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""\
        import time
        from hsm_core.start_lock import start_lock
        with start_lock({str(task)!r}):
            print("held", flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        assert start_lock_held(task)
        child.kill()
        child.wait()
        assert not start_lock_held(task)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_waiting_start_goes_on_once_the_holder_lets_go_and_says_why_it_waited(tmp_path: Path, monkeypatch) -> None:
    import hsm_core.start_lock as sl

    monkeypatch.setattr(sl, "WAIT_NOTE_AFTER", 0.1)
    task = tmp_path / "task_001"
    task.mkdir()
    notes: list[str] = []
    got = threading.Event()
    with start_lock(task):
        def waiter() -> None:
            with start_lock(task, on_wait=lambda: notes.append("waiting")):
                got.set()
        th = threading.Thread(target=waiter)
        th.start()
        assert not got.wait(0.5)  # held: the second start waits
    th.join(timeout=10)
    assert got.is_set() and notes == ["waiting"]


def test_no_directory_no_lock(tmp_path: Path) -> None:
    """A task dir that is not there (yet): the start goes on without the lock and says what is
    wrong itself."""
    with start_lock(tmp_path / "missing") as held:
        assert held is False
    assert start_lock_held(tmp_path / "missing") is False


def test_ctrl_c_of_a_replacement_waiting_for_a_stopped_start_ends_it(tmp_path: Path, takeovers) -> None:
    """The first controller is stopped inside a start, holding that task's lock, and stays
    stopped (a forgotten Ctrl-Z). The replacement starts the other tasks; Ctrl-C in its terminal
    ends it (exit 130) without waiting for the stopped one, and nothing runs twice."""
    t = Takeover(tmp_path, "_started_elsewhere")
    takeovers.append(t)
    assert t.second.poll() is None, t.said()
    t.second.send_signal(signal.SIGINT)
    t.second.wait(timeout=60)  # a hang fails here (the stopped start must not hold Ctrl-C up)
    assert_clean_exit(t.second, (130,), t.said())
    # (The task the replacement ran was interrupted by the Ctrl-C: ended or not, each ran once.)
    runs = read_runs(t.log)
    assert runs and all(len(execs) == 1 for execs in runs.values()), runs
    assert not overlapping(runs), runs
