"""How to reach a remote: its ``distributed.remotes`` entry merged with ``~/.ssh/config``.

The entry wins over ``~/.ssh/config``, which wins over the defaults (port 22, your login name,
``~/.ssh/known_hosts``), as for ``ssh`` itself. Nothing here opens a connection.
"""

from __future__ import annotations

import getpass
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from hsm_core.plugin import ConfigError

DEFAULT_CONNECT_TIMEOUT = 15.0
USER_KNOWN_HOSTS = "~/.ssh/known_hosts"
GLOBAL_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def check_remote_name(name: str) -> str:
    """``name`` if it can name a remote in ``hsm remote add`` (letters, digits, ``_``, ``-``)."""
    if not _NAME.match(name or ""):
        raise ConfigError(
            f"invalid remote name {name!r}",
            hint="use letters, digits, '_' and '-' (it appears in --sources ssh:NAME)",
        )
    return name


@dataclass(frozen=True)
class Hop:
    """One jump host of ``proxy_jump`` (``[user@]host[:port]``)."""

    host: str
    port: int | None = None
    user: str | None = None


def parse_jump(text: str) -> list[Hop]:
    """``user@gate:2222,other`` -> hops, in the order they are passed through."""
    hops = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part or part.lower() == "none":
            continue
        user, _, rest = part.rpartition("@")
        host, port = rest, None
        if rest.startswith("["):  # [v6::addr]:port
            host, _, tail = rest[1:].partition("]")
            port = tail[1:] if tail.startswith(":") else None
        elif rest.count(":") == 1:
            host, port = rest.split(":")
        if port is not None and not str(port).isdigit():
            raise ConfigError(f"invalid port in proxy_jump {part!r}", key="proxy_jump")
        hops.append(Hop(host, int(port) if port else None, user or None))
    return hops


@dataclass
class ConnectSettings:
    """Everything needed to open (and describe) one SSH connection. Holds paths, never secrets."""

    name: str  #: the remote's name in hsm_config.yaml (or the host text given)
    alias: str  #: ``host:`` as configured (an ~/.ssh/config alias or a real name)
    hostname: str
    port: int
    user: str
    key_files: tuple[str, ...] = ()
    explicit_key: bool = False  #: a key was configured: only it (and the agent) is offered
    known_hosts: tuple[Path, ...] = ()  #: files read to verify the host key
    trust_file: Path = field(default_factory=lambda: Path(USER_KNOWN_HOSTS).expanduser())
    proxy_jump: tuple[Hop, ...] = ()
    proxy_command: str | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    compression: bool = False
    ssh_config_file: Path | None = None

    def describe(self) -> str:
        """``user@host:port`` (plus the alias when it differs), for messages."""
        where = f"{self.user}@{self.hostname}:{self.port}"
        return where if self.alias == self.hostname else f"{self.alias} = {where}"

    @property
    def known_hosts_name(self) -> str:
        """How this host is written in known_hosts: ``host``, or ``[host]:port`` off port 22."""
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"

    def trust_command(self) -> str:
        """The ``hsm remote add`` line that trusts this host's key (shown in error messages)."""
        import shlex

        argv = ["hsm", "remote", "add", self.name, "--host", self.alias]
        if self.port != 22:
            argv += ["--port", str(self.port)]
        return shlex.join([*argv, "--trust-host-key"])

    def keyscan_command(self) -> str:
        """The ssh-keyscan alternative, appending to the file --trust-host-key would use."""
        import shlex

        argv = ["ssh-keyscan"] + (["-p", str(self.port)] if self.port != 22 else []) + [self.hostname]
        return f"{shlex.join(argv)} >> {shlex.quote(str(self.trust_file))}"


def _path(value: Any) -> Path:
    return Path(os.path.expandvars(str(value))).expanduser()


def _ssh_config(path: Path | None, host: str) -> dict[str, Any]:
    """The ``~/.ssh/config`` settings for ``host`` (empty when there is no such file)."""
    if path is None or not path.is_file():
        return {}
    import paramiko

    try:
        return dict(paramiko.SSHConfig.from_path(str(path)).lookup(host))
    except Exception as exc:  # a broken ssh config is the user's to fix: say where
        raise ConfigError(f"cannot read {path}: {exc}", hint="fix the file, or point ssh_config: elsewhere") from None


#: A host or user name as ssh and rsync take it on their command line: no leading '-' (an option,
#: e.g. -oProxyCommand=...), no whitespace, control characters, quotes or shell characters.
_SAFE_WORD = re.compile(r"^(?!-)[^\s'\"`$;&|<>(){}*?!#\\]+$")


