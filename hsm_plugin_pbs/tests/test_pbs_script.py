"""PBS Pro and Torque job scripts: golden files for the differences Slurm's qsub front-end cannot
show (-J vs -t, select= vs nodes=:ppn=, the index variable), and values that must not become
directives."""

from __future__ import annotations

import dataclasses

import pytest

from pbs_support import assert_golden
from hsm_core.plugin import ArrayJob, ConfigError, Resources, resources_from_options
from hsm_plugin_pbs.script import render_pbs_script, render_pbs_worker_script

FULL = ArrayJob(
    name="hsm_sweep_20250101_120000_001",
    size=250,
    list_file="/home/me/my project/sweeps/outputs/sweep_20250101_120000/scripts/job_scripts/cluster_001.list",
    project_root="/home/me/my project",
    runner=("/opt/conda/envs/ml/bin/python", "-m", "hsm_core.runner"),
    source="cluster",
    log_dir="/home/me/my project/sweeps/outputs/sweep_20250101_120000/logs/jobs",
    resources=Resources(walltime=4 * 3600, cpus=4, memory_mb=16 * 1024, gpus=1, nodes=1, partition="gpu", account="proj123"),
    parallelism=20,
    setup_commands=("module load cuda/12.1", "conda activate ml"),
    extra_directives=("-m ae", "#PBS -M me@example.org"),
    requeue=True,
)

SINGLE = ArrayJob(
    name="hsm_sweep_x_001",
    size=1,
    list_file="/p/sweeps/outputs/sweep_x/scripts/job_scripts/pbs_001.list",
    project_root="/p",
    runner=("hsm-task",),
    source="pbs",
    log_dir="/p/sweeps/outputs/sweep_x/logs/jobs",
)


def test_pbs_pro_script_matches_golden() -> None:
    assert_golden(render_pbs_script(FULL, "pbs"), "pbs_full.sh")


def test_torque_script_matches_golden() -> None:
    job = dataclasses.replace(FULL, resources=dataclasses.replace(FULL.resources, qos="long"))
    assert_golden(render_pbs_script(job, "torque"), "torque_full.sh")


def test_one_task_is_a_plain_job_on_pbs_pro_and_an_array_on_torque() -> None:
    pbs = render_pbs_script(SINGLE, "pbs")
    assert_golden(pbs, "pbs_single.sh")
    assert "-J" not in pbs and 'HSM_ARRAY_INDEX="${PBS_ARRAY_INDEX:-${PBS_ARRAYID:-${SLURM_ARRAY_TASK_ID:-0}}}"' in pbs
    torque = render_pbs_script(SINGLE, "torque")
    assert "#PBS -t 0-0\n" in torque


def test_the_seed_resources_string_maps_to_select() -> None:
    res = resources_from_options({"default_walltime": "04:00:00", "default_resources": "select=1:ncpus=4:mem=16gb", "system": "pbs"})
    text = render_pbs_script(dataclasses.replace(FULL, resources=res, parallelism=None), "pbs")
    assert "#PBS -l select=1:ncpus=4:mem=16gb\n" in text and "#PBS -l walltime=04:00:00\n" in text
    torque = render_pbs_script(dataclasses.replace(FULL, resources=res, parallelism=None), "torque")
    assert "#PBS -l nodes=1:ppn=4\n" in torque and "#PBS -l mem=16gb\n" in torque


def test_qos_has_no_pbs_pro_directive() -> None:
    job = dataclasses.replace(FULL, resources=Resources(qos="long"))
    with pytest.raises(ConfigError, match="QOS"):
        render_pbs_script(job, "pbs")
    text = render_pbs_script(dataclasses.replace(job, skip_directives=()), "torque")
    assert "#PBS -l qos=long" in text


def test_skip_and_extra_directives() -> None:
    text = render_pbs_script(dataclasses.replace(FULL, skip_directives=("-A ", "max_run_subjobs")), "pbs")
    assert "-A proj123" not in text and "max_run_subjobs" not in text
    assert "#PBS -m ae\n" in text and "#PBS -M me@example.org\n" in text


@pytest.mark.parametrize("flavour", ["pbs", "torque"])
@pytest.mark.parametrize(
    "field, value",
    [("partition", "workq\n#PBS -l select=100"), ("account", "a b"), ("partition", "q#PBS")],
)
def test_a_value_cannot_add_a_directive(flavour: str, field: str, value: str) -> None:
    with pytest.raises(ConfigError):
        resources_from_options({field: value})
    with pytest.raises(ConfigError):
        render_pbs_script(dataclasses.replace(SINGLE, resources=Resources(**{field: value})), flavour)
    with pytest.raises(ConfigError):
        render_pbs_script(dataclasses.replace(SINGLE, name="x\n#PBS -q evil"), flavour)
    with pytest.raises(ConfigError):
        render_pbs_script(dataclasses.replace(SINGLE, extra_directives=("-m ae\n#PBS -q evil",)), flavour)


# -- hsm worker submit: one pull-based worker per array element --------------------------------

WORKERS = ArrayJob(
    name="hsm-w-a-long-sweep-name",
    size=4,
    list_file="",
    project_root="/p",
    runner=(),
    source="pbs",
    resources=resources_from_options({"walltime": "4:00:00", "gpus": 1, "memory": "16G", "partition": "gpu"}),
    setup_commands=("module load cuda",),
    requeue=True,
    log_dir="/p/sweeps/outputs/sweep_x/logs/workers",
    command=("/usr/bin/python3", "-m", "hsm_core", "worker", "--sweep", "/p/s.yaml", "--cluster", "pbs"),
)


@pytest.mark.parametrize("flavour", ["pbs", "torque"])
def test_worker_array_script_matches_golden(flavour: str) -> None:
    text = render_pbs_worker_script(WORKERS, flavour)
    assert_golden(text, f"{flavour}_workers.sh")
    array = "#PBS -J 0-3" if flavour == "pbs" else "#PBS -t 0-3"
    for line in (array, "#PBS -N hsm-w-a-long-sw", "#PBS -r y", "#PBS -l walltime=04:00:00", "#PBS -q gpu",
                 "#PBS -j oe", "#PBS -o /p/sweeps/outputs/sweep_x/logs/workers/", "module load cuda"):
        assert line in text.splitlines()
    if flavour == "pbs":
        assert "#PBS -l select=1:mem=16gb:ngpus=1" in text.splitlines()
    assert text.rstrip().splitlines()[-1] == "exec /usr/bin/python3 -m hsm_core worker --sweep /p/s.yaml --cluster pbs"


def test_one_pbs_pro_worker_is_a_plain_job() -> None:
    assert "#PBS -J" not in render_pbs_worker_script(dataclasses.replace(WORKERS, size=1), "pbs")


def test_the_plugin_recognises_its_jobs_under_hsm_names() -> None:
    """job_from_env answers with hsm's HSM_JOB_* names (see docs/hooks.md)."""
    from hsm_plugin_pbs.plugin import pbs_job

    assert pbs_job({"SLURM_JOB_ID": "3"}) is None
    assert pbs_job({"PBS_JOBID": "12[3].server", "PBS_ARRAY_INDEX": "3"}) == {
        "HSM_JOB_ID": "12[3].server", "HSM_JOB_KEY": "pbs:12[3].server", "HSM_ARRAY_INDEX": "3"}
    assert pbs_job({"PBS_JOBID": "12[4].server", "PBS_ARRAYID": "4"})["HSM_ARRAY_INDEX"] == "4"  # Torque
