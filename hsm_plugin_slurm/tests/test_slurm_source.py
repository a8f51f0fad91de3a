"""The Slurm source on the real cluster, below the CLI: outcomes the scheduler decides, retries of
transient submission failures, and submission through a login node that is not this file system."""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path

import pytest
import yaml

from hsm_core.plugin import HsmError, LocalHost, TaskState
from hsm_core.testing import SCRIPT, make_sweep, read_task_status, run_until_final
from hsm_plugin_slurm.source import SlurmSource

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_env")]


def _source(tmp_path: Path, params: list[dict], **options) -> tuple[SlurmSource, list]:
    _, specs, ctx = make_sweep(tmp_path / "project", params)
    options.setdefault("default_walltime", "00:10:00")
    return SlurmSource("slurm", options, ctx), specs


def _wait_running(source: SlurmSource, spec, timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    while read_task_status(spec).get("state") != "running":
        assert time.time() < deadline, "task never started"
        source.poll()
        time.sleep(0.2)
    return read_task_status(spec)


def test_a_job_cancelled_outside_hsm_is_reported_cancelled(tmp_path: Path, slurm_env) -> None:
    source, specs = _source(tmp_path, [{"x": 1, "sleep": 300}])
    source.launch(specs)
    status = _wait_running(source, specs[0])
    slurm_env.run(["scancel", str(status["job_id"])])
    final = run_until_final(source, specs, timeout=60, launch=False)
    assert final[specs[0].task_id] == TaskState.CANCELLED
    written = read_task_status(specs[0])
    assert written["state"] == "cancelled" and "outside hsm" in written["message"]
    assert written["scheduler_state"] == "CANCELLED"


def test_a_job_that_dies_before_the_runner_starts_is_failed_with_a_pointer_to_its_log(tmp_path: Path) -> None:
    source, specs = _source(tmp_path, [{"x": 1}], setup_commands=["echo 'module not found' >&2", "exit 3"])
    final = run_until_final(source, specs, timeout=60)
    assert final[specs[0].task_id] == TaskState.FAILED
    status = read_task_status(specs[0])
    assert "logs/jobs" in status["message"] and status["scheduler_state"] == "FAILED"
    log = next((specs[0].sweep_dir / "logs" / "jobs").glob("*.out")).read_text()
    assert "module not found" in log


def _wrapper(tmp_path: Path, body: str) -> dict[str, str]:
    """An ``sbatch`` earlier on PATH than the real one, for failures a healthy cluster never shows."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    path = bindir / "sbatch"
    path.write_text("#!/bin/bash\n" + body.replace("REAL", shutil.which("sbatch") or "sbatch"))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{bindir}:{os.environ['PATH']}", "SLURM_CONF": os.environ["SLURM_CONF"]}


def test_transient_submission_failures_are_retried(tmp_path: Path) -> None:
    counter = tmp_path / "tries"
    env = _wrapper(
        tmp_path,
        f'n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}\n'
        'if [ "$n" -lt 2 ]; then echo "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation" >&2; exit 1; fi\n'
        'exec REAL "$@"\n',
    )
    source, specs = _source(tmp_path, [{"x": 1}], env=env)
    source.submit_backoff = 0.1
    final = run_until_final(source, specs, timeout=60)
    assert final[specs[0].task_id] == TaskState.COMPLETED
    assert counter.read_text().strip() == "3"
    log = (specs[0].sweep_dir / "logs" / "sources" / "slurm.log").read_text()
    assert log.count("transient submission failure") == 2


def test_a_timed_out_submission_that_went_through_is_not_submitted_twice(tmp_path: Path, slurm_env) -> None:
    env = _wrapper(tmp_path, 'REAL "$@" > /dev/null\necho "sbatch: error: Socket timed out on send/recv operation" >&2\nexit 1\n')
    source, specs = _source(tmp_path, [{"x": 1}, {"x": 2}], env=env)
    final = run_until_final(source, specs, timeout=60)
    assert set(final.values()) == {TaskState.COMPLETED}
    job_ids = {read_task_status(s)["job_id"] for s in specs}
    out = slurm_env.run(["squeue", "-h", "-t", "all", "-n", source.job_name + "_001", "-o", "%F %Z"]).stdout
    mine = {line.split()[0] for line in out.splitlines() if line.split()[1] == str(source.job_dir)}
    assert len(mine) == 1  # one array job, found again after the "failure"
    assert len(job_ids) == 2
    assert (specs[0].task_dir / "stdout.log").read_text().count("ARGV") == 1


def test_no_job_id_means_nothing_is_marked_submitted(tmp_path: Path) -> None:
    env = _wrapper(tmp_path, 'echo "sbatch: submitted somewhere, maybe"\nexit 0\n')
    source, specs = _source(tmp_path, [{"x": 1}], env=env)
    with pytest.raises(HsmError, match="printed no job id"):
        source.launch(specs)
    assert read_task_status(specs[0]).get("state") != "submitted"
    assert source.poll() == []


def test_a_rejected_second_chunk_cancels_the_first(tmp_path: Path, slurm_env) -> None:
    counter = tmp_path / "n"
    env = _wrapper(
        tmp_path,
        f'n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}\n'
        'if [ "$n" -ge 1 ]; then echo "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified" >&2; exit 1; fi\n'
        'exec REAL "$@"\n',
    )
    source, specs = _source(tmp_path, [{"x": i, "sleep": 60} for i in range(4)], env=env, max_array_size=2)
    with pytest.raises(HsmError, match="Invalid account"):
        source.launch(specs)
    first = (specs[0].sweep_dir / "scripts" / "job_scripts" / "jobs.jsonl").read_text().split('"job_id": "')[1].split('"')[0]
    out = slurm_env.run(["squeue", "-h", "-t", "PD,R", "-j", first, "-o", "%i"], check=False).stdout
    assert out.strip() == ""  # all or nothing: the engine will submit the whole batch again
    assert all(read_task_status(s).get("state") != "submitted" for s in specs)


class ElsewhereHost(LocalHost):
    """A login node whose file system is not ours: the same machine, but hsm may not assume it."""

    name = "login1"

    @property
    def is_local(self) -> bool:
        return False


def test_submission_through_a_login_node_with_its_own_file_system(tmp_path: Path) -> None:
    sweep, specs, ctx = make_sweep(tmp_path / "laptop", [{"x": 1}, {"x": 2, "exit": 4}])
    cluster_root = tmp_path / "cluster" / "project"
    cluster_root.mkdir(parents=True)
    (cluster_root / "train.py").write_text(SCRIPT)  # the project synced to the cluster
    host = ElsewhereHost()
    ctx.get_host = lambda name: host
    import sys

    source = SlurmSource(
        "cluster",
        {"host": "login1", "project_dir": str(cluster_root), "python_interpreter": sys.executable, "default_walltime": "00:10:00"},
        ctx,
    )
    final = run_until_final(source, specs, timeout=90)
    assert sorted(s.value for s in final.values()) == ["completed", "failed"]
    remote_sweep = cluster_root / "sweeps" / "outputs" / "sweep_test"
    script = (remote_sweep / "scripts" / "job_scripts" / "cluster_001.sh").read_text()
    assert f"--project-root {cluster_root}" in script and f"--list {remote_sweep}" in script
    for spec in specs:
        local = yaml.safe_load((spec.task_dir / "status.yaml").read_text())
        remote = yaml.safe_load((remote_sweep / "tasks" / spec.name / "status.yaml").read_text())
        assert local == remote  # brought back
        env_line = next(ln for ln in (spec.task_dir / "stdout.log").read_text().splitlines() if ln.startswith("ENV "))
        assert str(remote_sweep) in env_line  # it ran over there
    assert not (tmp_path / "laptop" / "runs.log").exists()
