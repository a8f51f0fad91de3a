"""Large submissions whose task dirs are made by the array elements (hsm_core/plugin/arrayjob/
unmade.py), on the real local Slurm: what a user sees of tasks submitted but not started — no task
dir yet — is what they saw when every dir was made at submission: ``hsm status``, ``hsm queue``,
``hsm export``'s job ids, ``hsm cancel``; an element cancelled from outside while pending gets
one verdict and ``hsm complete`` runs it once again; an element's dir is whole before its task
starts. The tasks are held (``--hold``) so that nothing runs unless a test releases it."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
from pathlib import Path

import yaml
from slurm_support import make_project, wait_for

#: A submission this large leaves its task dirs to the elements (hsm-core's UNMADE_FROM; a plugin's
#: tests see only the plugin API, and the assertions below fail loudly if the threshold moves).
UNMADE_FROM = 1000

#: Records what the task found in its dir when it started, and that it ran.
SCRIPT = r'''
import json, os, sys
d = os.environ["HSM_TASK_DIR"]
seen = {name: os.path.isfile(os.path.join(d, name)) for name in ("params.yaml", "command.json")}
seen["params"] = open(os.path.join(d, "params.yaml")).read() if seen["params.yaml"] else ""
with open(os.path.join(os.environ["HSM_COUNT_DIR"], "runs.log"), "a") as fh:
    fh.write(os.environ["HSM_TASK_ID"] + "\n")
print("SEEN", json.dumps(seen))
'''

#: How an element cancelled while pending is recorded, as when its dir was made at submission:
#: ``cancelled`` when the scheduler's accounting says so, ``lost`` without accounting (the local
#: cluster keeps none): it left the queue before its task started. Either is run again by hsm complete.
ENDED_PENDING = ("cancelled", "lost")

HELD = 'hpc:\n  system: slurm\n  default_walltime: "00:05:00"\n  extra_directives: ["--hold"]\n'


def _project(tmp_path: Path, cluster):
    project = make_project(tmp_path / "proj", cluster, HELD)
    (project.root / "train.py").write_text(SCRIPT)
    return project


def _jobs(sweep: Path) -> list[dict]:
    path = sweep / "scripts" / "job_scripts" / "jobs.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _task_dirs(sweep: Path) -> list[str]:
    tasks = sweep / "tasks"
    return sorted(p.name for p in tasks.iterdir()) if tasks.is_dir() else []


def _status(sweep: Path, name: str) -> dict:
    path = sweep / "tasks" / name / "status.yaml"
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def _counts(project) -> dict:
    counts = json.loads(project.hsm("status", "--json", check=True).stdout)["counts"]
    return {state: n for state, n in counts.items() if n}


def test_10000_held_tasks_submitted_without_dirs_show_in_status_queue_export_and_cancel(tmp_path: Path, slurm_cluster) -> None:
    project = _project(tmp_path, slurm_cluster)
    cfg = project.write_sweep({"grid": {"x": list(range(10_000))}})
    project.hsm("run", "--config", str(cfg), "--sources", "slurm", "--no-wait", check=True, timeout=300)
    sweep = project.only_sweep()
    jobs = _jobs(sweep)
    try:
        assert sum(len(j["tasks"]) for j in jobs) == 10_000
        assert _task_dirs(sweep) == []  # nothing made per task: each element makes its own
        assert _counts(project) == {"submitted": 10_000}
        queue = project.hsm("queue", check=True).stdout
        assert all(j["job_id"] in queue for j in jobs) and "PENDING" in queue, queue
        # Export names each task's array element, as for a task whose dir was made at submission.
        rows = list(csv.DictReader(io.StringIO(project.hsm("export", "--format", "csv", check=True).stdout)))
        assert len(rows) == 10_000
        first, last = jobs[0]["job_id"], jobs[-1]["job_id"]
        assert {r["scheduler_id"] for r in rows} >= {f"{first}_0", f"{last}_{len(jobs[-1]['tasks']) - 1}"}
        proc = project.hsm("cancel", timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        slurm_cluster.run(["scancel", *[j["job_id"] for j in jobs]], check=False)
    assert _counts(project) == {"cancelled": 10_000}
    # Each cancelled task now has its dir, made as its element would have made it.
    some = _status(sweep, "task_5000")
    assert some.get("state") == "cancelled" and some.get("task_id"), some
    assert (sweep / "tasks" / "task_5000" / "params.yaml").is_file()
    assert slurm_cluster.run(["squeue", "-h", "-j", ",".join(j["job_id"] for j in jobs)], check=False).stdout.strip() == ""


def test_a_pending_element_cancelled_from_outside_gets_one_verdict_and_one_rerun(tmp_path: Path, slurm_cluster) -> None:
    project = _project(tmp_path, slurm_cluster)
    cfg = project.write_sweep({"grid": {"x": list(range(UNMADE_FROM))}})
    controller = project.popen("run", "--config", str(cfg), "--sources", "slurm")
    jobs: list[dict] = []
    try:
        wait_for(lambda: project.sweep_ids() and _jobs(project.only_sweep()), 120, what="the array job submitted")
        sweep = project.only_sweep()
        jobs = _jobs(sweep)
        job = jobs[0]["job_id"]
        assert _task_dirs(sweep) == []
        # One element released (it runs: its dir is made by it), one cancelled while pending.
        slurm_cluster.run(["scontrol", "release", f"{job}_2"], check=True)
        slurm_cluster.run(["scancel", f"{job}_7"], check=True)
        wait_for(lambda: _status(sweep, "task_003").get("state") == "completed"
                 and _status(sweep, "task_008").get("state") in ENDED_PENDING, 180, what="the two verdicts")
        # The element's dir was whole when its task started.
        seen = json.loads(next(line for line in (sweep / "tasks" / "task_003" / "stdout.log").read_text().splitlines()
                               if line.startswith("SEEN "))[5:])
        assert seen["params.yaml"] and seen["command.json"] and "x: 2" in seen["params"], seen
        cancelled = _status(sweep, "task_008")
        assert cancelled["task_id"] and cancelled.get("array_index") == 7, cancelled
        assert sorted(_task_dirs(sweep)) == ["task_003", "task_008"]
    finally:
        controller.send_signal(signal.SIGKILL)  # the controller dies; the jobs live on
        controller.communicate(timeout=60)
    try:
        # hsm complete, without the hold: reruns the cancelled task (once), follows the rest.
        config = project.root / "hsm_config.yaml"
        config.write_text(config.read_text().replace('  extra_directives: ["--hold"]\n', ""))
        proc = project.hsm("complete", sweep.name, "--no-wait", timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        wait_for(lambda: _status(sweep, "task_008").get("state") == "completed", 180, what="the rerun")
        assert _counts(project).get("submitted") == UNMADE_FROM - 2
        proc = project.hsm("cancel", timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        slurm_cluster.run(["scancel", *[j["job_id"] for j in _jobs(sweep)]], check=False)
    runs = (project.root / "runs.log").read_text().split()
    ids = {n: _status(sweep, n)["task_id"] for n in ("task_003", "task_008")}
    assert runs.count(ids["task_003"]) == 1 and runs.count(ids["task_008"]) == 1 and len(runs) == 2, runs
    log = (sweep / "logs" / "sources" / "slurm.log").read_text()
    # One verdict, written by the controller that saw the element go; hsm complete wrote none.
    assert sum(1 for line in log.splitlines() if any(f"task_008 {v}:" in line for v in ENDED_PENDING)) == 1, log
    assert _counts(project) == {"completed": 2, "cancelled": UNMADE_FROM - 2}
    assert os.path.isfile(sweep / "tasks" / "task_500" / "command.json")
