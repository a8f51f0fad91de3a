"""``.hsm/sync_config.yaml``: where ``hsm sync`` sends a sweep, and how.

The file is the sync guide's format (``default_target``, ``sync_targets.NAME`` with ``host``,
``user``, ``paths`` and ``options``) plus ``port``, an SSH identity (``identity_file``, also
spelled ``key`` or ``ssh_key``), ``known_hosts``, extra ``ssh_options`` / ``rsync_options`` and
``transport``. A target without ``host`` is a directory on this machine (a mounted disk, a backup
drive). It is checked against :data:`SCHEMA`; every problem is one line naming the file, the line
and the key.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from hsm_core.plugin import ConfigError, HsmError

CONFIG_REL = Path(".hsm") / "sync_config.yaml"
MARKER_DIR = ".hsm-sync"

DEFAULT_OPTIONS: dict[str, Any] = {
    "sync_sweep_metadata": True,
    "sync_wandb_runs": True,
    "latest_only": True,
    "max_depth": None,
    "parallel_transfers": 4,
    "check_remote_first": True,
}

#: rsync options that could delete or damage data on the target; refused in ``rsync_options``.
FORBIDDEN_RSYNC = ("--del", "--delete", "--remove-source-files", "--inplace", "--append", "--existing")

_OPTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "sync_sweep_metadata": {"type": "boolean", "description": "copy the sweep directory (config, logs, status)"},
        "sync_wandb_runs": {"type": "boolean", "description": "copy the sweep's W&B run directories"},
        "latest_only": {"type": "boolean", "description": "only the last version of each W&B artifact"},
        "max_depth": {
            "type": ["integer", "null"],
            "minimum": 0,
            "description": "directory levels below the sweep dir to copy (0: top files only; null: all)",
        },
        "parallel_transfers": {"type": "integer", "minimum": 1, "maximum": 64},
        "check_remote_first": {"type": "boolean", "description": "skip finished runs the target already has"},
    },
}

_PATH = {"type": "string", "minLength": 1}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "hsm sync configuration (.hsm/sync_config.yaml)",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "default_target": {"type": "string", "minLength": 1},
        "sync_targets": {
            "type": "object",
            "propertyNames": {"pattern": "^[A-Za-z0-9_.-]+$"},
            "additionalProperties": {"$ref": "#/$defs/target"},
        },
    },
    "$defs": {
        "target": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "host": {"type": "string", "minLength": 1, "description": "SSH host; leave out for a local path"},
                "user": {"type": "string", "minLength": 1},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "identity_file": _PATH,
                "key": _PATH,
                "ssh_key": _PATH,
                "known_hosts": _PATH,
                "ssh_options": {"type": "array", "items": {"type": "string", "minLength": 1}},
                "rsync_options": {"type": "array", "items": {"type": "string", "minLength": 1}},
                "transport": {"type": "string", "minLength": 1},
                "description": {"type": "string"},
                "paths": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "sweeps": _PATH,
                        "wandb": _PATH,
                        "project_root": _PATH,
                        "artifacts": _PATH,
                    },
                },
                "options": _OPTIONS_SCHEMA,
            },
        },
    },
}

TEMPLATE = """\
# hsm sync configuration: where `hsm sync to SWEEP_ID` copies a sweep and its W&B runs.
# Edit the targets below, then check them with `hsm sync list`.
# Full reference: docs/sync.md

# Target used when no --target is given.
default_target: desktop

sync_targets:
  desktop:
    host: desktop.example.com          # SSH host (leave out for a directory on this machine)
    user: me                           # SSH user (default: your ~/.ssh/config or login name)
    # port: 22
    # identity_file: ~/.ssh/id_ed25519
    paths:
      sweeps: /home/me/project/sweeps  # sweep dirs land in <sweeps>/outputs/<sweep_id>
      wandb: /home/me/project/wandb    # W&B run dirs land here
      project_root: /home/me/project   # optional
    options:
      sync_sweep_metadata: true        # copy the sweep dir (config, logs, task status)
      sync_wandb_runs: true            # copy the sweep's W&B runs
      latest_only: true                # only the last version of each artifact (--all-versions: every one)
      max_depth: 2                     # directory levels below the sweep dir (0: top files; remove: all)
      parallel_transfers: 4            # rsyncs at once
      check_remote_first: true         # skip finished runs the target already has

  # A directory on this machine (an external disk, a mounted share): no host.
  # backup:
  #   paths:
  #     sweeps: /mnt/backup/sweeps
  #     wandb: /mnt/backup/wandb
  #   options:
  #     latest_only: false             # keep every artifact version
