"""The live-view line of ``hsm status`` for an adaptive sweep: ``hsm optuna-dashboard``, or how to get it.

The command comes with hsm-plugin-optuna and runs the ``optuna-dashboard`` executable (on
``PATH``, or ``$HSM_OPTUNA_DASHBOARD``); both are looked up without importing anything, so the
line costs ``hsm status`` nothing measurable.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

#: The environment variable naming the optuna-dashboard executable (as hsm-plugin-optuna reads it).
EXECUTABLE_ENV = "HSM_OPTUNA_DASHBOARD"


def _dashboard_installed() -> bool:
    named = os.environ.get(EXECUTABLE_ENV)
    if named:
        return os.path.isfile(named) and os.access(named, os.X_OK)
    import shutil  # (only for an adaptive sweep: 2 ms of every hsm status)

    return shutil.which("optuna-dashboard") is not None


def dashboard_hint(sweep_id: str, sweep_path: str | Path) -> str | None:
    """One line for an adaptive sweep (one with a trial log) when hsm-plugin-optuna is
    installed; None otherwise."""
    adaptive = (Path(sweep_path) / "search" / "settings.json").is_file()
    if not adaptive or importlib.util.find_spec("hsm_plugin_optuna") is None:
        return None
    if _dashboard_installed():
        return f"Live view: hsm optuna-dashboard {sweep_id}  (optuna-dashboard on this study in a browser)"
    return (f"Live view: optuna-dashboard is not installed; pip install optuna-dashboard, "
            f"then: hsm optuna-dashboard {sweep_id}")
