"""File modes follow the user's umask, except for secrets (issue 17).

Sweeps live on shared project storage: with ``umask 022`` a colleague must be able to read the
status files, the sweep file, the logs, the reports and exports; with ``umask 077`` nobody else
may. Files that hold a secret (a token in a task's environment, an API key in ``hsm_config.yaml``)
are ``0600`` whatever the umask. Each test runs the real ``hsm`` under the umask it checks.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hsm_project import Project

API_KEY = "0123456789abcdef0123456789abcdef01234567"


def hsm_with_umask(project: Project, umask: int, *args: str) -> subprocess.CompletedProcess:
    """The real ``hsm`` started under ``umask`` (as a user's shell would start it)."""
    cmd = f"umask {umask:03o}; exec \"$0\" -m hsm_core \"$@\""
    return subprocess.run(["sh", "-c", cmd, sys.executable, *args], cwd=project.root, env=project.environ(),
                          capture_output=True, text=True, timeout=180)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_a_sweep_and_everything_made_from_it_follow_the_umask(project: Project, umask: int) -> None:
    cfg = project.write_sweep({"grid": {"x": [1, 2], "exit": [0, 1]}})
    run = hsm_with_umask(project, umask, "run", "--config", str(cfg), "--sweep-id", "shared")
    assert run.returncode == 1, run.stdout + run.stderr  # two tasks fail on purpose: error files too
    sweep = project.outputs / "shared"
    export = project.root / "results.csv"
    for args in (("report", "shared"), ("export", "shared", "--output", str(export)), ("monitor", "errors", "shared"),
                 ("export", "shared", "--format", "json", "--output", str(project.root / "results.json"))):
        res = hsm_with_umask(project, umask, *args)
        assert res.returncode == 0, (args, res.stdout, res.stderr)

    expected = 0o666 & ~umask
    named = [
        sweep / "sweep_config.yaml", sweep / "sweep_metadata.yaml", sweep / "task_mapping.yaml",
        sweep / "logs" / "sweep.log", sweep / "logs" / "errors" / "failed_tasks.yaml",
        sweep / "reports" / "completion_report.html", export, project.root / "results.json",
    ]
    for d in (sweep / "tasks").iterdir():
        named += [d / "status.yaml", d / "params.yaml", d / "command.json", d / "stdout.log", d / "stderr.log"]
    for path in named:
        assert path.is_file(), path
    # Not only the files named here: nothing hsm wrote in the sweep is more private or more open.
    wrong = {str(p.relative_to(project.root)): oct(mode(p)) for p in files_under(sweep) if mode(p) != expected}
    assert wrong == {}, f"expected {oct(expected)} under umask {umask:03o}"
    for path in (export, project.root / "results.json"):
        assert mode(path) == expected, path
    for d in (sweep, sweep / "tasks", sweep / "logs", sweep / "reports"):
        assert mode(d) == 0o777 & ~umask, d


def test_a_secret_in_a_tasks_environment_keeps_its_command_file_owner_only(tmp_path: Path) -> None:
    """A plugin's ``hsm_task_env`` may hand a task a token: ``command.json`` then holds it, and is
    ``0600`` even under ``umask 022``; without one it follows the umask."""
    from hsm_core.prepare import CommandPlan, write_task
    from hsm_core.state import SweepDir, TaskRecord

    sweep = SweepDir(tmp_path / "sweep_modes")
    sweep.create_layout()
    plan = CommandPlan(None, sys.executable, "train.py", "hydra", tmp_path)
    old = os.umask(0o022)
    try:
        write_task(sweep, TaskRecord(1, "a" * 12, {"x": 1}), plan, {"HF_TOKEN": API_KEY})
        write_task(sweep, TaskRecord(2, "b" * 12, {"x": 2}), plan, {"WANDB_PROJECT": "demo"})
    finally:
        os.umask(old)
    secret_file = sweep.task_dir(1) / "command.json"
    assert json.loads(secret_file.read_text())["env"]["HF_TOKEN"] == API_KEY
    assert mode(secret_file) == 0o600
    assert mode(sweep.task_dir(2) / "command.json") == 0o644
    assert mode(sweep.task_dir(1) / "params.yaml") == 0o644  # only the file with the secret


def test_config_set_of_a_secret_in_a_new_config_is_owner_only_under_umask_022(project: Project) -> None:
    (project.root / "hsm_config.yaml").unlink()
    res = hsm_with_umask(project, 0o022, "config", "set", "compute.health_check_interval", "60")
    assert res.returncode == 0, res.stderr
    path = project.root / "hsm_config.yaml"
    assert mode(path) == 0o644  # an ordinary setting: as the umask says
    assert hsm_with_umask(project, 0o022, "config", "set", "distributed.remotes.srv.host", "gpu1.example.org").returncode == 0
    assert mode(path) == 0o644
    res = hsm_with_umask(project, 0o022, "config", "set", "distributed.remotes.srv.env.WANDB_API_KEY", API_KEY)
    assert res.returncode == 0, res.stderr
    assert mode(path) == 0o600
