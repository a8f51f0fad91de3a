"""Helpers and fixtures for the ssh plugin tests: a real sshd on 127.0.0.1 (scripts/sshd.sh), projects run with the real ``hsm``.

The "remote" is this machine, so hsm-core is importable there; the remote project always lives in
another directory than the local one, so copying task dirs back is really exercised.
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from hsm_core.testing.project import Project as BaseProject
from hsm_core.testing.project import make_project
from hsm_core.testing.services import ServiceUnavailable, LocalSshd, require_service, start_sshd

SSHD_NAME = "hsm-plugin-ssh"


def sshd_instance(name: str) -> LocalSshd:
    """Start (or reuse) sshd instance ``name``; skip (fail under CI=true) when it cannot run."""
    try:
        return start_sshd(name)
    except ServiceUnavailable as exc:
        require_service("sshd", str(exc))


@pytest.fixture(scope="session")
def sshd() -> LocalSshd:
    """The shared test "remote host"."""
    return sshd_instance(SSHD_NAME)


def remote_entry(h: LocalSshd, remote_dir: Path | None = None, **extra: Any) -> dict[str, Any]:
    """A ``distributed.remotes`` entry for sshd instance ``h``."""
    entry: dict[str, Any] = {
        "host": h.host,
        "port": h.port,
        "user": h.user,
        "key": str(h.key_file),
        "known_hosts": str(h.known_hosts),
        "python_interpreter": sys.executable,
    }
    if remote_dir is not None:
        entry["project_dir"] = str(remote_dir)
    entry.update(extra)
    return entry


def free_port() -> int:
    """A TCP port on 127.0.0.1 where nothing listens."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@dataclass
class Project(BaseProject):
    """A local project (hsm_config.yaml, train.py, a sweep file) and its remote copy's directory."""

    remote_dir: Path = Path()
    home: Path = Path()

    def config(self) -> dict[str, Any]:
        return yaml.safe_load((self.root / "hsm_config.yaml").read_text()) or {}

    def set_remote(self, name: str, entry: dict[str, Any]) -> None:
        data = self.config()
        data.setdefault("distributed", {}).setdefault("remotes", {})[name] = entry
        (self.root / "hsm_config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))

    def environ(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = super().environ({"HOME": str(self.home), **(extra or {})})  # never the real ~/.ssh
        if "SSH_AUTH_SOCK" not in (extra or {}):
            env.pop("SSH_AUTH_SOCK", None)
        return env


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    home = tmp_path / "home"
    home.mkdir()
    base = make_project(tmp_path / "proj", name="sshproj")
    yield Project(base.root, remote_dir=tmp_path / "remote" / "proj", home=home)


def push(project: Project, name: str = "srv") -> None:
    """Copy the project to its remote directory with the plugin's own push."""
    from hsm_core.plugin import locate_project

    from hsm_plugin_ssh.host import SshHost as Host
    from hsm_plugin_ssh.project_sync import push_project

    cfg = locate_project(project.root)
    entry = cfg.setting("distributed.remotes")[name]
    host = Host(name, entry)
    try:
        push_project(host, entry, project.root, cfg.config)
    finally:
        host.close()
