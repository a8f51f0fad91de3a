"""One controller per sweep: the controller lease (hsm_core/lease.py), through the real ``hsm``.

Every task logs its own start and end (hsm_core.testing.runlog); executions are counted from that
log, never from hsm's records. Each test's timing has wide margins: tasks outlast the start-up of
a second ``hsm`` by seconds, and the only timeouts waited for are the tiny lease timeouts the tests
configure.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from hsm_core.testing.project import Project, make_project, wait_for
from hsm_core.testing.runlog import RUNLOG_SCRIPT, check_once, read_runs

SWEEP = "s"
HOST = socket.gethostname()


@pytest.fixture
def lease_project(tmp_path: Path) -> Project:
    return _project(tmp_path)


def _project(tmp_path: Path, *, timeout: float | None = None, parallel: int = 2) -> Project:
    extra = f"  controller_lease_timeout: {timeout}\n" if timeout else ""
    project = make_project(
        tmp_path / "proj",
        script=RUNLOG_SCRIPT.format(log=str(tmp_path / "runs.log"), fail_flag=str(tmp_path / "fail.flag")),
        config_extra=extra,
    )
    if parallel != 2:
        cfg = project.root / "hsm_config.yaml"
        cfg.write_text(cfg.read_text().replace("max_parallel_jobs: 2", f"max_parallel_jobs: {parallel}"))
    return project


def _runs_log(project: Project) -> Path:
    return project.root.parent / "runs.log"


def _write_sweep(project: Project, n: int, sleep: float) -> Path:
    return project.write_sweep({"grid": {"x": list(range(n)), "sleep": [sleep]}})


def _failed_sweep(project: Project, n: int, sleep: float) -> Path:
    """A sweep whose first run failed every task (a bug since fixed): ``--retry-failed`` runs them."""
    flag = project.root.parent / "fail.flag"
    flag.write_text("")
    cfg = _write_sweep(project, n, sleep)
    first = project.hsm("run", "--config", str(cfg), "--sweep-id", SWEEP)
    assert first.returncode == 1, first.stdout + first.stderr
    flag.unlink()
    return project.outputs / SWEEP


def _task_ids(sweep: Path) -> set[str]:
    return {str(yaml.safe_load((d / "params.yaml").read_text())["task_id"]) for d in (sweep / "tasks").iterdir()}


def _assert_once(project: Project, sweep: Path, n: int) -> None:
    ids = _task_ids(sweep)
    assert len(ids) == n
    problems = check_once(read_runs(_runs_log(project)), ids)
    assert not problems, "\n".join(problems)


def _status(project: Project) -> dict:
    out = project.hsm("status", SWEEP, "--json", check=True)
    return json.loads(out.stdout)


def _assert_finished(project: Project, n: int) -> None:
    info = _status(project)
    assert info["counts"]["completed"] == n, info
    assert info["status"] == "completed", info
    assert info["controller"] is None, info


def _lease_file(sweep: Path) -> Path:
    return sweep / ".controller" / "lease.lock"


def _running(sweep: Path) -> list[str]:
    """Task dirs whose status says running with a started process."""
    out = []
    for d in sorted((sweep / "tasks").iterdir()) if (sweep / "tasks").is_dir() else []:
        try:
            st = yaml.safe_load((d / "status.yaml").read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        if st.get("state") == "running" and str(st.get("process") or "").split(":")[0].isdigit():
            out.append(d.name)
    return out


def _finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"hsm hung (killed after {timeout}s):\n{out}\n{err}")
    return proc.returncode, out, getattr(proc, "_peeked", "") + err


def _assert_refused(err: str, *, by: str, pid: int | str, host: str = HOST) -> None:
    """The second controller's answer: one line naming the holder and how to watch it, no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    line = lines[0]
    assert line.startswith(f"Error: sweep {SWEEP} is being run by {by} (pid {pid} on host {host}, since "), line
    assert f"watch it with: hsm monitor watch {SWEEP}" in line, line
    assert f"hsm complete {SWEEP} --wait-for-controller" in line, line


def test_two_completes_started_together_run_each_task_once(lease_project: Project) -> None:
    project = lease_project
    sweep = _failed_sweep(project, 6, 3.0)
    procs = [project.popen("complete", SWEEP, "--retry-failed") for _ in range(2)]
    results = [_finish(p) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 2], results
    winner = procs[[r[0] for r in results].index(0)]
    loser = [r for r in results if r[0] == 2][0]
    _assert_refused(loser[2], by="hsm complete", pid=winner.pid)
    _assert_once(project, sweep, 6)
    _assert_finished(project, 6)
    assert not _lease_file(sweep).exists()


