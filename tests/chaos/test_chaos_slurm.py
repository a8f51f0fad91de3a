"""Chaos on the real local Slurm cluster: slurmd (the node daemon) stopped mid-sweep.

The cluster is shared by everything on this machine, so this test stops only slurmd, the way
``scripts/slurm.sh stop`` does (SIGTERM to the pid in its pid file, after checking that the process
is slurmd running our slurm.conf), for a few seconds at most, and always brings the cluster back
with ``scripts/slurm.sh start`` (through :func:`start_slurm`, default settings) in a ``finally``.
"""

from __future__ import annotations

import fcntl
import os
import signal
import time
from pathlib import Path

import pytest

from chaos_support import (  # noqa: F401 - chaos is a fixture
    Chaos,
    assert_clean_exit,
    assert_exactly_once,
    chaos,
    cmdline,
    completed_ids,
    hsm,
    hsm_popen,
    states,
    stop,
    wait_until,
    write_chaos_project,
)
from hsm_core.testing.services import ServiceUnavailable, SlurmCluster, require_service, start_slurm

pytest.importorskip("hsm_plugin_slurm", reason="hsm-plugin-slurm is not installed")


@pytest.fixture(scope="module")
def cluster() -> SlurmCluster:
    try:
        return start_slurm()
    except ServiceUnavailable as exc:
        require_service("slurm", str(exc))


def _slurmd_pid(cluster: SlurmCluster) -> int | None:
    """The pid of slurmd running our slurm.conf (as ``slurm.sh``'s daemon_pid finds it)."""
    try:
        pid = int((cluster.state_dir / "slurmd.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    args = cmdline(pid)
    if args and args[0].endswith("slurmd") and "-f" in args and str(cluster.conf) in args:
        return pid
    return None


def stop_slurmd(cluster: SlurmCluster) -> bool:
    """Stop slurmd only (slurmctld and munged keep running); True when it was running."""
    with open(cluster.state_dir / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # never in the middle of someone's `slurm.sh start`
        pid = _slurmd_pid(cluster)
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        try:
            wait_until(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), 10, "slurmd to stop")
        except AssertionError:
            os.kill(pid, signal.SIGKILL)
    return True


def start_slurmd(cluster: SlurmCluster) -> None:
    """Start slurmd again exactly as ``slurm.sh start`` starts it (``slurmd -f CONF``, stdio
    detached). Only slurmd: ``slurm.sh start`` restarts slurmctld too when a daemon is missing,
    and a slurmctld restarted while a batch launch to the stopped node was failing "recovers"
    those jobs as running, with no process behind them, until their walltime. The caller still
    runs ``slurm.sh start`` afterwards (a no-op when all is up)."""
    import subprocess

    with open(cluster.state_dir / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _slurmd_pid(cluster) is None:
            with open(cluster.state_dir / "log" / "d.stderr", "a") as err:
                subprocess.run(["slurmd", "-f", str(cluster.conf)], stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                               check=False, timeout=60)
    # Until the node has registered again, `slurm.sh start` would take the cluster for broken and
    # restart it all.
    try:
        wait_until(lambda: cluster.run(["sinfo", "-h", "-N", "-o", "%t"], check=False).stdout.strip()
                   in ("idle", "mix", "alloc"), 60, "the node to be up again", step=0.2)
    except AssertionError:
        pass  # slurm.sh start deals with it


def _cancel_jobs(cluster: SlurmCluster, sweep_dir: Path) -> None:
    """scancel the array jobs of a sweep whose controller the test had to kill (never leave
    elements on the shared cluster)."""
    import json

    jobs = sweep_dir / "scripts" / "job_scripts" / "jobs.jsonl"
    ids = [json.loads(ln)["job_id"] for ln in jobs.read_text().splitlines() if ln.strip()] if jobs.exists() else []
    if ids:
        cluster.run(["scancel", *map(str, ids)], check=False)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_slurmd_stopped_mid_sweep(chaos: Chaos, cluster: SlurmCluster, tmp_path: Path) -> None:
    """slurmd goes away at a random moment for 1-5 s while array elements are queued and running
    (running elements carry on under slurmstepd; queued ones wait), then the cluster is started
    again. The controller tolerates the failed queries, `hsm complete` finishes, and every task
    runs to its end exactly once."""
    env = {"SLURM_CONF": str(cluster.conf)}
    for r in range(chaos.rounds):
        with chaos.round(r) as rng:
            root = tmp_path / f"r{r}"
            # A short walltime: should the cluster be restarted under us (another session's
            # `slurm.sh start` with other settings), slurmctld can "recover" elements whose launch
            # failed as running with nothing behind them; they then end at their walltime.
            count = write_chaos_project(root, extra_config='hpc:\n  system: slurm\n  default_walltime: "00:01:00"\n')
            n = rng.randint(4, 8)
            values = [round(rng.uniform(0.3, 2.0), 2) for _ in range(n)]
            import yaml

            cfg = root / "sweeps" / "sweep.yaml"
            cfg.parent.mkdir(parents=True, exist_ok=True)
            cfg.write_text(yaml.safe_dump({"paired": [{"p": {"x": list(range(n)), "sleep": values}}]}))
            sweep_id = f"d{r}"
            sweep_dir = root / "sweeps" / "outputs" / sweep_id
            proc = hsm_popen(root, "run", "--config", str(cfg), "--sweep-id", sweep_id, "--sources", "slurm", env=env)
            try:
                wait_until(lambda: (sweep_dir / "scripts" / "job_scripts" / "jobs.jsonl").exists() or proc.poll() is not None,
                           60, "the array job to be submitted")
                time.sleep(rng.uniform(0.0, 2.0))
                try:
                    if stop_slurmd(cluster):
                        chaos.count("slurmd stops")
                        down = rng.uniform(1.0, 5.0)
                        chaos.count("slurmd seconds down", round(down))
                        time.sleep(down)
                finally:
                    try:
                        start_slurmd(cluster)
                    finally:
                        start_slurm()  # scripts/slurm.sh start: idempotent; brings back whatever is missing
                stop(proc, timeout=300)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                if proc.returncode == -signal.SIGKILL:  # we had to kill it: leave no job behind
                    _cancel_jobs(cluster, sweep_dir)
            assert_clean_exit(proc, (0, 1))
            seen = completed_ids(sweep_dir)
            for _ in range(2):
                done = hsm(root, "complete", sweep_id, "--sources", "slurm", env=env, timeout=240)
                chaos.count("hsm complete runs")
                assert_clean_exit(done, (0, 1))
                if done.returncode == 0 and set(states(sweep_dir).values()) == {"completed"}:
                    break
            assert_exactly_once(sweep_dir, count, n, seen)
            chaos.count("tasks", n)
