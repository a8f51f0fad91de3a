"""The Slurm fast runner judged by an outside observer: what each task's own log says happened
(starts, signals its handlers caught, checkpoints, exit codes) against what ``hsm status`` /
``hsm export`` and ``status.yaml`` record, for a training script's habits on the real local
Slurm: a SIGTERM handler that checkpoints and exits (``scancel`` from outside, ``scontrol
requeue``, after which the script resumes from its checkpoint), a SIGUSR1 warning handler, and a
script that leaves a daemon child behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hsm_core.testing.project import make_project, wait_for
from hsm_core.testing.services import SlurmCluster
from hsm_core.testing.slurm_signals import poke_tasks

pytestmark = pytest.mark.slurm

TASK = r'''
import os, signal, subprocess, sys, time
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
name = args["name"]
log = os.path.join(os.environ["HSM_COUNT_DIR"], name + ".log")
ckpt = os.path.join(os.environ["HSM_COUNT_DIR"], name + ".ckpt")
def note(what):
    with open(log, "a") as fh:
        fh.write(f"{what} {os.getpid()} {time.time()}\n")
resumed = os.path.exists(ckpt)
note("start" + (" resumed" if resumed else ""))
def stop(signum, frame):
    note(f"signal {signal.Signals(signum).name}")
    with open(ckpt, "w") as fh:
        fh.write("step 3\n")
    note("checkpoint")
    note("exit 143")
    sys.exit(143)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGUSR1, stop)
if name == "daemon":
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
print("STARTED", name, flush=True)
time.sleep({"term": 600, "usr1": 600, "requeue": 600}.get(name, 0) if not resumed else 1)
note("exit 0")
'''
NAMES = ["term", "usr1", "requeue", "daemon"]


def _events(project, name: str) -> list[str]:
    path = Path(project.environ()["HSM_COUNT_DIR"]) / f"{name}.log"
    return [" ".join(line.split()[:-2]) for line in path.read_text().splitlines()] if path.exists() else []


def test_status_and_export_say_what_the_tasks_own_logs_say(tmp_path: Path, slurm_cluster: SlurmCluster) -> None:
    hpc = 'hpc:\n  system: slurm\n  default_walltime: "00:10:00"\n  requeue: true\n'
    project = make_project(tmp_path / "proj", name="observed", config_extra=hpc,
                           env={"SLURM_CONF": str(slurm_cluster.conf)}, script=TASK)
    cfg = project.write_sweep({"grid": {"name": NAMES}})
    proc = project.popen("run", "--config", str(cfg), "--sources", "slurm")
    try:
        sweep = wait_for(lambda: project.outputs.is_dir() and next(iter(project.outputs.iterdir()), None), 60, what="sweep")
        job_dir = sweep / "scripts" / "job_scripts"
        wait_for(lambda: all(_events(project, n)[:1] == ["start"] for n in ("term", "usr1", "requeue")), 120,
                 what="the long tasks running")
        assert "hsm-fastrun.bash" in (job_dir / "slurm_001.sh").read_text()
        names = {n: f"task_{i + 1:03d}" for i, n in enumerate(NAMES)}
        poke_tasks(slurm_cluster, sweep, warn=[names["usr1"]], requeue=[names["requeue"]], cancel=[names["term"]])
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in out + err, out + err
    statuses = {n: project.statuses(sweep)[names[n]] for n in NAMES}
    events = {n: _events(project, n) for n in NAMES}
    export = project.hsm("export", sweep.name, "--format", "json", check=True).stdout
    rows = {row["task"]: row for row in json.loads(export)}
    report = json.dumps({"events": events, "statuses": statuses}, indent=1, default=str)
    for n in NAMES:
        st, ev = statuses[n], events[n]
        starts = [e for e in ev if e.startswith("start")]
        assert len(st.get("attempts") or []) == len(starts), f"{n}: attempts recorded vs starts logged\n{report}"
        logged_exit = [int(e.split()[1]) for e in ev if e.startswith("exit")]
        assert st.get("exit_code") == logged_exit[-1], f"{n}: exit code recorded vs logged\n{report}"
        assert rows[names[n]]["status"] == st["state"], f"{n}: export vs status.yaml\n{report}"
    assert events["term"] == ["start", "signal SIGTERM", "checkpoint", "exit 143"], report
    assert statuses["term"]["state"] == "cancelled", report
    assert events["usr1"] == ["start", "signal SIGUSR1", "checkpoint", "exit 143"], report
    assert statuses["usr1"].get("signal_received") == "SIGUSR1", report
    assert events["requeue"][0] == "start" and events["requeue"][-2:] == ["start resumed", "exit 0"], report
    assert statuses["requeue"]["state"] == "completed", report
    assert events["daemon"] == ["start", "exit 0"] and statuses["daemon"]["state"] == "completed", report


def test_a_task_stopped_at_its_walltime_reads_timeout_as_its_log_says(tmp_path: Path, slurm_cluster: SlurmCluster) -> None:
    """A one-minute walltime: Slurm's SIGTERM reaches the script's handler, which checkpoints and
    exits; status.yaml and hsm export say timeout, one attempt, the exit code the script logged."""
    hpc = 'hpc:\n  system: slurm\n  default_walltime: "00:01:00"\n'
    project = make_project(tmp_path / "proj", name="walltime", config_extra=hpc,
                           env={"SLURM_CONF": str(slurm_cluster.conf)}, script=TASK)
    cfg = project.write_sweep({"grid": {"name": ["term"]}})
    done = project.hsm("run", "--config", str(cfg), "--sources", "slurm", timeout=300)
    assert "Traceback" not in done.stdout + done.stderr and done.returncode == 1, done.stdout + done.stderr
    sweep = project.only_sweep()
    status = project.statuses(sweep)["task_001"]
    events = _events(project, "term")
    report = json.dumps({"events": events, "status": status}, indent=1, default=str)
    assert events[:1] == ["start"], report
    assert status["state"] == "timeout" and len(status.get("attempts") or []) == 1, report
    if len(events) > 1:  # the handler ran (Slurm's KillWait gave it the time)
        assert events == ["start", "signal SIGTERM", "checkpoint", "exit 143"] and status.get("exit_code") == 143, report
    rows = json.loads(project.hsm("export", sweep.name, "--format", "json", check=True).stdout)
    assert rows[0]["status"] == "timeout", report
