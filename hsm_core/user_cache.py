"""hsm's own small caches: answers that are slow to work out and cheap to check, kept as JSON files.

Each file holds one answer with the *key* it is valid for (a text that names everything the answer
depends on: file sizes and modification times, versions, environment variables). A reader that
finds another key, or an unreadable file, treats it as missing and works the answer out again; a
writer replaces the file atomically (temp file + rename), so processes running at the same time see
an old answer or a new one, never half of one. Nothing here is ever needed for correctness: a cache
that cannot be written (read-only home, full disk) is silently left out.

The directory is ``$HSM_CACHE_DIR``, else ``$XDG_CACHE_HOME/hsm``, else ``~/.cache/hsm``;
``HSM_CACHE_DIR=off`` turns these caches off (and the project's record of its checked config,
:mod:`hsm_core.config.checked_cache`). Only the standard library is imported here: the
command line reads these caches before anything else.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from pathlib import Path
from typing import Any

#: The environment variable naming the cache directory (``off``: no caches).
CACHE_DIR_VARIABLE = "HSM_CACHE_DIR"


def cache_dir() -> Path | None:
    """The directory of hsm's caches, or None when they are turned off."""
    named = os.environ.get(CACHE_DIR_VARIABLE, "").strip()
    if named.lower() == "off":
        return None
    if named:
        return Path(named).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hsm"


def environment_tag() -> str:
    """A short name for this Python environment, so that two virtualenvs sharing one home
    directory keep their answers apart (the answers differ: they have other plugins installed)."""
    where = f"{sys.prefix}\0{sys.executable}\0{sys.version}"
    return f"{zlib.crc32(where.encode()):08x}"


def file_stamp(path: str | os.PathLike[str]) -> list[int] | None:
    """``[inode, size, mtime_ns]`` of a file (None when it does not exist): what changes when the
    file is rewritten or replaced."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def read_answer(path: Path | None, key: Any) -> Any:
    """The answer stored in ``path`` for ``key`` (compared as JSON), or None."""
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            stored = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("key") != key:
        return None
    return stored.get("answer")


def write_answer(path: Path | None, key: Any, answer: Any, *, private: bool = False) -> None:
    """Store ``answer`` for ``key`` in ``path`` (atomically; any failure is ignored: a cache)."""
    if path is None:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o666)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"key": key, "answer": answer}, fh, separators=(",", ":"))
        os.replace(tmp, path)
    except (OSError, TypeError, ValueError):
        try:
            os.unlink(tmp)
        except OSError:
            pass


def user_cache_file(name: str) -> Path | None:
    """``<cache dir>/<name>-<environment tag>.json`` (None when caches are off)."""
    base = cache_dir()
    return None if base is None else base / f"{name}-{environment_tag()}.json"
