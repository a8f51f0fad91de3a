"""Worker jobs (``hsm worker submit``) get the warning before the walltime that array jobs of
tasks get: a training script that saves a checkpoint on SIGUSR1 saves it before the job ends,
judged from the task's own files and the worker's log on the local Slurm."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from hsm_core.testing.project import make_project, wait_for
from hsm_core.testing.timeline import TIMED_SCRIPT

pytestmark = pytest.mark.slurm


def test_a_worker_job_warns_its_task_before_the_walltime(tmp_path: Path, slurm_cluster) -> None:
    # Walltime 3 min, warned 60 s before; the task would work 300 s. Without the warning the job
    # is killed at its walltime and the task's work since its last checkpoint is lost. (Slurm may
    # send the signal up to 60 s early: with 1 min and 50 s it came 0.2 s into the job, before the
    # worker had started, and the job's shell died of it; 3 min leaves the worker at least 60 s.)
    hpc = 'hpc:\n  system: slurm\n  walltime: "00:03:00"\n  signal_before_walltime: 60\n'
    project = make_project(tmp_path / "proj", name="warn", config_extra=hpc, script=TIMED_SCRIPT,
                           env={"SLURM_CONF": str(slurm_cluster.conf)})
    cfg = project.write_sweep({"name": "warned", "grid": {"x": [1], "sleep": [300]}}, "warned.yaml")
    dry = project.hsm("worker", "submit", "--sweep", str(cfg), "--workers", "1", "--sources", "slurm", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "#SBATCH --signal=B:USR1@60\n" in dry.stdout  # what the user reads before submitting
    proc = project.hsm("worker", "submit", "--sweep", str(cfg), "--workers", "1", "--sources", "slurm")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    job = re.search(r"job (\d+)", proc.stdout).group(1)
    sweep = project.outputs / "warned"
    try:
        wait_for(lambda: not slurm_cluster.run(["squeue", "-h", "-j", job], check=False).stdout.strip(), 240,
                 interval=1, what="the worker job to end")
    finally:
        slurm_cluster.run(["scancel", job], check=False)
    (task,) = (sweep / "tasks").iterdir()  # (a worker sweep's task dir is named by its run id)
    out = (task / "stdout.log").read_text()
    saved = re.search(r"HSM_T SAVED SIGUSR1 (\d+\.\d+)", out)
    assert saved, out
    started = float(re.search(r"HSM_T START (\d+\.\d+)", out).group(1))
    assert saved and float(saved.group(1)) - started < 175, out  # warned before the 3 min walltime
    assert (task / "checkpoint.txt").read_text().strip() == "1.0"
    status = yaml.safe_load((task / "status.yaml").read_text())
    assert status["signal_received"] == "SIGUSR1" and status["state"] != "completed", status
    log = next((sweep / "logs" / "workers").glob(f"slurm-{job}_0.out")).read_text()
    assert "stopped by SIGUSR1" in log, log
