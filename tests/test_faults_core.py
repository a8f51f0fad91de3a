"""Faults in the core's own files: a full disk, a half-written status file, a lost index."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from hsm_project import Project
from hsm_core.testing import SCRIPT
from hsm_core.testing.services import small_filesystem


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 3 MiB tmpfs mounted for this test (needs root)."""
    with small_filesystem(tmp_path / "small", 3) as mnt:
        yield mnt


def test_disk_full_is_one_clear_line_and_complete_finishes_after_freeing_space(small_disk: Path) -> None:
    root = small_disk / "proj"
    root.mkdir()
    (root / "train.py").write_text(SCRIPT)
    (root / "hsm_config.yaml").write_text(f"paths:\n  python_interpreter: {sys.executable}\n  train_script: train.py\n")
    project = Project(root)
    cfg = project.write_sweep({"grid": {"x": list(range(40))}})
    filler = small_disk / "filler"
    # Leave a little room: the sweep starts, then runs out of space part-way.
    with open(filler, "wb") as fh:
        fh.write(b"\0" * (2 * 1024 * 1024 + 700 * 1024))
    proc = project.hsm("run", "--config", str(cfg), "--sweep-id", "full", env={"HSM_COUNT_DIR": str(small_disk.parent)})
    assert proc.returncode in (1, 2), proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    if proc.returncode == 2:
        assert "no space left on device" in proc.stderr.lower() and "hsm complete full" in proc.stderr
    completed_before = set()
    status = project.hsm("status", "full", "--json")
    if status.returncode == 0:
        completed_before = {k for k, v in json.loads(status.stdout)["counts"].items() if k == "completed" and v}
    filler.unlink()
    done = project.hsm("complete", "full", "--retry-failed", env={"HSM_COUNT_DIR": str(small_disk.parent)})
    assert done.returncode == 0, done.stdout + done.stderr
    info = json.loads(project.hsm("status", "full", "--json").stdout)
    unfinished = {d.name: (d / "status.yaml").read_text() if (d / "status.yaml").exists() else None
                  for d in (project.outputs / "full" / "tasks").iterdir()
                  if "state: completed" not in ((d / "status.yaml").read_text() if (d / "status.yaml").exists() else "")}
    assert info["counts"]["completed"] == 40, (done.stdout, unfinished)
    assert completed_before <= {"completed"}


def test_a_half_written_status_file_counts_as_not_run(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [1, 2, 3]}})
    assert project.hsm("run", "--config", str(cfg), "--sweep-id", "hw").returncode == 0
    task = project.outputs / "hw" / "tasks" / "task_002"
    (task / "status.yaml").write_text("state: compl")  # truncated by a crash of a non-atomic writer
    (project.outputs / "hw" / "task_index.json").unlink()
    info = json.loads(project.hsm("status", "hw", "--json").stdout)
    assert info["total"] == 3 and info["counts"]["completed"] == 2
    done = project.hsm("complete", "hw")
    assert done.returncode == 0 and "1 task(s)" in done.stdout
    assert yaml.safe_load((task / "status.yaml").read_text())["state"] == "completed"
    assert len(project.executions()) == 4  # the three first runs, plus task_002 again


def test_a_corrupt_index_is_rebuilt_from_the_task_dirs(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [1, 2]}})
    assert project.hsm("run", "--config", str(cfg), "--sweep-id", "ci").returncode == 0
    (project.outputs / "ci" / "task_index.json").write_text("{not json")
    info = json.loads(project.hsm("status", "ci", "--json").stdout)
    assert info["counts"]["completed"] == 2
    assert json.loads((project.outputs / "ci" / "task_index.json").read_text())["tasks"]


def test_a_removed_sweep_dir_is_a_clear_error(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [1]}})
    assert project.hsm("run", "--config", str(cfg), "--sweep-id", "gone").returncode == 0
    shutil.rmtree(project.outputs / "gone")
    proc = project.hsm("complete", "gone")
    assert proc.returncode == 2 and "unknown sweep id 'gone'" in proc.stderr


