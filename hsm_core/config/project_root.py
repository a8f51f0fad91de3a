"""Where the project is: the one place that turns "the current directory" or ``--project-dir``
into the project root, and finds the project's ``hsm_config.yaml`` in it.

Every command, the plugin API (``locate_project``, ``locate_sweep``) and the Python API go through
:func:`resolve_project_root`, so a project named in different ways (a relative ``--project-dir``,
``~/proj``, a symlink, the directory the shell is in) is always the same absolute path: sweeps
record it, workers are submitted with it, and messages show paths relative to it.
"""

from __future__ import annotations

import os
from pathlib import Path

from hsm_core.errors import HsmError

CONFIG_FILENAME = "hsm_config.yaml"
#: Where the project config is looked for, relative to the project root, in this order.
CONFIG_LOCATIONS: tuple[str, ...] = (CONFIG_FILENAME, f"sweeps/{CONFIG_FILENAME}")

__all__ = [
    "CONFIG_FILENAME",
    "CONFIG_LOCATIONS",
    "current_dir",
    "find_config_file",
    "find_project_root",
    "new_project_root",
    "resolve_project_root",
]


def current_dir() -> Path:
    """The current directory (physical: symlinks resolved, as the kernel keeps it).

    Raises :class:`HsmError` when it no longer exists (removed under the shell), which
    :func:`os.getcwd` reports as a bare ``FileNotFoundError``.
    """
    try:
        return Path(os.getcwd())
    except FileNotFoundError:
        raise HsmError(
            "the current directory no longer exists", hint="cd to the project, or give --project-dir"
        ) from None


def find_config_file(project_root: Path) -> Path | None:
    """``hsm_config.yaml`` in ``project_root``, else ``sweeps/hsm_config.yaml`` (v1), else None."""
    for rel in CONFIG_LOCATIONS:
        p = Path(project_root) / rel
        if p.is_file():
            return p
    return None


def find_project_root(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` (default: cwd) holding ``hsm_config.yaml`` or
    ``sweeps/hsm_config.yaml``; ``start`` itself when there is none."""
    start = Path(start if start is not None else current_dir()).absolute()
    for p in (start, *start.parents):
        if (p / CONFIG_FILENAME).is_file():
            # Inside a v1 project's sweeps/ directory: the project is its parent.
            if p.name == "sweeps" and not (p / "sweeps").is_dir():
                return p.parent
            return p
        if (p / "sweeps" / CONFIG_FILENAME).is_file():
            return p
    return start


def resolve_project_root(project_dir: str | Path | None = None, *, climb: bool = False) -> Path:
    """The root of the project a command works on, as an absolute path with symlinks resolved.

    ``project_dir`` (``--project-dir``; ``~`` is expanded, a relative path is taken from the
    current directory) must be an existing directory: the project need not have an
    ``hsm_config.yaml`` (defaults apply), but a mistyped path must not quietly become an empty
    project. With ``climb`` it may be any directory inside the project (the Python API's
    ``project=``: a notebook's folder finds the project above it). Without it (None or empty),
    the project is the nearest directory at or above the current one that holds the config
    (:func:`find_project_root`), else the current directory.

    Symlinks are resolved because the current directory always comes without them
    (:func:`current_dir`): the same project reached through a link or from inside it is one path.
    Raises :class:`HsmError` (one line, exit 2) for a missing directory, a file, or a current
    directory that no longer exists.
    """
    if not project_dir:
        return find_project_root(current_dir())
    given = Path(project_dir).expanduser()
    path = given if given.is_absolute() else current_dir() / given
    if not path.exists():
        raise HsmError(
            f"project directory {str(project_dir)!r} does not exist",
            hint="give the directory that holds hsm_config.yaml (or create it: hsm config init --project-dir DIR)",
        )
    if not path.is_dir():
        raise HsmError(f"project directory {str(project_dir)!r} is not a directory", hint="give the project's directory")
    return find_project_root(path.resolve()) if climb else path.resolve()


def new_project_root(project_dir: str | Path | None = None) -> Path:
    """Where ``hsm config init`` makes a project: ``project_dir`` (which may not exist yet: init
    creates it), else the current directory itself (never a project above it). Absolute, with
    ``~`` expanded and symlinks resolved like :func:`resolve_project_root`."""
    if not project_dir:
        return current_dir()
    given = Path(project_dir).expanduser()
    return (given if given.is_absolute() else current_dir() / given).resolve()
