"""``hsm sync pull``: copy an experiment's artifacts from a remote workstation (seed 003).

``--from NAME:/shared/artifacts/EXPERIMENT`` names a host from ``.hsm/sync_config.yaml``
(``sync_targets``) or ``hsm_config.yaml`` (``distributed.remotes``), or ``[user@]host`` with
``--port``. The experiment lands in ``<dest>/EXPERIMENT/`` (default ``./artifacts``), with rsync:
a second pull copies only what changed, and an interrupted one resumes from its partial files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from hsm_core.plugin import HsmError, TransferResult

CHECKPOINTS = "checkpoints"


@dataclass
class PullSource:
    """Where to pull from."""

    name: str
    settings: dict[str, Any]
    path: str


@dataclass
class PullReport:
    """What a pull copied."""

    source: str
    dest: Path
    parts: list[tuple[str, TransferResult]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def files(self) -> int:
        return sum(r.files for _, r in self.parts)

    @property
    def bytes(self) -> int:
        return sum(r.bytes for _, r in self.parts)


def parse_from(spec: str) -> tuple[str, str]:
    """``NAME:/path`` -> (NAME, /path)."""
    name, sep, path = spec.partition(":")
    if not sep or not name or not path:
        raise HsmError(f"--from must look like NAME:/path/to/EXPERIMENT, got {spec!r}",
                       hint="NAME is a target in .hsm/sync_config.yaml, a remote in hsm_config.yaml, or user@host")
    return name, path


def resolve_source(
    spec: str,
    project_root: Path,
    project_config: Mapping[str, Any],
    *,
    port: int | None = None,
    identity_file: str | None = None,
) -> PullSource:
    """The host settings and remote path of ``--from``."""
    from hsm_core.sync.config import config_path, load_sync_config

    name, path = parse_from(spec)
    settings: dict[str, Any] | None = None
    artifacts_root: str | None = None
    if config_path(project_root).is_file():
        cfg = load_sync_config(project_root)
        if name in cfg.targets:
            target = cfg.targets[name]
            if target.is_local:
                settings = {"host": None}
            else:
                settings = target.settings()
            artifacts_root = target.paths.get("artifacts")
    if settings is None:
        remotes = ((project_config.get("distributed") or {}).get("remotes")) or {}
        if name in remotes:
            r = remotes[name] or {}
            key = r.get("identity_file") or r.get("key") or r.get("ssh_key")
            settings = {"host": r.get("host"), "user": r.get("user"), "port": r.get("port"),
                        "identity_file": str(Path(key).expanduser()) if key else None,
                        "known_hosts": r.get("known_hosts"), "ssh_options": r.get("ssh_options") or []}
    if settings is None:
        if not re.fullmatch(r"(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9._-]+", name):
            raise HsmError(f"unknown host {name!r} in --from")
        user, _, host = name.rpartition("@")
        settings = {"host": host, "user": user or None}
    if port is not None:
        settings["port"] = port
    if identity_file:
        settings["identity_file"] = str(Path(identity_file).expanduser())
    if not path.startswith("/") and artifacts_root:
        path = f"{artifacts_root.rstrip('/')}/{path}"
    return PullSource(name, settings, path.rstrip("/") or "/")


def _natural(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def pull_artifacts(
    source: PullSource,
    dest: Path,
    *,
    only: Sequence[str] = (),
    latest_checkpoint: bool = False,
    dry_run: bool = False,
) -> PullReport:
    """Copy ``source.path`` into ``dest/<its name>/`` (only the ``only`` subdirectories when given;
    of ``checkpoints/`` only the newest file with ``latest_checkpoint``)."""
    from hsm_core.sync.rsync import RsyncTransport

    experiment = Path(source.path).name
    if not experiment or experiment in (".", ".."):
        raise HsmError(f"--from needs an experiment directory, got {source.path!r}")
    local = Path(dest) / experiment
    transport = RsyncTransport(source.name, source.settings)
    report = PullReport(f"{source.name}:{source.path}", local)
    transport.open()
    try:
        entries = {name: is_dir for name, _, _, is_dir in transport.list_entries(source.path)}
        if not entries:
            raise HsmError(f"{transport.describe(source.path)} does not exist or is empty",
                           hint=f"check the path with: {transport.check_command(str(Path(source.path).parent))}")
        wanted = list(dict.fromkeys(only))
        missing = [w for w in wanted if w not in entries]
        if missing:
            raise HsmError(f"{experiment} has no {', '.join(m + '/' for m in missing)} on {source.name}",
                           hint=f"it has: {', '.join(sorted(entries))}")
        parts: list[str] = wanted or [""]
        for part in parts:
            if part == CHECKPOINTS and latest_checkpoint:
                continue
            src = source.path + ("/" + part if part else "")
            excludes = [f"/{CHECKPOINTS}/"] if (latest_checkpoint and not part) else []
            if part and not entries.get(part, False):  # a file, not a directory
                result = transport.pull(src, local, dry_run=dry_run)
            else:
                result = transport.pull(src + "/", local / part if part else local, dry_run=dry_run, excludes=excludes)
            report.parts.append((part or "all", result))
        if latest_checkpoint and (not wanted or CHECKPOINTS in wanted):
            files = [e for e in transport.list_entries(f"{source.path}/{CHECKPOINTS}") if not e[3]]
            if not files:
                report.notes.append(f"no checkpoint files in {source.path}/{CHECKPOINTS}")
            else:
                newest = max(files, key=lambda e: (e[2], _natural(e[0])))
                result = transport.pull(f"{source.path}/{CHECKPOINTS}/{newest[0]}", local / CHECKPOINTS, dry_run=dry_run)
                report.parts.append((f"{CHECKPOINTS}/{newest[0]}", result))
    finally:
        transport.close()
    return report
