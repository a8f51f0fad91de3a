"""A sweep's flow through the Torque ``qsub`` front-end (slurm-wlm-torque), judged from the tasks'
own logs (issue 16): the sweep-wide throttle over several array jobs (``-W depend=afterany``),
``hsm run --after``, and the warning timer of PBS scripts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from hsm_core.testing.project import make_project as _make_project
from hsm_core.testing.timeline import TIMED_SCRIPT, intervals, max_overlap
from pbs_support import Project, wait_for

pytestmark = pytest.mark.slurm


@pytest.fixture
def torque_cluster(slurm_cluster):
    if shutil.which("qsub") is None:
        from hsm_core.testing.services import require_service

        require_service("pbs", "no qsub on PATH (slurm-wlm-torque is not installed)")
    return slurm_cluster


def timed_project(root: Path, cluster, hpc: str) -> Project:
    return _make_project(root, name="flow", config_extra=hpc, env={"SLURM_CONF": str(cluster.conf)}, script=TIMED_SCRIPT)


def _manifest(sweep: Path) -> list[dict]:
    return [json.loads(ln) for ln in (sweep / "scripts" / "job_scripts" / "jobs.jsonl").read_text().splitlines()]


def _states(project: Project, sweep: Path) -> list[str]:
    return [s.get("state") for s in project.statuses(sweep).values()]


def test_torque_throttle_holds_for_the_sweep_and_after_waits_for_another_sweep(tmp_path: Path, torque_cluster) -> None:
    hpc = 'hpc:\n  system: torque\n  default_walltime: "00:05:00"\n  max_array_size: 2\n  array_parallelism: 2\n'
    project = timed_project(tmp_path / "proj", torque_cluster, hpc)
    a_cfg = project.write_sweep({"grid": {"x": list(range(5)), "sleep": [1.5]}}, "a.yaml")
    b_cfg = project.write_sweep({"grid": {"x": [7], "sleep": [0.5]}}, "b.yaml")
    # A: 5 tasks in 3 array jobs of 2, nobody watching; B after A, with a controller.
    project.hsm("run", "--config", str(a_cfg), "--sources", "torque", "--no-wait", "--sweep-id", "sweep_a", check=True)
    proc = project.hsm("run", "--config", str(b_cfg), "--sources", "torque", "--sweep-id", "sweep_b", "--after", "sweep_a", timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sweep_a, sweep_b = project.outputs / "sweep_a", project.outputs / "sweep_b"
    wait_for(lambda: _states(project, sweep_a) == ["completed"] * 5, 120, what="sweep A done")
    a, b = intervals(sweep_a), intervals(sweep_b)
    assert len(a) == 5 and len(b) == 1
    assert max_overlap(a) <= 2, a
    assert b[0].start >= max(s.end for s in a)
    chunks = _manifest(sweep_a)
    assert [c.get("after") for c in chunks] == [None, [chunks[0]["job_id"]], [chunks[1]["job_id"]]]
    waited = _manifest(sweep_b)[0]["after"]  # A's array jobs still active when B was submitted
    assert waited and set(waited) <= {c["job_id"] for c in chunks}


def test_torque_timer_warns_the_task_before_the_walltime(tmp_path: Path, torque_cluster) -> None:
    # Walltime 1 min, warned 50 s before: the runner sends SIGUSR1 after 10 s (HSM_WARNING_AT); the task
    # saves a checkpoint and exits, reads preempted, and hsm complete resumes it.
    hpc = 'hpc:\n  system: torque\n  walltime: "00:01:00"\n  signal_before_walltime: 50\n'
    project = timed_project(tmp_path / "proj", torque_cluster, hpc)
    cfg = project.write_sweep({"grid": {"x": [1], "sleep": [300], "resume_sleep": [0.5]}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", "torque", "--no-wait")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sweep = project.only_sweep()
    script = (sweep / "scripts" / "job_scripts" / "torque_001.sh").read_text()
    assert "export HSM_WARNING_AT=$(( ${EPOCHSECONDS:-$(date +%s)} + 10 ))" in script and "--signal" not in script
    wait_for(lambda: _states(project, sweep) == ["preempted"], 90, interval=0.5, what="task warned")
    (status,) = project.statuses(sweep).values()
    assert status["signal_received"] == "SIGUSR1"
    task = sweep / "tasks" / "task_001"
    assert "HSM_T SAVED SIGUSR1" in (task / "stdout.log").read_text()
    (first,) = intervals(sweep)
    assert 5 <= first.end - first.start < 40  # warned after ~10 s, long before the walltime
    done = project.hsm("complete", sweep.name, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    final = yaml.safe_load((task / "status.yaml").read_text())
    assert final["state"] == "completed"
    assert [a["state"] for a in final["attempts"]] == ["preempted", "completed"]
