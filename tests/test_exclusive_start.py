"""Exactly once even when a controller is suspended inside a launch (hsm_core/attempt_claim.py).

A controller asks whether it still holds the sweep's lease right before each launch; one stopped
*inside* the launch (Ctrl-Z, a suspended laptop) for longer than ``controller_lease_timeout`` is
replaced, and when it is continued it goes on with the start it was making. The tests stop a real
``hsm run`` at an exact point of its launch (a Python launcher that makes one function of the task
runner SIGSTOP its own process, as tests/test_whole_file.py makes ``link`` kill it), let a second
terminal's ``hsm complete`` take over, continue the first, and judge from each task's own log
(start and end lines with times, hsm_core.testing.runlog): every task ran once, no two copies
overlapped. The same for an array element whose job script runs twice (the shell fast path and
the Python runner, tests/test_fast_runner.py's way of running the real job script), while a
legitimate new attempt (a retry, a requeued element) still runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from chaos_support import assert_clean_exit, hsm, hsm_popen, output_of, stop, task_ids, wait_until
from hsm_core import attempt_claim
from hsm_core.taskdir import ATTEMPT_CLAIM_PREFIX
from hsm_core.testing.runlog import RUNLOG_SCRIPT, check_once, read_runs

CORE = {"HSM_DISABLE_PLUGINS": "all"}
LEASE_TIMEOUT = 1.5

#: Runs ``hsm ARGS`` (argv[3:]) in a process that SIGSTOPs itself the first time the task runner's
#: function argv[2] is called (having touched argv[1] first): a controller suspended at that exact
#: point of a launch. ``start_task``: after the controller's last lease check, before the start
#: (before the claim); ``open_output``: inside the start, its attempt planned (and claimed).
STOPPED_AT = r'''
import os, runpy, signal, sys
flag, point = sys.argv[1], sys.argv[2]
import hsm_core.runner as runner
original = getattr(runner, point)
done = []
def stopping(*args, **kwargs):
    if not done:
        done.append(1)
        open(flag, "w").close()
        os.kill(os.getpid(), signal.SIGSTOP)
    return original(*args, **kwargs)
setattr(runner, point, stopping)
sys.argv = ["hsm", *sys.argv[3:]]
runpy.run_module("hsm_core", run_name="__main__")
'''


def _project(root: Path, parallel: int = 2) -> Path:
    root.mkdir(parents=True)
    log = root / "runs.log"
    (root / "train.py").write_text(RUNLOG_SCRIPT.format(log=str(log), fail_flag=str(root / "fail.flag")))
    (root / "hsm_config.yaml").write_text(textwrap.dedent(f"""\
        project:
          name: excl
        paths:
          python_interpreter: {sys.executable}
          train_script: train.py
        compute:
          local:
            max_parallel_jobs: {parallel}
            kill_grace: 2
          controller_lease_timeout: {LEASE_TIMEOUT}
        """))
    sweep = root / "sweeps" / "sweep.yaml"
    sweep.parent.mkdir(parents=True)
    sweep.write_text(yaml.safe_dump({"grid": {"x": [0, 1, 2], "sleep": [1.0]}}))
    return log


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


@pytest.mark.parametrize("point", ["start_task", "open_output"])
def test_controller_suspended_inside_a_launch_starts_nothing_twice(tmp_path: Path, point: str) -> None:
    """`hsm run` stopped inside its first launch until its lease is stale; `hsm complete` from a
    second terminal takes over; the first is continued once the second has started what it could.
    ``start_task``: the stopped one had not claimed the attempt yet, the new holder runs the task and
    the continued one starts nothing; ``open_output``: it had, the new holder starts nothing of
    that task and watches the copy the continued one then starts."""
    root = tmp_path / "proj"
    log = _project(root)
    sweep_dir = root / "sweeps" / "outputs" / "s"
    lease = sweep_dir / ".controller" / "lease.lock"
    flag = tmp_path / "stopped"
    first = hsm_popen(root, "run", "--config", "sweeps/sweep.yaml", "--sweep-id", "s", env=CORE,
                      python_prefix=["-c", STOPPED_AT, str(flag), point])
    procs = [first]
    try:
        wait_until(lambda: flag.exists() and _state(first.pid) == "T" or first.poll() is not None, 60,
                   "the controller to stop inside its launch")
        assert first.poll() is None, output_of(first)
        wait_until(lambda: time.time() - lease.stat().st_mtime > LEASE_TIMEOUT + 0.3, 30, "its lease to go stale")
        second = hsm_popen(root, "complete", "s", env=CORE)
        procs.append(second)

        def taken() -> bool:
            try:
                return json.loads(lease.read_text()).get("pid") == second.pid
            except (OSError, ValueError):
                return False
        wait_until(lambda: taken() or second.poll() is not None, 60, "the second controller to take over")
        # The new holder plans and starts what it can (its tasks run 1 s); then the first goes on.
        wait_until(lambda: len(read_runs(log)) >= 2 or second.poll() is not None, 60, "the new holder to start tasks")
        time.sleep(0.3)
        first.send_signal(signal.SIGCONT)
        for proc in procs:
            proc.wait(timeout=90)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                stop(proc)
    ids = task_ids(sweep_dir)
    problems = check_once(read_runs(log), ids.values())
    assert not problems, "\n".join(problems) + "\n--- first:\n" + output_of(first) + "\n--- second:\n" + output_of(second)
    assert_clean_exit(second, (0,))
    assert_clean_exit(first, (0, 2))
    said = output_of(first) + output_of(second)
    # The start that was not made says so, in the terminal of its controller and in the sweep's log.
    assert "attempt 1 not started here" in said, said
    assert "attempt 1 not started here" in (sweep_dir / "logs" / "sweep.log").read_text()
    status = hsm(root, "status", "s", "--json", env=CORE)
    info = json.loads(status.stdout)
    assert info["counts"].get("completed") == 3, info
    # One claim file per task, the latest attempt's; no temporaries left.
    for name in ids:
        left = sorted(p.name for p in (sweep_dir / "tasks" / name).iterdir() if p.name.startswith((".", ".."))
                      and ATTEMPT_CLAIM_PREFIX in p.name)
        assert left == [f"{ATTEMPT_CLAIM_PREFIX}1"], left


# --------------------------------------------------------------------------------------------
# The protocol, in one process
# --------------------------------------------------------------------------------------------


def test_an_attempt_is_claimed_once_and_a_late_claim_of_an_earlier_one_loses(tmp_path: Path) -> None:
    d = tmp_path / "task_001"
    d.mkdir()
    attempt_claim.claim(d, 1)
    with pytest.raises(attempt_claim.AttemptTaken, match="attempt 1 not started here: it was already started by pid"):
        attempt_claim.claim(d, 1)
    attempt_claim.claim(d, 2)  # a new attempt (a retry) is claimed, and the earlier claim goes
    assert attempt_claim.claimed(d) == [2]
    # A starter of attempt 1 continued only now finds its name free, and the later claim.
    with pytest.raises(attempt_claim.AttemptTaken, match="attempt 2 was started since"):
        attempt_claim.claim(d, 1)
    assert attempt_claim.claimed(d) == [2]


def test_a_claim_left_by_a_start_cut_off_before_its_command_is_planned_past(tmp_path: Path) -> None:
    d = tmp_path / "task_001"
    d.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    import socket

    attempt_claim.claim_path(d, 1).write_text(f"{socket.gethostname()} {pid} - -\n")
    assert attempt_claim.planned_attempt(d, {}) == 2
    # A live claimer (this process) is never planned past.
    attempt_claim.claim_path(d, 1).write_text(f"{socket.gethostname()} {os.getpid()} - -\n")
    assert attempt_claim.planned_attempt(d, {}) == 1
    # An earlier run of the same job, requeued since, is over.
    attempt_claim.claim_path(d, 1).write_text("node7 4242 77 -\n")
    assert attempt_claim.planned_attempt(d, {}, {"HSM_JOB_ID": "77", "HSM_JOB_RESTART": "1"}) == 2
    assert attempt_claim.planned_attempt(d, {}, {"HSM_JOB_ID": "77"}) == 1
