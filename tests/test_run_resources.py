"""Per-sweep resources (issue 17): the sweep file's ``resources:`` and ``hsm run --walltime/--gpus/...``,
over hsm_config.yaml's ``hpc:``; ``hsm run --dry-run`` shows the job scripts and the array plan.

The scheduler sources run against stand-in client commands (a ``bin`` directory on ``hpc.env.PATH``):
``scontrol`` says ``MaxArraySize = 3``, and ``sbatch`` leaves a file behind if anything ever calls it,
so "nothing submitted" is checked, not assumed. The rendering is the real plugins' (Slurm, PBS).
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from hsm_core.testing.project import make_project
from hsm_project import Project


def _fake_scheduler(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marker = tmp_path / "SUBMITTED"
    for name in ("sbatch", "qsub"):
        (bin_dir / name).write_text(f"#!/bin/sh\necho \"$@\" >> {marker}\nexit 1\n")
    for name in ("squeue", "scancel", "qstat", "qdel"):
        (bin_dir / name).write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "scontrol").write_text("#!/bin/sh\necho 'MaxArraySize            = 3'\n")
    for p in bin_dir.iterdir():
        p.chmod(0o755)
    return bin_dir


@pytest.fixture
def cluster_project(tmp_path: Path) -> Project:
    """A project whose hpc: settings lose to the sweep file's resources, which lose to flags."""
    bin_dir = _fake_scheduler(tmp_path)
    extra = textwrap.dedent(f"""\
        hpc:
          env: {{PATH: "{bin_dir}:{os.environ['PATH']}"}}
          default_walltime: "01:00:00"
          queue: short
          cpus: 2
          account: from_project
          array_parallelism: 2
          slurm: {{extra_directives: ["--mail-type=END"]}}
        """)
    return make_project(tmp_path / "proj", config_extra=extra, env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})


SWEEP = {
    "grid": {"lr": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]},
    "resources": {
        "walltime": "04:00:00",
        "gpus": 1,
        "memory": "16gb",
        "partition": "gpu",
        "slurm": {"extra_directives": ["--constraint=a100"]},
        "pbs": {"extra_directives": ["-m ae"]},
    },
}


