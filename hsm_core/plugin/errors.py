"""The errors of hsm (part of :mod:`hsm_core.plugin`).

They live in :mod:`hsm_core.errors`, a module with no imports beyond the standard library, so that
light modules (the task runner) raise them cheaply; plugins import them from :mod:`hsm_core.plugin`.
The CLI prints an :class:`HsmError` as one line (``Error: <message> (<hint>)``) and exits 2.
"""

from __future__ import annotations

from hsm_core.errors import ComponentNotFound, ConfigError, HsmError, NotInCharge, SourceUnavailable

__all__ = ["HsmError", "ConfigError", "ComponentNotFound", "SourceUnavailable", "NotInCharge"]
