"""Job-script hygiene and per-task resources through the Torque ``qsub`` front-end (issue 16): a
failing setup command fails the task; a script submitted by hand from another directory logs
where hsm reads; a per-task walltime reaches the job; a Slurm directive never reaches ``qsub``."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pbs_support import make_project, wait_for

pytestmark = pytest.mark.slurm

HPC = 'hpc:\n  system: torque\n  default_walltime: "00:05:00"\n'


@pytest.fixture
def torque_cluster(slurm_cluster):
    if shutil.which("qsub") is None:
        from hsm_core.testing.services import require_service

        require_service("pbs", "no qsub on PATH (slurm-wlm-torque is not installed)")
    return slurm_cluster


def test_a_failing_setup_command_fails_the_task_under_torque(tmp_path: Path, torque_cluster) -> None:
    project = make_project(tmp_path / "proj", torque_cluster, HPC + '  setup_commands: ["module load no-such-module/1.0"]\n')
    cfg = project.write_sweep({"grid": {"x": [1, 2]}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", "torque")
    assert proc.returncode != 0, proc.stdout + proc.stderr
    sweep = project.only_sweep()
    statuses = project.statuses(sweep)
    assert {s["state"] for s in statuses.values()} == {"failed"}, statuses
    for status in statuses.values():
        assert status["error"].startswith("setup command 1 exited ") and status["error"].endswith(": module load no-such-module/1.0")
    assert project.executions() == []


def test_a_torque_script_submitted_from_elsewhere_and_a_per_task_walltime(tmp_path: Path, torque_cluster) -> None:
    project = make_project(tmp_path / "proj", torque_cluster, HPC + '  extra_directives: {slurm: ["--signal=B:USR1@60"]}\n')
    cfg = project.write_sweep({
        "grid": {"model": ["small", "large"]},
        "resources": {"walltime": "00:03:00", "per_task": [{"when": {"model": "large"}, "walltime": "00:07:00"}]},
    })
    project.hsm("run", "--config", str(cfg), "--sources", "torque", check=True)
    sweep = project.only_sweep()
    jobs = sweep / "scripts" / "job_scripts"
    chunks = [json.loads(ln) for ln in (jobs / "jobs.jsonl").read_text().splitlines()]
    assert len(chunks) == 2
    walltimes = {}
    for chunk in chunks:
        script = (jobs / chunk["script"]).read_text()
        assert "--signal" not in script and "#SBATCH" not in script  # the Slurm-only directive stays out
        task = (jobs / chunk["list"]).read_text().split()[0]
        model = yaml.safe_load((jobs / task / "params.yaml").read_text())["params"]["model"]
        out = torque_cluster.run(["squeue", "-h", "-t", "all", "-j", chunk["job_id"].split(".")[0].split("[")[0], "-o", "%l"],
                                 check=False).stdout.split()
        walltimes[model] = out[0] if out else None
    assert walltimes == {"small": "3:00", "large": "7:00"}
    assert {s["state"] for s in project.statuses(sweep).values()} == {"completed"}
    # Submitted again by hand from another directory: the logs land in the sweep's logs/jobs.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    before = set((sweep / "logs" / "jobs").iterdir())
    sub = subprocess.run(["qsub", str(jobs / chunks[0]["script"])], cwd=elsewhere, env=torque_cluster.env,
                         capture_output=True, text=True, timeout=60)
    assert sub.returncode == 0, sub.stdout + sub.stderr
    job_id = sub.stdout.strip().split(".")[0]
    wait_for(lambda: torque_cluster.run(["squeue", "-h", "-j", job_id], check=False).stdout.strip() == "", 120, what="resubmitted job ends")
    new = set((sweep / "logs" / "jobs").iterdir()) - before
    assert any(job_id in p.name for p in new), sorted(p.name for p in new)
    # Slurm's qsub front-end passes its own -o/-e (<script>.o<id>, in the directory qsub ran in) on
    # sbatch's command line, over the script's #PBS -o/-e (real PBS and Torque honour those): the
    # element's output went to its log above, so all they may hold is nothing.
    left = {p.name: p.read_text() for p in elsewhere.iterdir()}
    assert set(left) <= {f"{chunks[0]['script']}.o{job_id}", f"{chunks[0]['script']}.e{job_id}"}, left
    assert set(left.values()) <= {""}, left
