"""The ``hsm`` entry points of the installed distributions, found once and cached.

``importlib.metadata`` reads the metadata of every installed distribution to find a group's entry
points: about 35 ms with 66 distributions, far more in a site's conda environment with hundreds,
paid by every ``hsm`` command. The answer changes only when distributions are installed, removed
or upgraded, or when ``sys.path`` changes, so it is kept in hsm's user cache
(:mod:`hsm_core.user_cache`) under a fingerprint of exactly that: every ``sys.path`` entry, in
order, with the name of every ``*.dist-info`` / ``*.egg-info`` in it and the inode, size and
modification time of its ``entry_points.txt`` (an entry holding none, such as the current
directory under ``python -m hsm_core``, adds nothing to the answer and is left out). Working the
fingerprint out is one directory listing per ``sys.path`` entry and one ``stat`` per distribution (under a millisecond here); any
install, uninstall, upgrade or ``PYTHONPATH`` change gives another fingerprint, and the entry
points are read again with ``importlib.metadata``, exactly as without the cache.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from hsm_core.user_cache import file_stamp, read_answer, user_cache_file, write_answer

#: The entry-point group of hsm plugins.
GROUP = "hsm"

_METADATA_DIRS = (".dist-info", ".egg-info")


@dataclass(frozen=True)
class PluginEntryPoint:
    """One entry point of group ``hsm``: what ``importlib.metadata.EntryPoint`` says of it."""

    name: str
    value: str
    distribution: str
    version: str

    @property
    def module(self) -> str:
        """The module part of ``value`` (``pkg.plugin`` of ``pkg.plugin:obj [extra]``)."""
        return self.value.partition(":")[0].split("[")[0].strip()

    def load(self) -> Any:
        """Import the module and return the object the entry point names (the module itself when
        it names no attribute), as ``EntryPoint.load`` does."""
        obj: Any = import_module(self.module)
        attrs = self.value.partition(":")[2].split("[")[0].strip()
        for attr in filter(None, attrs.split(".")):
            obj = getattr(obj, attr)
        return obj


def installation_fingerprint() -> list[Any]:
    """What the installed distributions' entry points depend on, as JSON-able data (see above)."""
    out: list[Any] = []
    for entry in sys.path:
        where = entry or "."
        try:
            with os.scandir(where) as it:
                names = sorted(e.name for e in it if e.name.endswith(_METADATA_DIRS))
        except NotADirectoryError:
            out.append([entry, file_stamp(where)])  # a zip file on sys.path
            continue
        except OSError:
            names = None
        if not names and not where.lower().endswith(".egg"):
            # No distribution here (or no such directory): nothing it adds to the answer, whatever
            # its name (the current directory under `python -m hsm_core`, a source checkout on
            # PYTHONPATH). Left out, so that running from another directory finds the same answer.
            # (An .egg directory keeps its metadata in EGG-INFO: it stays, as before.)
            continue
        if names is None:
            out.append([entry, None])
            continue
        dists = []
        for name in names:
            path = os.path.join(where, name)
            # An .egg-info may be a file (PKG-INFO alone); a directory keeps entry_points.txt.
            stamp = file_stamp(os.path.join(path, "entry_points.txt")) if os.path.isdir(path) else file_stamp(path)
            dists.append([name, stamp])
        out.append([entry, dists])
    return out


def _scan(group: str) -> list[PluginEntryPoint]:
    from importlib import metadata

    found = []
    for ep in sorted(metadata.entry_points(group=group), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist else "?"
        version = ep.dist.version if ep.dist else "?"
        found.append(PluginEntryPoint(ep.name, ep.value, dist, version))
    return found


_FOUND: dict[str, list[PluginEntryPoint]] = {}


def plugin_entry_points(group: str = GROUP) -> list[PluginEntryPoint]:
    """The entry points of ``group`` of every installed distribution, sorted by name (cached in
    this process, and across processes under the installation's fingerprint)."""
    if group in _FOUND:
        return _FOUND[group]
    path = user_cache_file(f"entry_points-{group}-v2")  # (v2: entries without distributions left out)
    key = installation_fingerprint() if path is not None else None
    cached = read_answer(path, key)
    if isinstance(cached, list):
        try:
            found = [PluginEntryPoint(*row) for row in cached]
        except TypeError:
            found = None
        if found is not None:
            _FOUND[group] = found
            return found
    found = _scan(group)
    write_answer(path, key, [[ep.name, ep.value, ep.distribution, ep.version] for ep in found])
    _FOUND[group] = found
    return found


def forget() -> None:
    """Drop this process's answers (the next call checks the fingerprint again): for tests that
    install a distribution while running."""
    _FOUND.clear()
