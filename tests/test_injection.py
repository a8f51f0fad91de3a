"""Hostile values never execute and never escape: what the existing tests do not already cover.

Already covered elsewhere (not repeated here): shell syntax in parameter values run locally
(tests/test_cli_run.py), sweep ids with '/' and '..' (same file), hostile values, remote names and
remote paths over a real sshd (hsm_plugin_ssh/tests/test_ssh_security.py), and each directive value
of the pure job-script renderers (hsm_plugin_slurm/tests/test_slurm_script.py,
hsm_plugin_pbs/tests/test_pbs_script.py).

Here: option-like values (``-rf``, ``--help``) read by a real argparse script; sweep ids with shell
syntax, newlines and leading dashes on every command that takes one; worker sweep names; SSH hosts
and users that look like ssh options (``-oProxyCommand=...``: ssh runs it) in remotes, sync targets
and ``--from``; and, end to end through the real Slurm and Torque front-end, that parameter values
and configured resources can neither run as shell code nor add a ``#SBATCH`` / ``#PBS`` line.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from hsm_project import Project
from hsm_core.testing.services import ServiceUnavailable, require_service, start_slurm

#: Shell syntax, a newline that would start a directive, and option-like words. "{d}" is the
#: directory where an injection would leave its PWNED file.
HOSTILE = [
    "$(touch {d}/PWNED1)",
    "; touch {d}/PWNED2 #",
    "`touch {d}/PWNED3`",
    "x\n#SBATCH --uid=0\n#PBS -u root\ntouch {d}/PWNED4",
    "-rf",
    "--help",
    "--output=/etc/passwd",
    "' ; touch {d}/PWNED5 ; '",
]

ARGPARSE_SCRIPT = r'''
import argparse, json, os
p = argparse.ArgumentParser()
p.add_argument("--name")
p.add_argument("--lr", type=float)
args = p.parse_args()
with open(os.path.join(os.environ["HSM_TASK_DIR"], "parsed.json"), "w") as fh:
    json.dump(vars(args), fh)
'''


def pwned(*dirs: Path) -> list[Path]:
    found: list[Path] = []
    for d in dirs:
        found += list(d.rglob("PWNED*")) if d.is_dir() else []
    return found + list(Path.cwd().glob("PWNED*")) + list(Path.home().glob("PWNED*"))


def hostile(d: Path) -> list[str]:
    return [v.format(d=d) for v in HOSTILE]


def one_line_exit_2(proc, *needles: str) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in proc.stderr, proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


# --------------------------------------------------------------------------------------------
# Locally
# --------------------------------------------------------------------------------------------


def test_option_like_values_stay_values_for_an_argparse_script(project: Project) -> None:
    """With args_style: argparse, "--name -rf" would make argparse read -rf as options, and
    "--name --help" would print the help and exit 0: a task "completed" that never ran. hsm passes
    such values as "--name=-rf"."""
    (project.root / "train.py").write_text(ARGPARSE_SCRIPT)
    # ("--" itself is not here: Python's argparse drops it even from "--name=--", before 3.13.)
    values = ["-rf", "--help", "--lr=5", "-", "plain", "-x y"]
    cfg = project.write_sweep({"args_style": "argparse", "grid": {"name": values, "lr": [-0.5]}})
    proc = project.hsm("run", "--config", str(cfg), "--sweep-id", "ap")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    parsed = []
    for d in sorted((project.outputs / "ap" / "tasks").iterdir()):
        parsed.append(json.loads((d / "parsed.json").read_text()))
    assert sorted(p["name"] for p in parsed) == sorted(values)
    assert {p["lr"] for p in parsed} == {-0.5}


BAD_IDS = ["$(touch PWNED_ID)", "a;touch PWNED_ID", "a\ntouch PWNED_ID", "-rf", "--help", "a b", "`id`",
           ".hidden", "x" * 129]


def test_hostile_sweep_ids_are_refused_by_every_command(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from hsm_core.cli.main import build_cli

    cfg = project.write_sweep({"grid": {"x": [1]}})
    monkeypatch.chdir(project.root)
    for bad in BAD_IDS:
        if bad in BAD_IDS[:3]:  # the real command line, for a few (each costs an interpreter start)
            one_line_exit_2(project.hsm("run", "--config", str(cfg), f"--sweep-id={bad}"), "invalid sweep id")
        for args in (("run", "--config", str(cfg), f"--sweep-id={bad}"), ("status", "--", bad), ("complete", "--", bad),
                     ("export", "--", bad), ("cancel", "--", bad), ("monitor", "watch", "--once", "--", bad)):
            result = CliRunner().invoke(build_cli(), list(args))
            assert result.exit_code == 2, (args, result.output)
            assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
    assert project.sweep_ids() == [] and not (project.root / "sweeps" / "outputs").exists()
    assert pwned(project.root) == []


def test_worker_sweep_names_cannot_escape_the_output_dir(project: Project, tmp_path: Path) -> None:
    name = "../../escape $(touch PWNED_W)\n--help"
    cfg = project.write_sweep({"name": name, "grid": {"x": [1]}}, name="w.yaml")
    proc = project.hsm("worker", "--sweep", str(cfg), env={"HSM_DISABLE_PLUGINS": "all"})
    assert proc.returncode == 0, proc.stderr
    (group,) = [p for p in project.outputs.iterdir()]
    assert group.parent == project.outputs and "/" not in group.name and not group.name.startswith(("-", "."))
    assert yaml.safe_load(next((group / "tasks").glob("*/status.yaml")).read_text())["state"] == "completed"
    assert not (tmp_path / "escape").exists() and not list(tmp_path.glob("*escape*"))
    assert pwned(tmp_path) == []


# --------------------------------------------------------------------------------------------
# SSH hosts and users that ssh would read as options
# --------------------------------------------------------------------------------------------

PROXY = "-oProxyCommand=touch {d}/PWNED_SSH"


@pytest.mark.parametrize("field", ["host", "user"])
def test_option_like_ssh_host_or_user_of_a_remote_is_refused(project: Project, field: str) -> None:
    pytest.importorskip("hsm_plugin_ssh", reason="hsm-plugin-ssh is not installed")
    entry = {"host": "127.0.0.1", "user": "me", "python_interpreter": sys.executable}
    entry[field] = PROXY.format(d=project.root)
    data = yaml.safe_load((project.root / "hsm_config.yaml").read_text())
    data["distributed"] = {"remotes": {"evil": entry}}
    (project.root / "hsm_config.yaml").write_text(yaml.safe_dump(data))
    cfg = project.write_sweep({"grid": {"x": [1]}})
    for args in (("run", "--config", str(cfg), "--sources", "ssh:evil"), ("remote", "sync", "evil"),
                 ("sync", "pull", "--from", "evil:/tmp/exp", "--dry-run")):
        proc = project.hsm(*args, env={"HOME": str(project.root)}, timeout=60)
        assert proc.returncode in (1, 2) and "Traceback" not in proc.stderr, (args, proc.stdout, proc.stderr)
        assert "cannot be used as the SSH" in proc.stdout + proc.stderr, (args, proc.stdout, proc.stderr)
    proc = project.hsm("remote", "test", "evil", env={"HOME": str(project.root)}, timeout=60)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert pwned(project.root) == []
    assert project.sweep_ids() == []


@pytest.mark.parametrize("field", ["host", "user"])
def test_option_like_ssh_host_or_user_of_a_sync_target_is_refused(project: Project, field: str) -> None:
    sync = project.root / ".hsm" / "sync_config.yaml"
    sync.parent.mkdir()
    target = {"host": "127.0.0.1", "paths": {"sweeps": "/tmp/nowhere"}}
    target[field] = PROXY.format(d=project.root)
    sync.write_text(yaml.safe_dump({"default_target": "evil", "sync_targets": {"evil": target}}))
    cfg = project.write_sweep({"grid": {"x": [1]}})
    assert project.hsm("run", "--config", str(cfg), "--sweep-id", "s1").returncode == 0
    for args in (("sync", "list"), ("sync", "to", "s1"), ("sync", "pull", "--from", "evil:/tmp/exp")):
        proc = project.hsm(*args, timeout=60)
        line = one_line_exit_2(proc, f"sync_targets.evil.{field}", "cannot be used as an SSH")
        assert "sync_config.yaml:" in line
    # An ad-hoc user@host in --from goes through the same check.
    sync.unlink()
    proc = project.hsm("sync", "pull", "--from", "-Fevil@host:/tmp/exp", timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert pwned(project.root) == []


# --------------------------------------------------------------------------------------------
# Job scripts, end to end through the real Slurm and its Torque front-end
# --------------------------------------------------------------------------------------------


@pytest.fixture
def cluster():
    pytest.importorskip("hsm_plugin_slurm", reason="hsm-plugin-slurm is not installed")
    try:
        return start_slurm()
    except ServiceUnavailable as exc:
        require_service("slurm", str(exc))


def _hpc_project(tmp_path: Path, cluster, hpc: str):
    from hsm_core.testing.project import make_project

    return make_project(tmp_path / "proj", name="inj", config_extra=hpc, env={"SLURM_CONF": str(cluster.conf)})


def _check_job_scripts(sweep: Path, prefix: str, values: list[str]) -> None:
    scripts = sorted((sweep / "scripts" / "job_scripts").glob("*.sh"))
    assert scripts
    for script in scripts:
        text = script.read_text()
        directives = [ln for ln in text.splitlines() if ln.startswith("#") and not ln.startswith(("#!", "# "))]
        assert all(ln.startswith(prefix + " ") for ln in directives), directives
        assert not any(w in text for w in ("uid", "PWNED", "passwd", "--help", "-rf")), text
        for v in values:
            assert v not in text
    # The values reach the tasks through command.json, as data.
    for d in (sweep / "tasks").iterdir():
        assert json.loads((d / "command.json").read_text())["argv"][-1].startswith("name=")


def test_hostile_values_through_a_real_slurm_array_job(tmp_path: Path, cluster) -> None:
    project = _hpc_project(tmp_path, cluster, 'hpc:\n  system: slurm\n  default_walltime: "00:10:00"\n')
    values = hostile(tmp_path)
    cfg = project.write_sweep({"grid": {"name": values}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", "slurm", "--sweep-id", "inj1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sweep = project.root / "sweeps" / "outputs" / "inj1"
    seen = []
    for d in sorted((sweep / "tasks").iterdir()):
        assert yaml.safe_load((d / "status.yaml").read_text())["state"] == "completed"
        argv = json.loads(next(ln[5:] for ln in (d / "stdout.log").read_text().splitlines() if ln.startswith("ARGV ")))
        seen.append(argv[-1].split("=", 1)[1])
    assert sorted(seen) == sorted(values)
    _check_job_scripts(sweep, "#SBATCH", values)
    assert pwned(tmp_path) == []


@pytest.mark.parametrize(
    "hpc, args",
    [
        ('  partition: "debug\\n#SBATCH --uid=0"\n', ()),
        ('  account: "acct #SBATCH --uid=0"\n', ()),
        ('  qos: "normal\\r#SBATCH --uid=0"\n', ()),
        ('  default_resources: "select=1:ncpus=1\\n#SBATCH --uid=0"\n', ()),
        ('  extra_directives: ["--mail-type=END\\n#SBATCH --uid=0"]\n', ()),
        ('  default_walltime: "00:10:00\\n#SBATCH --uid=0"\n', ()),
        ("", ("sweep", "--mode", "array", "--walltime", "01:00:00\n#SBATCH --uid=0")),
    ],
    ids=["partition", "account", "qos", "resources", "extra-directive", "walltime", "v1-walltime-flag"],
)
def test_a_value_that_would_add_a_directive_is_refused_before_submission(tmp_path: Path, cluster, hpc: str,
                                                                         args: tuple[str, ...]) -> None:
    project = _hpc_project(tmp_path, cluster, "hpc:\n  system: slurm\n" + hpc)
    cfg = project.write_sweep({"grid": {"x": [1]}})
    cmd = (*args, "--config", str(cfg)) if args else ("run", "--config", str(cfg), "--sources", "slurm")
    proc = project.hsm(*cmd, "--sweep-id", "refused")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert len([ln for ln in proc.stderr.splitlines() if ln.strip()]) == 1, proc.stderr
    sweep = project.root / "sweeps" / "outputs" / "refused"
    assert not (sweep / "scripts" / "job_scripts" / "jobs.jsonl").exists()  # nothing was submitted
    assert not list(sweep.glob("scripts/job_scripts/*.sh")) if sweep.exists() else True


def test_hostile_values_through_the_torque_qsub_front_end(tmp_path: Path, cluster) -> None:
    if shutil.which("qsub") is None:
        require_service("pbs", "no qsub on PATH (slurm-wlm-torque is not installed)")
    pytest.importorskip("hsm_plugin_pbs", reason="hsm-plugin-pbs is not installed")
    project = _hpc_project(tmp_path, cluster, 'hpc:\n  system: torque\n  default_walltime: "00:10:00"\n')
    values = hostile(tmp_path)[:4]
    cfg = project.write_sweep({"grid": {"name": values}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", "hpc", "--sweep-id", "inj2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sweep = project.root / "sweeps" / "outputs" / "inj2"
    assert {yaml.safe_load((d / "status.yaml").read_text())["state"] for d in (sweep / "tasks").iterdir()} == {"completed"}
    _check_job_scripts(sweep, "#PBS", values)
    bad = _hpc_project(tmp_path / "bad", cluster, 'hpc:\n  system: torque\n  partition: "batch\\n#PBS -u root"\n')
    cfg = bad.write_sweep({"grid": {"x": [1]}})
    proc = bad.hsm("run", "--config", str(cfg), "--sources", "hpc")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert pwned(tmp_path) == []
