"""The project's configuration: checked once per change.

Checking ``hsm_config.yaml`` against the schema (with the installed plugins' fragments) imports
jsonschema and loads every plugin: about 110 ms, more than the rest of ``hsm status``. The verdict
depends only on the configuration files and on what is installed, so after a successful check
:func:`load_checked_project_config` records in ``<project>/.hsm/checked_config.json`` exactly what
it checked:

* every configuration file read (site, user, ``HSM_CONFIG``, the project's), each with its inode,
  size and modification time;
* hsm's version, its project schema file and the modules of this package that do the check (an
  editable install changes them without a new version), ``HSM_DISABLE_PLUGINS`` /
  ``HSM_LOAD_PLUGINS``, and the installed plugins' entry points (:mod:`hsm_core.entry_points`).

While all of these are the same, ``hsm run``, ``hsm complete``, ``hsm status``, ``hsm export``,
``hsm monitor`` and ``hsm report`` read the files without checking them again; any change (an edit,
a new layer file, another plugin) checks them again, and an error is reported exactly as before. The
check has no other effect that a run needs: it only raises (the registry it builds, a run builds
anyway). ``hsm config validate`` always checks, and so does a caller with a plugin registry of its
own (tests, scripts: the record says what passed under the installed plugins only). A plugin's
schema fragment is recorded by the plugin's version: an editable plugin whose fragment is edited is
seen once its version changes or ``.hsm/checked_config.json`` is removed. A file changed in the
last seconds is not recorded (its modification time could still hide an edit made within the same
clock tick), nor is anything when ``.hsm/`` cannot be written. ``HSM_CACHE_DIR=off``
(:mod:`hsm_core.user_cache`) turns it off.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from hsm_core import __version__
from hsm_core.config.layers import PROJECT, layer_files
from hsm_core.config.project_config import ProjectConfig, load_project_config
from hsm_core.config.project_root import find_config_file
from hsm_core.user_cache import file_stamp

#: Where the record is kept, relative to the project root.
RECORD_FILE = Path(".hsm") / "checked_config.json"
#: Files modified more recently than this (seconds) are not recorded as checked.
SETTLE_SECONDS = 2.0

__all__ = ["RECORD_FILE", "load_checked_project_config", "record_check"]


def _schema_file() -> Path:
    return Path(__file__).resolve().parent.parent / "schemas" / "project.json"


def _checking_code() -> list[Any]:
    """Stamps of the modules whose code gives the verdict (this package: schema merge, checks,
    layers, YAML): an editable install changes them without a new version."""
    here = os.path.dirname(os.path.abspath(__file__))
    return [[name, file_stamp(os.path.join(here, name))] for name in sorted(os.listdir(here)) if name.endswith(".py")]


def _inputs(root: Path) -> list[Any]:
    """Everything the check of ``root``'s configuration depends on (JSON-able, compared as is)."""
    from hsm_core.entry_points import plugin_entry_points

    files = [(name, path) for name, path in layer_files()]
    project = find_config_file(root)
    if project is not None:
        files.append((PROJECT, project))
    return [
        __version__,
        file_stamp(_schema_file()),
        _checking_code(),
        os.environ.get("HSM_DISABLE_PLUGINS"),
        os.environ.get("HSM_LOAD_PLUGINS"),
        [[ep.name, ep.value, ep.distribution, ep.version] for ep in plugin_entry_points()],
        [[name, str(path), file_stamp(path)] for name, path in files],
    ]


def _settled(inputs: list[Any]) -> bool:
    """True when no configuration file was modified in the last :data:`SETTLE_SECONDS`."""
    newest = max((stamp[2] for _, _, stamp in inputs[-1] if stamp), default=0)
    return newest < time.time_ns() - int(SETTLE_SECONDS * 1e9)


def _installed_registry(registry: Any) -> bool:
    """Whether the check would use the registry made of the installed plugins (what the record is
    keyed by), not one a caller built or set: tests, and :func:`load_project_config` callers with
    plugins of their own. Asked without importing the registry when nothing imported it yet."""
    module = sys.modules.get("hsm_core.registry")
    if module is None:
        return registry is None  # nothing built or set one: get_registry would build the installed one
    return bool(module.is_installed_registry(registry))


def load_checked_project_config(project_root: Path, registry: Any = None, *, record: bool = True) -> ProjectConfig:
    """:func:`~hsm_core.config.project_config.load_project_config` with the schema check skipped
    when these very files passed it before under the same plugins and hsm (see above).
    ``registry`` as there; one other than the installed plugins' is always checked against.
    ``record=False``: a check made now is recorded only by :func:`record_check` (``hsm run``
    writes nothing before the run is accepted, not even this record)."""
    from hsm_core.user_cache import cache_dir, read_answer

    root = Path(project_root).expanduser().absolute()
    if cache_dir() is None or not _installed_registry(registry):
        return load_project_config(root, registry)  # HSM_CACHE_DIR=off: every cache off, this record too
    inputs = _inputs(root)
    if not inputs[-1]:
        return load_project_config(root, registry)  # no file at all: defaults, nothing to check
    if read_answer(root / RECORD_FILE, inputs) is True:
        return load_project_config(root, validate=False)
    config = load_project_config(root, registry)
    _CHECKED[id(config)] = (config, inputs)
    if record:
        record_check(config)
    return config


#: Configurations checked by this process and not recorded yet: id -> (config, what was checked).
_CHECKED: dict[int, tuple[ProjectConfig, list[Any]]] = {}


def record_check(config: ProjectConfig) -> None:
    """Record that ``config``'s files passed the check :func:`load_checked_project_config` made
    (nothing when it made none): only if they are still what was read, and none was just written."""
    from hsm_core.user_cache import write_answer

    entry = _CHECKED.pop(id(config), None)
    if entry is None or entry[0] is not config:
        return
    inputs = entry[1]
    if _settled(inputs) and _inputs(config.root) == inputs:
        write_answer(config.root / RECORD_FILE, inputs, True)  # makes .hsm/ if needed; a read-only project keeps no record
