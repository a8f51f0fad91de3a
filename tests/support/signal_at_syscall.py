"""A signal sent to a process at an exact system call, by ``strace -e inject`` (the stop tests use
it to reach the moments a random signal almost never hits: between a fork and its record)."""

from __future__ import annotations

import os
import shutil

from hsm_core.testing.services import require_service


def signal_at_open(path: str | os.PathLike[str], signame: str, nth: int = 1) -> list[str]:
    """The command to run a program under so that it gets ``signame`` as it opens ``path`` for the
    ``nth`` time (its own opens only: child processes are not traced). Fails under ``CI=true``,
    skips otherwise, where strace is missing."""
    strace = shutil.which("strace")
    if strace is None:
        require_service("strace", "no strace on PATH")
    return [strace, "-qq", "-o", os.devnull, "-P", str(path), "-e", "trace=openat",
            "-e", f"inject=openat:signal={signame}:when={nth}"]
