"""``import hsm``: hsm's Python API for notebooks and scripts (:mod:`hsm_core.api`).

    import hsm
    sw = hsm.load_sweep()            # the latest sweep of the project at the cwd
    df = sw.to_dataframe()

The names are loaded on first use, so ``import hsm`` itself imports nothing heavy. The command
line is ``hsm`` (hsm_core.cli); the plugin API is :mod:`hsm_core.plugin`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hsm_core import __version__

if TYPE_CHECKING:  # pragma: no cover
    from hsm_core.api import HsmError, Sweep, Task, list_sweeps, load_sweep, run

__all__ = ["HsmError", "Sweep", "Task", "__version__", "list_sweeps", "load_sweep", "run"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from hsm_core import api

        value = getattr(api, name)
        globals()[name] = value  # once: later look-ups are plain attribute reads
        return value
    raise AttributeError(f"module 'hsm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
