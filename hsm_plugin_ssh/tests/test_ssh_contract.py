"""The ssh source passes the compute-source contract against a real sshd on 127.0.0.1.

The remote project is a copy in another directory (pushed with ``hsm remote sync``'s code), so
every status, log and metrics file the contract reads locally was copied back from the remote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hsm_core.plugin import SourceContext
from hsm_core.testing import ComputeSourceContract

from hsm_plugin_ssh.host import SshHost
from hsm_plugin_ssh.project_sync import push_project
from hsm_plugin_ssh.source import SshSource
from ssh_support import remote_entry

pytestmark = pytest.mark.sshd


class SshContract(ComputeSourceContract):
    """Shared set-up; subclasses choose how files move."""

    timeout = 60.0
    transfer = "auto"

    @pytest.fixture(autouse=True)
    def _host(self, sshd: Any) -> None:
        self.sshd = sshd

    def project_config(self, tmp_path: Path) -> dict[str, Any]:
        entry = remote_entry(self.sshd, tmp_path / "remote_project", kill_grace=2, poll_interval=0.2,
                             transfer=self.transfer)
        return {"distributed": {"remotes": {"srv": entry}}}

    def make_source(self, context: SourceContext, tmp_path: Path) -> SshSource:
        entry = context.project_config["distributed"]["remotes"]["srv"]
        host = SshHost("srv", entry)
        try:
            push_project(host, entry, context.project_root, context.project_config)
        finally:
            host.close()
        assert (tmp_path / "remote_project" / "train.py").is_file()
        return SshSource("srv", entry, context)


class TestSshContractRsync(SshContract):
    transfer = "rsync"


class TestSshContractSftp(SshContract):
    transfer = "sftp"
