"""``hsm remote sync NAME``: push the project to the remote (rsync over SSH, SFTP without rsync).

Only project files go (see :mod:`hsm_plugin_ssh.projectfiles`): .gitignore is honoured, sweep
outputs, ``.git``, ``.hsm`` and the remote's own ``hsm_config.yaml`` are left alone. Nothing on the
remote is deleted unless ``--delete-extra`` is given, and even then excluded paths (outputs, data
listed in .gitignore) are kept. Uncommitted edits made *on the remote* to files the push would
replace stop the push unless ``--force``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from hsm_core.plugin import HsmError

from hsm_plugin_ssh import remote_scripts
from hsm_plugin_ssh.discovery import find_project
from hsm_plugin_ssh.host import SshHost
from hsm_plugin_ssh.projectfiles import parse_porcelain, project_files, rsync_filters, sha256_file


@dataclass
class PushResult:
    """What a push did (or would do, in a dry run)."""

    remote_dir: str
    created: bool = False
    method: str = "rsync"
    sent: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def _remote_edits(host: SshHost, python: str, remote_dir: str, local_root: Path, files: list[str]) -> list[str]:
    """Files with uncommitted changes in the remote's git checkout that the push would overwrite."""
    req = {"root": remote_dir, "files": [], "git": True}
    res = host.run([python, "-c", remote_scripts.SYNC], input=json.dumps(req), timeout=300)
    try:
        data = json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else {}
    except (ValueError, IndexError):
        return []
    git = (data or {}).get("git")
    if not git:
        return []
    dirty = [p for p in parse_porcelain(git.get("porcelain") or "") if p in set(files)]
    if not dirty:
        return []
    req = {"root": remote_dir, "files": dirty, "git": False}
    res = host.run([python, "-c", remote_scripts.SYNC], input=json.dumps(req), timeout=300)
    try:
        hashes = json.loads(res.stdout.strip().splitlines()[-1]).get("hashes", {})
    except (ValueError, IndexError, AttributeError):
        return []
    return [p for p in dirty if hashes.get(p) is not None and hashes.get(p) != sha256_file(local_root / p)]


def push_project(
    host: SshHost,
    options: Mapping[str, Any],
    local_root: Path,
    project_config: Mapping[str, Any],
    *,
    delete_extra: bool = False,
    force: bool = False,
    dry_run: bool = False,
) -> PushResult:
    """Copy the project to the remote's project dir (created when missing)."""
    local_root = Path(local_root).resolve()
    remote_dir, exists, _ = find_project(host, options, local_root)
    result = PushResult(remote_dir, created=not exists)
    files = project_files(local_root, project_config)
    if exists and not force:
        python = str(options.get("python_interpreter") or "python3")
        edits = _remote_edits(host, python, remote_dir, local_root, files)
        if edits:
            shown = ", ".join(edits[:8]) + (" ..." if len(edits) > 8 else "")
            raise HsmError(f"{host.name} has uncommitted changes the push would overwrite: {shown}",
                           hint="commit or copy them there first, or pass --force to overwrite them")
    if not dry_run:
        host.run(["mkdir", "-p", "--", remote_dir])
    if host.has_rsync():
        args = ["--out-format=%i %n", *rsync_filters(local_root, project_config)]
        if delete_extra:
            args.append("--delete")
        if dry_run:
            args.append("--dry-run")
        if dry_run and not exists:
            return PushResult(remote_dir, True, "rsync", files)
        out = host.rsync([*args, f"{local_root}/", host.remote_spec(f"{remote_dir.rstrip('/')}/")])
        for line in out.splitlines():
            code, _, name = line.partition(" ")
            if code.startswith("*deleting"):
                result.deleted.append(name.strip())
            elif code[:2] in ("<f", ">f"):
                result.sent.append(name)
        return result
    if delete_extra:
        raise HsmError("--delete-extra needs rsync on both sides", hint="install rsync, or push without --delete-extra")
    result.method = "sftp"
    for rel in files:
        result.sent.append(rel)
        if not dry_run:
            host.put(local_root / rel, f"{remote_dir.rstrip('/')}/{rel}")
    return result
