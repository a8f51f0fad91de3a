"""Atomic file writes and fast YAML/JSON reads.

Every file another process may read is written to a temp file in the same directory, fsynced and
renamed over the target, so a reader sees the old or the new content, never half of it — even if
the writer is SIGKILLed or the disk fills up mid-write.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int | None = None, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


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
