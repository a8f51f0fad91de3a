"""Submitting to Slurm from a workstation through a login node (``hpc.clusters.NAME.host``), end to end.

The "login node" is our own sshd on 127.0.0.1 (a ``distributed.remotes`` entry); the cluster is the
real local Slurm. The cluster's copy of the project lives in another directory, pushed there with
``hsm remote sync``, so the job scripts, the runs and the task dirs really are "over there" and the
results must come back through the ssh plugin's host. The sshd session does not inherit our
environment: ``SLURM_CONF`` (and ``HSM_COUNT_DIR``, which the jobs inherit from ``sbatch``) reach the
scheduler commands through the cluster entry's ``env:`` (docs/hpc.md), the supported way.

Every execution of the test script appends its task id to ``runs.log`` in a directory outside both
project copies, so "exactly once" is counted where the tasks really ran.
"""

from __future__ import annotations

import collections
import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from hsm_core.testing.project import Project, make_project, wait_for
from hsm_core.testing.services import (
    ServiceUnavailable,
    SlurmCluster,
    LocalSshd,
    require_service,
    start_slurm,
    start_sshd,
)

pytestmark = [pytest.mark.sshd, pytest.mark.slurm, pytest.mark.slow]

#: Our own sshd instance, shared with no other test module.
SSHD_NAME = "hsm-login-node"
#: The remote (``distributed.remotes``) and the cluster (``hpc.clusters``) share this name.
NAME = "login"


def _require_plugins(*names: str) -> None:
    missing = [n for n in names if importlib.util.find_spec(n) is None]
    if not missing:
        return
    message = f"plugin(s) not installed: {', '.join(missing)} (pip install -e {' '.join('./' + n for n in missing)})"
    if os.environ.get("CI", "").strip().lower() in ("true", "1"):
        pytest.fail(message + "\nCI=true: a missing plugin fails the test instead of skipping it.", pytrace=False)
    pytest.skip(message)


