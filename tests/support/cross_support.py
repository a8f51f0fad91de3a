"""Helpers for the cross-package tests (tests/test_cross_sources.py, bench/bench_dispatch.py): one
project that runs tasks on local processes, a real sshd "host" on 127.0.0.1 and the real local Slurm.

The remote project lives in its own directory (pushed with ``hsm remote sync``), so results really
travel back over SSH. Every execution of the test script, wherever it ran, appends its task id to
``runs.log`` in a directory beside the project (``HSM_COUNT_DIR``: inherited by local runners and
Slurm jobs, and set for the remote through the remote's ``env:``). It is outside the project so that
the remote copy stays in sync (``hsm run`` / ``hsm complete`` check it).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from hsm_core.testing import SCRIPT
from hsm_core.testing.services import ServiceUnavailable, SlurmCluster, LocalSshd, require_service, start_slurm, start_sshd

#: Our own sshd instance: tests stop and start it, so it is shared with nobody.
SSHD_NAME = "hsm-cross"
#: The name of the ssh source in ``--sources`` (a ``distributed.remotes`` entry).
REMOTE = "cross"


def require_plugins(*names: str) -> None:
    """Skip (fail under ``CI=true``) unless the plugin distributions are installed."""
    import pytest

    missing = [n for n in names if importlib.util.find_spec(n) is None]
    if not missing:
        return
    dists = ", ".join("./" + n for n in missing)
    message = f"plugin(s) not installed: {', '.join(missing)} (pip install -e {dists})"
    if os.environ.get("CI", "").strip().lower() in ("true", "1"):
        pytest.fail(message + "\nCI=true: a missing plugin fails the test instead of skipping it.", pytrace=False)
    pytest.skip(message)


def services() -> tuple[LocalSshd, SlurmCluster]:
    """Our sshd instance (running) and the shared Slurm; skip or fail (CI) when missing."""
    try:
        host = start_sshd(SSHD_NAME)
    except ServiceUnavailable as exc:
        require_service("sshd", str(exc))
    try:
        cluster = start_slurm()
    except ServiceUnavailable as exc:
        require_service("slurm", str(exc))
    return host, cluster


@dataclass
class CrossProject:
    """A project with the three sources configured; runs the real ``hsm``."""

    root: Path
    remote_dir: Path
    count_dir: Path
    env: dict[str, str]

    def write_sweep(self, data: Any, name: str = "sweep.yaml") -> Path:
        path = self.root / "sweeps" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def hsm(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "hsm_core", *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "hsm_core", *args], cwd=self.root, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def sweep(self, sweep_id: str) -> Path:
        return self.root / "sweeps" / "outputs" / sweep_id

    def statuses(self, sweep_id: str) -> dict[str, dict[str, Any]]:
        """task dir name -> status.yaml (empty when not written yet)."""
        out: dict[str, dict[str, Any]] = {}
        tasks = self.sweep(sweep_id) / "tasks"
        for d in sorted(tasks.glob("task_*")) if tasks.is_dir() else []:
            try:
                out[d.name] = yaml.safe_load((d / "status.yaml").read_text()) or {}
            except (OSError, yaml.YAMLError):  # not written yet, or being replaced
                out[d.name] = {}
        return out

    def remote_states(self, sweep_id: str) -> dict[str, str | None]:
        """task dir name -> state in the remote copy of the sweep."""
        out: dict[str, str | None] = {}
        tasks = self.remote_dir / "sweeps" / "outputs" / sweep_id / "tasks"
        for d in sorted(tasks.glob("task_*")) if tasks.is_dir() else []:
            try:
                out[d.name] = (yaml.safe_load((d / "status.yaml").read_text()) or {}).get("state")
            except (OSError, yaml.YAMLError):
                out[d.name] = None
        return out

    def executions(self) -> list[str]:
        """Task ids, one per execution of the script on any source."""
        path = self.count_dir / "runs.log"
        return path.read_text().split() if path.exists() else []

    def log(self, sweep_id: str, name: str) -> str:
        path = self.sweep(sweep_id) / "logs" / name
        return path.read_text() if path.exists() else ""


def make_project(tmp_path: Path, host: LocalSshd, cluster: SlurmCluster, *, local: int = 2, remote: int = 2,
                 remote_extra: dict[str, Any] | None = None, remote_env: dict[str, str] | None = None,
                 compute_extra: dict[str, Any] | None = None, script: str = SCRIPT) -> CrossProject:
    """A project at ``tmp_path/proj`` whose remote copy (``tmp_path/remote/proj``) is pushed."""
    root = tmp_path / "proj"
    remote_dir = tmp_path / "remote" / "proj"
    home = tmp_path / "home"
    count_dir = tmp_path / "counts"
    for d in (root, remote_dir.parent, home, count_dir):
        d.mkdir(parents=True, exist_ok=True)
    (root / "train.py").write_text(script)
    entry: dict[str, Any] = {
        "host": host.host,
        "port": host.port,
        "user": host.user,
        "key": str(host.key_file),
        "known_hosts": str(host.known_hosts),
        "python_interpreter": sys.executable,
        "project_dir": str(remote_dir),
        "max_parallel_jobs": remote,
        "poll_interval": 1,
        # The remote runner's environment comes from sshd, not from us: count its executions too.
        "env": {"HSM_COUNT_DIR": str(count_dir), **(remote_env or {})},
        **(remote_extra or {}),
    }
    config = {
        "project": {"name": "cross"},
        "paths": {"python_interpreter": sys.executable, "train_script": "train.py"},
        "compute": {"local": {"max_parallel_jobs": local, "kill_grace": 2}, **(compute_extra or {})},
        "hpc": {"system": "slurm", "default_walltime": "00:10:00", "poll_interval_max": 2},
        "distributed": {"remotes": {REMOTE: entry}},
    }
    (root / "hsm_config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = dict(cluster.env)  # SLURM_CONF
    env["HOME"] = str(home)  # never read or write the real ~/.ssh
    env.pop("SSH_AUTH_SOCK", None)
    env["HSM_COUNT_DIR"] = str(count_dir)
    project = CrossProject(root, remote_dir, count_dir, env)
    pushed = project.hsm("remote", "sync", REMOTE, timeout=120)
    if pushed.returncode != 0:
        raise AssertionError(f"hsm remote sync {REMOTE} failed:\n{pushed.stdout}\n{pushed.stderr}")
    return project


def wait_for(predicate: Callable[[], Any], timeout: float, what: str,
             proc: subprocess.Popen | None = None) -> Any:
    """Poll ``predicate`` until it returns something truthy (fail early if ``proc`` died)."""
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"hsm exited {proc.returncode} while waiting for {what}:\n{out}\n{err}")
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def stop_process(proc: subprocess.Popen) -> None:
    """Make sure a background ``hsm`` is gone (test clean-up)."""
    if proc.poll() is None:
        proc.kill()
    proc.communicate()
