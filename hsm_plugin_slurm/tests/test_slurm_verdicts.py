"""The scheduler's verdict, whoever was watching (issue 16), on the real local Slurm: a walltime
kill, an ``scancel`` from outside hsm and the warning signal of ``--signal=B:USR1@N`` end up the
same in the task's files with a controller watching and with nobody watching (``hsm run
--no-wait``, then ``hsm complete``); a requeued element keeps ``hsm monitor watch`` going."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest
import yaml

from hsm_core.testing.services import SlurmCluster
from slurm_support import Project, make_project, wait_for

pytestmark = pytest.mark.slurm

#: Slurm's smallest time limit: the job is killed 60-100 s after it starts (its time-limit check
#: runs every 30 s, then KillWait).
ONE_MINUTE = 'hpc:\n  system: slurm\n  default_walltime: "00:01:00"\n'


def _one_status(project: Project) -> dict:
    statuses = project.statuses(project.only_sweep())
    assert len(statuses) == 1
    return next(iter(statuses.values()))


def _job_ids(sweep: Path) -> list[str]:
    path = sweep / "scripts" / "job_scripts" / "jobs.jsonl"
    return [json.loads(ln)["job_id"] for ln in path.read_text().splitlines() if ln.strip()]


def _active(cluster: SlurmCluster, sweep: Path) -> str:
    ids = ",".join(_job_ids(sweep))
    return cluster.run(["squeue", "-h", "-r", "-j", ids, "-t", "PD,R,CG,S", "-o", "%i %T"], check=False).stdout.strip()


def _wait_until_nothing_runs(project: Project, cluster: SlurmCluster, timeout: float) -> None:
    sweep = project.only_sweep()
    wait_for(lambda: (project.statuses(sweep) and all(s.get("state") not in (None, "submitted", "running")
                                                      for s in project.statuses(sweep).values())
                      and not _active(cluster, sweep)), timeout, interval=1.0, what="the job to end")


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


def _metadata(sweep: Path) -> dict:
    return yaml.safe_load((sweep / "sweep_metadata.yaml").read_text())


@pytest.mark.parametrize("watched", [True, False], ids=["controller", "no-wait"])
def test_a_walltime_kill_is_timeout_whoever_watched(tmp_path: Path, slurm_cluster: SlurmCluster, watched: bool) -> None:
    project = make_project(tmp_path / "proj", slurm_cluster, ONE_MINUTE)
    cfg = project.write_sweep({"grid": {"x": [1], "sleep": [900]}})
    if watched:
        proc = project.hsm("run", "--config", str(cfg), "--sources", "slurm", timeout=400)
        assert proc.returncode == 1, proc.stdout + proc.stderr  # a timed-out task is not success
        noticed = time.time()
    else:
        project.hsm("run", "--config", str(cfg), "--sources", "slurm", "--no-wait", check=True)
        _wait_until_nothing_runs(project, slurm_cluster, 300)
        # Seen from inside the job, a walltime kill is a SIGTERM like any other.
        assert _one_status(project)["state"] == "preempted"
        time.sleep(2)
        noticed = time.time()
        proc = project.hsm("complete", project.only_sweep().name, timeout=300)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "timeout (use --retry-failed)" in proc.stdout
    sweep = project.only_sweep()
    status = _one_status(project)
    assert status["state"] == "timeout" and status["scheduler_state"] == "TIMEOUT", status
    assert [a["state"] for a in status["attempts"]] == ["timeout"]
    # The end is when the job was killed (the runner wrote it), not when hsm noticed.
    assert status["end_time"] == status["attempts"][-1]["end_time"]
    assert _epoch(status["end_time"]) < noticed - 1
    assert _job_ids(sweep) and len(_job_ids(sweep)) == 1  # never submitted again to time out again
    assert _metadata(sweep)["status"] == "incomplete"  # the sweep says it is over
    assert project.executions() == []  # the task never got to record a run of its own


@pytest.mark.parametrize("how", ["controller", "no-wait", "controller-killed"])
def test_an_outside_scancel_is_cancelled_whoever_watched(tmp_path: Path, slurm_cluster: SlurmCluster, how: str) -> None:
    watched = how == "controller"
    project = make_project(tmp_path / "proj", slurm_cluster, 'hpc:\n  system: slurm\n  default_walltime: "00:10:00"\n')
    cfg = project.write_sweep({"grid": {"x": [1, 2], "sleep": [600]}})
    proc = project.popen("run", "--config", str(cfg), "--sources", "slurm", *(["--no-wait"] if how == "no-wait" else []))
    try:
        sweep = wait_for(lambda: project.outputs.is_dir() and next(iter(project.outputs.iterdir()), None), 60, what="sweep")
        wait_for(lambda: [s.get("state") for s in project.statuses(sweep).values()] == ["running", "running"], 120,
                 what="both tasks running")
        if how == "controller-killed":
            proc.kill()  # SIGKILL: nothing of it is left to watch
            proc.wait()
        slurm_cluster.run(["scancel", *_job_ids(sweep)])  # the user, from outside hsm
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if watched:
        assert proc.returncode == 1, out + err  # every task was cancelled: nothing ran to its end
        assert "Every task was cancelled." in out
    else:
        assert proc.returncode == (0 if how == "no-wait" else -9), out + err
        _wait_until_nothing_runs(project, slurm_cluster, 120)
        # hsm complete asks Slurm before running anything again; --no-wait: it does not stay.
        done = project.hsm("complete", sweep.name, "--no-wait", timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        project.hsm("cancel", sweep.name, check=True)  # what it submitted again
    for status in project.statuses(sweep).values():
        first = status["attempts"][0]
        assert first["state"] == "cancelled", status  # not 'preempted', whoever watched
        if watched:
            assert status["state"] == "cancelled" and status["scheduler_state"].startswith("CANCELLED")
    assert project.executions() == []


def test_an_element_whose_runner_died_mid_run_is_recorded_and_the_run_ends(tmp_path: Path, slurm_cluster: SlurmCluster) -> None:
    """The element's job script and its task are SIGKILLed mid-run (the node's processes went, as
    in a node failure or the OOM killer taking the job's shell): no final record is ever written,
    and the job ends. ``hsm run`` records the task from Slurm's word and ends. Before, its polls of
    the task files between two queries undid the first query's "gone", so the task stayed
    ``running`` and ``hsm run`` waited for ever."""
    import os
    import signal

    project = make_project(tmp_path / "proj", slurm_cluster, 'hpc:\n  system: slurm\n  default_walltime: "00:10:00"\n')
    cfg = project.write_sweep({"grid": {"x": [1], "sleep": [600]}})
    proc = project.popen("run", "--config", str(cfg), "--sources", "slurm")
    try:
        sweep = wait_for(lambda: project.outputs.is_dir() and next(iter(project.outputs.iterdir()), None), 60, what="sweep")
        wait_for(lambda: [s.get("state") for s in project.statuses(sweep).values()] == ["running"], 120, what="the task running")
        wrapper = int(_one_status(project)["process"].split(":")[0])
        with open(f"/proc/{wrapper}/stat") as f:
            job_shell = int(f.read().rsplit(")", 1)[1].split()[1])
        os.killpg(wrapper, signal.SIGKILL)
        os.kill(job_shell, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, out + err
    status = _one_status(project)
    assert status["state"] in ("failed", "lost"), status
    assert "without a final status" in status.get("message", "") or status["state"] == "failed", status
    assert project.executions() == []  # killed before its end, and not run again


@pytest.mark.parametrize("watched", [True, False], ids=["controller", "no-wait"])
def test_a_task_stopped_by_the_warning_signal_is_preempted(tmp_path: Path, slurm_cluster: SlurmCluster, watched: bool) -> None:
    # USR1 to the batch shell (the task runner, which forwards it) 110 s before a 2-minute limit:
    # at the first time-limit check after the start. The task handles USR1: it saves a checkpoint
    # and exits (one that does not handle it is not sent it, and runs on to the walltime).
    from hsm_core.testing.project import make_project as make_scripted_project
    from hsm_core.testing.timeline import TIMED_SCRIPT

    hpc = ('hpc:\n  system: slurm\n  default_walltime: "00:02:00"\n'
           '  slurm:\n    extra_directives: ["--signal=B:USR1@110"]\n')
    project = make_scripted_project(tmp_path / "proj", name="slurmtest", config_extra=hpc,
                                    env={"SLURM_CONF": str(slurm_cluster.conf)}, script=TIMED_SCRIPT)
    cfg = project.write_sweep({"grid": {"x": [1], "sleep": [900]}})
    if watched:
        proc = project.hsm("run", "--config", str(cfg), "--sources", "slurm", timeout=300)
    else:
        project.hsm("run", "--config", str(cfg), "--sources", "slurm", "--no-wait", check=True)
        _wait_until_nothing_runs(project, slurm_cluster, 200)
        proc = project.hsm("complete", project.only_sweep().name, "--no-wait", timeout=300)
        project.hsm("cancel", project.only_sweep().name, check=True)  # the rerun it submitted
    assert proc.returncode == 0, proc.stdout + proc.stderr  # preempted is not a failure of the task
    status = _one_status(project)
    assert status["attempts"][0]["state"] == "preempted", status
    if watched:
        assert status["state"] == "preempted" and status["signal_received"] == "SIGUSR1", status
        assert not status.get("unconfirmed")
    script = next((project.only_sweep() / "scripts" / "job_scripts").glob("*.sh")).read_text()
    assert "#SBATCH --signal=B:USR1@110" in script
    if not watched:
        assert len(_job_ids(project.only_sweep())) == 2  # a preemption is run again by hsm complete


def test_monitor_watch_waits_for_a_requeued_element(tmp_path: Path, slurm_cluster: SlurmCluster) -> None:
    project = make_project(tmp_path / "proj", slurm_cluster, 'hpc:\n  system: slurm\n  default_walltime: "00:10:00"\n  requeue: true\n')
    cfg = project.write_sweep({"grid": {"x": [1], "sleep": [8]}})
    project.hsm("run", "--config", str(cfg), "--sources", "slurm", "--no-wait", check=True)
    sweep = project.only_sweep()
    wait_for(lambda: _one_status(project).get("state") == "running", 120, what="the task running")
    slurm_cluster.run(["scontrol", "requeue", _job_ids(sweep)[0]])
    wait_for(lambda: _one_status(project).get("state") == "preempted", 60, what="the runner recording the signal")
    watch = project.popen("monitor", "watch", sweep.name, "--interval", "0.5")
    out, err = watch.communicate(timeout=240)
    assert watch.returncode == 0, out + err
    # It ended only once the requeued attempt had run: not "1 failed" while it waited in the queue.
    status = _one_status(project)
    assert status["state"] == "completed" and [a["state"] for a in status["attempts"]] == ["preempted", "completed"]
    assert "finished: completed (1 completed, 0 failed)" in out
    assert _metadata(sweep)["status"] == "completed"  # nobody watched: the monitor said how it ended
    assert len(project.executions()) == 1


def test_scoped_directives_reach_only_slurm(tmp_path: Path) -> None:
    from hsm_core.testing import make_sweep
    from hsm_plugin_slurm.source import SlurmSource

    _, _, ctx = make_sweep(tmp_path / "p", [{"x": 1}])
    options = {"extra_directives": ["--exclusive"], "slurm": {"extra_directives": ["--signal=B:USR1@30"]},
               "pbs": {"extra_directives": ["-m n"]}}
    assert SlurmSource("slurm", options, ctx).extra_directives == ("--exclusive", "--signal=B:USR1@30")