def _dry_run_json(project: Project, *args: str) -> dict:
    cfg = project.write_sweep(SWEEP)
    proc = project.hsm("run", "--config", str(cfg), "--dry-run", "--json", *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def _directives(script: str, prefix: str) -> list[str]:
    return [ln for ln in script.splitlines() if ln.startswith(prefix)]


def test_slurm_dry_run_renders_every_resource_command_line_over_sweep_over_project(cluster_project: Project, tmp_path: Path) -> None:
    info = _dry_run_json(cluster_project, "--sources", "slurm", "--walltime", "2h", "--cpus", "8", "--account", "proj42")
    (plan,) = info["job_scripts"]
    # 7 tasks, MaxArraySize 3: three array jobs of 3, 3 and 1 tasks, each throttled to 2 at once.
    assert [(c["tasks"], c["array"]) for c in plan["chunks"]] == [(3, "0-2%2"), (3, "0-2%2"), (1, "0-0%2")]
    assert plan["max_array_size"] == 3 and plan["throttle"] == 2 and plan["tasks_per_element"] == 1
    script = plan["chunks"][0]["script"]
    lines = _directives(script, "#SBATCH")
    assert "#SBATCH --array=0-2%2" in lines
    assert "#SBATCH --time=02:00:00" in lines  # --walltime over the sweep's 04:00:00 over the project's 01:00:00
    assert "#SBATCH --cpus-per-task=8" in lines  # --cpus over hpc.cpus
    assert "#SBATCH --mem=16G" in lines and "#SBATCH --gres=gpu:1" in lines  # the sweep file's
    assert "#SBATCH --partition=gpu" in lines  # the sweep's partition over the project's queue
    assert "#SBATCH --account=proj42" in lines
    # Directives: the project's for Slurm, then the sweep's for Slurm; never the sweep's PBS ones.
    assert lines[-2:] == ["#SBATCH --mail-type=END", "#SBATCH --constraint=a100"]
    assert "-m ae" not in script
    assert plan["chunks"][1]["script"] is None and plan["chunks"][2]["script"] is not None
    assert not (tmp_path / "SUBMITTED").exists() and cluster_project.sweep_ids() == []


def test_pbs_dry_run_renders_the_same_resources_as_pbs_directives(cluster_project: Project) -> None:
    info = _dry_run_json(cluster_project, "--sources", "pbs", "--gpus", "2", "--mem", "32G")
    (plan,) = info["job_scripts"]
    lines = _directives(plan["chunks"][0]["script"], "#PBS")
    assert "#PBS -l select=1:ncpus=2:mem=32gb:ngpus=2" in lines
    assert "#PBS -l walltime=04:00:00" in lines and "#PBS -q gpu" in lines and "#PBS -A from_project" in lines
    assert "#PBS -m ae" in lines and not any("constraint" in ln or "mail-type" in ln for ln in lines)
    assert info["resources"]["gpus"] == 2 and info["resources"]["memory"] == "32G"


def test_text_dry_run_prints_the_plan_and_the_script(cluster_project: Project) -> None:
    cfg = cluster_project.write_sweep(SWEEP)
    proc = cluster_project.hsm("run", "--config", str(cfg), "--dry-run", "--sources", "slurm")
    assert proc.returncode == 0, proc.stderr
    assert "Job scripts of slurm (Slurm), nothing submitted:" in proc.stdout
    assert "7 task(s) in 3 array job(s) of at most 3 task(s)" in proc.stdout
    # The throttle holds for the sweep: one lane of %2, each array job after the one before it.
    assert "at most 2 element(s) of the sweep at once" in proc.stdout
    assert "array 0-2%2, after slurm_001 ended" in proc.stdout
    assert "#SBATCH --gres=gpu:1" in proc.stdout


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ({"walltime": "1:2:3:4"}, "sweep.yaml:5: resources.walltime: invalid walltime '1:2:3:4'"),
        ({"gpus": -1}, "sweep.yaml:5: resources.gpus: must be at least 0, got -1"),
        ({"walltim": "04:00:00"}, "sweep.yaml:5: resources.walltim: unknown key 'walltim', did you mean 'walltime'?"),
        ({"slrum": {"extra_directives": ["--x"]}}, "sweep.yaml:5: resources.slrum: unknown key 'slrum', did you mean 'slurm'?"),
        ({"partition": "gpu\n#SBATCH --uid=0"}, "resources.partition: 'gpu\\n#SBATCH --uid=0' cannot be used in a job script"),
        ({"memory": "lots"}, "sweep.yaml:5: resources.memory: invalid memory 'lots'"),
    ],
)
def test_a_bad_resource_is_one_line_with_file_line_and_key(project: Project, resources: dict, expected: str) -> None:
    cfg = project.write_sweep({"grid": {"x": [1]}, "resources": resources})
    for args in (("run", "--config", str(cfg), "--dry-run"), ("config", "validate", "--config", str(cfg))):
        proc = project.hsm(*args)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert expected in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert project.sweep_ids() == []


def test_a_directive_for_another_scheduler_is_refused_naming_the_sweep_file(cluster_project: Project, tmp_path: Path) -> None:
    cfg = cluster_project.write_sweep({"grid": {"x": [1]}, "resources": {"extra_directives": ["#SBATCH --exclusive"]}})
    proc = cluster_project.hsm("run", "--config", str(cfg), "--sources", "pbs")
    assert proc.returncode == 2
    assert "sweep.yaml:5: resources.extra_directives[0]: '#SBATCH --exclusive' is not a PBS directive" in proc.stderr
    assert "resources.pbs.extra_directives" in proc.stderr
    assert not (tmp_path / "SUBMITTED").exists() and cluster_project.sweep_ids() == []


def test_bad_flags_exit_2_in_one_line(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [1]}})
    proc = project.hsm("run", "--config", str(cfg), "--dry-run", "--walltime", "1:2:3:4")
    assert proc.returncode == 2 and "Error: --walltime: invalid walltime '1:2:3:4'" in proc.stderr
    proc = project.hsm("run", "--config", str(cfg), "--dry-run", "--gpus", "-1")
    assert proc.returncode == 2 and "Error: --gpus: expected a number of GPUs or TYPE:N, got '-1'" in proc.stderr


def test_gpus_on_the_command_line_with_only_local_and_no_gpu_slots_is_an_error(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [1]}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", "local", "--gpus", "1")
    assert proc.returncode == 2
    assert "--gpus applies to batch schedulers and sources with GPU slots; the local source ignores it" in proc.stderr
    assert "compute.local.gpus" in proc.stderr
    assert project.sweep_ids() == []
    proc = project.hsm("run", "--config", str(cfg), "--sources", "local", "--walltime", "1h")
    assert proc.returncode == 2 and "--walltime applies to batch schedulers" in proc.stderr


