"""The task runner's shell fast path (hsm_core/fastrun.py) records what the Python runner records.

Every scenario runs one array element the way a job script does, once through the Python runner
(``python -m hsm_core.runner --list ... --index I``) and once through the fast path (``. hsm-fastrun.bash
... --index I`` in bash, the job script's own shell), each in a sweep of its own, and compares the
``status.yaml`` they leave (times, pids and paths aside), the task's output and environment, and
the wrapper's markers. The fast-path run fails when the fast path does not apply (its fallback is
``exit 99`` here), so a silent fall-back to the Python runner cannot pass for it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import pytest

from hsm_core import fastrun, processes
from hsm_core.plugin.arrayjob.manifest import write_submitted
from hsm_core.taskdir import (
    COMMAND_FILE,
    COMMAND_SCRIPT,
    EXIT_MARKER,
    PID_FILE,
    keep_source_data,
    read_command,
    read_status,
    started_process,
    stdout_path,
    write_command,
)
from hsm_core.testing import make_sweep
from signal_at_syscall import signal_at_open

RUNNERS = ("python", "fast")
FALLBACK = 99

# The task: what it does is chosen by its parameters (mode=..., and the files it waits for).
TASK = r'''
import json, os, signal, sys, time
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
mode = args.get("mode", "ok")
task_dir = os.environ["HSM_TASK_DIR"]
def mark(name):
    open(os.path.join(task_dir, name), "w").close()
print("ENV", json.dumps({k: v for k, v in sorted(os.environ.items()) if k.startswith("HSM_") or k in ("MY_VAR", "MY_PATH", "PYTHONUNBUFFERED")}))
print("CWD", os.getcwd())
sys.stdout.flush()
if mode == "fail":
    sys.exit(3)
if mode == "selfkill":
    os.kill(os.getpid(), signal.SIGKILL)
if mode == "checkpoint":  # a training script: saves and exits 0 on the warning signal
    def save(signum, frame):
        mark("checkpoint.saved")
        sys.exit(0)
    signal.signal(signal.SIGUSR1, save)
    signal.signal(signal.SIGTERM, save)
if mode in ("wait", "checkpoint"):
    mark("task.started")
    for _ in range(600):
        if os.path.exists(os.path.join(task_dir, "task.release")):
            break
        time.sleep(0.05)
print("done", mode)
'''


def _sweep(root: Path, params: list[dict[str, Any]]):
    sweep, specs, _ = make_sweep(root, params, script=TASK)
    for spec in specs:
        command = read_command(spec.task_dir)
        command["env"] = {"MY_VAR": "it's $HOME \"quoted\"", "MY_PATH": "${HSM_TASK_DIR}/data:${HSM_OUTPUT_DIR}"}
        write_command(spec.task_dir, command)
    job_dir = sweep.path / "scripts" / "job_scripts"
    job_dir.mkdir(parents=True, exist_ok=True)
    lst = job_dir / "dict_001.list"
    lst.write_text("".join(os.path.relpath(s.task_dir, job_dir) + "\n" for s in specs))
    return sweep, specs, lst


def _submit(specs, lst: Path) -> None:
    """What a submission writes: the ``submitted`` statuses, the fast path and each ``command.sh``."""
    write_submitted(specs, source="dict", per_element=1, script="dict_001.sh")
    (lst.parent / fastrun.PROGRAM_NAME).write_text(fastrun.program())
    for spec in specs:
        assert fastrun.write_for_task(spec.task_dir)


def _start(runner: str, lst: Path, index: int, wrap: Sequence[str] = (), **env: str) -> subprocess.Popen:
    """Run element ``index`` with ``runner``; ``wrap``: a command to run it under (strace)."""
    args = ["--list", str(lst), "--source", "dict", "--index", str(index)]
    environ = {**os.environ, "HSM_JOB_ID": f"77_{index}", "HSM_JOB_RESTART": "0", "HSM_ARRAY_INDEX": str(index), **env}
    if runner == "python":
        argv = [sys.executable, "-m", "hsm_core.runner", *args]
    else:
        argv = ["bash", "-c", f'. "$0" "$@"; exit {FALLBACK}', str(lst.parent / fastrun.PROGRAM_NAME), *args]
    return subprocess.Popen([*wrap, *argv], env=environ, cwd=lst.parent.parent.parent.parent.parent)


def _wait_for(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def _comparable(status: dict[str, Any], root: Path) -> dict[str, Any]:
    """A status without what differs between any two runs (times, pids, the sweep's root)."""
    out = {}
    for key, value in status.items():
        if key in ("start_time", "end_time", "start_epoch", "duration"):
            assert value is not None, key
            continue
        if key in ("process", "last_process"):
            pid, _, start = str(value).partition(":")
            assert pid.isdigit() and float(start) > 0, value
            continue
        if key == "attempts":
            value = [{k: v for k, v in a.items() if k not in ("start_time", "end_time")} for a in value]
        out[key] = json.loads(json.dumps(value, default=str).replace(str(root), "<root>"))
    return out


def _output(spec, root: Path) -> str:
    text = stdout_path(spec.task_dir).read_text()
    lines = [ln if not ln.startswith("==== hsm:") else ln.rsplit(" at ", 1)[0] for ln in text.splitlines()]
    return "\n".join(lines).replace(str(root), "<root>")


def _both(tmp_path: Path, params: list[dict[str, Any]], scenario: Callable[[str, Any, Path], int]):
    """Run ``scenario(runner, specs, list_file)`` with each runner in a sweep of its own; returns
    {runner: (exit code, [comparable status], [output], root)}."""
    results = {}
    for runner in RUNNERS:
        root = (tmp_path / runner).resolve()
        sweep, specs, lst = _sweep(root, params)
        _submit(specs, lst)
        code = scenario(runner, specs, lst)
        assert code != FALLBACK, "the fast path did not apply"
        statuses = [_comparable(read_status(s.task_dir) or {}, root) for s in specs]
        for s in specs:
            assert not (s.task_dir / PID_FILE).exists() and not (s.task_dir / EXIT_MARKER).exists()
        results[runner] = (code, statuses, [_output(s, root) for s in specs], specs)
    return results


def _same(results) -> tuple[int, list[dict[str, Any]]]:
    (code_p, st_p, out_p, _), (code_f, st_f, out_f, _) = results["python"], results["fast"]
    assert st_f == st_p
    assert out_f == out_p
    assert code_f == code_p
    return code_p, st_p


def _run_to_end(runner: str, specs, lst: Path) -> int:
    return _start(runner, lst, 0).wait(timeout=60)


@pytest.mark.parametrize("mode, state, code", [("ok", "completed", 0), ("fail", "failed", 3), ("selfkill", "failed", 137)])
def test_a_task_that_ends_by_itself_is_recorded_alike(tmp_path: Path, mode: str, state: str, code: int) -> None:
    rc, (status,) = _same(_both(tmp_path, [{"mode": mode}], _run_to_end))
    assert status["state"] == state and rc == code
    assert status["attempt"] == 1 and status["job_id"] == "77_0" and status["restart_count"] == "0"
    assert [a["state"] for a in status["attempts"]] == [state]
    if mode == "selfkill":
        assert status["exit_code"] == 128 + signal.SIGKILL and status["signal"] == "SIGKILL"


def test_the_task_sees_the_same_environment_and_working_directory(tmp_path: Path) -> None:
    results = _both(tmp_path, [{"mode": "ok"}], _run_to_end)
    _same(results)
    out = results["fast"][2][0]
    env = json.loads(out.splitlines()[0][4:])
    assert env["MY_VAR"] == "it's $HOME \"quoted\""
    assert env["MY_PATH"] == "<root>/sweeps/outputs/sweep_test/tasks/task_001/data:<root>/sweeps/outputs/sweep_test/tasks/task_001/results"
    assert env["HSM_TASK_ID"] and env["HSM_JOB_ID"] == "77_0" and env["PYTHONUNBUFFERED"] == "1"


def _signalled(signum: int, release: bool = False):
    def scenario(runner: str, specs, lst: Path) -> int:
        proc = _start(runner, lst, 0)
        _wait_for(specs[0].task_dir / "task.started")
        proc.send_signal(signum)
        if release:
            _wait_for(specs[0].task_dir / "checkpoint.saved")
        return proc.wait(timeout=60)
    return scenario


def test_a_job_stopped_by_sigterm_is_recorded_preempted(tmp_path: Path) -> None:
    rc, (status,) = _same(_both(tmp_path, [{"mode": "wait"}], _signalled(signal.SIGTERM)))
    assert status["state"] == "preempted" and status["signal_received"] == "SIGTERM"
    assert status["exit_code"] == 143 and status["signal"] == "SIGTERM" and rc == 143


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGUSR2])
def test_a_forwarded_signal_reaches_the_task_and_is_recorded(tmp_path: Path, signum: int) -> None:
    rc, (status,) = _same(_both(tmp_path, [{"mode": "wait"}], _signalled(signum)))
    assert status["state"] == "preempted" and status["signal_received"] == signal.Signals(signum).name
    assert status["exit_code"] == 128 + signum


