"""Large submissions whose task dirs are made by the array elements (hsm_core/plugin/arrayjob/
unmade.py), through Slurm's Torque front-end (qsub): a 1,000-task sweep runs every task exactly
once — counted from the tasks' own log — each in a whole dir, and ``hsm status`` / ``hsm export``
say what the tasks did, as when every dir was made at submission."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from pbs_support import make_project

#: A submission this large leaves its task dirs to the elements (hsm-core's UNMADE_FROM; a plugin's
#: tests see only the plugin API, and the assertions below fail loudly if the threshold moves).
UNMADE_FROM = 1000

pytestmark = pytest.mark.slurm

#: Logs its run, and whether its dir was whole when it started.
SCRIPT = r'''
import os
d = os.environ["HSM_TASK_DIR"]
whole = all(os.path.isfile(os.path.join(d, n)) for n in ("params.yaml", "command.json"))
with open(os.path.join(os.environ["HSM_COUNT_DIR"], "runs.log"), "a") as fh:
    fh.write(f"{os.environ['HSM_TASK_ID']} {'whole' if whole else 'PARTIAL'}\n")
'''



def test_a_large_torque_sweep_runs_each_task_once_in_a_dir_its_element_made(tmp_path: Path, pbs_cluster) -> None:
    hpc = 'hpc:\n  system: torque\n  default_walltime: "00:10:00"\n'
    project = make_project(tmp_path / "proj", pbs_cluster, hpc)
    (project.root / "train.py").write_text(SCRIPT)
    cfg = project.write_sweep({"grid": {"x": list(range(UNMADE_FROM))}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", "hpc", timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sweep = project.only_sweep()
    job_dir = sweep / "scripts" / "job_scripts"
    # Submitted without dirs: the controller wrote one task file per array job, no command.sh.
    assert list(job_dir.glob("*.tasks.jsonl")), sorted(p.name for p in job_dir.iterdir())
    # ... and the same rows for the shell fast path's bash, in pages of 100 (hsm_core/fastrun_rows.py).
    assert len(list(job_dir.glob("*.rows.*"))) == UNMADE_FROM // 100, sorted(p.name for p in job_dir.iterdir())
    runs = [line.split() for line in (project.root / "runs.log").read_text().splitlines()]
    per_task = Counter(task_id for task_id, _ in runs)
    assert len(per_task) == UNMADE_FROM and set(per_task.values()) == {1}, per_task.most_common(3)
    assert {whole for _, whole in runs} == {"whole"}
    counts = {k: v for k, v in json.loads(project.hsm("status", "--json", check=True).stdout)["counts"].items() if v}
    assert counts == {"completed": UNMADE_FROM}
    status = yaml.safe_load((sweep / "tasks" / "task_500" / "status.yaml").read_text())
    assert status["state"] == "completed" and status["exit_code"] == 0
    rows = list(csv.DictReader(io.StringIO(project.hsm("export", "--format", "csv", check=True).stdout)))
    job = json.loads((job_dir / "jobs.jsonl").read_text().splitlines()[0])["job_id"]
    assert len(rows) == UNMADE_FROM and {r["status"] for r in rows} == {"completed"}
    assert rows[0]["scheduler_id"] == f"{job}[0]"
