"""The link back to the scheduler through Slurm's Torque front-end (qsub/qstat/qdel/qhold/qrls/
qrerun of slurm-wlm-torque): element ids in status and export, and what the front-end cannot do.

The front-end reads an element id ``123[4]`` as ``123`` (another element, or the whole array),
its ``qdel`` of an element's own job id does nothing (found on Slurm 22.05: exit 0, the element
runs on) and its ``qrerun`` fails for every job (``Usage: Slurm::requeue``): hsm acts on no single
element there, and says so in one line per task, touching nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pbs_support import make_project, wait_for

pytestmark = pytest.mark.slurm



def test_torque_elements_are_named_and_never_acted_on_wrongly(tmp_path: Path, pbs_cluster) -> None:
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

        # The front-end reads 123[4] as 123 and ignores an element's own id (qdel of it does
        # nothing): no single element can be held, requeued or cancelled; each task says so.
        for action in ("hold", "requeue"):
            proc = project.hsm(action, sweep.name, "--tasks", "1,3")
            assert proc.returncode == 1, proc.stdout + proc.stderr
            for name in ("task_001", "task_003"):
                assert f"{name}: Torque has no id for this task's array element alone" in proc.stdout
        out = project.hsm("cancel", sweep.name, "--tasks", "1", "--wait", "5", check=True).stdout
        assert "1 not cancelled" in out
        # Said at once, not "cancel requested" for a task that then runs on (a user who waits
        # the task out would otherwise read only "1 completed").
        assert "cannot stop task_001 alone" in out and "cancel requested" not in out, out
        assert state("task_001") == "running" and state("task_002") == "submitted"
        active = pbs_cluster.run(["squeue", "-h", "-r", "-j", job, "-t", "PD,R", "-o", "%i"], check=False).stdout.split()
        assert sorted(active) == [f"{job}_0", f"{job}_1", f"{job}_2"]  # nothing was stopped or held
    finally:
        project.hsm("cancel", sweep.name, "--wait", "30")
    left = pbs_cluster.run(["squeue", "-h", "-j", job, "-t", "PD,R,CG", "-o", "%i"], check=False).stdout
    assert left.strip() == ""