def test_the_sweep_files_resources_on_local_are_one_warning_and_the_run_goes_on(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [1]}, "resources": {"walltime": "4h", "partition": "gpu"}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", "local")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("Warning:")]
    assert warnings == ["Warning: resources walltime, partition of sweeps/sweep.yaml apply to batch schedulers; "
                        "the local source ignores them"], proc.stderr


GPU_SCRIPT = textwrap.dedent("""\
    import os, sys
    with open(os.path.join(os.environ["HSM_COUNT_DIR"], "gpus.log"), "a") as fh:
        fh.write(os.environ.get("CUDA_VISIBLE_DEVICES", "-") + "\\n")
    """)


def test_gpus_go_to_local_gpu_slots_as_gpus_per_task(tmp_path: Path) -> None:
    extra = "    gpus: [0, 1, 2, 3]\n"  # under compute.local
    project = make_project(tmp_path / "proj", config_extra="", script=GPU_SCRIPT)
    cfg_file = project.root / "hsm_config.yaml"
    cfg_file.write_text(cfg_file.read_text().replace("    kill_grace: 2\n", "    kill_grace: 2\n" + extra))
    cfg = project.write_sweep({"grid": {"x": [1, 2]}, "resources": {"gpus": 2}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", "local")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Warning" not in proc.stderr
    seen = sorted((project.root / "gpus.log").read_text().split())
    assert seen == ["0,1", "2,3"]  # two tasks at once, two GPUs each, none shared
    proc = project.hsm("run", "--config", str(cfg), "--sources", "local", "--gpus", "1")  # the flag wins
    assert proc.returncode == 0, proc.stderr
    assert all("," not in g for g in (project.root / "gpus.log").read_text().split()[2:])
    # hsm complete asks for what the run's command line asked for (unless its own flags say otherwise).
    import yaml

    latest = project.outputs / project.sweep_ids()[-1]
    assert yaml.safe_load((latest / "sweep_metadata.yaml").read_text())["command_line_resources"] == {"gpus": 1}


# Golden scripts: a sweep file's resources over a project's hpc: settings, as each scheduler
# plugin's pure renderer writes them (the path a run takes: apply_resources -> the source's options
# -> resources_from_options -> ArrayJob -> render).
GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("flavour", ["slurm", "pbs", "torque"])
def test_sweep_resources_render_as_golden_job_scripts(flavour: str) -> None:
    from hsm_core.plugin import ArrayJob, resources_from_options
    from hsm_core.plugin.arrayjob.directives import scoped_directives
    from hsm_core.registry import get_registry
    from hsm_core.run_resources import apply_resources, from_command_line
    from hsm_core.sources import SourceRequest
    from hsm_core.sweep import spec_from_dict
    from hsm_core.testing.project import assert_golden

    registry = get_registry()
    spec = spec_from_dict({"grid": {"x": [1]}, "resources": dict(SWEEP["resources"], cpus=4, account="acct", nodes=1)}, registry)
    from hsm_core.run_resources import run_resources

    chosen = run_resources(spec, registry, from_command_line({"walltime": "90m"}))
    project_hpc = {"default_walltime": "01:00:00", "queue": "short", "extra_directives": ["-V"] if flavour != "slurm" else ["--export=ALL"]}
    if flavour != "pbs":
        project_hpc["qos"] = "normal"  # PBS Pro has no qos directive (its plugin refuses one)
    req = SourceRequest(flavour, flavour, None, project_hpc)
    apply_resources([req], registry, chosen)
    cls = registry.get("compute_source", flavour).load()
    job = ArrayJob(name="hsm_sweep_x_001", size=10, list_file="/p/sweeps/outputs/sweep_x/scripts/job_scripts/x_001.list",
                   project_root="/p", runner=("hsm-task",), source=flavour, parallelism=4,
                   log_dir="/p/sweeps/outputs/sweep_x/logs/jobs", resources=resources_from_options(req.options),
                   extra_directives=scoped_directives(req.options, prefix=cls.directive_prefix, scopes=cls.directive_scopes,
                                                      foreign_forms=cls.foreign_directive_forms, scheduler=cls.scheduler_name))
    if flavour == "slurm":
        from hsm_plugin_slurm.script import render_slurm_script

        text = render_slurm_script(job)
    else:
        from hsm_plugin_pbs.script import render_pbs_script

        text = render_pbs_script(job, flavour)
    assert_golden(text, GOLDEN / f"resources_{flavour}.sh")
