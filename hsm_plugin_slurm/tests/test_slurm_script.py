"""The Slurm job script: golden files for fixed inputs, and values that must not become directives."""

from __future__ import annotations

import dataclasses

import pytest

from slurm_support import assert_golden
from hsm_core.plugin import ArrayJob, ConfigError, Resources, resources_from_options
from hsm_plugin_slurm.script import render_slurm_script, render_slurm_worker_script

FULL = ArrayJob(
    name="hsm_sweep_20250101_120000_001",
    size=250,
    list_file="/home/me/my project/sweeps/outputs/sweep_20250101_120000/scripts/job_scripts/gpu_001.list",
    project_root="/home/me/my project",
    runner=("/opt/conda/envs/ml/bin/python", "-m", "hsm_core.runner"),
    source="gpu",
    log_dir="/home/me/my project/sweeps/outputs/sweep_20250101_120000/logs/jobs",
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
    log_dir="/p/sweeps/outputs/sweep_x/logs/jobs",
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


# -- hsm worker submit: one pull-based worker per array element --------------------------------

WORKERS = ArrayJob(
    name="hsm-w-grp",
    size=4,
    list_file="",
    project_root="/home/me/my project",
    runner=(),
    source="slurm",
    resources=resources_from_options({"walltime": "4:00:00", "gpus": 1, "memory": "16G", "partition": "gpu"}),
    setup_commands=("module load cuda",),
    requeue=True,
    log_dir="/p/sweeps/outputs/sweep_x/logs/workers",
    command=("/usr/bin/python3", "-m", "hsm_core", "worker", "--sweep", "/home/me/my project/s.yaml",
             "--cluster", "slurm", "--project-dir", "/home/me/my project", "--wandb-buffer"),
)


def test_worker_array_script_matches_golden_and_requeues_with_appended_output() -> None:
    text = render_slurm_worker_script(WORKERS)
    assert_golden(text, "slurm_workers.sh")
    assert text.splitlines()[:6] == ["#!/bin/bash", "#SBATCH --job-name=hsm-w-grp", "#SBATCH --array=0-3",
                                     "#SBATCH --output=/p/sweeps/outputs/sweep_x/logs/workers/slurm-%A_%a.out",
                                     "#SBATCH --error=/p/sweeps/outputs/sweep_x/logs/workers/slurm-%A_%a.out",
                                     "#SBATCH --open-mode=append"]
    assert "#SBATCH --requeue" in text.splitlines()
    for line in ("#SBATCH --time=04:00:00", "#SBATCH --partition=gpu", "#SBATCH --mem=16G", "#SBATCH --gres=gpu:1",
                 "#SBATCH --output=/p/sweeps/outputs/sweep_x/logs/workers/slurm-%A_%a.out", "module load cuda"):
        assert line in text.splitlines()
    assert text.rstrip().splitlines()[-1] == (
        "exec /usr/bin/python3 -m hsm_core worker --sweep '/home/me/my project/s.yaml' --cluster slurm "
        "--project-dir '/home/me/my project' --wandb-buffer")
    with pytest.raises(ConfigError):
        render_slurm_worker_script(dataclasses.replace(WORKERS, resources=Resources(partition="gpu\n#SBATCH --uid=0")))


def test_submit_workers_dry_run_writes_the_script_the_source_would_submit(tmp_path) -> None:
    from hsm_core.plugin import SourceContext, WorkerArray
    from hsm_plugin_slurm.source import SlurmSource

    sweep = tmp_path / "out" / "grp"
    ctx = SourceContext(sweep_id="grp", sweep_dir=sweep, project_root=tmp_path, project_config={})
    src = SlurmSource("slurm", {"walltime": "1:00:00", "extra_directives": ["--mail-type=END"]}, ctx)
    array = WorkerArray(count=2, command=("python", "-m", "hsm_core", "worker"), job_name="hsm-w-grp",
                        project_root=tmp_path, script_dir=sweep / "scripts" / "job_scripts", log_dir=sweep / "logs" / "workers",
                        stamp="1")
    done = src.submit_workers(array, dry_run=True)
    assert done.script == sweep / "scripts" / "job_scripts" / "workers_1.sbatch" and done.job_id is None
    assert done.submit_command == ["sbatch", "--parsable", "workers_1.sbatch"]
    text = done.script.read_text()
    assert "#SBATCH --array=0-1" in text and "#SBATCH --time=01:00:00" in text and "#SBATCH --mail-type=END" in text
    # Absolute: the script works submitted from any directory.
    assert f"#SBATCH --output={sweep.resolve()}/logs/workers/slurm-%A_%a.out" in text
    assert src.cancel_argv(["77"]) == ["scancel", "77"]


def test_the_plugin_recognises_its_jobs_under_hsm_names() -> None:
    """job_from_env answers with hsm's HSM_JOB_* names (see docs/hooks.md): what a worker started by
    a hand-written sbatch script records, and how it knows an earlier run of its requeued job."""
    from hsm_plugin_slurm.plugin import slurm_job

    assert slurm_job({"PBS_JOBID": "1.server"}) is None
    job = slurm_job({"SLURM_JOB_ID": "81", "SLURM_ARRAY_JOB_ID": "77", "SLURM_ARRAY_TASK_ID": "3", "SLURM_RESTART_COUNT": "2"})
    assert job == {"HSM_JOB_ID": "81", "HSM_JOB_KEY": "slurm:77_3", "HSM_JOB_RESTART": "2", "HSM_JOB_STEP": ".",
                   "HSM_ARRAY_INDEX": "3"}
    first = slurm_job({"SLURM_JOB_ID": "81", "SLURM_ARRAY_JOB_ID": "77", "SLURM_ARRAY_TASK_ID": "3"})
    assert first["HSM_JOB_KEY"] == job["HSM_JOB_KEY"] and first["HSM_JOB_RESTART"] == "0"  # an earlier run of the same job
    assert slurm_job({"SLURM_JOB_ID": "90"})["HSM_JOB_KEY"] == "slurm:90"
