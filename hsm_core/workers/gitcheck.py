"""Refuse to start workers on a project that is behind its remote.

Workers run the code in the project directory. A worker started from a checkout that misses
commits already pushed (a fix, a changed default) would silently produce results nobody can
reproduce from the repository. The check compares ``HEAD`` with the branch's upstream as it is
known locally (``git rev-list --count HEAD..@{u}``); it never fetches (compute nodes are often
offline), so it is as fresh as your last ``git fetch``/``git pull``. No git, no repository or no
upstream: nothing to check.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from hsm_core.plugin import HsmError


def _git(root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def commits_behind(root: Path) -> tuple[int, str] | None:
    """(commits ``HEAD`` lacks from its upstream, upstream name), or None when there is nothing to
    compare (no git, not a repository, detached HEAD or no upstream)."""
    if shutil.which("git") is None:
        return None
    if _git(root, "rev-parse", "--is-inside-work-tree") != "true":
        return None
    upstream = _git(root, "rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{u}")
    if not upstream:
        return None
    count = _git(root, "rev-list", "--count", "HEAD..@{u}")
    if count is None or not count.isdigit():
        return None
    return int(count), upstream


def check_not_behind(root: Path, allow_behind: bool = False) -> tuple[int, str] | None:
    """Raise HsmError when the project is behind its upstream (unless ``allow_behind``).

    Returns what :func:`commits_behind` found, for the caller to report.
    """
    found = commits_behind(root)
    if found and found[0] > 0 and not allow_behind:
        n, upstream = found
        raise HsmError(
            f"the project at {root} is {n} commit{'s' if n != 1 else ''} behind {upstream}",
            hint="git pull first, or pass --allow-behind to run the local code anyway",
        )
    return found
