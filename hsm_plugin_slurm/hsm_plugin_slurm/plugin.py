"""Hook implementations. Cheap to import: the source itself loads only when a sweep uses it."""

from __future__ import annotations

import shutil
from typing import Mapping

from hsm_core.plugin import ComputeSourceRecord, hookimpl

#: The plugin-API version this plugin is written for (see hsm_core.plugin.PLUGIN_API_VERSION): hsm
#: loads it only under a core whose API has the same major, else says "upgrade the plugin/hsm-core".
HSM_PLUGIN_API = "1.1"  # 1.1: the record says batch_scheduler and job_from_env


def sbatch_available() -> bool:
    """True when ``sbatch`` is on PATH (``--sources hpc`` then picks Slurm)."""
    return shutil.which("sbatch") is not None


def slurm_job(environ: Mapping[str, str]) -> dict[str, str] | None:
    """The Slurm job ``environ`` belongs to, as hsm's ``HSM_JOB_*`` variables (hsm_core.jobenv), or
    None outside Slurm. An array element is named ``slurm:ARRAYJOB_INDEX``; ``SLURM_RESTART_COUNT``
    grows each time Slurm requeues the job; a job step's own ids keep its workers apart."""
    job_id = environ.get("SLURM_JOB_ID")
    if not job_id:
        return None
    array, index = environ.get("SLURM_ARRAY_JOB_ID"), environ.get("SLURM_ARRAY_TASK_ID")
    job = {
        "HSM_JOB_ID": job_id,
        "HSM_JOB_KEY": f"slurm:{array}_{index}" if array and index else f"slurm:{job_id}",
        "HSM_JOB_RESTART": environ.get("SLURM_RESTART_COUNT") or "0",
        "HSM_JOB_STEP": f"{environ.get('SLURM_STEP_ID', '')}.{environ.get('SLURM_PROCID', '')}",
    }
    if array and index:
        job["HSM_ARRAY_INDEX"] = index
    return job


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
            batch_scheduler=True,
            job_from_env=slurm_job,
        )
    ]
