"""Workers as a real Slurm array on the local Slurm, with a `scontrol requeue` of one element."""

from __future__ import annotations

import re

import pytest

from hsm_project import Project
from hsm_core.testing.services import ServiceUnavailable, require_service, start_slurm
from test_workers import CKPT_PY, FAST, attempts_log, ckpt_sweep, executions, lock_files, statuses, sweep_dir, wait_for

pytestmark = pytest.mark.slurm


@pytest.fixture
def cluster():
    try:
        return start_slurm()
    except ServiceUnavailable as exc:
        require_service("slurm", str(exc))


def _element_running_a_task(project: Project, group: str, element: str) -> bool:
    """True when the element runs a task that has saved its second checkpoint (that task's own:
    another task's steps said nothing of how far the one to be requeued had come)."""
    tasks = sweep_dir(project, group) / "tasks"
    for name, st in statuses(project, group).items() if tasks.is_dir() else []:
        if st.get("state") == "running" and str(st.get("array_index")) == element:
            step = tasks / name / "checkpoints" / "step.txt"
            text = step.read_text().strip() if step.exists() else ""
            return text.isdigit() and int(text) >= 2
    return False


def test_slurm_array_of_workers_survives_a_requeue(project: Project, cluster) -> None:
    (project.root / "ckpt.py").write_text(CKPT_PY)
    cfg = ckpt_sweep(project, "slurmw", steps=12, delay=0.1, seeds=list(range(8)))
    # The Slurm plugin writes and submits the array; in the job it tells each worker its element.
    env = {**cluster.env, **FAST, "HSM_DISABLE_PLUGINS": "", "HSM_LOAD_PLUGINS": "slurm", "HSM_COUNT_DIR": str(project.root)}
    proc = project.hsm("worker", "submit", "--sweep", str(cfg), "--workers", "2", "--sources", "slurm", env=env)
    assert proc.returncode == 0, proc.stderr
    job = re.search(r"job (\d+)", proc.stdout).group(1)
    script = next((sweep_dir(project, "slurmw") / "scripts" / "job_scripts").glob("workers_*.sbatch")).read_text()
    assert "#SBATCH --array=0-1" in script and "#SBATCH --requeue" in script
    try:
        wait_for(lambda: _element_running_a_task(project, "slurmw", "0"), timeout=90, what="element 0 running a task")
        # Slurm kills the element (SIGTERM, then SIGKILL after KillWait) and queues it again.
        cluster.run(["scontrol", "requeue", f"{job}_0"])
        wait_for(lambda: len(executions(project)) == 8, timeout=120, what="all 8 tasks")
        # The requeued element starts again (after CredExpire) and finds nothing left to do.
        wait_for(lambda: not cluster.run(["squeue", "-h", "-j", job], check=False).stdout.strip(), timeout=90,
                 what="the array job to leave the queue")
    finally:
        cluster.run(["scancel", job], check=False)
    runs = executions(project)
    assert sorted(runs) == sorted(set(runs)) and len(runs) == 8
    st = statuses(project, "slurmw")
    assert {s["state"] for s in st.values()} == {"completed"}
    preempted = [s for s in st.values() if [a["state"] for a in s["attempts"]] == ["preempted", "completed"]]
    assert len(preempted) == 1, {n: [a["state"] for a in s["attempts"]] for n, s in st.items()}
    first, second = [r for r in attempts_log(project) if r["run"] == preempted[0]["run_id"]]
    assert int(second["start"]) >= 2 and first["dir"] == second["dir"]  # resumed from its checkpoint
    assert lock_files(project, "slurmw") == []
    log0 = next((sweep_dir(project, "slurmw") / "logs" / "workers").glob(f"slurm-{job}_0.out")).read_text()
    assert "stopped by SIGTERM" in log0
    assert log0.count("hsm worker: started on") == 2, log0  # the same element, run again by Slurm
