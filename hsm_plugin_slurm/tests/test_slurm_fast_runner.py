"""On the real local Slurm, array elements record the same through the task runner's shell fast
path (the default, hsm_core/fastrun.py) as through the Python task runner (``runner:`` set):
a task that completes, one that fails, one whose handler stops it on the warning signal sent to the batch shell
(``scancel --signal=USR1 --batch``, what ``--signal=B:USR1@N`` does at its time), one requeued
while it runs (its second attempt is run by the Python runner: the fast path leaves requeues to
it), and one cancelled from outside hsm (``scancel``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from hsm_core.testing.project import make_project, wait_for
from hsm_core.testing.services import SlurmCluster
from hsm_core.testing.slurm_signals import poke_tasks

pytestmark = pytest.mark.slurm

TASK = r'''
import os, signal, sys, time
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
if args["name"] == "usr1":
    # A training script's warning handler: checkpoint and exit (a script without one is not sent
    # the warning: it runs on to its walltime).
    signal.signal(signal.SIGUSR1, lambda *_: sys.exit(1))
print("STARTED", args["name"], flush=True)
if args["name"] == "fail":
    sys.exit(3)
time.sleep({"usr1": 600, "cancel": 600, "requeue": 6}.get(args["name"], 0))
'''
NAMES = ["ok", "fail", "usr1", "requeue", "cancel"]


def _run(root: Path, cluster: SlurmCluster, runner: str) -> dict[str, dict[str, Any]]:
    hpc = 'hpc:\n  system: slurm\n  default_walltime: "00:10:00"\n  requeue: true\n'
    if runner == "python":
        hpc += f'  runner: "{sys.executable} -m hsm_core.runner"\n'
    project = make_project(root, name="fastrun", config_extra=hpc, env={"SLURM_CONF": str(cluster.conf)}, script=TASK)
    cfg = project.write_sweep({"grid": {"name": NAMES}})
    proc = project.popen("run", "--config", str(cfg), "--sources", "slurm")
    try:
        sweep = wait_for(lambda: project.outputs.is_dir() and next(iter(project.outputs.iterdir()), None), 60, what="sweep")
        names = {n: f"task_{i + 1:03d}" for i, n in enumerate(NAMES)}

        def started(name: str) -> bool:
            log = sweep / "tasks" / names[name] / "stdout.log"
            return log.exists() and "STARTED" in log.read_text()

        wait_for(lambda: all(started(n) for n in ("usr1", "requeue", "cancel")), 120, what="the long tasks running")
        poke_tasks(cluster, sweep, warn=[names["usr1"]], requeue=[names["requeue"]], cancel=[names["cancel"]])
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in out + err, out + err
    return {name: _comparable(project.statuses(sweep)[names[name]]) for name in names}


def _comparable(status: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in status.items()
           if k not in ("start_time", "end_time", "start_epoch", "duration", "process", "last_process", "job_id",
                        "submit_time", "host", "source_data")}
    if "attempts" in out:
        out["attempts"] = [{k: v for k, v in a.items() if k not in ("start_time", "end_time", "host")} for a in out["attempts"]]
    assert status.get("job_id"), status
    return out


def test_both_runners_record_the_same_on_slurm(tmp_path: Path, slurm_cluster: SlurmCluster) -> None:
    fast = _run(tmp_path / "fast", slurm_cluster, "fast")
    script = next((tmp_path / "fast" / "sweeps" / "outputs").glob("*/scripts/job_scripts/slurm_001.sh")).read_text()
    assert "hsm-fastrun.bash" in script
    python = _run(tmp_path / "python", slurm_cluster, "python")
    assert fast == python
    assert fast["ok"]["state"] == "completed" and fast["fail"]["exit_code"] == 3
    assert fast["usr1"]["signal_received"] == "SIGUSR1" and fast["usr1"]["attempts"][0]["state"] == "preempted"
    assert [a["state"] for a in fast["requeue"]["attempts"]] == ["preempted", "completed"]
    assert fast["cancel"]["state"] == "cancelled"
