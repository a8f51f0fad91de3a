"""Configuration layers below the project's ``hsm_config.yaml``: site, user, ``HSM_CONFIG``.

A cluster's admins ship defaults once (partition, account, modules, storage root) and every
project on the cluster starts from them, as dask-jobqueue's configuration does. From lowest to
highest, later layers win key by key (mappings merge, any other value is replaced whole):

==========  ===================================================  ==========================
layer       file                                                 who writes it
==========  ===================================================  ==========================
site        ``{sys.prefix}/etc/hsm/hsm_config.yaml``             the admins of an install
user        ``$XDG_CONFIG_HOME/hsm/hsm_config.yaml``             you, for all your projects
            (default ``~/.config/hsm/hsm_config.yaml``)
HSM_CONFIG  the file ``$HSM_CONFIG`` names                       a job script, a shell
project     ``hsm_config.yaml`` of the project                   the project
==========  ===================================================  ==========================

Missing files are skipped (except the one ``HSM_CONFIG`` names: a typo there is an error). Every
value keeps the file and line it came from, so an error names the layer's file
(:func:`file_of`) and ``hsm config show`` says which layer each value came from.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from hsm_core.config.lines import LineDict
from hsm_core.config.project_root import CONFIG_FILENAME
from hsm_core.errors import ConfigError

#: The variable naming one more configuration file, above the user's and below the project's.
ENV_VARIABLE = "HSM_CONFIG"
#: Layer names, lowest first (``project`` is the project's own file).
SITE, USER, ENV, PROJECT = "site", "user", ENV_VARIABLE, "project"


def site_file() -> Path:
    """``{sys.prefix}/etc/hsm/hsm_config.yaml``: defaults of this installation."""
    return Path(sys.prefix) / "etc" / "hsm" / CONFIG_FILENAME


def user_file(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/hsm/hsm_config.yaml`` (``~/.config`` when the variable is unset or empty)."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    return Path(base).expanduser() / "hsm" / CONFIG_FILENAME


def layer_files(environ: Mapping[str, str] | None = None) -> list[tuple[str, Path]]:
    """``(layer, file)`` of each layer below the project's that exists, lowest first."""
    environ = os.environ if environ is None else environ
    found = [(name, path) for name, path in ((SITE, site_file()), (USER, user_file(environ))) if path.is_file()]
    named = environ.get(ENV_VARIABLE, "").strip()
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(f"{ENV_VARIABLE}={named}: no such file", hint=f"unset {ENV_VARIABLE}, or point it at a YAML file")
        found.append((ENV, path))
    return found


def merge(low: Any, high: Any) -> Any:
    """``high`` over ``low``, key by key, keeping for every key the file it came from.

    Both are trees of :class:`~hsm_core.config.lines.LineDict`. The result's mappings carry ``files``
    (key -> file) next to ``lines`` (key -> line); lists and scalars are never merged.
    """
    if not (isinstance(low, dict) and isinstance(high, dict)):
        return high
    out = LineDict()
    out.line = getattr(high, "line", None)
    out.file = None  # a merged mapping has no single file: see files
    out.files = {}  # type: ignore[attr-defined]
    for src in (low, high):
        for key, value in src.items():
            out[key] = merge(out[key], value) if key in out and isinstance(out[key], dict) else value
            out.lines[key] = getattr(src, "lines", {}).get(key)
            out.files[key] = getattr(src, "files", {}).get(key) or getattr(src, "file", None)  # type: ignore[attr-defined]
    return out


def file_of(data: Any, path: Sequence[Any]) -> str | None:
    """The file the deepest key of ``path`` found in ``data`` came from (None if unknown)."""
    file = getattr(data, "file", None)
    node = data
    for part in path:
        if isinstance(node, dict) and part in node:
            file = getattr(node, "files", {}).get(part) or getattr(node, "file", None) or file
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            file = getattr(node, "file", None) or file
            node = node[part]
        else:
            break
    return file


def origins(data: Any, names: Mapping[str, str], prefix: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], str]:
    """The layer of every leaf value of ``data``: ``{("hpc", "partition"): "site", ...}``;
    ``names`` maps a layer's file (as stored in the tree) to the layer's name."""
    out: dict[tuple[Any, ...], str] = {}
    if not isinstance(data, dict):
        return out
    for key, value in data.items():
        path = prefix + (key,)
        if isinstance(value, dict) and value:
            out.update(origins(value, names, path))
        else:
            file = getattr(data, "files", {}).get(key) or getattr(data, "file", None)
            out[path] = names.get(str(file), str(file)) if file else "default"
    return out
