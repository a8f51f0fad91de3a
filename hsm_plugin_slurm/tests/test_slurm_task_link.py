"""The link back to Slurm, on the real local cluster: each task's ``%A_%a`` in ``hsm status
--tasks`` and ``hsm export``, the scheduler's state and pending reason, ``hsm hold|release|requeue``
and ``hsm cancel --tasks`` of selected elements, ``hsm logs -f``, and silence without accounting."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slurm_support import Project, make_project, wait_for

pytestmark = pytest.mark.slurm


def _state(project: Project, sweep: Path, name: str) -> dict:
    return project.statuses(sweep).get(name) or {}


def _rows(project: Project, sweep: Path) -> dict[str, dict]:
    proc = project.hsm("status", sweep.name, "--tasks", "--json", check=True)
    assert "warning" not in proc.stderr, proc.stderr
    return {row["task"]: row for row in json.loads(proc.stdout)["tasks"]}


def _job_id(sweep: Path) -> str:
    return json.loads((sweep / "scripts" / "job_scripts" / "jobs.jsonl").read_text().splitlines()[0])["job_id"]


def test_selected_tasks_are_named_held_released_cancelled_and_requeued(tmp_path: Path, slurm_cluster, squeue) -> None:
    hpc = 'hpc:\n  system: slurm\n  default_walltime: "00:10:00"\n  array_parallelism: 2\n'
    project = make_project(tmp_path / "proj", slurm_cluster, hpc)
    cfg = project.write_sweep({"grid": {"x": [1, 2, 3, 4], "sleep": [300]}})
    project.hsm("run", "--config", str(cfg), "--sources", "slurm", "--no-wait", check=True)
    sweep = project.only_sweep()
    job = _job_id(sweep)
    try:
        wait_for(lambda: all(_state(project, sweep, f"task_00{i}").get("state") == "running" for i in (1, 2)), 60,
                 what="two elements running")
        # Each task's element as users write it, with the scheduler's state and pending reason.
        rows = _rows(project, sweep)
        assert [rows[f"task_00{i}"]["scheduler_id"] for i in (1, 2, 3, 4)] == [f"{job}_{i}" for i in range(4)]
        assert [rows[f"task_00{i}"]["scheduler_state"] for i in (1, 2, 3, 4)] == ["RUNNING", "RUNNING", "PENDING", "PENDING"]
        assert rows["task_003"]["reason"] == rows["task_004"]["reason"] == "JobArrayTaskLimit"
        assert rows["task_001"]["job_id"]  # the element's own job id, recorded by its runner
        # No accounting on this cluster: nothing is said about usage, and nothing fails.
        assert not {"elapsed", "max_rss", "cpu_efficiency", "nodes"} & {k for r in rows.values() for k in r}
        exported = json.loads(project.hsm("export", sweep.name, "--format", "json", check=True).stdout)
        assert [r["scheduler_id"] for r in exported] == [f"{job}_{i}" for i in range(4)]
        csv_head = project.hsm("export", sweep.name, check=True).stdout.splitlines()[0]
        head = csv_head.split(",")
        assert head.index("scheduler_id") == head.index("exit_code") + 1

        # hold: the queued element stays queued, and says so.
        out = project.hsm("hold", sweep.name, "--tasks", "4", check=True).stdout
        assert "1 held" in out
        row = _rows(project, sweep)["task_004"]
        assert row["held"] is True and row["reason"].startswith("JobHeld")

        # cancel one running element: it alone ends, recorded cancelled; the freed slot runs task 3.
        out = project.hsm("cancel", sweep.name, "--tasks", "2", check=True).stdout
        assert "1 cancelled" in out
        assert _state(project, sweep, "task_002")["state"] == "cancelled"
        wait_for(lambda: _state(project, sweep, "task_003").get("state") == "running", 60, what="task 3 running")
        assert _state(project, sweep, "task_001")["state"] == "running"
        assert squeue("-j", f"{job}_0", "-o", "%T").strip() == "RUNNING"
        assert squeue("-j", f"{job}_3", "-o", "%T").strip() == "PENDING"  # still held, not cancelled
        meta = (sweep / "sweep_metadata.yaml").read_text()
        assert "status: cancelled" not in meta

        # What Slurm refuses (requeue of a queued element) is one line naming the element, exit 1.
        proc = project.hsm("requeue", sweep.name, "--tasks", "4")
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert f"task_004: Slurm refused to requeue {job}_3: {job}_3: Job is pending execution" in proc.stdout

        # requeue: the element runs again, its first attempt kept in the history.
        out = project.hsm("requeue", sweep.name, "--tasks", "1", check=True).stdout
        assert "1 requeued" in out
        status = wait_for(lambda: (lambda s: s if s.get("state") == "running" and s.get("attempt") == 2 else None)(
            _state(project, sweep, "task_001")), 90, what="the second attempt of task 1")
        assert [a["state"] for a in status["attempts"]][:1] == ["preempted"]
        assert [a["attempt"] for a in status["attempts"]][:1] == [1]

        # release: no longer held (it waits for a free slot of the array's throttle).
        out = project.hsm("release", sweep.name, "--tasks", "4", check=True).stdout
        assert "1 released" in out
        row = _rows(project, sweep)["task_004"]
        assert "held" not in row and not row.get("reason", "").startswith("JobHeld")

        # Finished tasks are not handed to the scheduler; a bad selection is one line, exit 2.
        proc = project.hsm("requeue", sweep.name, "--tasks", "2")
        assert proc.returncode == 1 and "task_002: cancelled, not queued or running" in proc.stdout
        proc = project.hsm("hold", sweep.name, "--tasks", "3-9")
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no task 5" in proc.stderr, proc.stderr
    finally:
        project.hsm("cancel", sweep.name, "--wait", "30")
    assert squeue("-j", job, "-t", "PD,R,CG", "-o", "%i").strip() == ""


TICKER = """
import os, sys, time
for i in range(12):
    print(f"tick {i}", flush=True)
    if i == 5:
        print("halfway", file=sys.stderr, flush=True)
    time.sleep(0.25)
"""


def test_hsm_logs_follows_a_running_element_until_it_ends(project: Project) -> None:
    (project.root / "train.py").write_text(TICKER)
    cfg = project.write_sweep({"grid": {"x": [1]}})
    project.hsm("run", "--config", str(cfg), "--sources", "slurm", "--no-wait", check=True)
    sweep = project.only_sweep()
    # Started before the element runs: waits for its output, prints it once, stops when it ends.
    follower = subprocess.Popen([sys.executable, "-m", "hsm_core", "logs", "1", sweep.name, "-f", "--interval", "0.1"],
                                cwd=project.root, env=project.environ(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    try:
        out, err = follower.communicate(timeout=90)
    finally:
        follower.kill()
    assert follower.returncode == 0, err
    assert [ln for ln in out.splitlines() if ln.startswith("tick")] == [f"tick {i}" for i in range(12)]
    assert err.strip() == "halfway"
    assert _state(project, sweep, "task_001")["state"] == "completed"
    # Without -f: what the task wrote, at once.
    again = project.hsm("logs", "task_001", sweep.name, check=True)
    assert again.stdout == out and again.stderr.strip() == "halfway"
