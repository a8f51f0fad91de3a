"""~/.ssh/config is honoured (HostName, User, Port, IdentityFile, UserKnownHostsFile, ProxyJump),
for paramiko connections and for rsync over the system ssh alike."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ssh_support import Project, free_port, sshd_instance

pytestmark = pytest.mark.sshd


def write_ssh_config(path: Path, jump, target, known: Path, jump_port: int | None = None) -> None:
    path.write_text(
        f"""Host jumphost
  HostName 127.0.0.1
  Port {jump_port or jump.port}
  User {jump.user}
  IdentityFile {jump.key_file}
  UserKnownHostsFile {known}

Host target
  HostName 127.0.0.1
  Port {target.port}
  User {target.user}
  IdentityFile {target.key_file}
  UserKnownHostsFile {known}
  ProxyJump jumphost
"""
    )


def test_ssh_config_alias_through_a_jump_host(project: Project, sshd, tmp_path: Path) -> None:
    target = sshd_instance("hsm-plugin-ssh-other")
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts.read_text() + target.known_hosts.read_text())
    cfg_file = tmp_path / "ssh_config"
    write_ssh_config(cfg_file, sshd, target, known)
    entry = {"host": "target", "ssh_config": str(cfg_file), "project_dir": str(project.remote_dir),
             "python_interpreter": __import__("sys").executable}
    project.set_remote("target", entry)
    sync = project.hsm("remote", "sync", "target")  # rsync: ssh -F CONFIG -J jumphost
    assert sync.returncode == 0, sync.stdout + sync.stderr
    assert (project.remote_dir / "train.py").is_file()
    test = project.hsm("remote", "test", "target")
    assert test.returncode == 0, test.stdout + test.stderr
    assert f"Testing remote target (target = {target.user}@127.0.0.1:{target.port})" in test.stdout
    project.write_sweep({"grid": {"x": [1, 2]}})
    run = project.hsm("run", "--config", "sweeps/sweep.yaml", "--sources", "ssh:target", "--sweep-id", "j1")
    assert run.returncode == 0, run.stdout + run.stderr
    tasks = project.outputs / "j1" / "tasks"
    assert all(yaml.safe_load((d / "status.yaml").read_text())["state"] == "completed" for d in tasks.iterdir())

    # The jump host really is on the way: with it down, the target cannot be reached.
    write_ssh_config(cfg_file, sshd, target, known, jump_port=free_port())
    down = project.hsm("remote", "test", "target")
    assert down.returncode == 1
    assert "jump host jumphost" in down.stdout and "connection refused" in down.stdout