def _kill_while_starting(project: Project, sweep_id: str, sleep: float) -> Path:
    """Run a 1-task sweep, SIGKILL the controller once its task runs, then rewrite the task's
    status as the controller left it when killed between recording the attempt and its process."""
    import signal

    from hsm_core.testing.project import wait_for

    cfg = project.write_sweep({"grid": {"x": [1], "sleep": [sleep]}}, name=f"{sweep_id}.yaml")
    proc = project.popen("run", "--config", str(cfg), "--sweep-id", sweep_id)
    task = project.outputs / sweep_id / "tasks" / "task_001"

    def running_with_pid() -> bool:
        status = yaml.safe_load((task / "status.yaml").read_text()) if (task / "status.yaml").exists() else None
        return bool(status and str(status.get("process", "")).split(":")[0].isdigit())

    wait_for(running_with_pid, timeout=60, what="the task to run")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    status = yaml.safe_load((task / "status.yaml").read_text())
    status["process"] = "starting"
    (task / "status.yaml").write_text(yaml.safe_dump(status, sort_keys=False))
    return task


def test_a_controller_killed_while_starting_a_task_never_runs_it_twice(project: Project) -> None:
    """The window between starting a task's process and recording it: complete adopts the process."""
    _kill_while_starting(project, "window", sleep=3)
    done = project.hsm("complete", "window")
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(project.executions()) == 1  # adopted and waited for, not started again
    info = json.loads(project.hsm("status", "window", "--json").stdout)
    assert info["counts"]["completed"] == 1


def test_a_task_recorded_as_starting_whose_process_never_started_runs_again(project: Project) -> None:
    import time

    task = _kill_while_starting(project, "never", sleep=1)
    time.sleep(2.5)  # the process that did start ends; then remove every trace it left
    # As if the kill came before the process existed: no pid file, no exit code, long enough ago.
    for name in (".hsm_pid", ".exit_code"):
        (task / name).unlink(missing_ok=True)
    status = yaml.safe_load((task / "status.yaml").read_text())
    status["start_epoch"] = status["start_epoch"] - 60
    (task / "status.yaml").write_text(yaml.safe_dump(status, sort_keys=False))
    done = project.hsm("complete", "never")
    assert done.returncode == 0, done.stdout + done.stderr
    final = yaml.safe_load((task / "status.yaml").read_text())
    assert final["state"] == "completed" and [a["state"] for a in final["attempts"]] == ["interrupted", "completed"]


def test_a_task_that_ended_with_no_room_for_its_exit_code_is_recorded_not_run_again(project: Project) -> None:
    """On a full disk the wrapper cannot create ``.exit_code``; it appends the code to its pid file
    (a block the file already has). With the controller dead too, `hsm complete` records the task
    from that, instead of taking it for vanished and running it a second time."""
    import signal

    from hsm_core.testing.project import wait_for

    cfg = project.write_sweep({"grid": {"x": [1], "sleep": [2]}})
    proc = project.popen("run", "--config", str(cfg), "--sweep-id", "nr")
    task = project.outputs / "nr" / "tasks" / "task_001"
    pid_file = task / ".hsm_pid"
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip().isdigit(), timeout=60, what="the task to run")
    # Creating the marker now fails, as on a full disk (a link to where no file can be made).
    (task / ".exit_code").symlink_to(task / "no-such-dir" / "x")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    wait_for(lambda: " exit 0" in pid_file.read_text(), timeout=60, what="the task to end")
    assert not (task / ".exit_code").exists()
    assert yaml.safe_load((task / "status.yaml").read_text())["state"] == "running"
    done = project.hsm("complete", "nr")
    assert done.returncode == 0, done.stdout + done.stderr
    final = yaml.safe_load((task / "status.yaml").read_text())
    assert final["state"] == "completed" and final["exit_code"] == 0
    assert len(project.executions()) == 1  # recorded, not run again


