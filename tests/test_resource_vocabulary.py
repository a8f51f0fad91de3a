"""The richer resource vocabulary, per-task resources and job-script hygiene (issue 16), without a
cluster: the rendering of each scheduler (pure functions), what a scheduler cannot express (one
line, exit 2, with file and line), raw directives scoped to one scheduler, per-task rules and
their array jobs in ``--dry-run``, and the setup-command check run by a real shell and the real
task runner."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from hsm_core.plugin import ArrayJob, ConfigError, Resources, resources_from_options
from hsm_core.plugin.arrayjob.per_task import group_tasks, options_for, parse_rules
from hsm_core.testing.project import make_project
from hsm_plugin_pbs.script import render_pbs_script, render_pbs_worker_script
from hsm_plugin_slurm.script import render_slurm_script, render_slurm_worker_script

JOB = ArrayJob(name="hsm_s_001", size=4, list_file="/p/sweeps/outputs/s/scripts/job_scripts/x_001.list", project_root="/p",
               runner=("hsm-task",), source="x", log_dir="/p/sweeps/outputs/s/logs/jobs")

EVERYTHING = {"walltime": "2h", "cpus": 4, "memory_per_cpu": "4G", "gpus": "a100:2", "gpus_per_task": 1, "nodes": 2,
              "partition": "gpu", "account": "proj", "qos": "high", "exclusive": True, "constraint": "a100&ib",
              "reservation": "maint", "mail_user": "me@example.org", "mail_type": ["end", "fail"]}


def _directives(text: str, prefix: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith(prefix)]


# ---------------------------------------------------------------- Slurm

def test_slurm_renders_every_key_of_the_vocabulary() -> None:
    text = render_slurm_script(dataclasses.replace(JOB, resources=resources_from_options(EVERYTHING)))
    for line in ("--time=02:00:00", "--nodes=2", "--cpus-per-task=4", "--mem-per-cpu=4G", "--gres=gpu:a100:2",
                 "--gpus-per-task=1", "--partition=gpu", "--account=proj", "--qos=high", "--exclusive",
                 "--constraint=a100&ib", "--reservation=maint", "--mail-user=me@example.org", "--mail-type=END,FAIL"):
        assert f"#SBATCH {line}" in text.splitlines()


def test_slurm_array_and_worker_scripts_render_resources_once_in_one_order() -> None:
    job = dataclasses.replace(JOB, resources=resources_from_options(EVERYTHING))
    array = _directives(render_slurm_script(job), "#SBATCH")
    worker = _directives(render_slurm_worker_script(dataclasses.replace(job, command=("hsm", "worker"))), "#SBATCH")
    resources = [ln for ln in array if not ln.startswith(("#SBATCH --job-name", "#SBATCH --array", "#SBATCH --output",
                                                           "#SBATCH --error", "#SBATCH --open-mode"))]
    assert [ln for ln in worker if ln in resources] == resources  # same lines, same order
    assert len(array) == len(set(array)) and len(worker) == len(set(worker))  # nothing twice


def test_slurm_logs_are_absolute_and_quoted_when_the_path_has_spaces() -> None:
    text = render_slurm_script(dataclasses.replace(JOB, log_dir="/home/me/my project/sweeps/outputs/s/logs/jobs"))
    path = '"/home/me/my project/sweeps/outputs/s/logs/jobs/%x_%A_%a.out"'
    assert f"#SBATCH --output={path}" in text and f"#SBATCH --error={path}" in text
    with pytest.raises(ConfigError):
        render_slurm_script(dataclasses.replace(JOB, log_dir='/p/a"\n#SBATCH --uid=0'))


def test_more_than_one_node_runs_the_command_under_srun() -> None:
    one = render_slurm_script(dataclasses.replace(JOB, resources=Resources(nodes=1)))
    two = render_slurm_script(dataclasses.replace(JOB, resources=Resources(nodes=2)))
    assert "HSM_TASK_LAUNCHER" not in one
    assert 'export HSM_TASK_LAUNCHER="srun --kill-on-bad-exit=1"' in two


def test_slurm_cannot_take_memory_and_memory_per_cpu_together() -> None:
    with pytest.raises(ConfigError, match="memory or memory_per_cpu"):
        render_slurm_script(dataclasses.replace(JOB, resources=Resources(memory_mb=1024, memory_per_cpu_mb=512)))


# ---------------------------------------------------------------- PBS Pro and Torque

def test_pbs_pro_and_torque_render_what_they_can() -> None:
    res = resources_from_options({"walltime": "1h", "exclusive": True, "mail_user": "me@example.org",
                                  "mail_type": "end,fail", "nodes": 1, "cpus": 2})
    pbs = render_pbs_script(dataclasses.replace(JOB, resources=res), "pbs").splitlines()
    torque = render_pbs_script(dataclasses.replace(JOB, resources=dataclasses.replace(
        res, constraint="a100&ib", memory_per_cpu_mb=4096)), "torque").splitlines()
    for line in ("#PBS -l place=excl", "#PBS -M me@example.org", "#PBS -m ea", "#PBS -o /p/sweeps/outputs/s/logs/jobs/",
                 "#PBS -e /p/sweeps/outputs/s/logs/jobs/"):
        assert line in pbs
    for line in ("#PBS -l nodes=1:ppn=2:a100:ib", "#PBS -l pmem=4gb", "#PBS -l naccesspolicy=singlejob", "#PBS -m ea"):
        assert line in torque
    reservation = render_pbs_script(dataclasses.replace(JOB, resources=Resources(reservation="R123")), "pbs")
    assert "#PBS -q R123" in reservation.splitlines()


@pytest.mark.parametrize("flavour, field, value, said", [
    ("pbs", "constraint", "a100", "PBS Pro has no node constraints"),
    ("pbs", "gpu_type", "a100", "PBS Pro has no GPU types"),
    ("torque", "gpu_type", "a100", "Torque has no GPU types"),
    ("pbs", "gpus_per_task", 1, "no GPUs per task"),
    ("pbs", "memory_per_cpu_mb", 1024, "PBS Pro has no memory per CPU"),
    ("torque", "reservation", "R1", "Torque has no reservation directive"),
    ("torque", "constraint", "a100|v100", "names joined by &"),
    ("pbs", "qos", "high", "PBS Pro has no QOS directive"),
    ("torque", "mail_type", ("requeue",), "not requeue"),
])
def test_what_a_pbs_flavour_cannot_express_is_an_error_never_dropped(flavour: str, field: str, value, said: str) -> None:
    res = dataclasses.replace(Resources(gpus=2), **{field: value})
    with pytest.raises(ConfigError, match=said):
        render_pbs_script(dataclasses.replace(JOB, resources=res), flavour)
    with pytest.raises(ConfigError, match=said):
        render_pbs_worker_script(dataclasses.replace(JOB, resources=res, command=("hsm", "worker")), flavour)


# ---------------------------------------------------------------- per-task rules

class _Task:
    def __init__(self, index: int, params: dict) -> None:
        self.index, self.params = index, params


def test_rules_apply_in_order_and_group_tasks_with_equal_resources() -> None:
    options = {"walltime": "1h", "queue": "short", "per_task_resources": [
        {"when": {"model": "large"}, "walltime": "4h", "gpus": "a100:2"},
        {"when": {"model": ["large", "xl"], "opt.lr": 0.1}, "walltime": "8h", "partition": "long"},
    ]}
    rules = parse_rules(options)
    assert options_for(options, rules, {"model": "large", "opt": {"lr": 0.1}})["walltime"] == "8h"
    # A rule's partition replaces the project's queue (one key, two spellings).
    assert "queue" not in options_for(options, rules, {"model": "xl", "opt.lr": 0.1})
    tasks = [_Task(i, {"model": m, "opt": {"lr": lr}}) for i, (m, lr) in enumerate(
        [("small", 0.1), ("large", 0.2), ("large", 0.1), ("xl", 0.1), ("small", 0.2), ("large", 0.2)], start=1)]
    groups = group_tasks(options, rules, tasks, resources_from_options)
    assert [[t.index for t in members] for _, members in groups] == [[1, 5], [2, 6], [3], [4]]
    walltimes = [res.walltime for res, _ in groups]
    assert walltimes == [3600, 4 * 3600, 8 * 3600, 8 * 3600]
    assert groups[1][0].gpu_type == "a100" and groups[3][0].gpus is None and groups[3][0].partition == "long"


# ---------------------------------------------------------------- the real hsm command

def _fake_scheduler(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("sbatch", "qsub"):
        (bin_dir / name).write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'SUBMITTED'}\nexit 1\n")
    for name in ("squeue", "scancel", "qstat", "qdel"):
        (bin_dir / name).write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "scontrol").write_text("#!/bin/sh\necho 'MaxArraySize            = 1001'\n")
    for p in bin_dir.iterdir():
        p.chmod(0o755)
    return bin_dir


@pytest.fixture
def cluster_project(tmp_path: Path):
    bin_dir = _fake_scheduler(tmp_path)
    path = f"{bin_dir}:{os.environ['PATH']}"
    extra = textwrap.dedent(f"""\
        hpc:
          env: {{PATH: "{path}"}}
          default_walltime: "01:00:00"
          extra_directives: {{slurm: ["--comment=mine"], pbs: ["-V"]}}
        """)
    return make_project(tmp_path / "proj", config_extra=extra, env={"PATH": path})


PER_TASK_SWEEP = {
    "grid": {"model": ["small", "large", "xl"], "seed": [0, 1]},
    "resources": {"walltime": "30m", "mail_type": "fail", "per_task": [
        {"when": {"model": "large"}, "walltime": "2h", "gpus": 2},
        {"when": {"model": ["xl"]}, "walltime": "4h", "exclusive": True},
    ]},
}


def test_dry_run_shows_one_array_job_per_set_of_resources(cluster_project, tmp_path: Path) -> None:
    cfg = cluster_project.write_sweep(PER_TASK_SWEEP)
    out = json.loads(cluster_project.hsm("run", "--config", str(cfg), "--sources", "slurm", "--dry-run", "--json",
                                         check=True).stdout)
    chunks = out["job_scripts"][0]["chunks"]
    assert [c["task_indices"] for c in chunks] == [[1, 2], [3, 4], [5, 6]]
    assert [c["resources"] for c in chunks] == ["walltime 00:30:00, mail_type fail",
                                               "walltime 02:00:00, gpus 2, mail_type fail",
                                               "walltime 04:00:00, exclusive, mail_type fail"]
    assert "#SBATCH --gres=gpu:2" in chunks[1]["script"] and "#SBATCH --exclusive" in chunks[2]["script"]
    for c in chunks:  # the project's Slurm directive, and never its PBS one
        assert "#SBATCH --comment=mine" in c["script"] and "-V" not in c["script"]
    assert out["resources"]["per_task"][0] == {"when": {"model": "large"}, "walltime": "02:00:00", "gpus": 2}
    text = cluster_project.hsm("run", "--config", str(cfg), "--sources", "torque", "--dry-run", check=True).stdout
    assert "per-task resources: 3 sets of resources" in text and "#PBS -V" in text and "--comment" not in text
    assert not (tmp_path / "SUBMITTED").exists()


@pytest.mark.parametrize("resources, sources, said", [
    ({"constraint": "a100"}, "pbs", "sweep.yaml:4: resources.constraint: PBS Pro has no node constraints"),
    ({"per_task": [{"when": {"model": "large"}, "gpus": "a100:2"}]}, "torque",
     "sweep.yaml:4: resources.per_task[0].gpus: Torque has no GPU types"),
    ({"per_task": [{"when": {"modle": "large"}, "walltime": "2h"}]}, "slurm",
     "sweep.yaml:4: resources.per_task[0].when.modle: the sweep has no parameter 'modle', did you mean 'model'?"),
    ({"per_task": [{"when": {"model": "large"}, "walltime": "forever"}]}, "slurm",
     "sweep.yaml:4: resources.per_task[0].walltime: invalid walltime 'forever'"),
    ({"per_task": [{"when": {"model": "large"}, "nodes": 2, "colour": "red"}]}, "slurm",
     "sweep.yaml:4: resources.per_task[0].colour: a per-task rule cannot set 'colour'"),
    ({"extra_directives": {"slrum": ["--exclusive"]}}, "slurm",
     "sweep.yaml:4: resources.extra_directives.slrum: 'slrum' is not a batch scheduler, did you mean 'slurm'?"),
    ({"extra_directives": {"pbs": ["--signal=B:USR1@60"]}}, "pbs",
     "sweep.yaml:4: resources.pbs.extra_directives[0]: '--signal=B:USR1@60' is not a PBS directive"),
    ({"extra_directives": ["-l walltime=01:00:00"]}, "slurm",
     "sweep.yaml:4: resources.extra_directives[0]: '-l walltime=01:00:00' is not a Slurm directive"),
    ({"mail_type": "sometimes"}, "slurm", "sweep.yaml:4: resources.mail_type: unknown mail type 'sometimes'"),
    ({"gpus": "a100:x"}, "slurm", "sweep.yaml:4: resources.gpus: expected a number of GPUs or TYPE:N"),
])
def test_bad_or_inexpressible_resources_stop_the_run_in_one_line(cluster_project, tmp_path: Path, resources, sources,
                                                                  said: str) -> None:
    # Each resource on its own line (4, 5 ...), its value in flow style: the lines are known.
    cfg = cluster_project.root / "sweeps" / "sweep.yaml"
    cfg.parent.mkdir(exist_ok=True)
    cfg.write_text("grid:\n  model: [small, large]\nresources:\n"
                   + "".join(f"  {key}: {json.dumps(value)}\n" for key, value in resources.items()))
    proc = cluster_project.hsm("run", "--config", str(cfg), "--sources", sources, "--dry-run")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert said in proc.stderr and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "SUBMITTED").exists()


def test_a_project_directive_for_another_scheduler_never_reaches_a_pbs_script(tmp_path: Path) -> None:
    bin_dir = _fake_scheduler(tmp_path)
    path = f"{bin_dir}:{os.environ['PATH']}"
    project = make_project(tmp_path / "proj", env={"PATH": path}, config_extra=textwrap.dedent(f"""\
        hpc:
          env: {{PATH: "{path}"}}
          extra_directives: ["--signal=B:USR1@60"]
        """))
    cfg = project.write_sweep({"grid": {"x": [1]}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", "torque")
    assert proc.returncode == 2 and "'--signal=B:USR1@60' is not a Torque directive" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "SUBMITTED").exists()


# ---------------------------------------------------------------- setup commands, really run

def _task_dir(root: Path, name: str) -> Path:
    task = root / "sweep" / "tasks" / name
    task.mkdir(parents=True)
    marker = root / f"{name}.ran"
    (task / "command.json").write_text(json.dumps({
        "argv": [sys.executable, "-c", f"open({str(marker)!r}, 'w').write('ran')"], "cwd": str(root),
        "task_id": name, "index": 1}))
    (task / "status.yaml").write_text(yaml.safe_dump({"state": "submitted", "task_id": name}))
    return task


@pytest.mark.parametrize("setup, fails", [
    (["export A=1", "false # a comment", "echo never"], "setup command 2 exited 1: false # a comment"),
    (["source /nonexistent/venv/bin/activate"], "setup command 1 exited 1: source /nonexistent/venv/bin/activate"),
    (["export A=1", "true &"], None),
])
def test_a_failing_setup_command_records_the_task_failed_and_runs_nothing(tmp_path: Path, setup, fails) -> None:
    tasks = [_task_dir(tmp_path, "task_001"), _task_dir(tmp_path, "task_002")]
    jobs = tmp_path / "sweep" / "scripts" / "job_scripts"
    jobs.mkdir(parents=True)
    (jobs / "x_001.list").write_text("../../tasks/task_001\n../../tasks/task_002\n")
    job = dataclasses.replace(JOB, list_file=str(jobs / "x_001.list"), project_root=str(tmp_path),
                              runner=(sys.executable, "-m", "hsm_core.runner"), setup_commands=tuple(setup),
                              log_dir=str(tmp_path / "logs"))
    script = jobs / "x_001.sh"
    script.write_text(render_slurm_script(job))
    env = {**os.environ, "SLURM_ARRAY_TASK_ID": "1", "SLURM_JOB_ID": "77"}
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
    status = yaml.safe_load((tasks[1] / "status.yaml").read_text())
    untouched = yaml.safe_load((tasks[0] / "status.yaml").read_text())
    assert untouched["state"] == "submitted"  # element 1 is task_002 only
    if fails is None:
        assert proc.returncode == 0 and status["state"] == "completed" and (tmp_path / "task_002.ran").exists()
        return
    assert proc.returncode == 1 and fails in proc.stderr
    assert status["state"] == "failed" and status["error"] == fails and status["exit_code"] == 1
    assert status["job_id"] == "77" and status["attempt"] == 1
    assert not (tmp_path / "task_002.ran").exists()


def test_the_launcher_variable_prefixes_the_task_command(tmp_path: Path) -> None:
    from hsm_core.jobenv import TASK_LAUNCHER
    from hsm_core.plugin import LAUNCHER_VARIABLE

    assert LAUNCHER_VARIABLE == TASK_LAUNCHER  # the plugin API's name is the runner's
    task = _task_dir(tmp_path, "task_001")
    seen = tmp_path / "launcher_saw"
    launcher = tmp_path / "launch.sh"
    launcher.write_text(f'#!/bin/sh\necho "$@" > {seen}\nshift\nexec "$@"\n')  # as srun: its options, then the command
    launcher.chmod(0o755)
    env = {**os.environ, TASK_LAUNCHER: f"{launcher} --flag"}
    proc = subprocess.run([sys.executable, "-m", "hsm_core.runner", str(task), "--source", "x"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert seen.read_text().startswith(f"--flag {sys.executable} -c") and (tmp_path / "task_001.ran").exists()


def test_a_misspelt_scheduler_under_the_projects_extra_directives_is_refused(tmp_path: Path) -> None:
    bin_dir = _fake_scheduler(tmp_path)
    path = f"{bin_dir}:{os.environ['PATH']}"
    project = make_project(tmp_path / "proj", env={"PATH": path}, config_extra=textwrap.dedent(f"""\
        hpc:
          env: {{PATH: "{path}"}}
          extra_directives:
            slrum: ["--exclusive"]
        """))
    cfg = project.write_sweep({"grid": {"x": [1]}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", "slurm", "--dry-run")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = (project.root / "hsm_config.yaml").read_text().splitlines().index("    slrum: [\"--exclusive\"]") + 1
    assert f"hsm_config.yaml:{line}: hpc.extra_directives.slrum: 'slrum' is not a batch scheduler, did you mean 'slurm'?" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
