"""End to end through Slurm's Torque-compatible qsub/qstat/qdel (slurm-wlm-torque)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pbs_support import make_project, wait_for

pytestmark = pytest.mark.slurm



@pytest.mark.parametrize("system", ["pbs", "torque"])
def test_a_small_sweep_completes_through_qsub(tmp_path: Path, pbs_cluster, system: str) -> None:
    hpc = f'hpc:\n  system: {system}\n  default_walltime: "00:10:00"\n  default_resources: "select=1:ncpus=1:mem=100mb"\n  array_parallelism: 3\n'
    project = make_project(tmp_path / "proj", pbs_cluster, hpc)
    cfg = project.write_sweep({"grid": {"x": [1, 2, 3], "y": [0, 1]}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", "hpc")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sweep = project.only_sweep()
    statuses = project.statuses(sweep)
    assert len(statuses) == 6 and {s["state"] for s in statuses.values()} == {"completed"}
    assert {s["source"] for s in statuses.values()} == {system}
    script = (sweep / "scripts" / "job_scripts" / f"{system}_001.sh").read_text()
    assert ("#PBS -J 0-5" if system == "pbs" else "#PBS -t 0-5%3") in script
    for name in statuses:
        params = yaml.safe_load((sweep / "tasks" / name / "params.yaml").read_text())["params"]
        assert json.loads((sweep / "tasks" / name / "metrics.json").read_text())["score"] == params["x"] * 2


def test_hsm_cancel_uses_qdel(tmp_path: Path, pbs_cluster) -> None:
    project = make_project(tmp_path / "proj", pbs_cluster, "hpc:\n  system: pbs\n")
    cfg = project.write_sweep({"grid": {"x": [1, 2], "sleep": [300]}})
    project.hsm("run", "--config", str(cfg), "--sources", "pbs", "--no-wait", check=True)
    sweep = project.only_sweep()
    wait_for(lambda: [s.get("state") for s in project.statuses(sweep).values()] == ["running", "running"], 60, what="running")
    out = project.hsm("cancel", sweep.name, check=True).stdout
    assert "2 cancelled" in out
    assert {s["state"] for s in project.statuses(sweep).values()} == {"cancelled"}
    job = json.loads((sweep / "scripts" / "job_scripts" / "jobs.jsonl").read_text().splitlines()[0])["job_id"]
    left = pbs_cluster.run(["squeue", "-h", "-j", job, "-t", "PD,R,CG", "-o", "%i"], check=False).stdout
    assert left.strip() == ""


def test_hsm_test_pbs(tmp_path: Path, pbs_cluster) -> None:
    project = make_project(tmp_path / "proj", pbs_cluster, "hpc:\n  system: torque\n")
    proc = project.hsm("test", "hpc", "--timeout", "60")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Torque source 'torque'" in proc.stdout and "[ok] test job completed" in proc.stdout