def test_left_exit_code_reads_the_pid_file_then_the_marker(tmp_path: Path) -> None:
    from hsm_core.state import left_exit_code

    assert left_exit_code(tmp_path) is None
    (tmp_path / ".hsm_pid").write_text("4242")
    assert left_exit_code(tmp_path) is None  # the command still runs
    (tmp_path / ".hsm_pid").write_text("4242 exit 3")
    assert left_exit_code(tmp_path)[0] == 3
    (tmp_path / ".hsm_pid").write_text("4242 exit -")  # cut short: not an exit code
    assert left_exit_code(tmp_path) is None
    (tmp_path / ".exit_code").write_text("")
    assert left_exit_code(tmp_path) == (1, pytest.approx((tmp_path / ".exit_code").stat().st_mtime))
    (tmp_path / ".hsm_pid").write_text("4242 exit 3")
    # The marker caught while the wrapper writes it (in place): the code appended to the pid
    # file first is the one read.
    assert left_exit_code(tmp_path)[0] == 3
    (tmp_path / ".hsm_pid").unlink()
    (tmp_path / ".exit_code").write_text("0")
    assert left_exit_code(tmp_path)[0] == 0
    (tmp_path / ".exit_code").write_text("")
    assert left_exit_code(tmp_path)[0] == 1  # a marker cut short counts as a failure


def test_a_command_whose_pid_file_cannot_be_written_is_not_started(tmp_path: Path) -> None:
    """The pid file is what tells, after a crash, that a command was started. A wrapper that cannot
    write it (a full disk; here its directory is missing) must not start the command, and the
    attempt must read lost, so that hsm complete runs it (once) rather than leave it failed."""
    from hsm_core.runner import run_blocking

    task = tmp_path / "tasks" / "task_001"
    task.mkdir(parents=True)
    ran = tmp_path / "ran"
    (task / "command.json").write_text(json.dumps(
        {"argv": ["/bin/sh", "-c", f"touch {ran}"], "cwd": str(tmp_path), "task_id": "t1", "index": 1}))
    status = run_blocking(task, source="local", runner="standalone", extra_env={"HSM_TASK_DIR": str(tmp_path / "gone")})
    assert not ran.exists()
    assert status["state"] == "lost" and "was not started" in status["error"]
    assert yaml.safe_load((task / "status.yaml").read_text())["state"] == "lost"
    # A command that itself exits 75 after starting is an ordinary failure.
    (task / "command.json").write_text(json.dumps({"argv": ["/bin/sh", "-c", "exit 75"], "cwd": str(tmp_path), "task_id": "t1", "index": 1}))
    assert run_blocking(task, source="local", runner="standalone")["state"] == "failed"


QUIET_TASK = r'''
import os, sys, time
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
time.sleep(float(args.get("sleep", 0)))
with open(os.path.join(os.environ["HSM_COUNT_DIR"], "runs.log"), "a") as fh:
    fh.write(os.environ["HSM_TASK_ID"] + "\n")
os._exit(0)  # prints nothing: on a full disk even flushing stdout would fail the task
'''


