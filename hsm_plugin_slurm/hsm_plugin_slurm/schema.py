"""The options of the ``slurm`` source (the ``hpc:`` section or an ``hpc.clusters.NAME`` entry)."""

from __future__ import annotations

import copy
from typing import Any

from hsm_core.plugin import COMMON_SCHEMA

SLURM_SCHEMA: dict[str, Any] = copy.deepcopy(COMMON_SCHEMA)
SLURM_SCHEMA["properties"].update(
    {
        "sacct": {"type": "boolean", "description": "ask sacct for final states of jobs squeue forgot (default: true; tolerated when missing)"},
    }
)
