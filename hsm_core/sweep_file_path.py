"""Where a sweep file named on the command line is, when the command runs in a sub-directory.

``hsm config init`` and the README say ``hsm run -c sweeps/sweep_config.yaml``; every other
command (``hsm status``, ``hsm export``, ``hsm run`` without ``-c``) finds the project from any
sub-directory, and so does ``hsm.run("sweeps/...")`` in Python. A relative sweep file is therefore
looked up in the current directory first and then in the project root, so that the path the docs
give works from ``src/`` or ``notebooks/`` too.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["sweep_file_path"]


def sweep_file_path(given: str | Path, project_root: Path) -> Path:
    """``given`` when it names a file from the current directory (or is absolute); else the file of
    that name under ``project_root`` when there is one; else ``given`` unchanged (the caller's
    loader then says it is not found)."""
    path = Path(given).expanduser()
    if path.is_absolute() or path.exists():
        return path
    under_root = Path(project_root) / path
    return under_root if under_root.is_file() else path
