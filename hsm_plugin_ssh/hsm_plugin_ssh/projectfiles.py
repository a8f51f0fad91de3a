"""Which files make up the project (what ``hsm remote sync`` pushes and the sync check compares).

In a git work tree: tracked files plus untracked ones git does not ignore (``git ls-files
--cached --others --exclude-standard``). Elsewhere: every file, minus the usual clutter and the
patterns of a top-level ``.gitignore``. Never part of it: the sweep outputs, ``.git``, ``.hsm``
(per-machine sync settings) and ``hsm_config.yaml`` (each machine keeps its own: paths differ).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

#: Directory names never part of the project.
CLUTTER_DIRS = frozenset({".git", ".hsm", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache",
                          ".ipynb_checkpoints", ".tox", ".venv", "venv", "node_modules", "wandb"})
#: Per-machine files: never pushed (the remote's own paths would be overwritten), never compared.
MACHINE_FILES = ("hsm_config.yaml", "sweeps/hsm_config.yaml")


def is_sweep_file(rel: str) -> bool:
    """Sweep files (``sweeps/*.yaml``) are read by the controller only: the sync check skips them,
    so editing a sweep does not call for a push."""
    return rel.startswith("sweeps/") and rel.count("/") == 1 and rel.endswith((".yaml", ".yml"))


def output_rel(project_root: Path, project_config: Mapping[str, Any]) -> str | None:
    """The sweep output dir relative to the project (``sweeps/outputs``), None when outside it."""
    value = str(((project_config.get("paths") or {}).get("output_dir")) or "sweeps/outputs")
    p = Path(os.path.expandvars(value)).expanduser()
    p = p if p.is_absolute() else Path(project_root) / p
    try:
        rel = p.resolve().relative_to(Path(project_root).resolve())
    except ValueError:
        return None
    return rel.as_posix() if rel.parts else None


def _excluded(rel: str, out: str | None) -> bool:
    if rel in MACHINE_FILES or rel.endswith(".pyc"):
        return True
    if out and (rel == out or rel.startswith(out + "/")):
        return True
    return any(part in CLUTTER_DIRS for part in rel.split("/")[:-1])


@dataclass
class GitInfo:
    """The git state of a work tree."""

    commit: str
    branch: str
    dirty: list[str] = field(default_factory=list)  #: changed, added, deleted or untracked paths


def git_info(root: Path) -> GitInfo | None:
    """Commit, branch and uncommitted paths of the work tree holding ``root`` (None: not git)."""
    if shutil.which("git") is None:
        return None

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)

    head = git("rev-parse", "HEAD")
    if head.returncode != 0:
        return None
    branch = git("rev-parse", "--abbrev-ref", "HEAD").stdout.strip()
    status = git("status", "--porcelain", "-z", "--", ".")
    return GitInfo(head.stdout.strip(), branch, parse_porcelain(status.stdout))


def parse_porcelain(text: str) -> list[str]:
    """Paths of ``git status --porcelain -z`` output (rename sources skipped)."""
    out: list[str] = []
    entries = text.split("\0")
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        code, path = entry[:2], entry[3:]
        out.append(path)
        if code[0] in "RC":
            i += 1  # the next entry is the rename's source path
    return out


def _gitignore_patterns(root: Path) -> list[str]:
    try:
        lines = (root / ".gitignore").read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#") and not ln.startswith("!")]


def _ignored(rel: str, patterns: list[str]) -> bool:
    parts = rel.split("/")
    for pat in patterns:
        anchored = pat.startswith("/")
        pat = pat.strip("/")
        if anchored:
            if fnmatch.fnmatch(rel, pat) or any(fnmatch.fnmatch("/".join(parts[:i]), pat) for i in range(1, len(parts))):
                return True
        elif any(fnmatch.fnmatch(p, pat) for p in parts) or fnmatch.fnmatch(rel, pat):
            return True
    return False


def project_files(root: Path, project_config: Mapping[str, Any] | None = None) -> list[str]:
    """Relative POSIX paths of the project's files, sorted."""
    root = Path(root)
    out = output_rel(root, project_config or {})
    files: list[str] = []
    listed = None
    if shutil.which("git") is not None:
        proc = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                              capture_output=True, text=True)
        if proc.returncode == 0:
            listed = [p for p in proc.stdout.split("\0") if p]
    if listed is None:
        patterns = _gitignore_patterns(root)
        listed = []
        for dirpath, dirnames, filenames in os.walk(root):
            rel_dir = Path(dirpath).relative_to(root).as_posix()
            rel_dir = "" if rel_dir == "." else rel_dir + "/"
            dirnames[:] = sorted(d for d in dirnames if d not in CLUTTER_DIRS and not _ignored(rel_dir + d, patterns))
            listed += [rel_dir + f for f in filenames if not _ignored(rel_dir + f, patterns)]
    for rel in listed:
        if _excluded(rel, out):
            continue
        p = root / rel
        if p.is_file():
            files.append(rel)
    return sorted(set(files))


def sha256_file(path: Path) -> str | None:
    """Hex SHA-256 of a file's content (None when it is missing)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


def rsync_filters(root: Path, project_config: Mapping[str, Any]) -> list[str]:
    """rsync arguments pushing exactly the project: .gitignore honoured, outputs and clutter left out.

    Excluded paths are also protected from ``--delete``: remote sweep outputs, data listed in
    .gitignore and the remote's own hsm_config.yaml survive ``hsm remote sync --delete-extra``.
    """
    args = [f"--exclude=/{f}" for f in MACHINE_FILES]
    out = output_rel(root, project_config)
    if out:
        args.append(f"--exclude=/{out}/")
    args += [f"--exclude={d}/" for d in sorted(CLUTTER_DIRS)]
    args += ["--exclude=*.pyc", "--filter=:- .gitignore"]
    return args
