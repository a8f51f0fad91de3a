"""The options of the ``pbs`` and ``torque`` sources (``hpc:`` or ``hpc.clusters.NAME``)."""

from __future__ import annotations

import copy
from typing import Any

from hsm_core.plugin import COMMON_SCHEMA

PBS_SCHEMA: dict[str, Any] = copy.deepcopy(COMMON_SCHEMA)
PBS_SCHEMA["properties"].update(
    {
        "pbs": {
            "type": "object",
            "description": "options only the PBS/Torque source reads (other schedulers ignore them)",
            "properties": {
                "extra_directives": {"type": "array", "items": {"type": "string"}, "description": "raw #PBS directives for PBS/Torque job scripts only"},
            },
            "additionalProperties": False,
        },
        "qstat_args": {
            "type": "array",
            "items": {"type": "string"},
            "description": "extra qstat options for status polls (default: -x -t for PBS Pro, -t for Torque)",
        },
    }
)
