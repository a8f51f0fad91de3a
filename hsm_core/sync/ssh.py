"""One multiplexed SSH connection per sync target (OpenSSH ControlMaster).

The system ``ssh`` is used (so ``~/.ssh/config``, agents and ProxyJump work as in a terminal). The
master connection authenticates once; every rsync and remote command of the sync then rides on it
instead of doing its own handshake. The control socket lives in a private temporary directory
(mode 0700) and the master is told to exit at :meth:`SshConnection.close`; ``ControlPersist`` is a
few minutes only, so a crashed hsm never leaves a connection behind for long.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from typing import Any, Mapping

from hsm_core.plugin import HsmError

CONNECT_TIMEOUT = 15
#: Seconds the master stays up after its last client (a safety net: close() ends it at once).
PERSIST = 300


#: A host or user name as ssh and rsync take it on their command line: no leading '-', no
#: whitespace, control characters, quotes or shell characters.
_SAFE_WORD = re.compile(r"^(?!-)[^\s'\"`$;&|<>(){}*?!#\\]+$")


class SshConnection:
    """``ssh`` to one host with a master connection that rsync and remote commands share."""

    def __init__(self, settings: Mapping[str, Any], label: str = "") -> None:
        self.host = str(settings["host"])
        self.user = settings.get("user")
        self.port = settings.get("port")
        self.identity_file = settings.get("identity_file")
        self.known_hosts = settings.get("known_hosts")
        self.ssh_options = list(settings.get("ssh_options") or [])
        self.check_path = str(settings.get("check_path") or ".")
        self.label = label or self.host
        for word, value in (("host", self.host), ("user", self.user)):
            # ssh takes "-oProxyCommand=..." where the destination should be as an option (and runs it).
            if value is not None and not _SAFE_WORD.match(str(value)):
                raise HsmError(f"{str(value)!r} cannot be used as the SSH {word} of {self.label}: it starts with '-' "
                               "(ssh would read it as an option) or holds spaces, quotes or shell characters",
                               hint="give the plain host or user name")
        self._dir: str | None = None
        self._opened = False

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def control_path(self) -> str | None:
        return os.path.join(self._dir, "cm") if self._dir else None

    def describe(self) -> str:
        return self.destination + (f":{self.port}" if self.port else "")

    def check_command(self, path: str | None = None) -> str:
        """What the user can run to check access (the guide's troubleshooting command)."""
        path = path or self.check_path
        argv = ["ssh"]
        if self.port:
            argv += ["-p", str(self.port)]
        if self.identity_file:
            argv += ["-i", str(self.identity_file)]
        argv += [self.destination, shlex.join(["ls", "-la", path])]
        return shlex.join(argv)

    def _options(self) -> list[str]:
        # ssh takes the first value given for an option: ours come before the user's ssh_options
        # only where they must (batch mode: never a password prompt in the middle of a sync).
        argv = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT}",
                "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]  # fmt: skip
        if self.port:
            argv += ["-p", str(self.port)]
        if self.identity_file:
            # Only this key: keys from an agent would count as failed attempts before it.
            argv += ["-i", str(self.identity_file), "-o", "IdentitiesOnly=yes"]
        if self.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        for opt in self.ssh_options:
            argv += ["-o", opt]
        return argv

    def base_argv(self) -> list[str]:
        """``ssh`` and its options, without the destination (for ``rsync -e``)."""
        argv = ["ssh", *self._options()]
        if self.control_path:
            # ControlMaster=no: use the master when it is there, connect directly when it is gone.
            argv += ["-o", f"ControlPath={self.control_path}", "-o", "ControlMaster=no"]
        return argv

    def rsh(self) -> str:
        """:meth:`base_argv` as one string for ``rsync -e`` (rsync splits it, honouring quotes)."""
        return shlex.join(self.base_argv())

    def open(self) -> None:
        """Start the master connection; raise HsmError with the fix when that fails."""
        if self._opened:
            return
        if shutil.which("ssh") is None:
            raise HsmError("the 'ssh' command is not installed", hint="install OpenSSH's client (openssh-client)")
        self._dir = tempfile.mkdtemp(prefix="hsm-sync-ssh-")
        os.chmod(self._dir, 0o700)
        master = ["ssh", *self._options(), "-o", f"ControlPath={self.control_path}", "-o", "ControlMaster=yes",
                  "-o", f"ControlPersist={PERSIST}", "-N", "-f", self.destination]  # fmt: skip
        # -f forks the master into the background once authenticated; its stderr must go to a
        # file, since a pipe would stay open (and block us) as long as the master lives.
        err_path = os.path.join(self._dir, "master.err")
        with open(err_path, "w+") as err:
            try:
                proc = subprocess.run(master, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                      timeout=CONNECT_TIMEOUT + 30)
            except subprocess.TimeoutExpired:
                self.close()
                raise HsmError(f"cannot reach {self.label} ({self.describe()}): no answer in {CONNECT_TIMEOUT + 30}s",
                               hint=f"check the host and port with: {self.check_command()}") from None
            err.seek(0)
            stderr = err.read()
        if proc.returncode != 0:
            self.close()
            raise ssh_error(self.label, self.describe(), stderr, self.check_command())
        self._opened = True

    def run(self, remote_command: str, *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a shell command on the target over the master connection."""
        argv = [*self.base_argv(), self.destination, remote_command]
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)

    def close(self) -> None:
        """Stop the master and remove the private directory with its socket."""
        if self._dir is None:
            return
        if self._opened and self.control_path and os.path.exists(self.control_path):
            subprocess.run(["ssh", "-o", f"ControlPath={self.control_path}", "-O", "exit", self.destination],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        # The master removes its socket as it exits, a moment after "-O exit" returns.
        for _ in range(40):
            shutil.rmtree(self._dir, ignore_errors=True)
            if not os.path.exists(self._dir):
                break
            time.sleep(0.025)
        self._dir = None
        self._opened = False

    def __enter__(self) -> "SshConnection":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ssh_error(label: str, where: str, stderr: str, check: str) -> HsmError:
    """A one-line HsmError for what ssh printed when it could not connect."""
    text = " ".join(stderr.split())
    low = text.lower()
    if "permission denied" in low:
        return HsmError(f"permission denied connecting to {label} ({where})",
                        hint=f"check SSH access (keys, user) with: {check}")
    if "host key verification failed" in low or "no matching host key" in low or "remote host identification has changed" in low:
        return HsmError(f"the host key of {label} ({where}) is not trusted",
                        hint=f"connect once by hand to check and accept it ({shlex.join(shlex.split(check)[:-1])}), "
                        "or set known_hosts: in the target")
    if "could not resolve" in low or "name or service not known" in low:
        return HsmError(f"cannot resolve the host of {label} ({where})", hint="check host: in .hsm/sync_config.yaml")
    if "connection refused" in low or "timed out" in low or "no route" in low or "unreachable" in low:
        return HsmError(f"cannot reach {label} ({where}): {text or 'connection failed'}",
                        hint=f"check the host is up and the port is right: {check}")
    return HsmError(f"ssh to {label} ({where}) failed: {text or 'no message'}", hint=f"try: {check}")
