"""The options of the ``slurm`` source (the ``hpc:`` section or an ``hpc.clusters.NAME`` entry)."""

from __future__ import annotations

import copy
from typing import Any

from hsm_core.plugin import COMMON_SCHEMA

SLURM_SCHEMA: dict[str, Any] = copy.deepcopy(COMMON_SCHEMA)
SLURM_SCHEMA["properties"].update(
    {
        "slurm": {
            "type": "object",
            "description": "options only the Slurm source reads (other schedulers ignore them)",
            "properties": {
                "extra_directives": {"type": "array", "items": {"type": "string"}, "description": "raw #SBATCH directives for Slurm job scripts only"},
            },
            "additionalProperties": False,
        },
        "sacct": {"type": "boolean", "description": "ask sacct for final states of jobs squeue forgot (default: true; tolerated when missing)"},
    }
)