def test_the_warning_signal_is_not_passed_to_a_task_without_a_handler(tmp_path: Path) -> None:
    # SIGUSR1's default action would kill the script a minute before its walltime: both runners
    # keep it from the task, which runs on (to its end here; to the walltime on a cluster).
    def scenario(runner: str, specs, lst: Path) -> int:
        proc = _start(runner, lst, 0)
        _wait_for(specs[0].task_dir / "task.started")
        proc.send_signal(signal.SIGUSR1)
        time.sleep(0.5)  # time enough to kill it, had the signal been passed on
        (specs[0].task_dir / "task.release").touch()
        return proc.wait(timeout=60)

    rc, (status,) = _same(_both(tmp_path, [{"mode": "wait"}], scenario))
    assert status["state"] == "completed" and "signal_received" not in status and rc == 0


def test_the_warning_signal_lets_a_training_script_checkpoint_and_complete(tmp_path: Path) -> None:
    results = _both(tmp_path, [{"mode": "checkpoint"}], _signalled(signal.SIGUSR1, release=True))
    rc, (status,) = _same(results)
    assert status["state"] == "completed" and status["signal_received"] == "SIGUSR1" and rc == 0
    assert (results["fast"][3][0].task_dir / "checkpoint.saved").exists()


def test_the_runner_s_own_warning_timer_lets_a_training_script_checkpoint(tmp_path: Path) -> None:
    """PBS and Torque have no warning directive: the job script sets ``HSM_WARNING_AT`` and the
    runner warns the task itself at that time. The fast path's timer does as the Python runner's."""
    def scenario(runner: str, specs, lst: Path) -> int:
        proc = _start(runner, lst, 0, HSM_WARNING_AT=str(int(time.time()) + 2))
        return proc.wait(timeout=60)  # the task waits (up to 30 s) for a release that never comes

    started = time.monotonic()
    results = _both(tmp_path, [{"mode": "checkpoint"}], scenario)
    # (The output differs in HSM_WARNING_AT's value, which the task prints with its environment.)
    (rc, (status,), _, _), (rc_f, statuses_f, _, _) = results["python"], results["fast"]
    assert statuses_f == [status] and rc_f == rc
    assert status["state"] == "completed" and status["signal_received"] == "SIGUSR1" and rc == 0
    assert (results["fast"][3][0].task_dir / "checkpoint.saved").exists()
    assert time.monotonic() - started < 20, "the warning came at its time, not at the task's end"