"""


def config_path(project_root: Path) -> Path:
    """Where the sync configuration of a project lives."""
    return Path(project_root) / CONFIG_REL


def write_template(project_root: Path) -> tuple[Path, bool]:
    """Write the commented template unless the file exists. Returns (path, written)."""
    from hsm_core.atomic import atomic_write_text

    path = config_path(project_root)
    if path.exists():
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, TEMPLATE)
    return path, True


@dataclass
class SyncTarget:
    """One entry of ``sync_targets``, with defaults applied."""

    name: str
    host: str | None = None
    user: str | None = None
    port: int | None = None
    identity_file: str | None = None
    known_hosts: str | None = None
    ssh_options: list[str] = field(default_factory=list)
    rsync_options: list[str] = field(default_factory=list)
    transport: str = "rsync"
    paths: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_OPTIONS))
    #: Where it was defined, for error messages.
    file: str | None = None
    line: int | None = None
    #: Lines of the keys under ``paths`` (for "missing paths.wandb" errors).
    lines: dict[str, int] = field(default_factory=dict)

    @property
    def is_local(self) -> bool:
        """True for a directory on this machine (no ``host``)."""
        return not self.host

    @property
    def destination(self) -> str:
        """``user@host`` (or ``host``) for ssh and rsync."""
        return f"{self.user}@{self.host}" if self.user else str(self.host)

    def describe(self) -> str:
        """``user@host:port`` or ``this machine``."""
        if self.is_local:
            return "this machine"
        return self.destination + (f":{self.port}" if self.port else "")

    def settings(self) -> dict[str, Any]:
        """What the transport factory receives."""
        return {
            "host": self.host,
            "user": self.user,
            "port": self.port,
            "identity_file": self.identity_file,
            "known_hosts": self.known_hosts,
            "ssh_options": list(self.ssh_options),
            "rsync_options": list(self.rsync_options),
            # what "check access with: ssh ... ls -la PATH" names when the connection fails
            "check_path": self.paths.get("wandb") or self.paths.get("sweeps") or self.paths.get("project_root") or ".",
        }

    def path(self, key: str, *, why: str) -> str:
        """``paths.<key>``, or a ConfigError saying it is needed for ``why``."""
        value = self.paths.get(key)
        if not value:
            raise ConfigError(
                f"target {self.name!r} has no paths.{key}, needed {why}",
                file=self.file,
                line=self.line,
                key=f"sync_targets.{self.name}.paths",
                hint=f"add paths.{key} to the target",
            )
        return value

    def where(self, path: str) -> str:
        """``user@host:path`` or the local path, for messages."""
        return path if self.is_local else f"{self.destination}:{path}"

    def ssh_check_command(self, path: str) -> str:
        """The command the user can run to check access to ``path`` on the target."""
        if self.is_local:
            return shlex.join(["ls", "-la", path])
        argv = ["ssh"]
        if self.port:
            argv += ["-p", str(self.port)]
        if self.identity_file:
            argv += ["-i", self.identity_file]
        argv += [self.destination, shlex.join(["ls", "-la", path])]
        return shlex.join(argv)


@dataclass
class SyncConfig:
    """The whole file."""

    path: Path
    default_target: str | None
    targets: dict[str, SyncTarget]
    default_line: int | None = None

    def target(self, name: str) -> SyncTarget:
        """The target ``name``, or the guide's "Unknown sync target" error listing the names."""
        if name in self.targets:
            return self.targets[name]
        names = ", ".join(sorted(self.targets)) or "none"
        raise HsmError(
            f"Unknown sync target {name!r}",
            hint=f"configured targets in {self.shown}: {names}; 'hsm sync list' shows them",
        )

    def select(self, names: Sequence[str]) -> list[SyncTarget]:
        """The targets named on the command line, else the default target."""
        if names:
            seen: list[str] = []
            for n in names:
                if n not in seen:
                    seen.append(n)
            return [self.target(n) for n in seen]
        if not self.default_target:
            raise HsmError(
                "no --target given and no default_target set",
                hint=f"pass --target NAME or set default_target in {self.shown} (targets: {', '.join(sorted(self.targets)) or 'none'})",
            )
        return [self.target(self.default_target)]

    @property
    def shown(self) -> str:
        return str(CONFIG_REL) if self.path.name == CONFIG_REL.name else str(self.path)


def _remote_path(value: str) -> str:
    # "~/x" means the login directory; a relative path is relative to it for both ssh and rsync,
    # whereas a quoted "~" would be taken literally.
    if value == "~":
        return "."
    if value.startswith("~/"):
        return value[2:] or "."
    return value


def _check_rsync_options(opts: Sequence[str], file: str, line: int | None, name: str) -> None:
    for opt in opts:
        flag = opt.split("=", 1)[0]
        if flag in FORBIDDEN_RSYNC or flag.startswith(("--delete", "--append")):
            raise ConfigError(
                f"rsync option {opt!r} is not allowed: hsm sync never deletes or rewrites files in place on a target",
                file=file,
                line=line,
                key=f"sync_targets.{name}.rsync_options",
            )


