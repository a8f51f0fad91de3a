"""Job-script hygiene and per-task resources on the real local Slurm (issue 16): a failing setup
command fails the task instead of running it in the wrong environment; a job script submitted by
hand from another directory still writes its logs where hsm reads them; a per-task walltime
reaches the scheduler (squeue's time limit of each array job)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from slurm_support import make_project, wait_for

pytestmark = pytest.mark.slurm


def test_a_failing_setup_command_fails_the_task_and_the_command_never_runs(tmp_path: Path, slurm_cluster) -> None:
    hpc = ('hpc:\n  system: slurm\n  default_walltime: "00:05:00"\n'
           '  setup_commands: ["export HSM_SETUP_OK=1", "source /nonexistent/venv/bin/activate"]\n')
    project = make_project(tmp_path / "proj", slurm_cluster, hpc)
    cfg = project.write_sweep({"grid": {"x": [1, 2]}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", "slurm")
    assert proc.returncode != 0, proc.stdout + proc.stderr
    sweep = project.only_sweep()
    statuses = project.statuses(sweep)
    assert {s["state"] for s in statuses.values()} == {"failed"}, statuses
    for status in statuses.values():
        assert status["error"] == "setup command 2 exited 1: source /nonexistent/venv/bin/activate"
        assert status["exit_code"] == 1 and status.get("job_id")
    assert project.executions() == []  # train.py never ran in the wrong environment
    project.hsm("monitor", "errors", sweep.name, check=False)
    assert "source /nonexistent/venv/bin/activate" in (sweep / "logs" / "errors" / "failed_tasks.yaml").read_text()


def test_a_job_script_submitted_from_another_directory_logs_where_hsm_reads(tmp_path: Path, slurm_cluster) -> None:
    project = make_project(tmp_path / "proj", slurm_cluster, 'hpc:\n  system: slurm\n  default_walltime: "00:05:00"\n')
    cfg = project.write_sweep({"grid": {"x": [1, 2]}})
    project.hsm("run", "--config", str(cfg), "--sources", "slurm", check=True)
    sweep = project.only_sweep()
    script = sweep / "scripts" / "job_scripts" / "slurm_001.sh"
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    # Resubmitted by hand (--force-like rerun is not needed: the runner skips completed tasks,
    # the element still starts, logs and exits 0).
    out = subprocess.run(["sbatch", "--parsable", "--wait", str(script)], cwd=elsewhere, env=slurm_cluster.env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip().split(";")[0]
    logs = sorted(p.name for p in (sweep / "logs" / "jobs").glob(f"*_{job_id}_*.out"))
    assert len(logs) == 2, logs
    assert list(elsewhere.rglob("*")) == []  # nothing written relative to where it was submitted


def test_a_per_task_walltime_reaches_the_scheduler(tmp_path: Path, slurm_cluster) -> None:
    project = make_project(tmp_path / "proj", slurm_cluster, 'hpc:\n  system: slurm\n  default_walltime: "00:05:00"\n')
    cfg = project.write_sweep({
        "grid": {"model": ["small", "large"], "seed": [0, 1]},
        "resources": {"walltime": "00:03:00", "per_task": [{"when": {"model": "large"}, "walltime": "00:07:00"}]},
    })
    dry = json.loads(project.hsm("run", "--config", str(cfg), "--sources", "slurm", "--dry-run", "--json", check=True).stdout)
    plan = dry["job_scripts"][0]
    assert [c["resources"] for c in plan["chunks"]] == ["walltime 00:03:00", "walltime 00:07:00"]
    project.hsm("run", "--config", str(cfg), "--sources", "slurm", "--no-wait", check=True)
    sweep = project.only_sweep()
    chunks = [json.loads(ln) for ln in (sweep / "scripts" / "job_scripts" / "jobs.jsonl").read_text().splitlines()]
    assert len(chunks) == 2

    def limits() -> dict[str, str]:
        out = slurm_cluster.run(["squeue", "-h", "-t", "all", "-j", ",".join(c["job_id"] for c in chunks), "-o", "%F %l"],
                                check=False)
        return dict(line.split() for line in out.stdout.splitlines() if line.strip())

    seen = wait_for(lambda: len(limits()) == 2 and limits(), 60, what="both array jobs in squeue")
    by_params = {}
    for chunk in chunks:
        listed = (sweep / "scripts" / "job_scripts" / chunk["list"]).read_text().split()
        models = {_params(sweep, Path(d).name)["model"] for d in listed}
        assert len(models) == 1  # one model per array job
        by_params[models.pop()] = seen[chunk["job_id"]]
    assert by_params == {"small": "3:00", "large": "7:00"}
    wait_for(lambda: {s.get("state") for s in project.statuses(sweep).values()} == {"completed"}, 120, what="tasks done")


def _params(sweep: Path, task: str) -> dict:
    import yaml

    return yaml.safe_load((sweep / "tasks" / task / "params.yaml").read_text())["params"]


STEP_SCRIPT = """\
import json, os, sys
args = dict(a.split("=", 1) for a in sys.argv[1:])
with open(os.path.join(os.environ.get("HSM_COUNT_DIR", "."), "runs.log"), "a") as fh:
    fh.write(os.environ.get("HSM_TASK_ID", "?") + "\\n")
print(json.dumps({"step": os.environ.get("SLURM_STEP_ID"), "x": args.get("x")}))
"""


def test_the_srun_launcher_runs_the_command_as_a_job_step(tmp_path: Path, slurm_cluster) -> None:
    """What a task of several nodes gets (HSM_TASK_LAUNCHER=srun ...), tried on one node: the
    command runs as a job step under srun, once, and the task is recorded as usual."""
    from hsm_core.testing.project import make_project as make

    hpc = ('hpc:\n  system: slurm\n  default_walltime: "00:05:00"\n'
           '  setup_commands: [\'export HSM_TASK_LAUNCHER="srun --kill-on-bad-exit=1"\']\n')
    project = make(tmp_path / "proj", name="slurmtest", config_extra=hpc, env={"SLURM_CONF": str(slurm_cluster.conf)},
                   script=STEP_SCRIPT)
    cfg = project.write_sweep({"grid": {"x": [1, 2]}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", "slurm")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sweep = project.only_sweep()
    assert {s["state"] for s in project.statuses(sweep).values()} == {"completed"}
    for name in project.statuses(sweep):
        out = json.loads((sweep / "tasks" / name / "stdout.log").read_text().strip().splitlines()[-1])
        assert out["step"] == "0"  # the first job step: srun started it
    assert len(project.executions()) == 2  # once per task, not once per srun task and runner
    # Without the launcher the command runs in the batch step itself: no step id (the control).
    plain = make(tmp_path / "plain", name="slurmtest", config_extra='hpc:\n  system: slurm\n  default_walltime: "00:05:00"\n',
                 env={"SLURM_CONF": str(slurm_cluster.conf)}, script=STEP_SCRIPT)
    plain.hsm("run", "--config", str(plain.write_sweep({"grid": {"x": [1]}})), "--sources", "slurm", check=True)
    sweep = plain.only_sweep()
    (name,) = plain.statuses(sweep)
    assert json.loads((sweep / "tasks" / name / "stdout.log").read_text().strip().splitlines()[-1])["step"] is None