@pytest.mark.parametrize("loadables", [None, ""], ids=["bash-sleep-where-shipped", "sleep-command"])
def test_a_warning_time_that_never_comes_leaves_no_timer_behind(tmp_path: Path, loadables: str | None) -> None:
    at = str(int(time.time()) + 3600)
    env = {"HSM_WARNING_AT": at, **({} if loadables is None else {"BASH_LOADABLES_PATH": loadables})}

    def scenario(runner: str, specs, lst: Path) -> int:
        return _start(runner, lst, 0, **env).wait(timeout=60)

    rc, (status,) = _same(_both(tmp_path, [{"mode": "ok"}], scenario))
    assert status["state"] == "completed" and "signal_received" not in status and rc == 0
    assert not _processes_with(f"HSM_WARNING_AT={at}")


def _processes_with(variable: str) -> list[int]:
    """Live processes whose environment holds ``variable`` (NAME=value)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if variable.encode() in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_a_killed_wrapper_is_recorded_lost_and_its_command_stopped(tmp_path: Path) -> None:
    def scenario(runner: str, specs, lst: Path) -> int:
        proc = _start(runner, lst, 0)
        _wait_for(specs[0].task_dir / "task.started")
        wrapper = int((specs[0].task_dir / PID_FILE).read_text().split()[0])
        os.kill(wrapper, signal.SIGKILL)
        return proc.wait(timeout=60)

    rc, (status,) = _same(_both(tmp_path, [{"mode": "wait"}], scenario))
    assert status["state"] == "lost" and status["exit_code"] == -signal.SIGKILL and rc == 1
    assert status["error"] == "the task runner was killed (SIGKILL); its command was stopped"


def _signal_while_recording_the_start(runner: str, task_dir: Path, signame: str = "SIGTERM") -> list[str]:
    """What to run ``runner`` under so that it gets ``signame`` after it forked the task and before
    it recorded the start: the fast path reads ``/proc/stat`` once, for the task's start time; the
    Python runner reads ``status.yaml`` back (its third read) to keep what a source added."""
    if runner == "fast":
        return signal_at_open("/proc/stat", signame)
    return signal_at_open(task_dir / "status.yaml", signame, nth=3)


def test_a_stop_signal_while_the_task_is_being_started_still_stops_it(tmp_path: Path) -> None:
    """A scheduler's SIGTERM that reaches the runner while it starts the task (a cancel as the
    element begins): the runner used to die of it between the fork and the record, and the task
    ran on with nobody to stop it. The signal is passed on once the start is recorded."""
    def scenario(runner: str, specs, lst: Path) -> int:
        task_dir = specs[0].task_dir
        proc = _start(runner, lst, 0, wrap=_signal_while_recording_the_start(runner, task_dir))
        try:
            return proc.wait(timeout=60)
        finally:
            (task_dir / "task.release").touch()  # a task left running (the failure) ends now

    for runner, (rc, (status,), (output,), _) in _both(tmp_path, [{"mode": "wait"}], scenario).items():
        assert status["state"] == "preempted" and status["signal_received"] == "SIGTERM", (runner, status)
        # 143: the wrapper recorded its command's end by SIGTERM (or that it did not start it);
        # -15: the signal came before even the wrapper's traps, and ended the wrapper itself.
        assert (status["exit_code"], rc) in ((143, 143), (-15, 1)), (runner, rc, status)
        assert "done wait" not in output, f"{runner}: the task ran to its end"


def test_the_warning_signal_while_the_python_runner_starts_the_task_does_not_leave_it_unwatched(tmp_path: Path) -> None:
    """SIGUSR1 (Slurm's ``--signal=B:USR1@N``, which may come up to a minute early) as the Python
    runner starts the task: the job script's trap is gone with its ``exec``, so at its default
    action it killed the runner between the fork and the record, and the task ran on with nobody
    to stop it. It is held like the stop signals; the task, which does not handle it, runs on."""
    root = tmp_path.resolve()
    _, (spec,), lst = _sweep(root, [{"mode": "wait"}])
    _submit([spec], lst)
    wrap = _signal_while_recording_the_start("python", spec.task_dir, "SIGUSR1")
    proc = _start("python", lst, 0, wrap=wrap)
    try:
        _wait_for(spec.task_dir / "task.started")
    finally:
        (spec.task_dir / "task.release").touch()
    rc = proc.wait(timeout=60)
    status = read_status(spec.task_dir) or {}
    assert rc == 0 and status["state"] == "completed", (rc, status)


def test_a_resubmitted_task_keeps_its_attempt_history_and_output(tmp_path: Path) -> None:
    def scenario(runner: str, specs, lst: Path) -> int:
        assert _start(runner, lst, 0).wait(timeout=60) == 3
        command = read_command(specs[0].task_dir)
        command["argv"] = [a if not a.startswith("mode=") else "mode=ok" for a in command["argv"]]
        write_command(specs[0].task_dir, command)  # fixed, then hsm complete submits it again
        _submit(specs, lst)
        return _start(runner, lst, 0).wait(timeout=60)

    rc, (status,) = _same(_both(tmp_path, [{"mode": "fail"}], scenario))
    assert rc == 0 and status["attempt"] == 2
    assert [(a["attempt"], a["state"], a["exit_code"]) for a in status["attempts"]] == [(1, "failed", 3), (2, "completed", 0)]


def test_what_sources_keep_survives_before_and_during_the_run(tmp_path: Path) -> None:
    def scenario(runner: str, specs, lst: Path) -> int:
        keep_source_data(specs[0].task_dir, "dict", {"job": "77", "note": "it's: {odd}\nlines"})
        proc = _start(runner, lst, 0)
        _wait_for(specs[0].task_dir / "task.started")
        keep_source_data(specs[0].task_dir, "other", {"seen": [1, 2]})
        (specs[0].task_dir / "task.release").touch()
        return proc.wait(timeout=60)

    rc, (status,) = _same(_both(tmp_path, [{"mode": "wait"}], scenario))
    assert status["source_data"] == {"dict": {"job": "77", "note": "it's: {odd}\nlines"}, "other": {"seen": [1, 2]}}


def test_the_running_record_is_the_same(tmp_path: Path) -> None:
    def scenario(runner: str, specs, lst: Path) -> int:
        proc = _start(runner, lst, 0)
        _wait_for(specs[0].task_dir / "task.started")
        status = read_status(specs[0].task_dir) or {}
        # The process it names is the live wrapper, as hsm_core.processes tells (pid and start time).
        assert processes.is_running(status["process"]) is True
        assert started_process(specs[0].task_dir) == status["process"]
        running[runner] = _comparable(status, (tmp_path / runner).resolve())
        (specs[0].task_dir / "task.release").touch()
        return proc.wait(timeout=60)

    running: dict[str, Any] = {}
    _same(_both(tmp_path, [{"mode": "wait"}], scenario))
    assert running["fast"] == running["python"]
    assert running["fast"]["state"] == "running" and "attempts" not in running["fast"]


# -- when the fast path does not apply, it writes nothing and returns --------------------------
def _fallback(tmp_path: Path, change: Callable[[Any, Path], None]) -> None:
    root = tmp_path.resolve()
    sweep, specs, lst = _sweep(root, [{"mode": "ok"}])
    _submit(specs, lst)
    change(specs[0], lst)
    before = {p.name: p.read_bytes() for p in specs[0].task_dir.iterdir() if p.is_file()}
    assert _start("fast", lst, 0).wait(timeout=60) == FALLBACK
    after = {p.name: p.read_bytes() for p in specs[0].task_dir.iterdir() if p.is_file()}
    assert after == before


def test_no_command_script_falls_back(tmp_path: Path) -> None:
    _fallback(tmp_path, lambda spec, lst: (spec.task_dir / COMMAND_SCRIPT).unlink())


def test_a_command_json_changed_since_submission_falls_back(tmp_path: Path) -> None:
    def change(spec, lst):
        command = read_command(spec.task_dir)
        command["env"]["MY_VAR"] = "changed"
        write_command(spec.task_dir, command)
    _fallback(tmp_path, change)


def test_a_requeued_element_falls_back(tmp_path: Path) -> None:
    def change(spec, lst):
        assert _start("fast", lst, 0).wait(timeout=60) == 0
    _fallback(tmp_path, change)  # completed, with the last process named: the Python runner decides


def test_a_missing_task_dir_falls_back(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    sweep, specs, lst = _sweep(root, [{"mode": "ok"}])
    _submit(specs, lst)
    lst.write_text(lst.read_text() + "../../tasks/task_999\n")
    assert _start("fast", lst, 1).wait(timeout=60) == FALLBACK
    assert _start("fast", lst, 5).wait(timeout=60) == FALLBACK


@pytest.mark.parametrize("env", [{"1BAD": "x"}, {"UID": "0"}, {"A": "nul\0"}])
def test_an_environment_bash_cannot_set_gets_no_command_script(env: dict[str, str]) -> None:
    assert fastrun.command_script({"argv": ["true"], "env": env}) is None


# -- the job scripts of array-job sources source it --------------------------------------------
def test_a_submitted_job_script_runs_its_element_through_the_fast_path(tmp_path: Path) -> None:
    from hsm_core.plugin import ArrayJob, ArrayJobSource, script_body

    class BashScheduler(ArrayJobSource):
        scheduler_name = "Bash"

        def render_script(self, job: ArrayJob) -> str:
            return "\n".join(["#!/bin/bash", *script_body(job, index_expr="$HSM_ARRAY_INDEX")]) + "\n"

        def submit_argv(self, script_name: str, job: ArrayJob) -> list[str]:
            return [sys.executable, "-c", "print(5)"]

        def parse_job_id(self, stdout: str) -> str:
            return stdout.strip()

        def element_keys(self, job_id: str, index: int) -> list[str]:
            return [f"{job_id}_{index}"]

        def query(self, ids):
            return {}

        def cancel_argv(self, ids):
            return ["true"]

    sweep, specs, ctx = make_sweep(tmp_path / "p", [{"mode": "ok"}, {"mode": "fail"}], script=TASK)
    src = BashScheduler("bash", {}, ctx)
    src.launch(specs)
    script = next(src.job_dir.glob("bash_*.sh"))
    text = script.read_text()
    assert fastrun.PROGRAM_NAME in text and all((s.task_dir / COMMAND_SCRIPT).exists() for s in specs)
    fast_only = script.with_name("fast_only.sh")
    fast_only.write_text("\n".join(ln if not ln.startswith("exec ") else f"exit {FALLBACK}" for ln in text.splitlines()))
    for index, (state, code) in enumerate([("completed", 0), ("failed", 3)]):
        env = {**os.environ, "HSM_ARRAY_INDEX": str(index), "HSM_JOB_ID": f"5_{index}"}
        assert subprocess.run(["bash", str(fast_only)], env=env, cwd=tmp_path).returncode == code
        status = read_status(specs[index].task_dir) or {}
        assert (status["state"], status["job_id"], status["source"], status["attempt"]) == (state, f"5_{index}", "bash", 1)


def test_packed_elements_and_a_runner_of_ones_own_keep_the_python_runner(tmp_path: Path) -> None:
    from hsm_core.plugin import ArrayJob, script_body

    job = ArrayJob(name="j", size=2, list_file="/l", project_root="/p", runner=("hsm-task",), source="s",
                   fast_runner="/f.sh", per_element=2)
    assert not any("/f.sh" in ln for ln in script_body(job, index_expr="$I"))
    job = ArrayJob(name="j", size=2, list_file="/l", project_root="/p", runner=("hsm-task",), source="s", fast_runner="/f.sh")
    assert sum("/f.sh" in ln for ln in script_body(job, index_expr="$I")) == 1


def test_the_host_is_this_machine_s_even_with_another_hostname_in_the_environment(tmp_path: Path) -> None:
    import socket

    sweep, specs, lst = _sweep(tmp_path.resolve(), [{"mode": "ok"}])
    _submit(specs, lst)
    assert _start("fast", lst, 0, HOSTNAME="login-node-7").wait(timeout=60) == 0
    status = read_status(specs[0].task_dir) or {}
    assert status["host"] == socket.gethostname() and status["attempts"][0]["host"] == socket.gethostname()


def test_strict_shell_options_of_the_setup_commands_change_nothing(tmp_path: Path) -> None:
    """Job scripts often start with ``set -euo pipefail``; a setup command may change IFS."""
    sweep, specs, lst = _sweep(tmp_path.resolve(), [{"mode": "fail"}, {"mode": "ok"}])
    _submit(specs, lst)
    prog = lst.parent / fastrun.PROGRAM_NAME
    for index, code in ((0, 3), (1, 0)):
        setup = "set -euo pipefail; IFS=:; shopt -s failglob nullglob; "
        argv = ["bash", "-c", setup + f'. "$0" "$@"; exit {FALLBACK}', str(prog), "--list", str(lst), "--source", "dict",
                "--index", str(index)]
        assert subprocess.run(argv, env={**os.environ, "HSM_JOB_ID": "9"}).returncode == code
        status = read_status(specs[index].task_dir) or {}
        assert status["state"] == ("failed" if code else "completed") and status["job_id"] == "9"
        assert str(status["last_process"]).split(":")[1] != "?"
    # A fall-back under set -e goes on to the Python runner instead of ending the script.
    argv = ["bash", "-c", 'set -e; . "$0" "$@"; echo fell back', str(prog), "--list", str(lst), "--source", "dict", "--index", "0"]
    assert subprocess.run(argv, capture_output=True, text=True).stdout == "fell back\n"


@pytest.mark.parametrize("decision", [{"pruned": True, "step": 3, "reason": "below the median"}, {"memo": {"best": 1.0}}])
def test_a_task_the_pruner_keeps_a_record_of_ends_as_the_python_runner_says(tmp_path: Path, decision: dict) -> None:
    from hsm_core.taskdir import pruning_path

    def scenario(runner: str, specs, lst: Path) -> int:
        proc = _start(runner, lst, 0)
        _wait_for(specs[0].task_dir / "task.started")
        pruning_path(specs[0].task_dir).write_text(json.dumps({**decision, "judged_epoch": time.time()}))
        proc.send_signal(signal.SIGTERM)  # what stopping a pruned task does
        return proc.wait(timeout=60)

    rc, (status,) = _same(_both(tmp_path, [{"mode": "wait"}], scenario))
    assert status["state"] == ("pruned" if decision.get("pruned") else "preempted")


def test_without_bash_s_loadable_rm_the_markers_go_all_the_same(tmp_path: Path) -> None:
    """Where bash has no loadable ``rm`` (a compute node without bash-builtins, here an empty
    ``BASH_LOADABLES_PATH``) the fast path removes the wrapper's markers with the ``rm`` command:
    the records are the Python runner's, and no marker is left (checked by ``_both``)."""
    def without_loadables(runner: str, specs, lst: Path) -> int:
        return _start(runner, lst, 0, BASH_LOADABLES_PATH="").wait(timeout=60)

    rc, (status,) = _same(_both(tmp_path, [{"mode": "fail"}], without_loadables))
    assert status["state"] == "failed" and rc == 3


def _unmade(root: Path, params: list[dict[str, Any]]):
    """A chunk submitted as a large submission leaves it: no task dirs, their rows in the chunk's
    task file (the Python runner's) and in its pages for bash (the fast path's)."""
    import shutil

    from hsm_core.fastrun_rows import write_rows
    from hsm_core.task_manifest import write_chunk_tasks
    from hsm_core.taskdir import read_params

    sweep, specs, lst = _sweep(root, params)
    rows = []
    for spec in specs:
        doc = read_params(spec.task_dir)
        rows.append({"params": {"task_id": doc["task_id"], "index": doc["index"], "params": doc["params"]},
                     "command": read_command(spec.task_dir)})
        shutil.rmtree(spec.task_dir)
    write_chunk_tasks(lst, rows)
    write_rows(lst, rows)
    (lst.parent / fastrun.PROGRAM_NAME).write_text(fastrun.program())
    return sweep, specs, lst


def test_a_task_dir_left_to_the_element_is_made_by_the_fast_path_as_by_the_python_runner(tmp_path: Path) -> None:
    """The element makes the dir (the same params.yaml and command.json as the Python runner
    makes) and runs the task through the fast path, recording what the Python runner records."""
    results = {}
    for runner in RUNNERS:
        root = (tmp_path / runner).resolve()
        _, specs, lst = _unmade(root, [{"mode": "ok"}, {"mode": "fail"}])
        codes = [_start(runner, lst, i).wait(timeout=60) for i in range(2)]
        assert FALLBACK not in codes, "the fast path did not apply"
        files = [{name: (s.task_dir / name).read_text().replace(str(root), "<root>")
                  for name in ("params.yaml", "command.json")} for s in specs]
        statuses = [_comparable(read_status(s.task_dir) or {}, root) for s in specs]
        assert all((s.task_dir / "results").is_dir() for s in specs)
        assert not list(specs[0].task_dir.parent.glob(".*making"))
        results[runner] = (codes, statuses, files, [_output(s, root) for s in specs])
    assert results["fast"] == results["python"]
    assert results["fast"][0] == [0, 3]
    assert [s["state"] for s in results["fast"][1]] == ["completed", "failed"]


def test_an_element_far_down_a_large_chunk_reads_its_own_page(tmp_path: Path) -> None:
    from hsm_core.fastrun_rows import PAGE

    root = tmp_path.resolve()
    _, specs, lst = _unmade(root, [{"mode": "ok", "i": i} for i in range(PAGE + 2)])
    assert _start("fast", lst, PAGE + 1).wait(timeout=60) == 0
    from hsm_core.taskdir import read_params

    assert read_params(specs[PAGE + 1].task_dir)["params"]["i"] == PAGE + 1
    assert (read_status(specs[PAGE + 1].task_dir) or {})["state"] == "completed"
    assert not specs[PAGE].task_dir.exists()


def test_the_rows_written_by_a_process_of_their_own_are_those_of_the_chunk_task_file(tmp_path: Path) -> None:
    """A submission does not wait for the rows: a process of their own writes them from the
    chunk's task file, the same bytes as from the specs, and an element then runs from them."""
    from hsm_core.fastrun_rows import PAGE, rows_path, start_writer

    root = tmp_path.resolve()
    _, specs, lst = _unmade(root, [{"mode": "ok", "i": i} for i in range(PAGE + 1)])
    expected = [rows_path(lst, page).read_text() for page in (0, 1)]
    for page in (0, 1):
        rows_path(lst, page).unlink()
    log = tmp_path / "rows.log"
    start_writer([lst], log)
    _wait_for(rows_path(lst, 1))
    assert [rows_path(lst, page).read_text() for page in (0, 1)] == expected
    assert _start("fast", lst, PAGE).wait(timeout=60) == 0
    assert (read_status(specs[PAGE].task_dir) or {})["state"] == "completed"
    assert log.read_text() == ""


def test_a_task_dir_a_racer_made_meanwhile_is_left_to_the_python_runner(tmp_path: Path) -> None:
    """The dir appeared between the element's look and its rename (another copy of the element,
    a verdict written by the controller): the fast path runs nothing; no half-made dir is left."""
    root = tmp_path.resolve()
    _, specs, lst = _unmade(root, [{"mode": "ok"}])
    program = lst.parent / fastrun.PROGRAM_NAME
    # The racer wins just before this element's rename.
    racer = f'command mkdir -p {specs[0].task_dir}; : > {specs[0].task_dir}/params.yaml; '
    program.write_text(program.read_text().replace('      && "$_hsm_mv" -T --', f'      && {{ {racer}:; }} && "$_hsm_mv" -T --', 1))
    assert _start("fast", lst, 0).wait(timeout=60) == FALLBACK
    assert sorted(p.name for p in specs[0].task_dir.iterdir()) == ["params.yaml"]
    assert not list(specs[0].task_dir.parent.glob(".*making"))


def test_rows_are_one_line_bash_words_whatever_the_text() -> None:
    from hsm_core.fastrun_rows import bash_word

    text = "it's \\ $HOME `x` \"q\"\n\ttab\x01\x7f é \\x41"
    out = subprocess.run(["bash", "-c", f"v={bash_word(text)}; printf '%s' \"$v\""], capture_output=True,
                         text=True, check=True).stdout
    assert out == text and "\n" not in bash_word(text)


def test_the_first_element_of_a_sweep_without_a_tasks_dir_makes_it(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    _, specs, lst = _unmade(root, [{"mode": "ok"}])
    specs[0].task_dir.parent.rmdir()
    assert _start("fast", lst, 0).wait(timeout=60) == 0
    assert (read_status(specs[0].task_dir) or {})["state"] == "completed"
