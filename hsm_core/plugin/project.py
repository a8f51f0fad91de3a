"""The project and its sweeps, for a plugin's own commands (part of :mod:`hsm_core.plugin`).

A plugin command (``hsm remote add``, ``hsm collect-results``, ``hsm test KIND``) works on the
project the user is in: :func:`locate_project` reads its validated ``hsm_config.yaml``,
:func:`set_project_setting` changes one setting in it (comments kept, validated first),
:func:`locate_sweep` finds one of its sweeps, and :func:`make_probe_task` writes a throw-away
one-task sweep for checks such as ``hsm test``.

These are services of hsm's upper layers (configuration, sweeps, finding a sweep), so this module
of the contract sits above them in hsm's layer order (``tests/test_layers.py``), with the engine:
it is the contract's window onto the project, and no module of a lower layer may import it.
Importing :mod:`hsm_core.plugin` does not load it (each name is loaded on first use).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from hsm_core.config.editing import set_config_value
from hsm_core.config.project_config import load_project_config
from hsm_core.config.project_root import CONFIG_FILENAME, find_config_file, resolve_project_root
from hsm_core.config.yaml_io import yaml_inline
from hsm_core.plugin.values import TaskSpec
from hsm_core.prepare import CommandPlan, write_task
from hsm_core.state import SweepDir, TaskRecord
from hsm_core.sweep_select import resolve_sweep

__all__ = [
    "ProjectLocation",
    "locate_project",
    "set_project_setting",
    "SweepLocation",
    "locate_sweep",
    "make_probe_task",
    "read_search_trials",
]


@dataclass(frozen=True)
class ProjectLocation:
    """A project as a plugin command sees it."""

    #: The project root (absolute): the directory holding ``hsm_config.yaml``.
    root: Path
    #: The ``hsm_config.yaml`` that was read; None when the project has none (defaults apply).
    config_file: Path | None
    #: Where :func:`set_project_setting` writes: ``config_file``, or a new ``hsm_config.yaml`` in root.
    settings_file: Path
    #: The validated configuration, defaults applied (plain dicts and lists).
    config: Mapping[str, Any]

    def setting(self, dotted: str, default: Any = None) -> Any:
        """The value at a dotted key (``distributed.remotes``), or ``default`` when it is not set."""
        node: Any = self.config
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return default if node is None else node


def locate_project(project_dir: str | Path | None = None) -> ProjectLocation:
    """The project at ``project_dir`` (default: the one holding the current directory, else the
    current directory itself). Raises :class:`HsmError` (file:line) for a bad ``hsm_config.yaml``,
    and for a ``project_dir`` that is not an existing directory."""
    project = load_project_config(resolve_project_root(project_dir))
    return ProjectLocation(project.root, project.path, project.path or project.root / CONFIG_FILENAME, project.data)


def set_project_setting(project_root: str | Path, dotted_key: str, value: Any) -> Path:
    """Set ``dotted_key`` (``distributed.remotes.gpu1``) to ``value`` (any YAML-able value) in the
    project's ``hsm_config.yaml``, creating the file when there is none; returns the file.

    The whole resulting configuration is validated first: a bad key or value raises
    :class:`~hsm_core.plugin.ConfigError` and leaves the file as it was. The file is written
    atomically, and a change of one key keeps the file's comments.
    """
    root = resolve_project_root(project_root)
    path = find_config_file(root) or root / CONFIG_FILENAME
    set_config_value(path, dotted_key, yaml_inline(value))
    return path


@dataclass(frozen=True)
class SweepLocation:
    """Where a sweep lives: what commands of plugins need to work on one sweep."""

    sweep_id: str
    sweep_dir: Path
    project_root: Path
    #: The project's validated ``hsm_config.yaml`` content (defaults applied).
    project_config: Mapping[str, Any]


def locate_sweep(sweep_id: str | None = None, project_dir: str | Path | None = None) -> SweepLocation:
    """The sweep ``sweep_id`` of the project at ``project_dir`` (default: the project holding the
    current directory); the most recently created sweep when ``sweep_id`` is None or ``latest``.
    Raises :class:`HsmError` for an unknown sweep or a bad ``hsm_config.yaml``."""
    project = load_project_config(resolve_project_root(project_dir))
    sweep = resolve_sweep(project, sweep_id)  # a pull-based sweep may live under its storage root
    return SweepLocation(sweep.sweep_id, sweep.path.absolute(), project.root, project.data)


def make_probe_task(
    directory: str | Path, code: str, *, project_root: str | Path, python: str | None = None, task_id: str = "probe"
) -> TaskSpec:
    """A throw-away sweep at ``directory`` with one task running ``PYTHON -c code`` in the project
    root (for ``hsm test``-style checks: launch it on a source, poll until final, read its
    ``stdout.log``). ``python`` defaults to the project's ``paths.python_interpreter`` (else this
    interpreter), as for the project's own tasks; where the task runs, the runner uses the
    source's configured Python instead. ``directory``'s name must be a valid sweep id
    (``test_20260101_120000``); remove the directory when done.
    """
    if python is None:
        python = load_project_config(Path(project_root)).python_interpreter or sys.executable
    sweep = SweepDir(Path(directory))
    sweep.path.mkdir(parents=True, exist_ok=True)
    sweep.create_layout()
    plan = CommandPlan(["{python}", "-c", code], python, None, "hydra", Path(project_root))
    return write_task(sweep, TaskRecord(1, task_id, {}), plan, {})


def read_search_trials(sweep_dir: str | Path) -> tuple[dict[str, Any], list[Any]] | None:
    """An adaptive (``search:``) sweep's settings (``strategy``, ``metric``, ``goal``, ``trials``,
    ``seed``) and its trials so far (:class:`~hsm_core.plugin.Trial`, state now: ``running``,
    ``completed`` with the value, ``failed``), read without writing to the sweep; None for a
    sweep without adaptive search. For views of a study (a dashboard) in a plugin's command."""
    from hsm_core.adaptive import read_trials

    return read_trials(Path(sweep_dir))
