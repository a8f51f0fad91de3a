"""The Slurm job script: golden files for fixed inputs, and values that must not become directives."""

from __future__ import annotations

import dataclasses

import pytest

from slurm_support import assert_golden
from hsm_core.plugin import ArrayJob, ConfigError, Resources, resources_from_options
from hsm_plugin_slurm.script import render_slurm_script

FULL = ArrayJob(
    name="hsm_sweep_20250101_120000_001",
    size=250,
    list_file="/home/me/my project/sweeps/outputs/sweep_20250101_120000/scripts/job_scripts/gpu_001.list",
    project_root="/home/me/my project",
    runner=("/opt/conda/envs/ml/bin/python", "-m", "hsm_core.runner"),
    source="gpu",
    resources=Resources(walltime=4 * 3600, cpus=4, memory_mb=16 * 1024, gpus=1, nodes=1, partition="gpu", account="proj123", qos="normal"),
    parallelism=20,
    setup_commands=("module load cuda/12.1", "source /opt/conda/bin/activate ml"),
    extra_directives=("--mail-type=END", "#SBATCH --constraint=a100"),
    requeue=True,
)

MINIMAL = ArrayJob(
    name="hsm_sweep_x_001",
    size=1,
    list_file="/p/sweeps/outputs/sweep_x/scripts/job_scripts/slurm_001.list",
    project_root="/p",
    runner=("hsm-task",),
    source="slurm",
)


def test_full_script_matches_golden() -> None:
    assert_golden(render_slurm_script(FULL), "slurm_full.sh")


def test_minimal_script_matches_golden() -> None:
    assert_golden(render_slurm_script(MINIMAL), "slurm_minimal.sh")


def test_remote_login_node_script_matches_golden() -> None:
    job = dataclasses.replace(MINIMAL, size=12, python="/cluster/envs/ml/bin/python", pass_project_root=True,
                              runner=("/cluster/envs/ml/bin/python", "-m", "hsm_core.runner"))
    assert_golden(render_slurm_script(job), "slurm_remote.sh")


def test_skipped_lines_and_requeue_off() -> None:
    job = dataclasses.replace(FULL, skip_directives=("--mem", "--qos"), requeue=False)
    text = render_slurm_script(job)
    assert "--mem" not in text and "--qos" not in text
    assert "#SBATCH --no-requeue" in text and "#SBATCH --cpus-per-task=4" in text


def test_resources_from_the_seed_config_map_to_sbatch_options() -> None:
    res = resources_from_options({"default_walltime": "04:00:00", "default_resources": "select=1:ncpus=4:mem=16gb", "system": "slurm"})
    text = render_slurm_script(dataclasses.replace(MINIMAL, resources=res))
    for line in ("--time=04:00:00", "--nodes=1", "--cpus-per-task=4", "--mem=16G"):
        assert f"#SBATCH {line}\n" in text


@pytest.mark.parametrize(
    "field, value",
    [
        ("partition", "debug\n#SBATCH --uid=0"),
        ("partition", "debug #SBATCH --uid=0"),
        ("account", "acct\r#SBATCH --uid=0"),
        ("qos", "normal'"),
    ],
)
def test_a_resource_value_cannot_add_a_directive(field: str, value: str) -> None:
    with pytest.raises(ConfigError):
        resources_from_options({field: value})
    job = dataclasses.replace(MINIMAL, resources=Resources(**{field: value}))
    with pytest.raises(ConfigError):
        render_slurm_script(job)


@pytest.mark.parametrize("name", ["sweep\n#SBATCH --uid=0", "my sweep", "a#b"])
def test_a_job_name_cannot_add_a_directive(name: str) -> None:
    with pytest.raises(ConfigError):
        render_slurm_script(dataclasses.replace(MINIMAL, name=name))


def test_extra_directives_and_setup_commands_are_one_line_each() -> None:
    with pytest.raises(ConfigError):
        render_slurm_script(dataclasses.replace(MINIMAL, extra_directives=("--mail-type=END\n#SBATCH --uid=0",)))
    with pytest.raises(ConfigError):
        render_slurm_script(dataclasses.replace(MINIMAL, setup_commands=("module load x\n#SBATCH --uid=0",)))


def test_paths_with_spaces_and_quotes_are_shell_quoted() -> None:
    job = dataclasses.replace(MINIMAL, project_root="/home/o'neil/my proj", list_file="/home/o'neil/my proj/l.list")
    text = render_slurm_script(job)
    assert "cd '/home/o'\"'\"'neil/my proj' || exit 1" in text
    directives = [ln for ln in text.splitlines() if ln.startswith("#SBATCH")]
    assert all("neil" not in ln for ln in directives)
