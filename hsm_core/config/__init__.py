"""hsm's configuration files: loading and validating them, with errors that name file, line and key.

Two files are configuration: the project's ``hsm_config.yaml`` (over the site, user and
``HSM_CONFIG`` layers) and sweep files. Every problem is one
:class:`~hsm_core.errors.ConfigError` line such as::

    hsm_config.yaml:12: compute.health_chek_interval: unknown key 'health_chek_interval', did you mean 'health_check_interval'?

One concern per module, each importing only the ones listed before it:

==================  =============================================================================
``lines``           :class:`LineDict`/:class:`LineList` (values that know their file and line),
                    ``line_of``, ``key_path``, ``display_path``: how a message points at a value
``project_root``    where the project is: ``resolve_project_root`` (the one resolver of
                    ``--project-dir`` and the current directory), ``find_config_file``
``yaml_io``         ``load_yaml`` (safe, lines kept, YAML 1.2 numbers), ``dump_yaml``, ``yaml_inline``,
                    ``parse_value``
``layers``          the site, user and ``HSM_CONFIG`` layers below the project's file, and merging
``schema``          the core JSON Schemas plus the installed plugins' fragments: ``build_schema``
``validation``      ``validate`` (one-line errors with "did you mean"), near-miss keys
``installed``       what a config names against the installed plugins (``unprovided_sources``)
``project_config``  ``load_project_config`` -> :class:`ProjectConfig`
``sweep_file``      ``load_sweep_file``: a sweep file validated and normalised to the v2 form
``editing``         ``set_config_value`` (``hsm config set``): validated, comments kept, atomic
==================  =============================================================================

hsm's modules import a name from the module that owns it (``from hsm_core.config.project_config
import load_project_config``). The names of the former single module ``hsm_core/config.py`` are
also found here, each loaded from its module on first use (for tests and code written before the
split). Plugins use none of these: they reach the project through :mod:`hsm_core.plugin`
(``locate_project``, ``set_project_setting``).
"""

from __future__ import annotations

import importlib
from typing import Any

#: The names of the former single module ``hsm_core/config.py`` -> the module that owns each now.
#: ``from hsm_core.config import load_project_config`` still works (tests, scripts, code written
#: before the split) and loads only that module; hsm's own modules import from the owner
#: (``tests/test_layers.py`` checks it).
_SUBMODULE: dict[str, str] = {
    **dict.fromkeys(("LineDict", "LineList", "display_path", "key_path", "line_of", "to_plain"), "lines"),
    **dict.fromkeys(("CONFIG_FILENAME", "CONFIG_LOCATIONS", "find_config_file", "find_project_root",
                     "resolve_project_root"), "project_root"),
    **dict.fromkeys(("dump_yaml", "load_yaml", "load_yaml_text", "parse_value", "yaml_inline"), "yaml_io"),
    **dict.fromkeys(("CORE_SECTIONS", "build_schema", "core_schema"), "schema"),
    "validate": "validation",
    **dict.fromkeys(("DEFAULT_OUTPUT_DIR", "ProjectConfig", "load_project_config"), "project_config"),
    "load_sweep_file": "sweep_file",
    "set_config_value": "editing",
}

__all__ = sorted(_SUBMODULE)


def __getattr__(name: str) -> Any:
    """Import a name of the former ``hsm_core/config.py`` from the module that owns it now."""
    submodule = _SUBMODULE.get(name)
    if submodule is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{submodule}"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
