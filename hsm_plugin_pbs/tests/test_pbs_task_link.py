"""The link back to the scheduler through Slurm's Torque front-end (qsub/qstat/qdel/qhold/qrls/
qrerun of slurm-wlm-torque): element ids, per-task cancel, and what the front-end cannot do.

The front-end reads an element id ``123[4]`` as ``123`` (another element, or the whole array):
hsm hands it only the element's own job id, recorded by the task's runner once it started, and
refuses a queued element it cannot name yet. Its ``qrerun`` fails for every job (``Usage:
Slurm::requeue``), which hsm reports in one line per task.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pbs_support import make_project, wait_for

pytestmark = pytest.mark.slurm


@pytest.fixture
def pbs_cluster(slurm_cluster):
    if shutil.which("qsub") is None:
        from hsm_core.testing.services import require_service

        require_service("pbs", "no qsub on PATH (slurm-wlm-torque is not installed)")
    return slurm_cluster


def test_torque_elements_are_named_and_cancelled_one_by_one(tmp_path: Path, pbs_cluster) -> None:
    hpc = 'hpc:\n  system: torque\n  default_walltime: "00:10:00"\n  array_parallelism: 1\n'
    project = make_project(tmp_path / "proj", pbs_cluster, hpc)
    cfg = project.write_sweep({"grid": {"x": [1, 2, 3], "sleep": [300]}})
    project.hsm("run", "--config", str(cfg), "--sources", "hpc", "--no-wait", check=True)
    sweep = project.only_sweep()
    job = json.loads((sweep / "scripts" / "job_scripts" / "jobs.jsonl").read_text().splitlines()[0])["job_id"]

    def state(name: str) -> str | None:
        return project.statuses(sweep).get(name, {}).get("state")

    try:
        wait_for(lambda: state("task_001") == "running", 60, what="the first element running")
        rows = {r["task"]: r for r in json.loads(project.hsm("status", sweep.name, "--tasks", "--json", check=True).stdout)["tasks"]}
        assert [rows[f"task_00{i}"]["scheduler_id"] for i in (1, 2, 3)] == [f"{job}[{i}]" for i in range(3)]
        own = rows["task_001"]["job_id"]
        assert own and rows["task_001"]["scheduler_state"].startswith("R")
        exported = json.loads(project.hsm("export", sweep.name, "--format", "json", check=True).stdout)
        assert [r["scheduler_id"] for r in exported] == [f"{job}[{i}]" for i in range(3)]

        # A queued element has no id the front-end reads right: refused, one line, nothing touched.
        proc = project.hsm("hold", sweep.name, "--tasks", "3")
        assert proc.returncode == 1 and "task_003: Torque does not name this task's array element until it starts" in proc.stdout
        # The front-end's qrerun cannot requeue: said in one line per task.
        proc = project.hsm("requeue", sweep.name, "--tasks", "1")
        assert proc.returncode == 1 and f"task_001: Torque refused to requeue {own}:" in proc.stdout, proc.stdout
        assert state("task_001") == "running"

        # qdel of the running element's own id: it alone ends; the throttle starts the next one.
        out = project.hsm("cancel", sweep.name, "--tasks", "1", check=True).stdout
        assert "1 cancelled" in out
        assert state("task_001") == "cancelled"
        wait_for(lambda: state("task_002") == "running", 60, what="the second element running")
        assert state("task_003") == "submitted"
    finally:
        project.hsm("cancel", sweep.name, "--wait", "30")
    left = pbs_cluster.run(["squeue", "-h", "-j", job, "-t", "PD,R,CG", "-o", "%i"], check=False).stdout
    assert left.strip() == ""
