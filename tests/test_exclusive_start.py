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
import time
from pathlib import Path

import pytest
import yaml

from chaos_support import assert_clean_exit, hsm, hsm_popen, output_of, stop, task_ids, wait_until, write_chaos_project
from hsm_core import attempt_claim
from hsm_core.taskdir import ATTEMPT_CLAIM_PREFIX
from hsm_core.testing.runlog import RUNLOG_SCRIPT, check_once, read_runs

CORE = {"HSM_DISABLE_PLUGINS": "all"}
LEASE_TIMEOUT = 1.5

#: Runs ``hsm ARGS`` (argv[3:]) in a process that SIGSTOPs itself the first time the task runner's
#: function argv[2] is called (having touched argv[1] first; ``NAME+``: once it returned): a controller
#: suspended at that exact point of a launch. ``start_task``: after the controller's last lease
#: check, before the start (before the claim); ``open_output``: inside the start, its attempt
#: planned (and claimed); ``write_status+``: its ``process: starting`` record written, the command
#: not started yet (a record the new holder's look closes as interrupted once it is old enough).
STOPPED_AT = r'''
import os, runpy, signal, sys, threading
flag, point = sys.argv[1], sys.argv[2]
after = point.endswith("+")  # stop once the function has returned
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


def _project(root: Path, parallel: int = 2) -> Path:
    log = root / "runs.log"
    write_chaos_project(root, parallel=parallel, extra_config=f"  controller_lease_timeout: {LEASE_TIMEOUT}\n",
                        script=RUNLOG_SCRIPT.format(log=str(log), fail_flag=str(root / "fail.flag")))
    sweep = root / "sweeps" / "sweep.yaml"
    sweep.parent.mkdir(parents=True)
    sweep.write_text(yaml.safe_dump({"grid": {"x": [0, 1, 2], "sleep": [1.0]}}))
    return log


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


@pytest.mark.parametrize("point", ["start_task", "open_output", "write_status+"])
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


def test_a_status_that_lost_its_count_never_plans_below_the_latest_claim(tmp_path: Path) -> None:
    """A torn or rebuilt status reads as "never started": the task must still run (as attempt 4
    after a dead runner's claim of 3), and wait for a live claimer of 3 rather than start 1."""
    import socket

    d = tmp_path / "task_001"
    d.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    attempt_claim.claim_path(d, 3).write_text(f"{socket.gethostname()} {int(dead.stdout)} - -\n")
    assert attempt_claim.planned_attempt(d, None) == 4
    attempt_claim.claim_path(d, 3).write_text(f"{socket.gethostname()} {os.getpid()} - -\n")
    assert attempt_claim.planned_attempt(d, None) == 3


# --------------------------------------------------------------------------------------------
# Array elements: the real job script's runners (the shell fast path, then the Python runner)
# --------------------------------------------------------------------------------------------

#: The task: logs its start and end (pid, time) to the shared log, and waits for a release file
#: when its parameter says so (a task still running when its duplicate starts).
ELEMENT_TASK = r'''
import os, sys, time
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
log = args["log"]
def note(word):
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, ("%s %s %.6f %d\n" % (word, os.environ["HSM_TASK_ID"], time.time(), os.getpid())).encode())
    os.close(fd)
note("start")
release = args.get("release")
if release:
    while not os.path.exists(release):
        time.sleep(0.02)
