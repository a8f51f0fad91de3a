"""Is the project on a remote the same as here? (``hsm config validate --check-sync``, ``hsm run``)

What runs there is the files, so the verdict is about file content: every project file here (see
:mod:`hsm_plugin_ssh.projectfiles`) must exist there with the same SHA-256. Git makes it cheap and
explains differences: with the same commit on both sides only uncommitted paths are compared; a
different commit or branch is reported, and with a different commit every file is compared (a
pushed copy on top of an older clone is still "in sync" when every file matches).
Files only on the remote (data, outputs) never count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import click

from hsm_core.plugin import HsmError

from hsm_plugin_ssh import remote_scripts
from hsm_plugin_ssh.projectfiles import GitInfo, git_info, is_sweep_file, parse_porcelain, project_files, sha256_file

SHOW = 8  # file names listed per category before "... and N more"


@dataclass
class SyncReport:
    """The outcome of checking one remote."""

    name: str
    where: str = ""
    ok: bool | None = None  #: None: could not check (unreachable, project missing ...)
    checked: int = 0
    differ: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  #: warnings that do not fail the check
    error: str = ""
    fix: str = ""

    @property
    def in_sync(self) -> bool:
        """True only when the check ran and found no difference."""
        return self.ok is True

    def summary(self) -> str:
        """One line: what differs."""
        if self.error:
            return self.error
        parts = []
        if self.differ:
            parts.append(f"{len(self.differ)} file(s) differ ({_names(self.differ)})")
        if self.missing:
            parts.append(f"{len(self.missing)} file(s) missing there ({_names(self.missing)})")
        return "; ".join(parts) or "in sync"

    def lines(self) -> list[str]:
        """The report as printed."""
        head = f"{self.name}"
        if self.where:
            head += f" ({self.where})"
        if self.ok is None:
            out = [f"✗ {head}: cannot check: {self.error}"]
        elif self.ok:
            out = [f"✓ {head}: in sync ({self.checked} file(s) compared)"]
        else:
            out = [f"✗ {head}: OUT OF SYNC"]
            if self.differ:
                out.append(f"    {len(self.differ)} file(s) differ: {_names(self.differ)}")
            if self.missing:
                out.append(f"    {len(self.missing)} file(s) missing there: {_names(self.missing)}")
        out += [f"    ! {n}" for n in self.notes]
        if self.fix and not self.ok:
            out.append(f"    fix: {self.fix}")
        return out


def _names(paths: list[str]) -> str:
    shown = ", ".join(paths[:SHOW])
    return shown + (f" ... and {len(paths) - SHOW} more" if len(paths) > SHOW else "")


def _remote_state(host: Any, python: str, root: str, files: list[str] | None, git: bool) -> dict[str, Any]:
    req = {"root": root, "files": files or [], "git": git}
    res = host.run([python, "-c", remote_scripts.SYNC], input=json.dumps(req), timeout=600)
    try:
        data = json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else None
    except (ValueError, IndexError):
        data = None
    if not isinstance(data, dict):
        raise HsmError(f"cannot inspect the project on {host.name} ({python} exit {res.returncode}): "
                       f"{(res.stderr or res.stdout).strip()[-300:]}")
    return data


def compare(
    name: str,
    local_root: Path,
    project_config: Mapping[str, Any],
    remote_state: Callable[[list[str] | None, bool], dict[str, Any]],
) -> SyncReport:
    """Compare the local project with the remote one; ``remote_state(files, git)`` asks the remote."""
    report = SyncReport(name, fix=f"hsm remote sync {name}")
    local_git = git_info(local_root)
    files = [f for f in project_files(local_root, project_config) if not is_sweep_file(f)]
    first = remote_state(None, True)
    rg = first.get("git")
    remote_git = GitInfo(rg["commit"], rg["branch"], parse_porcelain(rg.get("porcelain") or "")) if rg else None
    wanted = set(files)
    if local_git and remote_git:
        if local_git.branch != remote_git.branch:
            report.notes.append(f"branch differs: here {local_git.branch}, there {remote_git.branch}")
        if local_git.commit == remote_git.commit:
            # Same commit: only uncommitted paths can differ.
            to_check = sorted(p for p in set(local_git.dirty) | set(remote_git.dirty) if p in wanted)
        else:
            report.notes.append(f"commit differs: here {local_git.commit[:10]}, there {remote_git.commit[:10]}")
            to_check = files
        if local_git.dirty:
            report.notes.append(f"uncommitted changes here ({len(local_git.dirty)} path(s)): tasks run the files as they are")
    else:
        if local_git and not remote_git:
            report.notes.append(f"git {local_git.commit[:10]} on {local_git.branch} here; the remote copy is not a git checkout")
        to_check = files
    remote_hashes: dict[str, Any] = remote_state(to_check, False).get("hashes", {}) if to_check else {}
    for rel in to_check:
        mine = sha256_file(local_root / rel)
        theirs = remote_hashes.get(rel)
        if mine is None:
            continue
        if theirs is None:
            report.missing.append(rel)
        elif theirs != mine:
            report.differ.append(rel)
    report.checked = len(to_check)
    report.ok = not report.differ and not report.missing
    if not report.ok and local_git and remote_git and local_git.commit != remote_git.commit:
        report.fix = f"hsm remote sync {name}  (or check out {local_git.commit[:10]} there)"
    return report


def check_remote(
    name: str,
    options: Mapping[str, Any],
    project_root: Path,
    project_config: Mapping[str, Any],
    *,
    host: Any = None,
    remote: Any = None,
) -> SyncReport:
    """Check remote ``name`` (its ``distributed.remotes`` entry is ``options``). Never raises for
    remote trouble: an unreachable host or a missing project is a report with ``ok=None``."""
    from hsm_plugin_ssh.discovery import discover
    from hsm_plugin_ssh.host import shared_host

    report = SyncReport(name, fix=f"hsm remote sync {name}")
    try:
        host = host or shared_host(name, options, project_config.get("ssh") or {})
        rp = remote or discover(host, options, Path(project_root))
        report.where = f"{host.settings.describe()}:{rp.project_dir}"
        if not rp.exists:
            report.error = rp.problems[0] if rp.problems else f"the project is not on {name}"
            return report
        if not rp.python_ok:
            report.error = rp.problems[0]
            report.fix = rp.hints[0] if rp.hints else report.fix
            return report
        result = compare(name, Path(project_root), project_config,
                         lambda files, git: _remote_state(host, rp.python, rp.project_dir, files, git))
        if rp.hsm_version is None:
            result.notes.append(rp.problems[0] + (f" ({rp.hints[0]})" if rp.hints else ""))
    except HsmError as exc:
        report.error = str(exc)
        return report
    result.where = report.where
    return result


def check_all(project_config: Any, echo: Callable[[str], None] = click.echo) -> bool:
    """Check every remote in ``distributed.remotes``; print a report per remote.

    ``project_config`` is a :class:`hsm_core.config.project_config.ProjectConfig`. Returns True when
    every remote is in sync, False otherwise (``hsm config validate --check-sync`` then exits 1).
    """
    remotes = dict(getattr(project_config, "remotes", {}) or {})
    data = getattr(project_config, "data", {}) or {}
    root = Path(getattr(project_config, "root"))
    all_ok = True
    echo(f"Sync check of {root} against {len(remotes)} remote(s):")
    for name, options in sorted(remotes.items()):
        report = check_remote(name, options or {}, root, data)
        for line in report.lines():
            echo(line)
        all_ok = all_ok and report.in_sync
    return all_ok