def test_complete_during_run_is_refused_then_waits_for_it(lease_project: Project) -> None:
    project = lease_project
    cfg = _write_sweep(project, 4, 2.5)
    run = project.popen("run", "--config", str(cfg), "--sweep-id", SWEEP)
    sweep = project.outputs / SWEEP
    wait_for(lambda: _running(sweep), 60, what="a running task")

    second = project.hsm("complete", SWEEP)
    assert second.returncode == 2, second.stdout + second.stderr
    _assert_refused(second.stderr, by="hsm run", pid=run.pid)

    # hsm status names the holder; a dry run takes no lease and says who holds it.
    ctl = _status(project)["controller"]
    assert (ctl["command"], ctl["pid"], ctl["host"]) == ("hsm run", run.pid, HOST), ctl
    dry = project.hsm("complete", SWEEP, "--dry-run")
    assert dry.returncode == 0 and "being run now by hsm run (pid" in dry.stdout, dry.stdout + dry.stderr

    waiter = project.popen("complete", SWEEP, "--wait-for-controller")
    wait_for(lambda: waiter.poll() is not None or run.poll() is not None or "waiting for it to end" in _peek(waiter),
             30, what="the waiting complete to start")
    assert run.poll() is None and waiter.poll() is None, "the waiter must still wait while hsm run runs"
    code, out, err = _finish(run)
    assert code == 0, out + err
    code, out, err = _finish(waiter)
    assert code == 0 and "Traceback" not in err, out + err
    assert f"is being run by hsm run (pid {run.pid} on host {HOST}" in err, err
    assert "Nothing to run" in out, out
    _assert_once(project, sweep, 4)
    _assert_finished(project, 4)


def _peek(proc: subprocess.Popen) -> str:
    """What a process started with stderr piped has written so far (non-blocking)."""
    import fcntl

    fd = proc.stderr.fileno()  # type: ignore[union-attr]
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
    try:
        chunk = os.read(fd, 65536).decode(errors="replace")
    except BlockingIOError:
        chunk = ""
    proc._peeked = getattr(proc, "_peeked", "") + chunk  # type: ignore[attr-defined]
    return proc._peeked  # type: ignore[attr-defined]


def test_killed_controller_lease_is_taken_over_and_its_tasks_adopted(lease_project: Project) -> None:
    project = lease_project
    cfg = _write_sweep(project, 4, 4.0)
    run = project.popen("run", "--config", str(cfg), "--sweep-id", SWEEP)
    sweep = project.outputs / SWEEP
    running = wait_for(lambda: len(_running(sweep)) == 2 and _running(sweep), 60, what="two running tasks")
    run.send_signal(signal.SIGKILL)
    run.communicate()
    assert _lease_file(sweep).exists()  # left behind: its holder is gone
    assert _status(project)["controller"] is None  # a dead holder is not shown as running it

    started = time.monotonic()
    done = project.hsm("complete", SWEEP, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Completing sweep" in done.stdout
    log = (sweep / "logs" / "sweep.log").read_text()
    assert f"taken over from hsm run (pid {run.pid} on host {HOST}" in log and "is gone" in log, log
    assert "2 to watch" in log, log  # the two still running were adopted, not started again
    _assert_once(project, sweep, 4)
    _assert_finished(project, 4)
    assert running and time.monotonic() - started < 60


def _foreign_lease(sweep: Path, *, declared_timeout: float, age: float = 0.0) -> Path:
    """A lease held by a controller on another machine sharing this filesystem."""
    path = _lease_file(sweep)
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({
        "host": "elsewhere", "machine": "elsewhere|0000-boot|4026531836", "pid": 4242, "pid_start": "1",
        "cluster": "local", "job": None, "command": "hsm complete", "lease_timeout": declared_timeout,
        "run_id": "lease", "token": "f" * 32, "start_time": "2026-01-02T03:04:05+00:00",
    }))
    when = time.time() - age
    os.utime(path, (when, when))
    return path


def test_lease_from_another_machine_is_taken_over_only_when_stale(tmp_path: Path) -> None:
    timeout = 5.0
    project = _project(tmp_path, timeout=timeout)
    sweep = _failed_sweep(project, 3, 0.2)

    _foreign_lease(sweep, declared_timeout=timeout)  # fresh: it is live
    held = project.hsm("complete", SWEEP, "--retry-failed")
    assert held.returncode == 2, held.stdout + held.stderr
    _assert_refused(held.stderr, by="hsm complete", pid=4242, host="elsewhere")
    assert _status(project)["controller"]["host"] == "elsewhere"

    # Older than our timeout but younger than the one its holder declared: still its own (the
    # message says how long it has been silent: over twice its 10 s heartbeat).
    _foreign_lease(sweep, declared_timeout=600, age=25)
    held = project.hsm("complete", SWEEP, "--retry-failed")
    assert held.returncode == 2, held.stdout + held.stderr
    assert "no heartbeat for" in held.stderr, held.stderr
    assert not read_runs(_runs_log(project))

    _foreign_lease(sweep, declared_timeout=timeout, age=timeout + 2)  # stale
    done = project.hsm("complete", SWEEP, "--retry-failed")
    assert done.returncode == 0, done.stdout + done.stderr
    log = (sweep / "logs" / "sweep.log").read_text()
    assert "taken over from hsm complete (pid 4242 on host elsewhere" in log and "no heartbeat for" in log, log
    _assert_once(project, sweep, 3)
    _assert_finished(project, 3)


