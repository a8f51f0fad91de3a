"""``on_finish:`` in hsm_config.yaml: a command run once when a sweep ends (issue 17).

The real ``hsm`` runs the real command; the command records its environment and appends a line
to ``calls.log`` each time it runs, so the tests count its calls from what it did.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import yaml

from hsm_project import Project, wait_for

NOTIFY = r'''
import json, os, sys
with open("calls.log", "a") as fh:
    fh.write(os.environ["HSM_SWEEP_ID"] + "\n")
with open("finish_env.json", "w") as fh:
    json.dump({k: v for k, v in os.environ.items() if k.startswith("HSM_")}, fh)
print("notified", os.environ["HSM_SUMMARY"])
sys.exit(int(os.environ.get("NOTIFY_EXIT", "0")))
'''


def with_on_finish(project: Project, setting: object) -> None:
    (project.root / "notify.py").write_text(NOTIFY)
    data = yaml.safe_load((project.root / "hsm_config.yaml").read_text())
    data["on_finish"] = setting
    (project.root / "hsm_config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def calls(project: Project) -> list[str]:
    path = project.root / "calls.log"
    return path.read_text().split() if path.exists() else []


def test_the_command_gets_the_summary_once_when_the_sweep_ends(project: Project) -> None:
    with_on_finish(project, [sys.executable, "notify.py"])
    cfg = project.write_sweep({"grid": {"x": [1, 2], "exit": [0, 1]}})
    proc = project.hsm("run", "--config", str(cfg), "--sweep-id", "n1")
    assert proc.returncode == 1, proc.stdout + proc.stderr  # two tasks failed: on_finish changes nothing
    assert calls(project) == ["n1"]
    env = json.loads((project.root / "finish_env.json").read_text())
    sweep = project.outputs / "n1"
    assert env["HSM_SWEEP_ID"] == "n1"
    assert env["HSM_SWEEP_DIR"] == str(sweep.resolve())
    assert env["HSM_SWEEP_STATUS"] == "incomplete"
    assert (env["HSM_TASKS_TOTAL"], env["HSM_TASKS_COMPLETED"], env["HSM_TASKS_FAILED"]) == ("4", "2", "2")
    assert env["HSM_TASKS_RUNNING"] == "0"
    assert env["HSM_SUMMARY"] == "hsm sweep n1 incomplete: 2 completed, 2 failed"
    assert Path(env["HSM_REPORT"]).is_file()  # the report is written before the command runs
    assert "notified hsm sweep n1 incomplete" in (sweep / "logs" / "on_finish.log").read_text()
    assert "on_finish: ok" in (sweep / "logs" / "sweep.log").read_text()

    # Running its failed tasks again ends it again: one more call. Nothing left to run: no call.
    res = project.hsm("complete", "n1", "--retry-failed")
    assert res.returncode == 1, res.stdout + res.stderr
    assert calls(project) == ["n1", "n1"]
    res = project.hsm("complete", "n1")
    # (exit 1: the sweep keeps failed tasks, which only --retry-failed runs again)
    assert res.returncode == 1 and "Nothing to run" in res.stdout, res.stdout + res.stderr
    assert calls(project) == ["n1", "n1"]


def test_a_failing_or_hanging_command_is_a_warning_only(project: Project) -> None:
    with_on_finish(project, f"{sys.executable} notify.py")  # a string: run by /bin/sh
    cfg = project.write_sweep({"grid": {"x": [1]}})
    proc = project.hsm("run", "--config", str(cfg), "--sweep-id", "f", env={"NOTIFY_EXIT": "3"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "hsm: warning: on_finish command exited with code 3" in proc.stderr
    assert "the sweep's result is unchanged" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert yaml.safe_load((project.outputs / "f" / "sweep_metadata.yaml").read_text())["status"] == "completed"
    assert calls(project) == ["f"]

    with_on_finish(project, {"command": "sleep 60 & sleep 60", "timeout": 1})
    started = time.monotonic()
    proc = project.hsm("run", "--config", str(cfg), "--sweep-id", "h")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert time.monotonic() - started < 30  # the sleeps were stopped, not waited for
    assert "on_finish command did not finish within 1s and was stopped" in proc.stderr


def test_a_sweep_whose_controller_left_ends_when_complete_finds_its_tasks_done(project: Project) -> None:
    """The tasks of a killed ``hsm run`` go on and end with nobody watching; the ``hsm complete``
    that finds them all ended is where the sweep ends, and says so once."""
    with_on_finish(project, [sys.executable, "notify.py"])
    cfg = project.write_sweep({"grid": {"x": [1, 2], "sleep": [2]}})
    proc = project.popen("run", "--config", str(cfg), "--sweep-id", "k")
    sweep = project.outputs / "k"
    try:
        wait_for(lambda: len(list(sweep.glob("tasks/*/.hsm_pid"))) == 2, timeout=60, what="both tasks started")
        os.kill(proc.pid, signal.SIGKILL)  # the controller dies; its tasks run on
        proc.communicate(timeout=30)
        wait_for(lambda: len(list(sweep.glob("tasks/*/.exit_code"))) == 2, timeout=60, what="both tasks ended")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert calls(project) == []
    res = project.hsm("complete", "k")
    assert res.returncode == 0, res.stdout + res.stderr
    assert calls(project) == ["k"]
    env = json.loads((project.root / "finish_env.json").read_text())
    assert env["HSM_SWEEP_STATUS"] == "completed" and env["HSM_TASKS_COMPLETED"] == "2"
    assert sorted(project.executions()) == sorted(set(project.executions())) and len(project.executions()) == 2
    assert project.hsm("complete", "k").returncode == 0
    assert calls(project) == ["k"]  # already ended: not announced twice


def test_bad_on_finish_settings_are_config_errors_with_file_and_line(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [1]}})
    for setting, expected in (
        (5, "on_finish: expected a command: a string (run by /bin/sh), a list of words, or {command: ..., timeout: SECONDS}"),
        ({"command": "true", "timout": 3}, "on_finish.timout: unknown key 'timout', did you mean 'timeout'?"),
        ({"command": "true", "timeout": 0}, "on_finish.timeout: must be greater than 0"),
    ):
        with_on_finish(project, setting)
        res = project.hsm("run", "--config", str(cfg), "--dry-run")
        assert res.returncode == 2, (setting, res.stdout, res.stderr)
        assert "hsm_config.yaml:" in res.stderr and expected in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
    assert project.sweep_ids() == []
