"""What a new user ran into trying the large-sweep features (issue 19) the way researchers work:
a second terminal next to a live controller, a sweep edited between run and complete, a sweep
dir the user cannot write. Each test is an outside observer's check: what the task's own log says
ran, what ``hsm status`` and the sweep files say afterwards."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from hsm_core.testing.project import make_project
from hsm_project import Project, wait_for

#: A training script that logs each start and end to a log of its own (outside hsm's files).
LOGGING_SCRIPT = r'''
import os, sys, time
args = dict(a.split("=", 1) for a in sys.argv[1:])
log = os.path.join(os.environ["HSM_COUNT_DIR"], "starts.log")
with open(log, "a") as fh:
    fh.write(f"start {os.environ['HSM_TASK_ID']} {time.time()}\n")
time.sleep(float(args.get("sleep", 0)))
with open(log, "a") as fh:
    fh.write(f"end {os.environ['HSM_TASK_ID']} {time.time()}\n")
'''


def _starts(project: Project) -> list[str]:
    path = Path(project.environ()["HSM_COUNT_DIR"]) / "starts.log"
    if not path.exists():
        return []
    return [line.split()[1] for line in path.read_text().splitlines() if line.startswith("start ")]


def test_hsm_cancel_next_to_a_live_hsm_run_starts_nothing_more(tmp_path: Path) -> None:
    """``hsm cancel`` from a second terminal while ``hsm run`` runs a sweep larger than its slots:
    once cancel returns, no task starts any more (the controller used to go on launching every
    pending task, under a sweep ``hsm status`` called cancelled), the sweep stays cancelled after
    the controller ends, and ``hsm complete`` later runs each task that never ran exactly once."""
    project = make_project(tmp_path / "proj", script=LOGGING_SCRIPT)
    cfg = project.write_sweep({"grid": {"x": list(range(1, 9)), "sleep": [3]}})
    run = project.popen("run", "--config", str(cfg), "--sources", "local")
    try:
        wait_for(lambda: len(_starts(project)) >= 2, 60, what="the first two tasks to start")
        sweep = project.only_sweep()
        cancel = project.hsm("cancel", sweep.name)
        assert cancel.returncode == 0, cancel.stderr
        started_by_then = sorted(_starts(project))
        run.wait(timeout=60)
        time.sleep(0.5)
        assert sorted(_starts(project)) == started_by_then, "tasks started after hsm cancel returned"
        meta = yaml.safe_load((sweep / "sweep_metadata.yaml").read_text())
        assert meta["status"] == "cancelled"
        export = project.hsm("export", sweep.name, "--format", "csv", check=True).stdout.splitlines()
        states = sorted(row.split(",")[export[0].split(",").index("status")] for row in export[1:])
        assert "failed" not in states and states.count("pending") == 8 - len(started_by_then), states
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    done = project.hsm("complete", sweep.name)
    assert done.returncode == 0, done.stdout + done.stderr
    # each task ran to its end exactly once (a cancelled one was stopped before its end line)
    lines = (Path(project.environ()["HSM_COUNT_DIR"]) / "starts.log").read_text().splitlines()
    ends = [line.split()[1] for line in lines if line.startswith("end ")]
    assert len(ends) == 8 and len(set(ends)) == 8, lines


def test_hsm_logs_of_a_task_that_never_started_says_so(tmp_path: Path) -> None:
    """A task whose dir is not made yet (fail fast stopped the sweep before it) printed nothing and
    exited 0, as a task that wrote nothing: now one line says it has not started."""
    project = make_project(tmp_path / "proj", script="import sys; sys.exit(1)\n")
    cfg = project.write_sweep({"grid": {"x": list(range(1, 13))}})
    project.hsm("run", "--config", str(cfg), "--sources", "local")
    sweep = project.only_sweep()
    never = [i for i in range(1, 13) if not (sweep / "tasks" / f"task_{i:03d}").exists()]
    assert never, "fail fast let every task start"
    proc = project.hsm("logs", str(never[-1]))
    assert proc.returncode == 0 and proc.stdout == ""
    assert proc.stderr == f"hsm: task_{never[-1]:03d} has not started yet (pending): no output\n"
    ran = project.hsm("logs", "1")
    assert ran.returncode == 0 and "has not started" not in ran.stderr


def test_hsm_cancel_while_a_retry_waits_out_its_backoff_ends_the_controller(tmp_path: Path) -> None:
    """A transient failure waits its backoff (here 300 s) before its retry: ``hsm cancel`` from a
    second terminal ends the controller now (it waited the whole backoff, then found it could
    launch nothing), and the task stays to be run by the next ``hsm complete``."""
    script = ("import sys\nprint('RuntimeError: NCCL error: unhandled system error', file=sys.stderr)\nsys.exit(1)\n")
    project = make_project(tmp_path / "proj", script=script)
    cfg = project.write_sweep({"grid": {"x": [1]}, "retries": {"max": 2, "backoff": 300}})
    run = project.popen("run", "--config", str(cfg), "--sources", "local")
    try:
        sweep = wait_for(lambda: project.outputs.is_dir() and next(iter(project.outputs.iterdir()), None), 60, what="sweep")
        wait_for(lambda: (sweep / "logs" / "retries.log").exists(), 60, what="the retry to be scheduled")
        cancel = project.hsm("cancel", sweep.name)
        assert cancel.returncode == 0, cancel.stdout + cancel.stderr
        try:
            run.wait(timeout=60)  # (a loaded machine: seconds; before, the whole backoff)
        except subprocess.TimeoutExpired:
            logs = "".join(p.read_text() for p in sorted((sweep / "logs").glob("*.log")))
            raise AssertionError(f"hsm run still runs 60 s after hsm cancel returned:\n{cancel.stdout}{logs}") from None
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    dry = project.hsm("complete", sweep.name, "--dry-run", check=True).stdout
    assert "1 task(s) would run" in dry, dry


def test_ctrl_c_while_a_large_sweep_is_being_written_never_leaves_it_running(tmp_path: Path) -> None:
    """Ctrl-C as soon as a 100,000-task sweep's directory appears (while hsm writes its manifest,
    before any task starts): the sweep left behind does not say ``running`` for ever (it did, with
    no controller and 0/0 tasks), and hsm's last line says how to continue it."""
    import signal

    project = make_project(tmp_path / "proj")
    cfg = project.write_sweep({"grid": {"a": "range(0,1000)", "b": "range(0,100)"}})
    run = project.popen("run", "--config", str(cfg), "--sources", "local", "--sweep-id", "big")
    meta = project.outputs / "big" / "sweep_metadata.yaml"
    try:
        wait_for(lambda: meta.exists() or run.poll() is not None, 120, interval=0.01, what="the sweep to be written")
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 130, out + err
    if meta.exists():
        assert yaml.safe_load(meta.read_text())["status"] != "running", out + err
        assert "hsm complete big" in err, err


METRICS_SCRIPT = r'''
import json, os, sys
args = dict(a.split("=", 1) for a in sys.argv[1:])
with open(os.path.join(os.environ["HSM_TASK_DIR"], "metrics.json"), "w") as fh:
    json.dump({"val_acc": float(args["x"])}, fh)
'''


def test_export_shows_metrics_an_evaluation_wrote_after_the_sweep(tmp_path: Path) -> None:
    """A researcher's habit: after the sweep, an evaluation script adds test metrics to each task's
    metrics.json. ``hsm export`` must show them (before the metrics index it read every file)."""
    project = make_project(tmp_path / "proj", script=METRICS_SCRIPT)
    cfg = project.write_sweep({"grid": {"x": [1, 2]}})
    project.hsm("run", "--config", str(cfg), "--sources", "local", check=True)
    sweep = project.only_sweep()
    (sweep / "tasks" / "task_001" / "metrics.json").write_text(json.dumps({"val_acc": 1.0, "test_acc": 0.75}))
    rows = {row["task"]: row for row in json.loads(project.hsm("export", "--format", "json", check=True).stdout)}
    assert rows["task_001"].get("test_acc") == 0.75, rows["task_001"]
