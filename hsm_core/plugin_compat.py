"""Whether a plugin fits this hsm-core: the plugin-API version it declares, and what its failures mean.

A plugin declares the version of :mod:`hsm_core.plugin` it was written for in its entry-point module
(``HSM_PLUGIN_API = "1.0"``); :data:`~hsm_core.plugin.PLUGIN_API_VERSION` says what the numbers mean.
The messages here end in what the user does about it: "upgrade the plugin" or "upgrade hsm-core".
"""

from __future__ import annotations

from typing import Any

from hsm_core import __version__
from hsm_core.plugin import PLUGIN_API_VERSION, PROJECT_NAME
from hsm_core.plugin.version import DEPRECATED_HOOKS

#: The attribute of a plugin's entry-point module that declares the plugin-API version it was
#: written for (``HSM_PLUGIN_API = "1.0"``).
API_ATTRIBUTE = "HSM_PLUGIN_API"


def api_text(version: tuple[int, int] = PLUGIN_API_VERSION) -> str:
    """``(1, 0)`` -> ``"1.0"``."""
    return f"{version[0]}.{version[1]}"


def parse_api_version(value: object) -> tuple[int, int] | None:
    """``"1"`` or ``"1.2"`` -> ``(1, 0)`` / ``(1, 2)``; None for anything else."""
    if not isinstance(value, str):
        return None
    parts = value.strip().split(".")
    if not 1 <= len(parts) <= 2 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1]) if len(parts) == 2 else 0


def api_incompatibility(declared: object, module_name: str) -> str | None:
    """Why a plugin declaring plugin-API ``declared`` cannot run under this hsm-core; None if it can."""
    current = api_text()
    core = f"this hsm-core {__version__} provides plugin API {current}"
    if declared is None:
        return f"declares no plugin API version ({API_ATTRIBUTE} in {module_name}) and {core}: upgrade the plugin"
    wanted = parse_api_version(declared)
    if wanted is None:
        return f'{API_ATTRIBUTE} = {declared!r} in {module_name} is not a string like "{current}"'
    if wanted[0] < PLUGIN_API_VERSION[0]:
        return f"written for plugin API {wanted[0]}.x and {core}: upgrade the plugin"
    if wanted > PLUGIN_API_VERSION:
        return f"needs plugin API {api_text(wanted)} and {core}: upgrade hsm-core"
    return None


def describe_failure(exc: BaseException) -> str:
    """One line for a plugin's exception; says when it looks like a plugin/core version mismatch."""
    text = f"{type(exc).__name__}: {exc}"
    # A plugin importing a core name that moved (or an attribute that was renamed) was written for
    # another hsm-core, whatever version it declares.
    missing_from = exc.name if isinstance(exc, ImportError) else getattr(getattr(exc, "obj", None), "__name__", None)
    if isinstance(exc, (ImportError, AttributeError)) and str(missing_from or "").split(".")[0] == "hsm_core":
        text += f" (the plugin does not fit hsm-core {__version__}: upgrade the plugin or hsm-core)"
    return text


def deprecation_warnings(module: Any) -> list[str]:
    """One line per deprecated hook ``module`` implements (it still works in this major version):
    what replaces it, and that the plugin should be upgraded before the next major."""
    marker = PROJECT_NAME + "_impl"  # what hsm_core.plugin.hookimpl marks an implementation with
    out = []
    for hook, replacement in DEPRECATED_HOOKS.items():
        if hasattr(getattr(module, hook, None), marker):
            out.append(f"implements {hook}, deprecated since plugin API 1.2 and removed in 2.0: "
                       f"implement {replacement} instead (upgrade the plugin)")
    return out