_WARNED_PASSWORD: set[str] = set()


def resolve(name: str, config: Mapping[str, Any], global_ssh: Mapping[str, Any] | None = None) -> ConnectSettings:
    """Connection settings of remote ``name`` from its config entry, ``~/.ssh/config`` and
    ``global_ssh`` (the project's top-level ``ssh:`` section: ``compression``, ``connect_timeout``)."""
    global_ssh = global_ssh or {}
    alias = str(config.get("host") or "").strip()
    if not alias:
        raise ConfigError(f"remote {name!r} has no host", key=f"distributed.remotes.{name}.host",
                          hint=f"hsm remote add {name} --host HOST")
    cfg_path = _path(config.get("ssh_config") or "~/.ssh/config")
    if config.get("ssh_config") and not cfg_path.is_file():
        raise ConfigError(f"ssh_config file {cfg_path} does not exist", key=f"distributed.remotes.{name}.ssh_config")
    sshc = _ssh_config(cfg_path, alias)

    port_raw = config.get("port") or sshc.get("port") or 22
    try:
        port = int(port_raw)
    except (TypeError, ValueError):
        raise ConfigError(f"invalid port {port_raw!r} for remote {name!r}", key=f"distributed.remotes.{name}.port") from None
    user = str(config.get("user") or sshc.get("user") or getpass.getuser())
    for word, value in (("host", alias), ("host", str(sshc.get("hostname") or alias)), ("user", user)):
        if not _SAFE_WORD.match(value):
            raise ConfigError(f"{value!r} cannot be used as the SSH {word} of remote {name!r}: it starts with '-' "
                              "(ssh and rsync would read it as an option) or holds spaces, quotes or shell characters",
                              key=f"distributed.remotes.{name}.{word}", hint="give the plain host or user name")

    if config.get("password") and name not in _WARNED_PASSWORD:
        # Said once per remote and process: a password that is silently unused looks like a bug.
        _WARNED_PASSWORD.add(name)
        print(f"hsm: warning: distributed.remotes.{name}.password is not used: hsm logs in with SSH keys or "
              "ssh-agent only (set key: and remove password: from hsm_config.yaml)", file=sys.stderr)
    key = config.get("key") or config.get("ssh_key")
    if key:
        keys: tuple[str, ...] = (str(_path(key)),)
        if not Path(keys[0]).is_file():
            raise ConfigError(f"key file {keys[0]} of remote {name!r} does not exist",
                              key=f"distributed.remotes.{name}.key", hint="fix key:/ssh_key:, or create it with ssh-keygen")
    else:
        keys = tuple(str(_path(k)) for k in sshc.get("identityfile") or () if _path(k).is_file())

    known: list[Path] = []
    trust_file = _path(USER_KNOWN_HOSTS)
    if config.get("known_hosts"):
        trust_file = _path(config["known_hosts"])
        known.append(trust_file)
    user_files = str(sshc.get("userknownhostsfile") or USER_KNOWN_HOSTS).split()
    known += [_path(f) for f in user_files]
    known.append(Path(GLOBAL_KNOWN_HOSTS))
    seen: list[Path] = []
    for k in known:
        if k not in seen:
            seen.append(k)

    jump_text = config.get("proxy_jump") or sshc.get("proxyjump") or ""
    proxy_command = sshc.get("proxycommand")
    if proxy_command and str(proxy_command).lower() == "none":
        proxy_command = None
    timeout = (
        config.get("connect_timeout")
        or global_ssh.get("connect_timeout")
        or sshc.get("connecttimeout")
        or DEFAULT_CONNECT_TIMEOUT
    )
    compression = config.get("compression")
    if compression is None:
        compression = global_ssh.get("compression")
    if compression is None:
        compression = str(sshc.get("compression", "no")).lower() == "yes"
    return ConnectSettings(
        name=name,
        alias=alias,
        hostname=str(sshc.get("hostname") or alias),
        port=port,
        user=user,
        key_files=keys,
        explicit_key=bool(key),
        known_hosts=tuple(seen),
        trust_file=trust_file,
        proxy_jump=tuple(parse_jump(jump_text)) if jump_text else (),
        proxy_command=str(proxy_command) if proxy_command else None,
        connect_timeout=float(timeout),
        compression=bool(compression),
        ssh_config_file=cfg_path if cfg_path.is_file() else None,
    )
