"""``hsm run -c sweeps/...`` from a sub-directory of the project (a new user in ``src/``).

``hsm status``, ``hsm export`` and ``hsm run`` without ``-c`` find the project from a
sub-directory; the sweep file path the README gives (``-c sweeps/sweep_config.yaml``) works there
too: a relative path that is not under the current directory is looked up in the project root,
for ``hsm run -c``, ``hsm complete -c`` and ``hsm worker --sweep``. A path that is in neither still
fails in one line (exit 2), and a file of the same name in the current directory wins.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hsm_project import Project


def _hsm_in(project: Project, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hsm_core", *args], cwd=cwd, env=project.environ(None),
                          capture_output=True, text=True, timeout=120)


def test_the_readmes_sweep_path_works_from_a_sub_directory(project: Project) -> None:
    project.write_sweep({"grid": {"x": [1, 2]}})
    src = project.root / "src" / "models"
    src.mkdir(parents=True)
    run = _hsm_in(project, src, "run", "-c", "sweeps/sweep.yaml", "--sources", "local:2")
    assert run.returncode == 0, run.stderr
    [sweep] = project.sweep_ids()
    assert sorted(s["state"] for s in project.statuses(project.outputs / sweep).values()) == ["completed", "completed"]
    project.write_sweep({"grid": {"x": [1, 2, 3]}})  # one more combination, run with -c
    done = _hsm_in(project, src, "complete", sweep, "-c", "sweeps/sweep.yaml")
    assert done.returncode == 0, done.stderr
    assert len(project.statuses(project.outputs / sweep)) == 3
    project.write_sweep({"name": "wk", "grid": {"x": [1]}}, name="wk.yaml")
    status = _hsm_in(project, src, "worker", "--sweep", "sweeps/wk.yaml", "--status")
    assert status.returncode == 0, status.stderr
    assert "0/1 done" in status.stdout


def test_a_file_in_neither_place_is_one_line_and_exit_2(project: Project) -> None:
    src = project.root / "src"
    src.mkdir()
    proc = _hsm_in(project, src, "run", "-c", "sweeps/nope.yaml", "--sources", "local")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("Error: sweeps/nope.yaml: file not found")
    assert project.sweep_ids() == []


def test_a_file_of_that_name_under_the_current_directory_wins(project: Project) -> None:
    project.write_sweep({"grid": {"x": [1, 2, 3]}})
    src = project.root / "src"
    (src / "sweeps").mkdir(parents=True)
    (src / "sweeps" / "sweep.yaml").write_text("grid:\n  x: [7]\n")
    proc = _hsm_in(project, src, "run", "-c", "sweeps/sweep.yaml", "--count-only")
    assert proc.returncode == 0 and proc.stdout.strip().endswith("1"), proc.stdout + proc.stderr
