"""``--trust-host-key``: fetch a host's key and add it to known_hosts (after showing its fingerprint).

This is the one place a key is ever added, and only when the user asks. A host already known with
a *different* key is refused: that is exactly what host key checking exists to catch.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from hsm_core.plugin import HsmError

from hsm_plugin_ssh.host import HostKeyError, HostUnreachable, fingerprint
from hsm_plugin_ssh.settings import ConnectSettings


@dataclass
class TrustResult:
    """What happened to the host's key."""

    key_type: str
    fingerprint: str
    file: Path
    added: bool  #: False when it was already known


def fetch_key(s: ConnectSettings) -> object:
    """The host key the server offers (no authentication; nothing is trusted yet)."""
    import paramiko

    if s.proxy_jump:
        raise HsmError(f"cannot fetch the key of {s.name} through a jump host here",
                       hint=f"log in once with: ssh -J {s.proxy_jump[0].host} -p {s.port} {s.user}@{s.hostname} "
                       "and accept the key, or add it with ssh-keyscan run on the jump host")
    try:
        sock = paramiko.ProxyCommand(s.proxy_command) if s.proxy_command else socket.create_connection(
            (s.hostname, s.port), timeout=s.connect_timeout)
    except OSError as exc:
        raise HostUnreachable(f"cannot reach {s.name} ({s.describe()}): {exc}") from None
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=s.connect_timeout)
        return transport.get_remote_server_key()
    except (paramiko.SSHException, EOFError, OSError) as exc:
        raise HostUnreachable(f"cannot talk SSH to {s.name} ({s.describe()}): {exc}") from None
    finally:
        transport.close()


def trust_host_key(s: ConnectSettings) -> TrustResult:
    """Add the host's key to ``s.trust_file`` unless a known_hosts file already has it."""
    import paramiko

    key = fetch_key(s)
    name = s.known_hosts_name
    known = paramiko.HostKeys()
    for f in s.known_hosts:
        if f.is_file():
            try:
                known.load(str(f))
            except (OSError, paramiko.SSHException, ValueError):
                continue
    existing = known.lookup(name)
    fp = fingerprint(key)  # type: ignore[arg-type]
    if existing is not None and key.get_name() in existing:  # type: ignore[attr-defined]
        if existing[key.get_name()] == key:  # type: ignore[attr-defined]
            return TrustResult(key.get_name(), fp, s.trust_file, False)  # type: ignore[attr-defined]
        raise HostKeyError(
            f"{name} is already in known_hosts with a DIFFERENT {key.get_name()} key "  # type: ignore[attr-defined]
            f"({fingerprint(existing[key.get_name()])}, now {fp}); not trusting it",  # type: ignore[attr-defined]
            hint=f"if the host was reinstalled, remove the old key first: ssh-keygen -R '{name}' -f FILE",
        )
    path = s.trust_file
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.parent == Path("~/.ssh").expanduser():
        os.chmod(path.parent, 0o700)
    line = f"{name} {key.get_name()} {key.get_base64()}\n"  # type: ignore[attr-defined]
    new = not path.exists()
    needs_newline = False
    if not new:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell():
                fh.seek(-1, os.SEEK_END)
                needs_newline = fh.read(1) != b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as fh:
        fh.write(("\n" if needs_newline else "") + line)
    return TrustResult(key.get_name(), fp, path, True)  # type: ignore[attr-defined]
