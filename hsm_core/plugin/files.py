"""Atomic file writes and fast reads (part of :mod:`hsm_core.plugin`).

Every file another process may read (a status, a manifest, a cache) is written to a temporary
file in the same directory, fsynced and renamed over the target: a reader sees the old or the new
content, never half of it, even when the writer is killed or the disk fills up mid-write.
"""

from __future__ import annotations

from hsm_core.atomic import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    atomic_write_yaml,
    dump_yaml,
    read_json,
    read_yaml,
)

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_yaml",
    "atomic_write_json",
    "dump_yaml",
    "read_yaml",
    "read_json",
]
