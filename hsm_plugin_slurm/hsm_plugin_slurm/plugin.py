"""Hook implementations. Cheap to import: the source itself loads only when a sweep uses it."""

from __future__ import annotations

import shutil

from hsm_core.plugin import ComputeSourceRecord, hookimpl

#: The plugin-API version this plugin is written for (see hsm_core.plugin.PLUGIN_API_VERSION): hsm
#: loads it only under a core whose API has the same major, else says "upgrade the plugin/hsm-core".
HSM_PLUGIN_API = "1.0"


def sbatch_available() -> bool:
    """True when ``sbatch`` is on PATH (``--sources hpc`` then picks Slurm)."""
    return shutil.which("sbatch") is not None


@hookimpl
def hsm_register_compute_sources() -> list[ComputeSourceRecord]:
    from hsm_plugin_slurm.schema import SLURM_SCHEMA

    return [
        ComputeSourceRecord(
            name="slurm",
            summary="Slurm cluster: one array job per chunk of tasks (sbatch/squeue/scancel)",
            factory="hsm_plugin_slurm.source:SlurmSource",
            config_schema=SLURM_SCHEMA,
            detect=sbatch_available,
            local_commands=("sbatch", "squeue", "scancel"),
        )
    ]
