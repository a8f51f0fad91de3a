"""Through Slurm's Torque-compatible qsub/qdel, array elements record the same through the task
runner's shell fast path (the default, hsm_core/fastrun.py) as through the Python task runner
(``runner:`` set): a task that completes, one that fails, and one cancelled with ``qdel`` while
it runs (what ``hsm cancel`` does)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from hsm_core.testing.project import make_project, wait_for

pytestmark = pytest.mark.slurm

TASK = r'''
import sys, time
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
print("STARTED", args["name"], flush=True)
if args["name"] == "fail":
    sys.exit(3)
time.sleep(300 if args["name"] == "cancel" else 0)
'''
NAMES = ["ok", "fail", "cancel"]



def _run(root: Path, cluster, runner: str) -> dict[str, dict[str, Any]]:
    hpc = 'hpc:\n  system: torque\n  default_walltime: "00:10:00"\n'
    if runner == "python":
        hpc += f'  runner: "{sys.executable} -m hsm_core.runner"\n'
    project = make_project(root, name="fastpbs", config_extra=hpc, env={"SLURM_CONF": str(cluster.conf)}, script=TASK)
    cfg = project.write_sweep({"grid": {"name": NAMES}})
    project.hsm("run", "--config", str(cfg), "--sources", "torque", "--no-wait", check=True)
    sweep = project.only_sweep()
    final = ("completed", "failed")
    wait_for(lambda: [project.statuses(sweep).get(f"task_00{i}", {}).get("state") for i in (1, 2, 3)][2] == "running"
             and all(project.statuses(sweep).get(f"task_00{i}", {}).get("state") in final for i in (1, 2)), 120,
             what="two tasks ended and one running")
    project.hsm("cancel", sweep.name, check=True)
    statuses = project.statuses(sweep)
    script = (sweep / "scripts" / "job_scripts" / "torque_001.sh").read_text()
    assert ("hsm-fastrun.bash" in script) == (runner == "fast")
    return {name: _comparable(statuses[f"task_00{i + 1}"]) for i, name in enumerate(NAMES)}


def _comparable(status: dict[str, Any]) -> dict[str, Any]:
    assert status.get("job_id"), status
    out = {k: v for k, v in status.items()
           if k not in ("start_time", "end_time", "start_epoch", "duration", "process", "last_process", "job_id",
                        "submit_time", "host", "source_data", "array_index", "job_script")}
    if "attempts" in out:
        out["attempts"] = [{k: v for k, v in a.items() if k not in ("start_time", "end_time", "host")} for a in out["attempts"]]
    return out


def test_both_runners_record_the_same_through_qsub(tmp_path: Path, pbs_cluster) -> None:
    fast = _run(tmp_path / "fast", pbs_cluster, "fast")
    python = _run(tmp_path / "python", pbs_cluster, "python")
    assert fast == python
    assert fast["ok"]["state"] == "completed" and fast["fail"]["exit_code"] == 3
    assert fast["cancel"]["state"] == "cancelled"