@dataclass
class LoginProject(Project):
    """The workstation's project; ``cluster_dir`` is its copy on the cluster's file system."""

    cluster_dir: Path = Path()
    slurm: SlurmCluster | None = None

    def environ(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = super().environ(extra)
        env.pop("SSH_AUTH_SOCK", None)  # only the test key, never a developer's agent
        env.pop("SLURM_CONF", None)  # the workstation has no Slurm: only the login node's env: may name it
        return env

    def run_dir(self, sweep_id: str) -> Path:
        return self.outputs / sweep_id

    def cluster_sweep(self, sweep_id: str) -> Path:
        return self.cluster_dir / "sweeps" / "outputs" / sweep_id

    def cluster_states(self, sweep_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for d in sorted((self.cluster_sweep(sweep_id) / "tasks").glob("task_*")):
            try:
                out[d.name] = (yaml.safe_load((d / "status.yaml").read_text()) or {}).get("state")
            except (OSError, yaml.YAMLError):
                out[d.name] = None
        return out

    def job_ids(self, sweep_id: str) -> list[str]:
        path = self.run_dir(sweep_id) / "scripts" / "job_scripts" / "jobs.jsonl"
        return [str(json.loads(line)["job_id"]) for line in path.read_text().splitlines() if line.strip()]

    def source_log(self, sweep_id: str) -> str:
        """The sweep's log of the cluster source (what went wrong, for failure messages)."""
        path = self.run_dir(sweep_id) / "logs" / "sources" / f"{NAME}.log"
        return path.read_text() if path.exists() else "(no source log)"

    def in_queue(self, job_ids: list[str]) -> list[str]:
        """squeue's lines (``ELEMENT STATE``) for the elements of these array jobs."""
        assert self.slurm is not None
        # The whole queue, one line per element: squeue -j fails on ids it has already forgotten.
        lines = self.slurm.run(["squeue", "-h", "-r", "-o", "%F %i %T"]).stdout.splitlines()
        return [line.split(" ", 1)[1] for line in lines if line.split(" ", 1)[0] in job_ids]


@pytest.fixture
def login(tmp_path: Path) -> LoginProject:
    _require_plugins("hsm_plugin_ssh", "hsm_plugin_slurm")
    try:
        host: LocalSshd = start_sshd(SSHD_NAME)
    except ServiceUnavailable as exc:
        require_service("sshd", str(exc))
    try:
        cluster = start_slurm()
    except ServiceUnavailable as exc:
        require_service("slurm", str(exc))
    cluster_dir = tmp_path / "cluster" / "proj"
    cluster_dir.parent.mkdir(parents=True)
    count_dir = tmp_path / "counts"
    count_dir.mkdir()
    home = tmp_path / "home"  # never the real ~/.ssh
    home.mkdir()
    remote = {
        "host": host.host,
        "port": host.port,
        "user": host.user,
        "key": str(host.key_file),
        "known_hosts": str(host.known_hosts),
        "python_interpreter": sys.executable,
        "project_dir": str(cluster_dir),  # where `hsm remote sync` pushes the project
    }
    hpc = {
        "system": "slurm",
        "default_walltime": "00:10:00",
        "poll_interval_max": 2,
        "clusters": {
            NAME: {
                "host": NAME,
                "project_dir": str(cluster_dir),
                "python_interpreter": sys.executable,
                # sshd starts a fresh environment: the scheduler commands get these, and sbatch
                # hands them on to the jobs.
                "env": {"SLURM_CONF": str(cluster.conf), "HSM_COUNT_DIR": str(count_dir)},
            }
        },
    }
    extra = yaml.safe_dump({"hpc": hpc, "distributed": {"remotes": {NAME: remote}}}, sort_keys=False)
    base = make_project(tmp_path / "proj", name="loginproj", config_extra=extra,
                        env={"HOME": str(home), "HSM_COUNT_DIR": str(count_dir)})
    project = LoginProject(base.root, base.env, cluster_dir=cluster_dir, slurm=cluster)
    project.hsm("remote", "sync", NAME, timeout=120, check=True)
    assert (cluster_dir / "train.py").read_text() == (project.root / "train.py").read_text()
    return project


def test_a_sweep_submitted_through_the_login_node_runs_there_and_comes_back(login: LoginProject) -> None:
    sweep = login.write_sweep({"grid": {"x": list(range(6))}})
    proc = login.hsm("run", "--config", str(sweep), "--sources", f"hpc:{NAME}", "--sweep-id", "viahost", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Done: 6 completed" in proc.stdout, proc.stdout

    statuses = login.statuses(login.run_dir("viahost"))
    assert len(statuses) == 6
    assert {n: s.get("state") for n, s in statuses.items() if s.get("state") != "completed"} == {}
    runs = login.executions()
    assert sorted(runs) == sorted(s["task_id"] for s in statuses.values()), collections.Counter(runs).most_common(3)

    # The list and the job script were written on the cluster, naming the cluster's paths.
    cluster_sweep = login.cluster_sweep("viahost")
    scripts = sorted((cluster_sweep / "scripts" / "job_scripts").glob(f"{NAME}_*.sh"))
    assert [p.name for p in scripts] == [f"{NAME}_001.sh"]
    text = scripts[0].read_text()
    assert f"--list {cluster_sweep}/scripts/job_scripts/{NAME}_001.list" in text, text
    assert str(login.root) not in text  # nothing of the workstation's paths reaches the cluster
    assert (cluster_sweep / "scripts" / "job_scripts" / f"{NAME}_001.list").is_file()

    # Each task ran in the cluster's copy and its dir came back: status, logs, metrics.
    for name, status in statuses.items():
        local = login.run_dir("viahost") / "tasks" / name
        assert status.get("source") == NAME
        assert status.get("job_id"), status
        stdout = (local / "stdout.log").read_text()
        env_line = next(ln for ln in stdout.splitlines() if ln.startswith("ENV "))
        assert json.loads(env_line[4:])["HSM_TASK_DIR"] == str(cluster_sweep / "tasks" / name)
        assert (local / "metrics.json").is_file()
        assert yaml.safe_load((cluster_sweep / "tasks" / name / "status.yaml").read_text())["state"] == "completed"

    shown = login.hsm("status", "viahost", "--json", check=True)
    info = json.loads(shown.stdout)
    assert info["counts"]["completed"] == 6 and info["per_source"] == {NAME: {"completed": 6}}


def test_hsm_cancel_stops_the_jobs_queued_through_the_login_node(login: LoginProject) -> None:
    sweep = login.write_sweep({"grid": {"x": [0, 1], "sleep": [300]}})
    proc = login.hsm("run", "--config", str(sweep), "--sources", f"hpc:{NAME}", "--sweep-id", "slow",
                     "--no-wait", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs = login.job_ids("slow")
    assert jobs and login.in_queue(jobs)
    # Started over there (the runner wrote "running" in the cluster's copy).
    wait_for(lambda: set(login.cluster_states("slow").values()) == {"running"}, timeout=40,
             what="both tasks running on the cluster")
    info = json.loads(login.hsm("status", "slow", "--json", check=True).stdout)
    assert info["total"] == 2 and info["counts"].get("completed", 0) == 0

    # --wait: room for a slurmd restarted meanwhile by another test session on this shared cluster
    # (the kill is delivered once it is back); hsm cancel returns as soon as the jobs have ended.
    cancelled = login.hsm("cancel", "slow", "--wait", "120", timeout=180)
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    assert "2 cancelled" in cancelled.stdout, cancelled.stdout
    said = f"{cancelled.stdout}\n{cancelled.stderr}\n{login.source_log('slow')}\nsqueue: {login.in_queue(jobs)}"
    states = {n: s.get("state") for n, s in login.statuses(login.run_dir("slow")).items()}
    assert states == {"task_001": "cancelled", "task_002": "cancelled"}, said
    assert login.in_queue(jobs) == [], said
    assert login.cluster_states("slow") == states, said  # the cluster's copy too (hsm complete reads it)
    assert login.executions() == []  # the sleeps never finished
    info = json.loads(login.hsm("status", "slow", "--json", check=True).stdout)
    assert info["counts"].get("cancelled") == 2 and info["status"] == "cancelled"