def test_waiting_complete_takes_a_foreign_lease_once_it_is_stale(tmp_path: Path) -> None:
    timeout = 3.0
    project = _project(tmp_path, timeout=timeout)
    sweep = _failed_sweep(project, 2, 0.1)
    lease = _foreign_lease(sweep, declared_timeout=timeout)
    stale_at = lease.stat().st_mtime + timeout
    done = project.hsm("complete", SWEEP, "--retry-failed", "--wait-for-controller", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is being run by hsm complete (pid 4242 on host elsewhere" in done.stderr and "waiting" in done.stderr
    runs = read_runs(_runs_log(project))
    assert runs and min(e.start for execs in runs.values() for e in execs) >= stale_at
    _assert_once(project, sweep, 2)


def test_suspended_controller_that_lost_its_lease_launches_nothing_more(tmp_path: Path) -> None:
    project = _project(tmp_path, timeout=2.0)
    n = 6
    sweep = _failed_sweep(project, n, 3.0)
    first = project.popen("complete", SWEEP, "--retry-failed")
    wait_for(lambda: len(_running(sweep)) == 2, 60, what="two running tasks")
    first.send_signal(signal.SIGSTOP)  # Ctrl-Z, a suspended laptop, a frozen node
    try:
        lease = _lease_file(sweep)
        wait_for(lambda: time.time() - lease.stat().st_mtime > 2.5, 30, what="the lease to go stale")
        second = project.popen("complete", SWEEP, "--retry-failed")
        wait_for(lambda: json.loads(lease.read_text()).get("pid") == second.pid or second.poll() is not None, 60,
                 what="the second controller to take the lease over")
    finally:
        first.send_signal(signal.SIGCONT)
    code1, out1, err1 = _finish(first)
    code2, out2, err2 = _finish(second)
    assert code2 == 0, out2 + err2
    assert code1 == 2 and "Traceback" not in err1, out1 + err1
    assert f"was taken over by hsm complete (pid {second.pid} on host {HOST}" in err1, err1
    assert f"hsm monitor watch {SWEEP}" in err1
    log = (sweep / "logs" / "sweep.log").read_text()
    assert f"controller lease of pid {first.pid} lost to hsm complete (pid {second.pid}" in log, log
    _assert_once(project, sweep, n)
    _assert_finished(project, n)


def test_lease_is_released_on_errors_and_interrupts(lease_project: Project) -> None:
    project = lease_project
    sweep = _failed_sweep(project, 2, 5.0)
    assert not _lease_file(sweep).exists()  # released by the run that failed every task
    bad = project.hsm("complete", SWEEP, "--retry-failed", "--sources", "nosuch:1")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
    assert not _lease_file(sweep).exists()

    proc = project.popen("complete", SWEEP, "--retry-failed")
    wait_for(lambda: _running(sweep), 60, what="a running task")
    proc.send_signal(signal.SIGINT)
    code, out, err = _finish(proc)
    assert code == 130, out + err
    assert not _lease_file(sweep).exists()
    again = project.hsm("complete", SWEEP, "--retry-failed", "--dry-run")
    assert again.returncode == 0 and "being run now" not in again.stdout


def test_an_empty_lease_left_by_a_controller_killed_as_it_took_it_says_when_it_is_taken_over(tmp_path: Path) -> None:
    # What a controller of an older hsm (or one on a filesystem without hard links, see
    # hsm_core/whole_file.py) SIGKILLed between creating the lease file and writing itself into it
    # leaves: whose it is cannot be known, so it is refused until it times out, and says when.
    timeout = 4.0
    project = _project(tmp_path, timeout=timeout)
    sweep = _failed_sweep(project, 2, 0.1)
    lease = _lease_file(sweep)
    lease.parent.mkdir(exist_ok=True)
    lease.write_text("")
    held = project.hsm("complete", SWEEP, "--retry-failed")
    assert held.returncode == 2 and "Traceback" not in held.stderr, held.stdout + held.stderr
    assert "lease file .controller/lease.lock is unreadable" in held.stderr
    assert f"taken over {timeout:g}s after it was made" in held.stderr and "--wait-for-controller" in held.stderr
    assert not read_runs(_runs_log(project))
    done = project.hsm("complete", SWEEP, "--retry-failed", "--wait-for-controller", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    _assert_once(project, sweep, 2)
