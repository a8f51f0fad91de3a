"""Hook implementations. Cheap to import: the source itself loads only when a sweep uses it."""

from __future__ import annotations

import shutil
from typing import Mapping

from hsm_core.plugin import ComputeSourceRecord, hookimpl

#: The plugin-API version this plugin is written for (see hsm_core.plugin.PLUGIN_API_VERSION): hsm
#: loads it only under a core whose API has the same major, else says "upgrade the plugin/hsm-core".
HSM_PLUGIN_API = "1.1"  # 1.1: the record says batch_scheduler and job_from_env


def qsub_available() -> bool:
    """True when ``qsub`` is on PATH and is not Slurm's translation layer.

    On a Slurm cluster ``qsub`` (slurm-wlm-torque) only forwards to ``sbatch``: ``--sources hpc``
    then picks the slurm plugin, which talks to Slurm directly. ``--sources pbs`` still works there.
    """
    return shutil.which("qsub") is not None and shutil.which("sbatch") is None


def pbs_job(environ: Mapping[str, str]) -> dict[str, str] | None:
    """The PBS (Pro or Torque) job ``environ`` belongs to, as hsm's ``HSM_JOB_*`` variables
    (hsm_core.jobenv), or None outside PBS. PBS keeps no requeue count."""
    job_id = environ.get("PBS_JOBID")
    if not job_id:
        return None
    job = {"HSM_JOB_ID": job_id, "HSM_JOB_KEY": f"pbs:{job_id}"}
    index = environ.get("PBS_ARRAY_INDEX") or environ.get("PBS_ARRAYID")
    if index:
        job["HSM_ARRAY_INDEX"] = index
    return job


@hookimpl
def hsm_register_compute_sources() -> list[ComputeSourceRecord]:
    from hsm_plugin_pbs.schema import PBS_SCHEMA

    return [
        ComputeSourceRecord(
            name="pbs",
            summary="PBS Pro / OpenPBS cluster: array jobs (qsub -J, PBS_ARRAY_INDEX, select=); system: torque switches to Torque",
            factory="hsm_plugin_pbs.source:PbsSource",
            config_schema=PBS_SCHEMA,
            detect=qsub_available,
            local_commands=("qsub", "qstat", "qdel"),
            batch_scheduler=True,
            job_from_env=pbs_job,
        ),
        ComputeSourceRecord(
            name="torque",
            summary="Torque cluster: array jobs (qsub -t, PBS_ARRAYID, nodes=N:ppn=M)",
            factory="hsm_plugin_pbs.source:TorqueSource",
            config_schema=PBS_SCHEMA,
            local_commands=("qsub", "qstat", "qdel"),
            batch_scheduler=True,
            job_from_env=pbs_job,
        ),
    ]
