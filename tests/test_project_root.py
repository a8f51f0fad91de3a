"""One project-root resolver (hsm_core.config.project_root): every command finds the same project
whether it is named by the current directory, a symlink to it, a relative or ``~`` --project-dir;
a --project-dir that is not a directory is a one-line error (exit 2) that creates nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hsm_project import Project

from hsm_core.config.project_root import new_project_root, resolve_project_root
from hsm_core.errors import HsmError
from hsm_core.plugin import locate_project


def hsm_in(project: Project, cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The real ``hsm`` run from ``cwd`` (which may be outside the project, or a symlink)."""
    return subprocess.run([sys.executable, "-m", "hsm_core", *args], cwd=cwd, env=project.environ(env),
                          capture_output=True, text=True, timeout=180)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture()
def ran(project: Project) -> Project:
    """The project with one finished sweep ``s1`` of two tasks."""
    project.write_sweep({"grid": {"lr": [0.1, 0.2]}})
    project.hsm("run", "--config", "sweeps/sweep.yaml", "--sources", "local", "--sweep-id", "s1", check=True)
    return project


def test_a_symlinked_cwd_is_the_same_project(ran: Project, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(ran.root, target_is_directory=True)
    # From a subdirectory reached through the link, a new sweep goes into the same outputs ...
    proc = hsm_in(ran, link / "sweeps", "run", "--config", "sweep.yaml", "--sources", "local", "--sweep-id", "s2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in (ran.root / "sweeps" / "outputs").iterdir()) == ["s1", "s2"]
    meta = yaml.safe_load((ran.root / "sweeps" / "outputs" / "s2" / "sweep_metadata.yaml").read_text())
    assert meta["project_root"] == str(ran.root.resolve())
    # ... and a --project-dir naming the link finds the sweeps made from the real path.
    proc = hsm_in(ran, tmp_path, "status", "s1", "--project-dir", "link")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "s1" in proc.stdout
    # Every command names it the same way: by its real path.
    proc = hsm_in(ran, tmp_path, "config", "show", "--project-dir", "link")
    assert proc.stdout.splitlines()[0] == f"# {ran.root.resolve() / 'hsm_config.yaml'}"


def test_relative_and_home_project_dirs(ran: Project, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for given, env in (("../proj", None), ("proj/sweeps/..", None), ("~/proj", {"HOME": str(tmp_path)})):
        cwd = elsewhere if given.startswith("..") else tmp_path
        proc = hsm_in(ran, cwd, "status", "s1", "--project-dir", given, env=env)
        assert proc.returncode == 0, f"{given}: {proc.stdout}{proc.stderr}"
        assert "s1" in proc.stdout
    # hsm config show names the project's file by its absolute path, without '..' in it.
    proc = hsm_in(ran, elsewhere, "config", "show", "--project-dir", "../proj")
    assert proc.stdout.splitlines()[0] == f"# {ran.root.resolve() / 'hsm_config.yaml'}"


@pytest.mark.parametrize("command", [
    ["status"],
    ["run", "--config", "sweeps/sweep.yaml", "--dry-run"],
    ["config", "show"],
    ["config", "set", "compute.health_check_interval", "300"],
    ["sync", "list"],
    ["worker", "--sweep", "SWEEP", "--status"],
])
def test_a_missing_project_dir_is_one_line_and_creates_nothing(project: Project, tmp_path: Path, command: list[str]) -> None:
    sweep = str(project.write_sweep({"grid": {"lr": [0.1]}}))
    before = sorted(tmp_path.rglob("*"))
    proc = hsm_in(project, tmp_path, *[sweep if a == "SWEEP" else a for a in command], "--project-dir", "projj")
    line = one_line_error(proc)
    assert line.startswith("Error: project directory 'projj' does not exist"), line
    assert sorted(tmp_path.rglob("*")) == before  # no projj/hsm_config.yaml, no projj/sweeps/outputs


def test_a_file_as_project_dir_is_refused(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    # (The commands' --project-dir option refuses a file itself; plugins pass what their users typed.)
    monkeypatch.chdir(project.root)
    with pytest.raises(HsmError) as info:
        locate_project("train.py")
    assert str(info.value) == "project directory 'train.py' is not a directory (give the project's directory)"


def test_a_removed_cwd_is_one_line(project: Project, tmp_path: Path) -> None:
    # The shell is in a directory that was removed under it (a rebuilt scratch dir, for example).
    script = 'mkdir gone && cd gone && rmdir ../gone && exec "$0" -m hsm_core status'
    proc = subprocess.run(["sh", "-c", script, sys.executable], cwd=tmp_path, env=project.environ(),
                          capture_output=True, text=True, timeout=60)
    assert one_line_error(proc) == ("Error: the current directory no longer exists "
                                    "(cd to the project, or give --project-dir)")


def test_resolver_without_project_dir_finds_the_nearest_project(project: Project, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    deep = project.root / "src" / "models"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert resolve_project_root() == project.root.resolve()
    assert resolve_project_root("") == project.root.resolve()
    # A v1 project keeps its config in sweeps/; from inside sweeps/ the project is still its parent.
    v1 = tmp_path / "v1"
    (v1 / "sweeps").mkdir(parents=True)
    (v1 / "sweeps" / "hsm_config.yaml").write_text("project: {name: old}\n")
    monkeypatch.chdir(v1 / "sweeps")
    assert resolve_project_root() == v1.resolve()


def test_resolver_with_no_project_anywhere_is_the_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_project_root() == Path(os.getcwd())
    with pytest.raises(HsmError, match="does not exist"):
        resolve_project_root(tmp_path / "missing")


def test_init_makes_its_project_where_it_is_told(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "hsm_config.yaml").write_text("project: {name: outer}\n")
    inner = tmp_path / "inner"
    inner.mkdir()
    monkeypatch.chdir(inner)
    # init never climbs to a project above: it makes one here, or at a directory that may not exist yet.
    assert new_project_root() == inner.resolve()
    assert new_project_root("new/../fresh") == (inner / "fresh").resolve()
    assert not (inner / "fresh").exists()
