"""Atomic file writes and fast YAML/JSON reads.

Every file another process may read is written to a temp file in the same directory, fsynced and
renamed over the target, so a reader sees the old or the new content, never half of it — even if
the writer is SIGKILLed or the disk fills up mid-write.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any, Callable

import yaml

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


#: The mode of files that hold a secret (a token, a password, an API key): the owner's only.
PRIVATE_MODE = 0o600


def atomic_write_bytes(
    path: Path, data: bytes, *, mode: int | None = None, private: bool = False, fsync: bool = True,
    on_written: Callable[[int], Any] | None = None,
) -> Any:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename).

    The file gets the mode any other program would give it: ``0666`` less the umask (and what a
    default ACL of the directory says), so colleagues on shared project storage can read sweeps
    and reports when the umask lets them. ``private`` makes it ``0600`` whatever the umask (for
    files that hold a secret); ``mode`` sets an exact mode (to keep an existing file's).
    ``on_written`` is called with the written file's descriptor before the rename makes it
    visible; its result is returned (e.g. the file's identity, taken before anyone can replace it).
    """
    path = Path(path)
    fd, tmp = _create_temp(path, PRIVATE_MODE if private else 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if fsync or on_written is not None:
                fh.flush()
            if fsync:
                os.fsync(fh.fileno())
            result = on_written(fh.fileno()) if on_written is not None else None
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        unlink_if_present(tmp)
        raise
    return result


def unlink_if_present(path: Any) -> None:
    """Remove ``path``; one that is already gone is fine (another process may have removed it)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _create_temp(path: Path, mode: int) -> tuple[int, str]:
    """Create ``.<name>.<random>.tmp`` beside ``path`` with ``mode`` (less the umask).

    Not ``tempfile.mkstemp``: it always creates ``0600``, which made every sweep file unreadable
    to the owner's group whatever their umask.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = os.path.join(path.parent, f".{path.name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(tmp, flags, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(path.parent))


def executable_mode(path: Path) -> int:
    """The mode of ``path`` plus an execute bit wherever it has a read bit (``0644`` ->
    ``0755``, ``0600`` -> ``0700``): a script keeps the umask's choice of who may see it."""
    mode = os.stat(path).st_mode & 0o7777
    return mode | ((mode & 0o444) >> 2)


def atomic_write_text(path: Path, text: str, **kw: Any) -> None:
    """Write text (UTF-8) atomically."""
    atomic_write_bytes(path, text.encode("utf-8"), **kw)


def dump_yaml(data: Any) -> str:
    """YAML text in block style, keys in insertion order."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


def atomic_write_yaml(path: Path, data: Any, **kw: Any) -> None:
    """Write ``data`` as YAML atomically."""
    atomic_write_text(path, dump_yaml(data), **kw)


def atomic_write_json(path: Path, data: Any, **kw: Any) -> None:
    """Write ``data`` as JSON atomically."""
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=False, default=str), **kw)


def read_yaml(path: Path) -> Any:
    """Parse a YAML file written by hsm (C loader when available). Raises OSError / yaml.YAMLError."""
    with open(path, "rb") as fh:
        return yaml.load(fh, Loader=_Loader)


def read_json(path: Path) -> Any:
    """Parse a JSON file."""
    with open(path, "rb") as fh:
        return json.load(fh)
