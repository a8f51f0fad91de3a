"""Worker jobs (``hsm worker submit``) through the Torque ``qsub`` front-end get the warning
before the walltime that PBS array jobs get: the job script exports ``HSM_WARNING_AT`` and the
worker sends itself SIGUSR1 then, passing it on to the task, which saves a checkpoint. Judged from
the task's own files and the worker's log."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from hsm_core.testing.project import make_project, wait_for
from hsm_core.testing.timeline import TIMED_SCRIPT

pytestmark = pytest.mark.slurm


@pytest.fixture
def torque_cluster(slurm_cluster):
    if shutil.which("qsub") is None:
        from hsm_core.testing.services import require_service

        require_service("pbs", "no qsub on PATH (slurm-wlm-torque is not installed)")
    return slurm_cluster


def test_a_torque_worker_job_warns_its_task_before_the_walltime(tmp_path: Path, torque_cluster) -> None:
    # Walltime 1 min, warned 50 s before: the worker's timer fires 10 s after the job starts.
    hpc = 'hpc:\n  system: torque\n  walltime: "00:01:00"\n  signal_before_walltime: 50\n'
    project = make_project(tmp_path / "proj", name="warn", config_extra=hpc, script=TIMED_SCRIPT,
                           env={"SLURM_CONF": str(torque_cluster.conf)})
    cfg = project.write_sweep({"name": "warned", "grid": {"x": [1], "sleep": [300]}}, "warned.yaml")
    dry = project.hsm("worker", "submit", "--sweep", str(cfg), "--workers", "1", "--sources", "torque", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "export HSM_WARNING_AT=$(( ${EPOCHSECONDS:-$(date +%s)} + 10 ))" in dry.stdout, dry.stdout
    proc = project.hsm("worker", "submit", "--sweep", str(cfg), "--workers", "1", "--sources", "torque")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    job = re.search(r"job (\S+)", proc.stdout).group(1)
    sweep = project.outputs / "warned"

    def task_saved() -> Path | None:
        for out in (sweep / "tasks").glob("*/stdout.log") if (sweep / "tasks").is_dir() else ():
            if "HSM_T SAVED" in out.read_text():
                return out.parent
        return None

    try:
        task = wait_for(task_saved, 90, interval=0.5, what="the task to save its checkpoint")
        wait_for(lambda: "stopped by" in "".join(p.read_text() for p in (sweep / "logs" / "workers").glob("*.log")),
                 30, interval=0.5, what="the worker to stop")
    finally:
        torque_cluster.run(["scancel", job.split(".")[0].split("[")[0]], check=False)
    out = (task / "stdout.log").read_text()
    started = float(re.search(r"HSM_T START (\d+\.\d+)", out).group(1))
    saved = float(re.search(r"HSM_T SAVED SIGUSR1 (\d+\.\d+)", out).group(1))
    assert 5 <= saved - started < 40, out  # warned after ~10 s, long before the walltime
    assert (task / "checkpoint.txt").read_text().strip() == "1.0"
    status = yaml.safe_load((task / "status.yaml").read_text())
    assert status["signal_received"] == "SIGUSR1" and status["state"] != "completed", status
    log = "".join(p.read_text() for p in (sweep / "logs" / "workers").glob("*.log"))
    assert "warning before the walltime: SIGUSR1 in" in log and "stopped by SIGUSR1" in log, log
