"""The SSH :class:`~hsm_core.plugin.Host`: one paramiko connection per host, shared by threads.

* Commands are argv lists quoted for the remote shell (:mod:`hsm_plugin_ssh.quoting`).
* The host key is checked against known_hosts (the remote's ``known_hosts:`` file, the user's
  ``~/.ssh/known_hosts`` or ssh config's ``UserKnownHostsFile``, and the system file). An unknown
  host is refused with the command that trusts it; nothing is ever added silently.
* A dropped connection is re-opened on the next use, with a growing delay between attempts while
  the host stays unreachable (:class:`HostUnreachable` in the meantime, which the engine counts
  against the source's health).
* Trees are copied with rsync over the system ``ssh`` when both sides have rsync (one master
  connection shared by every rsync), with SFTP otherwise.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import logging
import os
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping, Sequence

from hsm_core.plugin import CommandResult, Host, HsmError, SourceUnavailable
from hsm_plugin_ssh import shell_files
from hsm_plugin_ssh.quoting import build_command
from hsm_plugin_ssh.settings import ConnectSettings, GLOBAL_KNOWN_HOSTS, resolve

#: Delays (seconds) between reconnection attempts while a host stays unreachable.
BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0, 10.0)
KEEPALIVE = 15

# paramiko's transport thread logs each failed handshake with a traceback; with no logging set up,
# Python prints those on stderr: one traceback per reconnection attempt in the user's terminal.
# What failed is reported as HostUnreachable (and logged once per outage) instead.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


class HostUnreachable(SourceUnavailable):
    """The host cannot be reached right now (refused, timed out, dropped). Transient."""


class HostKeyError(HsmError):
    """The host key is unknown or differs from known_hosts: refused until the user decides."""


class AuthFailed(HsmError):
    """The server refused our keys (or a key needs a passphrase we do not have)."""


def fingerprint(key: Any) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint of a paramiko public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _reject_policy(settings: ConnectSettings) -> Any:
    import paramiko

    class RejectUnknown(paramiko.MissingHostKeyPolicy):
        """Refuse unknown hosts with the commands that trust them (never auto-add)."""

        def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
            files = ", ".join(str(p) for p in settings.known_hosts if p.is_file()) or "no known_hosts file exists"
            raise HostKeyError(
                f"the host key of {settings.name} ({settings.describe()}) is not known "
                f"({key.get_name()} {fingerprint(key)}; checked: {files}); connection refused",
                hint=f"if that fingerprint is right, trust it with: {settings.trust_command()}  "
                f"(or: {settings.keyscan_command()})",
            )

    return RejectUnknown()


def _refused_subsystem(exc: BaseException, host: "SshHost") -> bool:
    """True when opening SFTP failed on a live connection: the server has no SFTP subsystem
    (paramiko says "Channel closed." when sshd refuses the subsystem request)."""
    import paramiko

    return isinstance(exc, paramiko.SSHException) and host.connected and "channel closed" in str(exc).lower()


def _is_connection_error(exc: BaseException) -> bool:
    """True for errors that mean the connection is gone (not 'no such file' over SFTP)."""
    import paramiko

    if isinstance(exc, (EOFError, paramiko.SSHException, socket.timeout, ConnectionError)):
        return True
    return isinstance(exc, OSError) and exc.errno is None and "socket" in str(exc).lower()


class SshHost(Host):
    """A remote machine reached over SSH (thread-safe; reconnects on demand)."""

    def __init__(
        self,
        name: str,
        config: Mapping[str, Any],
        global_ssh: Mapping[str, Any] | None = None,
        *,
        settings: ConnectSettings | None = None,
    ) -> None:
        self.name = name
        self.config = dict(config)
        self._global_ssh = dict(global_ssh or {})
        self._settings = settings
        self._lock = threading.RLock()
        self._sftp_lock = threading.RLock()
        self._client: Any = None
        self._jumps: list[Any] = []
        self._sftp: Any = None
        self._failures = 0
        self._next_attempt = 0.0
        self._last_error = ""
        self._rsync_ok: bool | None = None
        self._home: str | None = None
        self._sftp_missing = False  # the server refused the SFTP subsystem
        self._ctl_dir: str | None = None
        self._made_dirs: set[str] = set()  # remote dirs put_many made (they exist unless removed)
        #: When the host became unreachable (None while it is reachable).
        self.down_since: float | None = None

    # -- settings & connection ----------------------------------------------------------------
    @property
    def settings(self) -> ConnectSettings:
        """Resolved connection settings (``~/.ssh/config`` read on first use)."""
        if self._settings is None:
            self._settings = resolve(self.name, self.config, self._global_ssh)
        return self._settings

    def describe(self) -> str:
        """``NAME (user@host:port)`` for messages."""
        return f"{self.name} ({self.settings.describe()})"

    @property
    def connected(self) -> bool:
        """True when a live connection is open (no network traffic)."""
        t = self._client.get_transport() if self._client is not None else None
        return bool(t is not None and t.is_active())

    def retry_in(self) -> float:
        """Seconds until the next connection attempt the reconnect backoff allows (0: now)."""
        with self._lock:
            return max(0.0, self._next_attempt - time.monotonic()) if self._failures else 0.0

    def connect(self) -> None:
        """Open the connection now (no-op when open); raises :class:`HostUnreachable`,
        :class:`HostKeyError` or :class:`AuthFailed` with what to do."""
        self._get_client(wait=True)

    def _get_client(self, *, wait: bool = False) -> Any:
        with self._lock:
            if self.connected:
                return self._client
            self._drop_locked()
            now = time.monotonic()
            if now < self._next_attempt and not wait:
                left = self._next_attempt - now
                raise HostUnreachable(f"{self.describe()} is unreachable ({self._last_error}); next try in {left:.0f}s")
            try:
                self._client, self._jumps = self._open(self.settings)
            except HostUnreachable as exc:
                self._failures += 1
                self._next_attempt = time.monotonic() + BACKOFF[min(self._failures, len(BACKOFF)) - 1]
                self._last_error = exc.message
                if self.down_since is None:
                    self.down_since = time.time()
                raise
            self._failures = 0
            self._next_attempt = 0.0
            self.down_since = None
            self._rsync_ok = None
            return self._client

    def _open(self, s: ConnectSettings) -> tuple[Any, list[Any]]:
        """Connect through the jump hosts (or ProxyCommand) and return (client, jump clients)."""
        import paramiko

        jumps: list[Any] = []
        sock: Any = None
        try:
            for hop in s.proxy_jump:
                hop_cfg: dict[str, Any] = {"host": hop.host}
                if hop.port:
                    hop_cfg["port"] = hop.port
                if hop.user:
                    hop_cfg["user"] = hop.user
                if self.config.get("known_hosts"):
                    hop_cfg["known_hosts"] = self.config["known_hosts"]
                if self.config.get("ssh_config"):
                    hop_cfg["ssh_config"] = self.config["ssh_config"]
                hop_settings = resolve(f"{s.name} (jump host {hop.host})", hop_cfg, self._global_ssh)
                # A jump host's own ProxyJump would loop through this one again: ignore it.
                hop_settings.proxy_jump = ()
                if jumps:
                    sock = self._tunnel(jumps[-1], hop_settings)
                jumps.append(self._open_client(hop_settings, sock))
            if jumps:
                sock = self._tunnel(jumps[-1], s)
            elif s.proxy_command:
                sock = paramiko.ProxyCommand(s.proxy_command)
            client = self._open_client(s, sock)
        except BaseException:
            for c in jumps:
                c.close()
            raise
        return client, jumps

    @staticmethod
    def _tunnel(via: Any, s: ConnectSettings) -> Any:
        try:
            return via.get_transport().open_channel("direct-tcpip", (s.hostname, s.port), ("127.0.0.1", 0),
                                                    timeout=s.connect_timeout)
        except Exception as exc:
            raise HostUnreachable(f"cannot reach {s.describe()} through the jump host: {exc}") from None

    @staticmethod
    def _open_client(s: ConnectSettings, sock: Any) -> Any:
        import paramiko

        client = paramiko.SSHClient()
        keys = client.get_host_keys()
        for f in s.known_hosts:
            if f.is_file():
                try:
                    keys.load(str(f))
                except (OSError, paramiko.SSHException, ValueError):
                    continue  # an unreadable line or file: the others still count
        client.set_missing_host_key_policy(_reject_policy(s))
        where = f"{s.name} ({s.describe()})"
        try:
            client.connect(
                s.hostname,
                port=s.port,
                username=s.user,
                key_filename=list(s.key_files) or None,
                timeout=s.connect_timeout,
                banner_timeout=s.connect_timeout,
                auth_timeout=s.connect_timeout,
                channel_timeout=s.connect_timeout,
                allow_agent=True,
                look_for_keys=not s.explicit_key,
                compress=s.compression,
                sock=sock,
            )
        except HsmError:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyError(
                f"the host key of {where} CHANGED: known_hosts has {fingerprint(exc.expected_key)}, the host "
                f"offered {fingerprint(exc.key)}; connection refused (the host was reinstalled, or someone is "
                "in the middle)",
                hint=f"if the change is expected, remove the old key (ssh-keygen -R {shlex.quote(s.known_hosts_name)} "
                f"-f FILE) and trust the new one: {s.trust_command()}",
            ) from None
        except paramiko.PasswordRequiredException:
            client.close()
            key = s.key_files[0] if s.key_files else "your key"
            raise AuthFailed(f"the key {key} for {where} is protected by a passphrase",
                             hint=f"load it into ssh-agent first: ssh-add {shlex.quote(key)}") from None
        except paramiko.AuthenticationException as exc:
            client.close()
            keys_text = ", ".join(s.key_files) or "agent and default keys"
            raise AuthFailed(f"{where} refused our keys ({keys_text}): {exc}",
                             hint="check user: and key: of the remote (ssh-copy-id puts your key there)") from None
        except socket.gaierror:
            client.close()
            raise HostUnreachable(f"cannot resolve the host name of {where}",
                                  hint="check host: in distributed.remotes (or ~/.ssh/config)") from None
        except (paramiko.ssh_exception.NoValidConnectionsError, ConnectionRefusedError):
            client.close()
            raise HostUnreachable(f"cannot reach {where}: connection refused",
                                  hint="is sshd running there, and is the port right?") from None
        except (socket.timeout, TimeoutError):
            client.close()
            raise HostUnreachable(f"cannot reach {where}: no answer within {s.connect_timeout:g}s",
                                  hint="check the host is up and reachable (VPN?)") from None
        except paramiko.SSHException as exc:
            client.close()
            if "no authentication methods" in str(exc).lower():
                raise AuthFailed(f"no key to log in to {where}",
                                 hint="set key: for the remote, or load a key into ssh-agent") from None
            raise HostUnreachable(f"cannot connect to {where}: {exc}") from None
        except (OSError, EOFError) as exc:
            client.close()
            raise HostUnreachable(f"cannot reach {where}: {exc}") from None
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(KEEPALIVE)
        return client

    def _drop_locked(self) -> None:
        for obj in (self._sftp, self._client, *self._jumps):
            if obj is not None:
                try:
                    obj.close()
                except Exception:
                    pass
        self._sftp = None
        self._client = None
        self._jumps = []

    def _lost(self, exc: BaseException, doing: str) -> HostUnreachable:
        """Forget a broken connection; the error to raise."""
        with self._lock:
            self._drop_locked()
            if self.down_since is None:
                self.down_since = time.time()
        return HostUnreachable(f"connection to {self.describe()} lost while {doing}: {exc or type(exc).__name__}")

    # -- commands -------------------------------------------------------------------------------
    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """Run ``argv`` on the host (each word quoted for the remote shell)."""
        return self.exec(build_command(argv, cwd=cwd, env=env), input=input, timeout=timeout)

    def exec(self, command: str, *, input: str | None = None, timeout: float | None = None) -> CommandResult:
        """Run a command line built by :func:`~hsm_plugin_ssh.quoting.build_command`.

        Raises :class:`HostUnreachable` when the host cannot be reached or the connection drops;
        a command that outlives ``timeout`` is abandoned with exit code 124.
        """
        chan = None
        for attempt in (1, 2):
            client = self._get_client()
            try:
                chan = client.get_transport().open_session(timeout=self.settings.connect_timeout)
                break
            except Exception as exc:  # the connection died since the last use: reopen it once
                err = self._lost(exc, "opening a channel")
                if attempt == 2:
                    raise err from None
        assert chan is not None
        try:
            return self._exchange(chan, command, input, timeout)
        except HsmError:
            raise
        except Exception as exc:
            if _is_connection_error(exc):
                raise self._lost(exc, "running a command") from None
            raise
        finally:
            chan.close()

    def _exchange(self, chan: Any, command: str, input: str | None, timeout: float | None) -> CommandResult:
        import select

        chan.exec_command(command)
        sender = None
        if input:
            data = input.encode()

            def send() -> None:
                try:
                    chan.sendall(data)
                    chan.shutdown_write()
                except Exception:
                    pass  # the reader below sees the broken channel

            sender = threading.Thread(target=send, daemon=True)
            sender.start()
        else:
            chan.shutdown_write()
        out: list[bytes] = []
        err: list[bytes] = []
        deadline = time.monotonic() + timeout if timeout else None
        wait = 0.002
        # Read until the remote end sends EOF: the exit status may arrive before the last data.
        while True:
            busy = False
            while chan.recv_ready():
                out.append(chan.recv(65536))
                busy = True
            while chan.recv_stderr_ready():
                err.append(chan.recv_stderr(65536))
                busy = True
            if chan.eof_received and not chan.recv_ready() and not chan.recv_stderr_ready():
                break
            if chan.closed or (not busy and self._client is not None and not self.connected):
                break
            if deadline is not None and time.monotonic() > deadline:
                return CommandResult(124, b"".join(out).decode("utf-8", "replace"),
                                     b"".join(err).decode("utf-8", "replace") + f"\ntimed out after {timeout:g}s")
            if busy:
                wait = 0.002
            else:
                select.select([chan], [], [], wait)
                wait = min(wait * 2, 0.1)
        if sender is not None:
            sender.join(timeout=5)
        while not chan.exit_status_ready() and not chan.closed and self.connected:
            if deadline is not None and time.monotonic() > deadline:
                return CommandResult(124, b"".join(out).decode("utf-8", "replace"),
                                     b"".join(err).decode("utf-8", "replace") + f"\ntimed out after {timeout:g}s")
            chan.status_event.wait(0.1)
        if not chan.exit_status_ready():
            raise EOFError("the connection closed before the command ended")
        code = chan.recv_exit_status()
        if code == -1 and not self.connected:
            # paramiko's "no exit status": the channel closed because the connection died (sshd
            # stopped, network gone), not because the command failed.
            raise EOFError("the connection closed before the command ended")
        return CommandResult(code, b"".join(out).decode("utf-8", "replace"), b"".join(err).decode("utf-8", "replace"))

    def check(self) -> None:
        """Connect and run ``true``; raise what went wrong (the health check)."""
        res = self.run(["true"], timeout=self.settings.connect_timeout + 15)
        if res.returncode != 0:
            raise HostUnreachable(f"{self.describe()}: 'true' exited {res.returncode}: {res.stderr.strip()[:200]}")

    # -- SFTP ---------------------------------------------------------------------------------
    def _sftp_call(self, doing: str, fn: Any, without_sftp: Any = None) -> Any:
        """``fn(sftp)``; on a server without the SFTP subsystem ``without_sftp()`` (the same done
        with commands), or a clear error naming what is missing when there is no such way."""
        with self._sftp_lock:
            for attempt in (1, 2):
                client = self._get_client()
                if self._sftp is None:
                    if self._sftp_missing:
                        return self._no_sftp(doing, without_sftp)
                    try:
                        self._sftp = client.open_sftp()
                    except HsmError:
                        raise
                    except Exception as exc:
                        if _refused_subsystem(exc, self):
                            # The connection is fine: the server refused the subsystem itself.
                            self._sftp_missing = True
                            return self._no_sftp(doing, without_sftp)
                        if not _is_connection_error(exc):
                            raise
                        err = self._lost(exc, doing)
                        if attempt == 2:
                            raise err from None
                        continue
                try:
                    return fn(self._sftp)
                except HsmError:
                    raise
                except Exception as exc:
                    if not _is_connection_error(exc):
                        raise
                    err = self._lost(exc, doing)
                    if attempt == 2:
                        raise err from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _no_sftp(self, doing: str, without_sftp: Any) -> Any:
        if without_sftp is not None:
            return without_sftp()
        raise HsmError(
            f"the SSH server of {self.describe()} has no SFTP subsystem, which {doing} needs",
            hint="enable it in that server's sshd_config (Subsystem sftp ...), or install rsync on both "
            "sides: hsm then copies with rsync",
        )

    @property
    def has_sftp(self) -> bool | None:
        """False once the server refused the SFTP subsystem (None: not asked yet)."""
        return False if self._sftp_missing else (True if self._sftp is not None else None)

    def home(self) -> str:
        """The remote user's home directory (the SFTP start directory; ``pwd`` without SFTP)."""
        if self._home is None:
            self._home = str(self._sftp_call("finding the home directory", lambda s: s.normalize("."),
                                             lambda: shell_files.home(self)))
        return self._home

    def exists(self, path: str) -> str | None:
        """``"dir"``, ``"file"`` or None for a remote path."""

        def probe(sftp: Any) -> str | None:
            try:
                st = sftp.stat(path)
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.EACCES, errno.ENOTDIR) or "no such file" in str(exc).lower():
                    return None
                raise
            return "dir" if stat.S_ISDIR(st.st_mode or 0) else "file"

        return self._sftp_call(f"checking {path}", probe, lambda: shell_files.exists(self, path))

    def read_text(self, path: str, limit: int = 1 << 20) -> str | None:
        """The content of a remote text file (None when it does not exist)."""

        def read(sftp: Any) -> str | None:
            try:
                with sftp.open(path, "rb") as fh:
                    return fh.read(limit).decode("utf-8", "replace")
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.EACCES, errno.EISDIR) or "no such file" in str(exc).lower():
                    return None
                raise

        return self._sftp_call(f"reading {path}", read, lambda: shell_files.read_text(self, path, limit))

    def _makedirs(self, sftp: Any, path: str) -> None:
        parts = PurePosixPath(path).parts
        cur = PurePosixPath(parts[0])
        for part in parts[1:]:
            cur = cur / part
            try:
                sftp.stat(str(cur))
            except OSError:
                try:
                    sftp.mkdir(str(cur))
                except OSError:
                    sftp.stat(str(cur))  # raced with another creator: fine if it exists now

    def write_text(self, remote: str, text: str) -> None:
        """Write a remote text file atomically (temp file + rename in the same directory)."""
        data = text.encode()

        def write(sftp: Any) -> None:
            parent = str(PurePosixPath(remote).parent)
            self._makedirs(sftp, parent)
            tmp = f"{remote}.hsm-tmp-{uuid.uuid4().hex[:8]}"
            with sftp.open(tmp, "wb") as fh:
                fh.write(data)
            sftp.posix_rename(tmp, remote)

        self._sftp_call(f"writing {remote}", write, lambda: shell_files.write_text(self, remote, text))

    def _put_tree_sftp(self, local: Path, remote: str) -> None:
        def put(sftp: Any) -> None:
            if local.is_dir():
                self._makedirs(sftp, remote)
                for dirpath, dirnames, filenames in os.walk(local):
                    rel = Path(dirpath).relative_to(local)
                    base = str(PurePosixPath(remote, *rel.parts))
                    for d in dirnames:
                        try:
                            sftp.mkdir(f"{base}/{d}")
                        except OSError:
                            pass
                    for f in filenames:
                        src = Path(dirpath) / f
                        if src.is_symlink() and not src.exists():
                            continue  # a dangling link: nothing to send
                        sftp.put(str(src), f"{base}/{f}")
            else:
                self._makedirs(sftp, str(PurePosixPath(remote).parent))
                sftp.put(str(local), remote)

        self._sftp_call(f"copying {local} to {remote} (rsync is not used{self._why_no_rsync()})", put)

    def _get_tree_sftp(self, remote: str, local: Path) -> None:
        def get_file(sftp: Any, src: str, dst: Path) -> None:
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f".{dst.name}.hsm-tmp-{uuid.uuid4().hex[:8]}")
            try:
                sftp.get(src, str(tmp))
                os.replace(tmp, dst)  # readers (the engine) never see half a status.yaml
            finally:
                if tmp.exists():
                    tmp.unlink()

        def walk(sftp: Any, src: str, dst: Path) -> None:
            dst.mkdir(parents=True, exist_ok=True)
            for entry in sftp.listdir_attr(src):
                child = f"{src}/{entry.filename}"
                mode = entry.st_mode or 0
                if stat.S_ISDIR(mode):
                    walk(sftp, child, dst / entry.filename)
                elif stat.S_ISLNK(mode):
                    target = sftp.readlink(child)
                    link = dst / entry.filename
                    if link.is_symlink() or not link.exists():
                        if link.is_symlink():
                            link.unlink()
                        os.symlink(target, link)
                elif stat.S_ISREG(mode):
                    get_file(sftp, child, dst / entry.filename)

        def get(sftp: Any) -> None:
            st = sftp.stat(remote)
            if stat.S_ISDIR(st.st_mode or 0):
                walk(sftp, remote, local)
            else:
                get_file(sftp, remote, local)

        self._sftp_call(f"copying {remote} back (rsync is not used{self._why_no_rsync()})", get)

    def _why_no_rsync(self) -> str:
        if str(self.config.get("transfer") or "auto") == "sftp":
            return ": transfer: sftp is set"
        if shutil.which("rsync") is None or shutil.which("ssh") is None:
            return ": rsync or ssh is missing here"
        return ": it is missing on the remote" if self._rsync_ok is False else ""

    # -- rsync over the system ssh ------------------------------------------------------------
    def has_rsync(self) -> bool:
        """True when trees go through rsync: ``transfer:`` allows it and both sides have it."""
        mode = str(self.config.get("transfer") or "auto")
        if mode == "sftp":
            return False
        local_ok = shutil.which("rsync") is not None and shutil.which("ssh") is not None
        if self._rsync_ok is None:
            self._rsync_ok = local_ok and self.run(["sh", "-c", "command -v rsync"]).returncode == 0
        if mode == "rsync" and not self._rsync_ok:
            raise HsmError(f"transfer: rsync is set for {self.name} but rsync is missing "
                           f"{'here' if not local_ok else 'on the remote'}", hint="install rsync, or use transfer: auto")
        return bool(self._rsync_ok)

    def ssh_argv(self, *, master: bool = True) -> list[str]:
        """The system ``ssh`` command (without destination) equivalent to this connection: same
        port, user, keys, known_hosts and jump hosts, strict host key checking, never a prompt."""
        s = self.settings
        argv = ["ssh", "-p", str(s.port), "-l", s.user,
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR",
                "-o", f"ConnectTimeout={max(1, int(s.connect_timeout))}",
                "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]  # fmt: skip
        files = [str(p) for p in s.known_hosts if str(p) != GLOBAL_KNOWN_HOSTS and " " not in str(p)]
        if files:
            argv += ["-o", "UserKnownHostsFile=" + " ".join(files)]
        for key in s.key_files:
            argv += ["-i", key]
        if s.explicit_key:
            argv += ["-o", "IdentitiesOnly=yes"]
        if self.config.get("ssh_config") and s.ssh_config_file:
            argv += ["-F", str(s.ssh_config_file)]
        if s.proxy_jump:
            hops = [(f"{h.user}@" if h.user else "") + h.host + (f":{h.port}" if h.port else "") for h in s.proxy_jump]
            argv += ["-J", ",".join(hops)]
        elif s.proxy_command:
            argv += ["-o", f"ProxyCommand={s.proxy_command}"]
        if s.compression:
            argv.append("-C")
        if master and self._ctl_dir:
            # Ride on the master connection when it is up; connect directly when it is not.
            argv += ["-o", f"ControlPath={self._ctl_dir}/cm", "-o", "ControlMaster=no"]
        return argv

    def _ensure_master(self) -> None:
        """Start one background master connection that every rsync shares (best effort)."""
        if self._ctl_dir is None:
            self._ctl_dir = tempfile.mkdtemp(prefix="hsm-ssh-")
            os.chmod(self._ctl_dir, 0o700)
        sock = os.path.join(self._ctl_dir, "cm")
        if os.path.exists(sock):
            return
        argv = [*self.ssh_argv(master=False), "-o", f"ControlPath={sock}", "-o", "ControlMaster=yes",
                "-o", "ControlPersist=120", "-N", "-f", self.settings.hostname]  # fmt: skip
        # -f backgrounds the master: its stderr goes to a file, a pipe would stay open while it lives.
        with tempfile.TemporaryFile() as errf:
            try:
                subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errf,
                               timeout=self.settings.connect_timeout + 15)
            except (subprocess.TimeoutExpired, OSError):
                pass

    def rsync(self, args: list[str], *, input: str | None = None) -> str:
        """Run ``rsync -a -s -e SSH ARGS`` (remote paths written ``self.remote_spec(path)``) and
        return its stdout; HostUnreachable when ssh cannot connect, HsmError for other failures.
        ``-s`` sends file names inside the protocol: the remote shell never parses them."""
        self._ensure_master()
        argv = ["rsync", "-a", "-s", "-e", shlex.join(self.ssh_argv()), *args]
        # Files, not pipes: a master connection started by ssh could keep a pipe open.
        with tempfile.TemporaryFile() as errf, tempfile.TemporaryFile() as outf:
            proc = subprocess.run(argv, input=input.encode() if input is not None else None,
                                  stdin=None if input is not None else subprocess.DEVNULL,
                                  stdout=outf, stderr=errf)
            errf.seek(0)
            said = errf.read().decode("utf-8", "replace").strip()
            outf.seek(0)
            stdout = outf.read().decode("utf-8", "replace")
        if proc.returncode in (0, 24):  # 24: files vanished while copying (a task still writing)
            return stdout
        if proc.returncode in (12, 255) or "connection" in said.lower():
            raise self._lost(OSError(said[-300:] or f"rsync exit {proc.returncode}"), "copying files")
        raise HsmError(f"rsync to/from {self.describe()} failed (exit {proc.returncode}): {said[-300:]}")

    def remote_spec(self, path: str) -> str:
        """``host:path`` as rsync wants it."""
        host = self.settings.hostname
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        return f"{host}:{path}"

    # -- copies -------------------------------------------------------------------------------
    def put(self, local: Path, remote: str) -> None:
        """Copy a local file or tree to ``remote`` (a tree's content goes into ``remote``)."""
        local = Path(local)
        if local.is_dir() and self.has_rsync():
            self.run(["mkdir", "-p", "--", remote])
            self.rsync([f"{local}/", self.remote_spec(f"{remote.rstrip('/')}/")])
            return
        self._put_tree_sftp(local, remote)

    def get(self, remote: str, local: Path) -> None:
        """Copy a remote file or tree to ``local`` (files land atomically)."""
        local = Path(local)
        if self.exists(remote) == "dir" and self.has_rsync():
            local.mkdir(parents=True, exist_ok=True)
            self.rsync([self.remote_spec(f"{remote.rstrip('/')}/"), f"{local}/"])
            return
        self._get_tree_sftp(remote, local)

    def put_many(self, local_parent: Path, names: Sequence[str], remote_parent: str) -> None:
        """Copy ``local_parent/NAME`` for each name into ``remote_parent`` (one rsync for all)."""
        if not names:
            return
        if self.has_rsync():
            args = ["-r", "--files-from=-", f"{local_parent}/", self.remote_spec(f"{remote_parent.rstrip('/')}/")]
            listing = "\n".join(names) + "\n"
            # Each command costs a round trip (~0.1 s with OpenSSH's sshd even on loopback): make
            # the destination once per connection, and again only if it went away.
            if remote_parent not in self._made_dirs:
                self.run(["mkdir", "-p", "--", remote_parent])
                self._made_dirs.add(remote_parent)
                self.rsync(args, input=listing)
                return
            try:
                self.rsync(args, input=listing)
            except HostUnreachable:
                raise
            except HsmError:
                self._made_dirs.discard(remote_parent)
                self.run(["mkdir", "-p", "--", remote_parent])
                self._made_dirs.add(remote_parent)
                self.rsync(args, input=listing)
            return
        for n in names:
            self._put_tree_sftp(Path(local_parent) / n, f"{remote_parent.rstrip('/')}/{n}")

    def get_many(self, remote_parent: str, names: Sequence[str], local_parent: Path) -> None:
        """Copy ``remote_parent/NAME`` for each name into ``local_parent`` (one rsync for all)."""
        if not names:
            return
        Path(local_parent).mkdir(parents=True, exist_ok=True)
        if self.has_rsync():
            self.rsync(["-r", "--files-from=-", self.remote_spec(f"{remote_parent.rstrip('/')}/"), f"{local_parent}/"],
                        input="\n".join(names) + "\n")
            return
        for n in names:
            self._get_tree_sftp(f"{remote_parent.rstrip('/')}/{n}", Path(local_parent) / n)

    def close(self) -> None:
        """Close the connection (the next use opens a new one) and stop the rsync master."""
        with self._lock:
            self._drop_locked()
            self._home = None
        if self._ctl_dir is not None:
            sock = os.path.join(self._ctl_dir, "cm")
            if os.path.exists(sock):
                try:
                    subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", self.settings.hostname],
                                   stdin=subprocess.DEVNULL, capture_output=True, timeout=15)
                except (subprocess.TimeoutExpired, OSError):
                    pass
            shutil.rmtree(self._ctl_dir, ignore_errors=True)
            self._ctl_dir = None


# -- one connection per host in a process -------------------------------------------------------
_POOL: dict[tuple[str, str], SshHost] = {}
_POOL_LOCK = threading.Lock()


def shared_host(name: str, config: Mapping[str, Any], global_ssh: Mapping[str, Any] | None = None) -> SshHost:
    """The process-wide :class:`SshHost` for ``name`` with this config (created on first use)."""
    key = (name, json.dumps({"c": dict(config), "g": dict(global_ssh or {})}, sort_keys=True, default=str))
    with _POOL_LOCK:
        host = _POOL.get(key)
        if host is None:
            host = _POOL[key] = SshHost(name, config, global_ssh)
        return host


def ssh_host(name: str, config: Mapping[str, Any]) -> SshHost:
    """Host provider factory ``(name, config) -> Host`` registered as ``ssh``."""
    return shared_host(name, config)


def close_all(hosts: Iterable[SshHost] | None = None) -> None:
    """Close pooled connections (all of them by default)."""
    with _POOL_LOCK:
        targets = list(hosts) if hosts is not None else list(_POOL.values())
    for h in targets:
        h.close()
