"""A sweep's flow on the real local Slurm, judged from the tasks' own logs (issue 16): the
sweep-wide throttle over several array jobs, ``hsm run --after``, and the warning signal before
the walltime; each with a controller watching and without one (``--no-wait``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hsm_core.testing.services import ServiceUnavailable, require_service, start_slurm
from hsm_core.testing.timeline import TIMED_SCRIPT, intervals, max_overlap
from hsm_core.testing.project import make_project as _make_project
from slurm_support import Project, wait_for

pytestmark = pytest.mark.slurm


def timed_project(root: Path, cluster, hpc: str) -> Project:
    """A project whose train.py prints its start and end times (hsm_core.testing.timeline)."""
    return _make_project(root, name="flow", config_extra=hpc, env={"SLURM_CONF": str(cluster.conf)}, script=TIMED_SCRIPT)


def _manifest(sweep: Path) -> list[dict]:
    return [json.loads(ln) for ln in (sweep / "scripts" / "job_scripts" / "jobs.jsonl").read_text().splitlines()]


def _all_final(project: Project, sweep: Path, n: int, states=("completed",)) -> bool:
    st = [s.get("state") for s in project.statuses(sweep).values()]
    return len(st) == n and all(s in states for s in st)


def test_array_parallelism_holds_for_the_whole_sweep_over_several_array_jobs(tmp_path: Path, slurm_cluster) -> None:
    # 8 tasks in array jobs of 3 (max_array_size): each used to run 2 at once, 6 together.
    hpc = 'hpc:\n  system: slurm\n  default_walltime: "00:05:00"\n  max_array_size: 3\n  array_parallelism: 2\n'
    project = timed_project(tmp_path / "proj", slurm_cluster, hpc)
    cfg = project.write_sweep({"grid": {"x": list(range(8)), "sleep": [1.5]}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", "slurm", timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sweep = project.only_sweep()
    spans = intervals(sweep)
    assert len(spans) == 8 and len({s.task for s in spans}) == 8
    assert max_overlap(spans) <= 2, spans
    chunks = _manifest(sweep)
    assert len(chunks) == 3
    # One lane: every array job after the one before it, each %2.
    assert [c.get("after") for c in chunks] == [None, [chunks[0]["job_id"]], [chunks[1]["job_id"]]]
    for c in chunks:
        assert "%2\n" in (sweep / "scripts" / "job_scripts" / c["script"]).read_text()


def test_the_throttle_holds_without_a_controller_under_a_small_max_array_size(tmp_path: Path, slurm_cluster) -> None:
    # MaxArraySize=2 on the cluster: 9 tasks in 5 array jobs of 2; at most 3 at once takes two
    # lanes (%2 and %1) and nobody watches.
    try:
        small = start_slurm(max_array_size=2)
    except ServiceUnavailable as exc:
        require_service("slurm", str(exc))
    try:
        hpc = 'hpc:\n  system: slurm\n  default_walltime: "00:05:00"\n  array_parallelism: 3\n'
        project = timed_project(tmp_path / "proj", small, hpc)
        cfg = project.write_sweep({"grid": {"x": list(range(9)), "sleep": [1.5]}})
        proc = project.hsm("run", "--config", str(cfg), "--sources", "slurm", "--no-wait")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        sweep = project.only_sweep()
        wait_for(lambda: _all_final(project, sweep, 9), 240, interval=1, what="every task completed")
    finally:
        start_slurm()  # back to the shared default
    spans = intervals(sweep)
    assert len(spans) == 9
    assert max_overlap(spans) <= 3, spans
    chunks = _manifest(sweep)
    throttles = [(sweep / "scripts" / "job_scripts" / c["script"]).read_text().split("--array=")[1].split("\n")[0] for c in chunks]
    assert throttles == ["0-1%2", "0-1%1", "0-1%2", "0-1%1", "0-0%2"]
    assert [c.get("after") for c in chunks][2:] == [[chunks[0]["job_id"]], [chunks[1]["job_id"]], [chunks[2]["job_id"]]]


def test_after_starts_a_sweep_once_another_ended(tmp_path: Path, slurm_cluster) -> None:
    hpc = 'hpc:\n  system: slurm\n  default_walltime: "00:05:00"\n'
    project = timed_project(tmp_path / "proj", slurm_cluster, hpc)
    # A's tasks run long enough that they still run when B is submitted and its dependency is
    # looked at, even on a loaded machine (once A ended, squeue shows B's dependency as "(null)").
    a_cfg = project.write_sweep({"grid": {"x": [1, 2], "sleep": [10]}}, "a.yaml")
    b_cfg = project.write_sweep({"grid": {"x": [3, 4], "sleep": [2]}}, "b.yaml")
    c_cfg = project.write_sweep({"grid": {"x": [5], "sleep": [0.5]}}, "c.yaml")
    project.hsm("run", "--config", str(a_cfg), "--sources", "slurm", "--no-wait", "--sweep-id", "sweep_a", check=True)
    # B waits for sweep A, nobody watching; C waits for B's job (a raw job id), with a controller.
    proc = project.hsm("run", "--config", str(b_cfg), "--sources", "slurm", "--no-wait", "--sweep-id", "sweep_b", "--after", "sweep_a")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    b_job = _manifest(project.outputs / "sweep_b")[0]["job_id"]
    waits_for = slurm_cluster.run(["squeue", "-h", "-j", b_job, "-o", "%E"], check=False).stdout
    a_jobs = [c["job_id"] for c in _manifest(project.outputs / "sweep_a")]
    assert f"afterany:{a_jobs[0]}" in waits_for, waits_for  # Slurm holds B for A's array job
    # hsm queue SWEEP_ID: that sweep's live jobs only.
    listed = project.hsm("queue", "sweep_b", check=True).stdout
    assert b_job in listed and "hsm_sweep_a" not in listed and "PENDING" in listed
    proc = project.hsm("run", "--config", str(c_cfg), "--sources", "slurm", "--sweep-id", "sweep_c", "--after", b_job, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wait_for(lambda: _all_final(project, project.outputs / "sweep_b", 2), 120, what="sweep B done")
    # Ended: hsm queue leaves the sweep's jobs out; --all shows them while Slurm remembers them.
    assert project.hsm("queue", "sweep_a", check=True).stdout.strip() == "(no jobs)"
    assert all(j in project.hsm("queue", "sweep_a", "--all", check=True).stdout for j in a_jobs)
    a, b, c = (intervals(project.outputs / s) for s in ("sweep_a", "sweep_b", "sweep_c"))
    assert len(a) == 2 and len(b) == 2 and len(c) == 1
    assert min(s.start for s in b) >= max(s.end for s in a)
    assert min(s.start for s in c) >= max(s.end for s in b)


def test_after_refuses_what_it_cannot_wait_for(tmp_path: Path, slurm_cluster) -> None:
    project = timed_project(tmp_path / "proj", slurm_cluster, "hpc:\n  system: slurm\n")
    cfg = project.write_sweep({"grid": {"x": [1], "sleep": [0]}})
    project.hsm("run", "--config", str(cfg), "--sources", "local", "--sweep-id", "ran_here", check=True)
    cases = {
        ("--after", "nosuch", "--sources", "slurm"): "no sweep nosuch in",
        ("--after", "ran_here", "--sources", "slurm"): "sweep ran_here has no Slurm jobs to wait for",
        ("--after", "99999999", "--sources", "slurm"): "Slurm does not know job 99999999",
        ("--after", "ran_here", "--sources", "local"): "only jobs of a batch scheduler can wait for other jobs",
    }
    for args, said in cases.items():
        proc = project.hsm("run", "--config", str(cfg), *args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert said in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) <= 2  # the error and its hint
    assert project.sweep_ids() == ["ran_here"]  # a refused run leaves no sweep behind


def test_a_warning_that_comes_before_the_task_runner_is_up_does_not_kill_the_element(tmp_path: Path, slurm_cluster) -> None:
    # Slurm may send --signal=B:USR1@N up to a minute early: to a batch shell still running its
    # setup commands, whose default action for SIGUSR1 is to die, and the element with it before
    # its task ran. A setup command sends it here, at the worst moment.
    hpc = ('hpc:\n  system: slurm\n  walltime: "00:05:00"\n  signal_before_walltime: 60\n'
           '  setup_commands: ["kill -USR1 $$"]\n')
    project = timed_project(tmp_path / "proj", slurm_cluster, hpc)
    cfg = project.write_sweep({"grid": {"x": [1], "sleep": [1]}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", "slurm", timeout=240)
    sweep = project.only_sweep()
    (status,) = project.statuses(sweep).values()
    spans = intervals(sweep)
    # The task ran, once. Warned at once it saves a checkpoint and reads preempted; when the
    # warning came before its handler was set, it is not passed on and the task completes.
    assert len(spans) == 1, (spans, status, proc.stdout + proc.stderr)
    assert status["state"] in ("completed", "preempted"), status
    if status["state"] == "preempted":
        assert status["signal_received"] == "SIGUSR1", status


@pytest.mark.parametrize("watching", [True, False], ids=["controller", "no-wait"])
def test_the_warning_signal_lets_a_task_checkpoint_and_complete_resumes_it(tmp_path: Path, slurm_cluster, watching: bool) -> None:
    # Walltime 1 min, warned 50 s before: the task saves a checkpoint on SIGUSR1 and exits; it
    # reads preempted (not failed, not timeout) and hsm complete resumes it from the checkpoint.
    hpc = 'hpc:\n  system: slurm\n  walltime: "00:01:00"\n  signal_before_walltime: 50\n'
    project = timed_project(tmp_path / "proj", slurm_cluster, hpc)
    cfg = project.write_sweep({"grid": {"x": [1], "sleep": [300], "resume_sleep": [0.5]}})
    args = ["run", "--config", str(cfg), "--sources", "slurm"]
    proc = project.hsm(*args, *([] if watching else ["--no-wait"]), timeout=240)
    sweep = project.only_sweep()
    script = (sweep / "scripts" / "job_scripts" / "slurm_001.sh").read_text()
    assert "#SBATCH --signal=B:USR1@50\n" in script
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # a preempted task is no failure of the run
    if not watching:
        wait_for(lambda: _all_final(project, sweep, 1, ("preempted",)), 120, interval=1, what="task warned")
    (status,) = project.statuses(sweep).values()
    assert status["state"] == "preempted" and status["signal_received"] == "SIGUSR1", status
    task = sweep / "tasks" / "task_001"
    assert "HSM_T SAVED SIGUSR1" in (task / "stdout.log").read_text()
    assert (task / "checkpoint.txt").exists()
    done = project.hsm("complete", sweep.name, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    final = yaml.safe_load((task / "status.yaml").read_text())
    assert final["state"] == "completed"
    assert [a["state"] for a in final["attempts"]] == ["preempted", "completed"]
    spans = intervals(sweep)
    assert len(spans) == 2 and spans[1].end - spans[1].start < 30  # resumed: not 300 s again