#: A host or user name as ssh and rsync take it on their command line: no leading '-' (an option to
#: ssh, e.g. -oProxyCommand=...), no whitespace, control characters, quotes or shell characters.
_SAFE_WORD = re.compile(r"^(?!-)[^\s'\"`$;&|<>(){}*?!#\\]+$")


def load_sync_config(project_root: Path) -> SyncConfig:
    """Read and validate ``<project_root>/.hsm/sync_config.yaml``.

    Raises the guide's "No sync configuration found" error (with the fix) when the file is missing.
    """
    from hsm_core.config.lines import display_path, to_plain
    from hsm_core.config.validation import validate
    from hsm_core.config.yaml_io import load_yaml

    path = config_path(project_root)
    if not path.is_file():
        raise HsmError(
            f"No sync configuration found ({CONFIG_REL} in {Path(project_root)})",
            hint="create one with 'hsm sync init', then edit it to add your targets",
        )
    raw = load_yaml(path)
    shown = display_path(path)
    if not isinstance(raw, dict):
        raise ConfigError("expected a mapping with sync_targets", file=shown, line=getattr(raw, "line", 1))
    validate(raw, SCHEMA, file=path)
    data = to_plain(raw)
    targets: dict[str, SyncTarget] = {}
    raw_targets = raw.get("sync_targets") or {}
    for name, entry in (data.get("sync_targets") or {}).items():
        entry = entry or {}
        raw_entry = raw_targets.get(name)
        line = getattr(raw_targets, "lines", {}).get(name)
        options = dict(DEFAULT_OPTIONS)
        options.update(entry.get("options") or {})
        key = entry.get("identity_file") or entry.get("key") or entry.get("ssh_key")
        host = entry.get("host")
        paths = dict(entry.get("paths") or {})
        if host:
            paths = {k: _remote_path(v) for k, v in paths.items()}
        else:
            # A local target: relative paths are relative to the project, as everywhere in hsm.
            paths = {k: str((Path(project_root) / Path(v).expanduser()).absolute()) for k, v in paths.items()}
            for bad in ("user", "port", "identity_file", "key", "ssh_key", "known_hosts", "ssh_options"):
                if bad in entry:
                    raise ConfigError(
                        f"{bad!r} needs a 'host' (a target without host is a directory on this machine)",
                        file=shown,
                        line=getattr(raw_entry, "lines", {}).get(bad, line),
                        key=f"sync_targets.{name}.{bad}",
                    )
        for word in ("host", "user"):
            if entry.get(word) is not None and not _SAFE_WORD.match(str(entry[word])):
                raise ConfigError(
                    f"{str(entry[word])!r} cannot be used as an SSH {word}: it starts with '-' (ssh would read "
                    "it as an option) or holds spaces, quotes or shell characters",
                    file=shown, line=getattr(raw_entry, "lines", {}).get(word, line), key=f"sync_targets.{name}.{word}",
                    hint="give the plain host name or address; ssh options go in ssh_options")
        rsync_opts = list(entry.get("rsync_options") or [])
        _check_rsync_options(rsync_opts, shown, getattr(raw_entry, "lines", {}).get("rsync_options", line), name)
        raw_paths = raw_entry.get("paths") if isinstance(raw_entry, dict) else None
        targets[name] = SyncTarget(
            name=name,
            host=host,
            user=entry.get("user"),
            port=entry.get("port"),
            identity_file=str(Path(key).expanduser()) if key else None,
            known_hosts=str(Path(entry["known_hosts"]).expanduser()) if entry.get("known_hosts") else None,
            ssh_options=list(entry.get("ssh_options") or []),
            rsync_options=rsync_opts,
            transport=entry.get("transport") or "rsync",
            paths=paths,
            options=options,
            file=shown,
            line=line,
            lines=dict(getattr(raw_paths, "lines", {}) or {}),
        )
    default = data.get("default_target")
    default_line = getattr(raw, "lines", {}).get("default_target")
    if default is not None and default not in targets:
        names = ", ".join(sorted(targets)) or "none"
        raise ConfigError(
            f"default_target {default!r} is not one of the sync_targets ({names})",
            file=shown,
            line=default_line,
            key="default_target",
        )
    return SyncConfig(path=path, default_target=default, targets=targets, default_line=default_line)


def effective_options(
    target: SyncTarget,
    *,
    sweep_only: bool = False,
    wandb_only: bool = False,
    all_versions: bool = False,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The target's options after the command-line flags."""
    if sweep_only and wandb_only:
        raise HsmError("--sweep-only and --wandb-only exclude each other", hint="give at most one")
    opts = dict(target.options)
    if sweep_only:
        opts["sync_wandb_runs"] = False
        opts["sync_sweep_metadata"] = True
    if wandb_only:
        opts["sync_sweep_metadata"] = False
        opts["sync_wandb_runs"] = True
    if all_versions:
        opts["latest_only"] = False
    opts.update(overrides or {})
    opts["all_versions"] = not opts["latest_only"]
    opts["target"] = target.name
    return opts