note("end")
sys.exit(int(args.get("code", "0")))
'''


def _element_sweep(tmp_path: Path, **params: str):
    from hsm_core import fastrun
    from hsm_core.plugin.arrayjob.manifest import write_submitted
    from hsm_core.testing import make_sweep

    root = (tmp_path / "proj").resolve()
    log = tmp_path / "runs.log"
    sweep, specs, _ = make_sweep(root, [{"log": str(log), **params}], script=ELEMENT_TASK)
    job_dir = sweep.path / "scripts" / "job_scripts"
    job_dir.mkdir(parents=True, exist_ok=True)
    lst = job_dir / "dict_001.list"
    lst.write_text(os.path.relpath(specs[0].task_dir, job_dir) + "\n")

    def submit() -> None:
        write_submitted(specs, source="dict", per_element=1, script="dict_001.sh")
        (job_dir / fastrun.PROGRAM_NAME).write_text(fastrun.program())
        assert fastrun.write_for_task(specs[0].task_dir)

    submit()
    return specs[0], lst, log, submit


def _element(lst: Path, how: str, job: str = "77_0", restart: str = "") -> subprocess.Popen:
    """One run of element 0's job script: ``script`` as hsm's job scripts do it (the shell fast
    path, else the Python runner), ``python`` the Python runner alone."""
    from hsm_core import fastrun

    args = ["--list", str(lst), "--source", "dict", "--index", "0"]
    env = {**os.environ, "HSM_JOB_ID": job, "HSM_JOB_RESTART": restart, "HSM_ARRAY_INDEX": "0"}
    if how == "python":
        argv = [sys.executable, "-m", "hsm_core.runner", *args]
    else:
        argv = ["bash", "-c", f'. "$0" "$@"; exec {sys.executable} -m hsm_core.runner "$@"',
                str(lst.parent / fastrun.PROGRAM_NAME), *args]
    return subprocess.Popen(argv, env=env, cwd=lst.parent, stderr=subprocess.PIPE, text=True)


def _executions(log: Path) -> list[tuple[str, ...]]:
    return [tuple(line.split()) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.mark.parametrize("how", ["script", "python"])
def test_an_element_whose_job_script_runs_twice_runs_its_task_once(tmp_path: Path, how: str) -> None:
    """The job script of one element run a second time while the first still runs (a job
    submitted twice, a script started twice): the second starts nothing and changes nothing."""
    release = tmp_path / "release"
    spec, lst, log, _ = _element_sweep(tmp_path, release=str(release))
    first = _element(lst, how)
    wait_until(lambda: len(_executions(log)) == 1, 30, "the task to start")
    wait_until(lambda: (attempt_claim.read_status_attempt(spec.task_dir) == 1), 30, "its running record")
    before = {p.name: p.read_bytes() for p in spec.task_dir.iterdir() if p.is_file()}
    second = _element(lst, how)
    _, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert "attempt 1 not started here: it was already started by pid" in err, err
    assert {p.name: p.read_bytes() for p in spec.task_dir.iterdir() if p.is_file()} == before
    release.write_text("")
    assert first.wait(timeout=60) == 0, first.stderr.read()
    runs = _executions(log)
    assert [r[0] for r in runs] == ["start", "end"], runs
    from hsm_core.taskdir import read_status

    status = read_status(spec.task_dir)
    assert status["state"] == "completed" and status["attempt"] == 1, status
    # Once it ended, a third run (another job's element for the same submission) starts nothing either.
    third = _element(lst, how, job="88_0")
    _, err = third.communicate(timeout=60)
    assert third.returncode == 0 and len(_executions(log)) == 2


def test_a_duplicate_element_after_the_attempt_failed_does_not_run_it_again(tmp_path: Path) -> None:
    """Two jobs were submitted for one attempt; the first ran it and it failed: the second job's
    element finds the attempt done by another job and runs nothing (hsm decides about a retry)."""
    spec, lst, log, _ = _element_sweep(tmp_path, code="3")
    assert _element(lst, "script", job="77_0").wait(timeout=60) == 3
    dup = _element(lst, "script", job="88_0")
    _, err = dup.communicate(timeout=60)
    assert dup.returncode == 0 and "attempt 1 not started here" in err, err
    assert [r[0] for r in _executions(log)] == ["start", "end"]


def test_a_claim_taken_by_a_live_runner_holds_and_a_dead_one_s_is_planned_past(tmp_path: Path) -> None:
    """Both runs read ``submitted`` (the first claimed, and has not recorded its start yet): the
    second runs nothing while the claimer lives; a claimer gone before recording its start (killed
    with its job) blocks nothing: the next run starts the attempt after it."""
    import socket

    spec, lst, log, _ = _element_sweep(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        attempt_claim.claim_path(spec.task_dir, 1).write_text(f"{socket.gethostname()} {holder.pid} - -\n")
        run = _element(lst, "script")
        _, err = run.communicate(timeout=60)
        assert run.returncode == 0 and "attempt 1 not started here" in err, err
        assert _executions(log) == []
    finally:
        holder.kill()
        holder.wait()
    run = _element(lst, "script")
    _, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    from hsm_core.taskdir import read_status

    assert [r[0] for r in _executions(log)] == ["start", "end"]
    assert read_status(spec.task_dir)["attempt"] == 2
    assert attempt_claim.claimed(spec.task_dir) == [2]


@pytest.mark.parametrize("how", ["script", "python"])
def test_a_requeued_element_and_a_resubmitted_task_still_run(tmp_path: Path, how: str) -> None:
    """Legitimate new attempts: the element killed with its job and requeued by the scheduler
    (same job, restart count 1), then a resubmission (``hsm complete`` after a failure)."""
    release = tmp_path / "release"
    spec, lst, log, submit = _element_sweep(tmp_path, release=str(release))
    first = _element(lst, how, restart="")
    wait_until(lambda: attempt_claim.read_status_attempt(spec.task_dir) == 1 and len(_executions(log)) == 1, 30,
               "the task to start")
    # The node dies: the job's processes all go at once (nothing records the end).
    pids = [int(r[3]) for r in _executions(log)] + [first.pid]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    first.wait(timeout=30)
    wrapper = (spec.task_dir / ".hsm_pid")
    if wrapper.exists():
        try:
            os.kill(int(wrapper.read_text().split()[0]), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    release.write_text("")
    requeued = _element(lst, how, restart="1")
    _, err = requeued.communicate(timeout=60)
    assert requeued.returncode == 0, err
    from hsm_core.taskdir import read_status

    status = read_status(spec.task_dir)
    assert status["state"] == "completed" and status["attempt"] == 2, status
    # A resubmission after that (the task edited and run again by hsm complete --force-like flows
    # write "submitted" with the last attempt's number): attempt 3 runs.
    submit()
    again = _element(lst, how, job="99_0")
    _, err = again.communicate(timeout=60)
    status = read_status(spec.task_dir)
    assert again.returncode == 0 and status["attempt"] == 3, (err, status)
    assert [r[0] for r in _executions(log)] == ["start", "start", "end", "start", "end"]
    assert attempt_claim.claimed(spec.task_dir) == [3]