def test_a_task_ending_while_the_disk_is_full_is_recorded_once_there_is_room(small_disk: Path) -> None:
    """A task ends on a full disk: neither its wrapper's .exit_code nor its status.yaml can be
    written, and the run stops with "no space left". Once there is room, `hsm complete` records
    the task from the exit code the wrapper appended to its pid file: not run again, and
    status.yaml no longer says running."""
    import errno
    import time

    from hsm_core.testing.project import wait_for

    root = small_disk / "proj"
    root.mkdir()
    (root / "train.py").write_text(QUIET_TASK)
    (root / "hsm_config.yaml").write_text(f"paths:\n  python_interpreter: {sys.executable}\n  train_script: train.py\n")
    project = Project(root, env={"HSM_COUNT_DIR": str(small_disk.parent)})
    cfg = project.write_sweep({"grid": {"x": [1, 2], "sleep": [2]}})
    proc = project.popen("run", "--config", str(cfg), "--sources", "local:1", "--sweep-id", "df")
    task = project.outputs / "df" / "tasks" / "task_001"
    pid_file = task / ".hsm_pid"
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip().isdigit(), timeout=60, what="the task to run")
    filler = small_disk / "filler"
    with open(filler, "wb", buffering=0) as fh:  # every byte, while the task runs
        for size in (65536, 4096, 512, 1):
            while True:
                try:
                    fh.write(b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    wait_for(lambda: " exit 0" in pid_file.read_text(), timeout=60, what="the task to end")
    time.sleep(0.5)  # the controller tries to record it, and cannot
    assert yaml.safe_load((task / "status.yaml").read_text())["state"] == "running"
    filler.unlink()
    out, err = proc.communicate(timeout=120)
    assert "Traceback" not in err, err
    done = project.hsm("complete", "df")
    assert done.returncode == 0, done.stdout + done.stderr
    final = yaml.safe_load((task / "status.yaml").read_text())
    assert final["state"] == "completed" and final["exit_code"] == 0
    assert sorted(project.executions()) == sorted(set(project.executions())) and len(project.executions()) == 2
    info = json.loads(project.hsm("status", "df", "--json").stdout)
    assert info["counts"]["completed"] == 2 and info["total"] == 2


def test_an_end_the_controller_could_not_write_is_recorded_from_the_task_files(project: Project, monkeypatch) -> None:
    """The controller hears that a task ended but cannot write its status.yaml (disk full for a
    moment), then saves its index: the index alone says "completed". The next reader does not
    trust that alone: it records the task from the files it left (here .exit_code), so
    status.yaml is final too."""
    from hsm_core import runner
    from hsm_core.lifecycle import ExecOptions, execute, plan_run
    from hsm_core.registry import build_registry

    def no_room(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setenv("HSM_COUNT_DIR", str(project.root))
    monkeypatch.setattr(runner, "finish_task", no_room)
    registry = build_registry(entry_points=False)
    cfg = project.write_sweep({"grid": {"x": [1, 2]}})
    plan = plan_run(cfg, registry, project_root=project.root, sweep_id="nw")
    assert execute(plan, ExecOptions(sources="local:2"), registry) == {"completed": 2}
    monkeypatch.undo()
    tasks = project.outputs / "nw" / "tasks"
    assert {yaml.safe_load((d / "status.yaml").read_text())["state"] for d in tasks.iterdir()} == {"running"}
    index = json.loads((project.outputs / "nw" / "task_index.json").read_text())["tasks"]
    assert [(t["state"], t.get("extra", {}).get("unrecorded")) for t in index] == [("completed", True)] * 2
    info = json.loads(project.hsm("status", "nw", "--json").stdout)
    assert info["counts"]["completed"] == 2
    for d in tasks.iterdir():
        final = yaml.safe_load((d / "status.yaml").read_text())
        assert final["state"] == "completed" and final["exit_code"] == 0
    index = json.loads((project.outputs / "nw" / "task_index.json").read_text())["tasks"]
    assert all("unrecorded" not in t.get("extra", {}) for t in index)
    done = project.hsm("complete", "nw")
    assert done.returncode == 0 and len(project.executions()) == 2  # nothing ran again


def test_an_attempt_ending_in_the_millisecond_it_started_has_duration_zero_not_minus_zero(tmp_path: Path) -> None:
    # start_epoch is kept to the millisecond; a setup command that fails at once used to record
    # "duration: -0.0" (the end read a hair before the rounded-up start).
    from hsm_core.state import finalize_status, write_status

    task = tmp_path / "task_000"
    task.mkdir()
    started = 1_000_000.0006
    write_status(task, {"state": "running", "start_epoch": round(started, 3)})
    final = finalize_status(task, {"state": "running", "start_epoch": round(started, 3)}, 1, end_time=started)
    assert final["duration"] == 0.0 and str(final["duration"]) == "0.0"
    assert "duration: 0.0" in (task / "status.yaml").read_text()
