"""End to end on the real local Slurm: hsm run / sweep / cancel / status / complete / test / queue."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest
import yaml

from hsm_core.testing.services import ServiceUnavailable, require_service, start_slurm
from slurm_support import Project, make_project, wait_for

pytestmark = pytest.mark.slurm


def _states(project: Project, sweep: Path) -> dict[str, str]:
    return {name: s.get("state") for name, s in project.statuses(sweep).items()}


def _sweep_of(proc, project: Project) -> Path:
    """The sweep dir a background ``hsm run`` creates (fails at once if the command died)."""

    def found():
        if proc.poll() is not None:
            raise AssertionError(f"hsm exited {proc.returncode}: {proc.stderr.read()}")
        return project.outputs.is_dir() and next(iter(project.outputs.iterdir()), None)

    return wait_for(found, 60, what="sweep dir")


def _job_ids(sweep: Path) -> list[str]:
    lines = (sweep / "scripts" / "job_scripts" / "jobs.jsonl").read_text().splitlines()
    return [json.loads(ln)["job_id"] for ln in lines]


def test_a_27_task_sweep_completes_as_one_array_job(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [1, 2, 3], "y": ["a", "b", "c"], "z": [0, 1, 2]}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", "slurm")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sweep = project.only_sweep()
    states = _states(project, sweep)
    assert len(states) == 27 and set(states.values()) == {"completed"}
    scripts = sorted((sweep / "scripts" / "job_scripts").glob("*.sh"))
    assert [s.name for s in scripts] == ["slurm_001.sh"]
    assert "#SBATCH --array=0-26\n" in scripts[0].read_text()
    assert "#SBATCH --time=00:10:00\n" in scripts[0].read_text()
    for name, status in project.statuses(sweep).items():
        assert status["source"] == "slurm" and status["exit_code"] == 0
        params = yaml.safe_load((sweep / "tasks" / name / "params.yaml").read_text())["params"]
        assert f"x={params['x']}" in (sweep / "tasks" / name / "stdout.log").read_text()
        assert json.loads((sweep / "tasks" / name / "metrics.json").read_text())["score"] == params["x"] * 2
    assert len(list((sweep / "logs" / "jobs").glob("*.out"))) == 27
    info = json.loads(project.hsm("status", "--json", check=True).stdout)
    assert info["counts"]["completed"] == 27 and info["total"] == 27


def test_a_sweep_larger_than_max_array_size_is_split_into_chunks(tmp_path: Path, slurm_cluster) -> None:
    try:
        small = start_slurm(max_array_size=10)
    except ServiceUnavailable as exc:
        require_service("slurm", str(exc))
    try:
        project = make_project(tmp_path / "proj", small, "hpc:\n  system: slurm\n")
        cfg = project.write_sweep({"grid": {"x": list(range(25))}})
        proc = project.hsm("run", "--config", str(cfg), "--sources", "hpc")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        sweep = project.only_sweep()
        assert set(_states(project, sweep).values()) == {"completed"} and len(_states(project, sweep)) == 25
        scripts = sorted((sweep / "scripts" / "job_scripts").glob("*.sh"))
        arrays = [re.search(r"--array=(\S+)", s.read_text()).group(1) for s in scripts]
        assert arrays == ["0-9", "0-9", "0-4"]  # every chunk re-based at 0: below MaxArraySize
        lists = [s.with_suffix(".list").read_text().split() for s in scripts]
        assert [len(x) for x in lists] == [10, 10, 5]
        assert len({line for x in lists for line in x}) == 25
        assert len(set(_job_ids(sweep))) == 3
    finally:
        start_slurm()  # back to the shared default


def test_a_failing_task_is_reported_failed(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [1, 2], "exit": [0, 5]}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", "slurm")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    statuses = project.statuses(project.only_sweep())
    by_exit = sorted((s["state"], s["exit_code"]) for s in statuses.values())
    assert by_exit == [("completed", 0), ("completed", 0), ("failed", 5), ("failed", 5)]


def test_hsm_cancel_stops_queued_and_running_jobs(project: Project, squeue) -> None:
    cfg = project.write_sweep({"grid": {"x": [1, 2, 3], "sleep": [300]}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", "slurm", "--no-wait")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sweep = project.only_sweep()
    job_ids = _job_ids(sweep)
    wait_for(lambda: list(_states(project, sweep).values()).count("running") == 3, 60, what="tasks running")
    out = project.hsm("cancel", sweep.name, check=True).stdout
    assert "3 cancelled" in out
    statuses = project.statuses(sweep)
    assert {s["state"] for s in statuses.values()} == {"cancelled"}
    assert all(s["message"] for s in statuses.values())
    # The runners saw Slurm's SIGTERM; the attempt still reads cancelled (hsm asked), not preempted.
    assert {a["state"] for s in statuses.values() for a in s.get("attempts") or []} <= {"cancelled"}
    active = squeue("-j", ",".join(job_ids), "-t", "PD,R,CG", "-o", "%i")
    assert active.strip() == ""
    meta = yaml.safe_load((sweep / "sweep_metadata.yaml").read_text())
    assert meta["status"] == "cancelled"
    info = json.loads(project.hsm("status", sweep.name, "--json", check=True).stdout)
    assert info["counts"].get("cancelled") == 3


def test_a_requeued_array_task_completes_with_both_attempts_recorded(project: Project, slurm_cluster) -> None:
    cfg = project.write_sweep({"grid": {"x": [1, 2], "sleep": [4]}})
    proc = project.popen("run", "--config", str(cfg), "--sources", "slurm")
    try:
        sweep = _sweep_of(proc, project)
        task = sweep / "tasks" / "task_001"
        status = wait_for(
            lambda: (s := project.statuses(sweep).get("task_001")) and s.get("state") == "running" and s, 60,
            what="task_001 running",
        )
        # Requeue once the task's script has really started (it prints its argv first).
        wait_for(lambda: "ARGV" in (task / "stdout.log").read_text(), 30, what="task output")
        array_id = _job_ids(sweep)[0]
        index = (sweep / "scripts" / "job_scripts" / "slurm_001.list").read_text().split().index("../../tasks/task_001")
        slurm_cluster.run(["scontrol", "requeue", f"{array_id}_{index}"])
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out + err
    final = yaml.safe_load((task / "status.yaml").read_text())
    assert final["state"] == "completed" and final["attempt"] == 2
    assert [a["state"] for a in final["attempts"]] == ["preempted", "completed"]
    assert str(final["restart_count"]) == "1"
    assert status["job_id"] == final["job_id"]  # the same array element, run again
    assert (task / "stdout.log").read_text().count("ARGV") == 2
    assert "==== hsm: attempt 2" in (task / "stdout.log").read_text()


def test_no_wait_exits_after_submission_and_status_reads_the_files_later(project: Project, squeue) -> None:
    cfg = project.write_sweep({"grid": {"x": [1, 2, 3, 4], "sleep": [1]}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", "slurm", "--no-wait")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sweep = project.only_sweep()
    meta = yaml.safe_load((sweep / "sweep_metadata.yaml").read_text())
    assert meta["status"] == "submitted"
    job_id = _job_ids(sweep)[0]
    wait_for(lambda: squeue("-j", job_id, "-t", "PD,R,CG", "-o", "%i").strip() == "", 60, what="jobs done")
    info = json.loads(project.hsm("status", sweep.name, "--json", check=True).stdout)
    assert info["counts"]["completed"] == 4
    # complete finds nothing to run: every task completed without hsm watching.
    out = project.hsm("complete", sweep.name, "--dry-run", check=True).stdout
    assert "0 task(s) would run" in out


def test_complete_follows_jobs_submitted_by_an_earlier_controller(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [1, 2, 3], "sleep": [3]}})
    project.hsm("run", "--config", str(cfg), "--sources", "slurm", "--no-wait", check=True)
    sweep = project.only_sweep()
    proc = project.hsm("complete", sweep.name, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert set(_states(project, sweep).values()) == {"completed"}
    assert len(_job_ids(sweep)) == 1  # followed, not submitted again


def test_ctrl_c_cancels_the_jobs_and_marks_tasks_interrupted(project: Project, squeue) -> None:
    cfg = project.write_sweep({"grid": {"x": [1, 2], "sleep": [300]}})
    proc = project.popen("run", "--config", str(cfg), "--sources", "slurm")
    try:
        sweep = _sweep_of(proc, project)
        wait_for(lambda: list(_states(project, sweep).values()).count("running") == 2, 60, what="tasks running")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert set(_states(project, sweep).values()) == {"interrupted"}
    assert {a["state"] for s in project.statuses(sweep).values() for a in s.get("attempts") or []} <= {"interrupted"}
    assert squeue("-j", _job_ids(sweep)[0], "-t", "PD,R,CG", "-o", "%i").strip() == ""


def test_named_cluster_and_v1_array_mode(tmp_path: Path, slurm_cluster) -> None:
    hpc = (
        "hpc:\n"
        "  system: slurm\n"
        "  default_walltime: \"01:00:00\"\n"
        "  default_resources: \"select=1:ncpus=1:mem=200mb\"\n"
        "  clusters:\n"
        "    local_slurm:\n"
        "      system: slurm\n"
        "      partition: debug\n"
        "      array_parallelism: 2\n"
        f"      env: {{SLURM_CONF: {slurm_cluster.conf}}}\n"
        "      setup_commands: [\"export HSM_SETUP_RAN=yes\"]\n"
    )
    project = make_project(tmp_path / "proj", slurm_cluster, hpc)
    cfg = project.write_sweep({"grid": {"x": [1, 2, 3]}})
    project.hsm("run", "--config", str(cfg), "--sources", "hpc:local_slurm", check=True)
    sweep = project.only_sweep()
    script = next((sweep / "scripts" / "job_scripts").glob("*.sh")).read_text()
    for line in ("--array=0-2%2", "--partition=debug", "--mem=200M", "--cpus-per-task=1", "--time=01:00:00"):
        assert f"#SBATCH {line}\n" in script
    assert {s["source"] for s in project.statuses(sweep).values()} == {"local_slurm"}
    # setup_commands ran in the job before the task (the test script prints HSM_* variables).
    assert all('"HSM_SETUP_RAN": "yes"' in (sweep / "tasks" / t / "stdout.log").read_text() for t in project.statuses(sweep))

    proc = project.hsm("sweep", "--config", str(cfg), "--mode", "array", "--walltime", "00:07:00", "--sweep-id", "v1_array")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    v1 = project.outputs / "v1_array"
    assert "#SBATCH --time=00:07:00\n" in next((v1 / "scripts" / "job_scripts").glob("*.sh")).read_text()
    assert set(_states(project, v1).values()) == {"completed"}


def test_hsm_test_hpc_and_hsm_queue(project: Project, slurm_cluster) -> None:
    proc = project.hsm("test", "hpc", "--timeout", "60")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[ok] scheduler answers" in proc.stdout and "[ok] test job completed" in proc.stdout
    assert "partitions: debug" in proc.stdout
    queue = project.hsm("queue")
    assert queue.returncode == 0, queue.stderr
    assert "JOBID" in queue.stdout or "(no jobs)" in queue.stdout
    bad = make_project(project.root.parent / "bad", slurm_cluster, "hpc:\n  system: slurm\n  partition: nosuchpart\n")
    proc = bad.hsm("test", "hpc", "--timeout", "20")
    assert proc.returncode == 1
    assert "[FAILED] partition 'nosuchpart' exists" in proc.stdout


def test_a_rejected_submission_is_one_clear_line(tmp_path: Path, slurm_cluster) -> None:
    project = make_project(tmp_path / "proj", slurm_cluster, "hpc:\n  system: slurm\n  partition: nosuchpart\n")
    cfg = project.write_sweep({"grid": {"x": [1, 2]}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", "slurm")
    assert proc.returncode == 2
    assert "Slurm rejected the job" in proc.stderr and "invalid partition" in proc.stderr.lower()
    assert "Traceback" not in proc.stderr
    sweep = project.only_sweep()
    # Nothing was submitted, so nothing may say so.
    assert all(s.get("state") != "submitted" for s in project.statuses(sweep).values())
