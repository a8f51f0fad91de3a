"""Walltimes written the way another scheduler writes them (a new user's first PBS/Torque sweep).

``hsm run --walltime`` takes Slurm's ``D-HH:MM`` (days count), and says in one line how it read a
form that Slurm or PBS read otherwise (``1:00``: one hour for hsm, one minute for Slurm; ``60``:
sixty minutes for hsm, sixty seconds for PBS). The job scripts are the real PBS plugin's, shown by
``--dry-run``; the scheduler's client commands are stand-ins that record any submission, so
"nothing submitted" is checked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fake_batch_clients import project_with_fake_clients

from hsm_core.testing.project import Project


@pytest.fixture
def torque_project(tmp_path: Path) -> Project:
    return project_with_fake_clients(tmp_path)


def _dry_run(project: Project, walltime: str):
    cfg = project.write_sweep({"grid": {"lr": [0.1, 0.2]}})
    return project.hsm("run", "--config", str(cfg), "--sources", "torque", "--walltime", walltime, "--dry-run")


@pytest.mark.parametrize(("given", "directive"), [
    ("2-00:00", "#PBS -l walltime=48:00:00"),
    ("1-12:00", "#PBS -l walltime=36:00:00"),
    ("1-12:00:00", "#PBS -l walltime=36:00:00"),
])
def test_slurms_days_hours_minutes_keep_the_days(torque_project: Project, tmp_path: Path, given: str, directive: str) -> None:
    proc = _dry_run(torque_project, given)
    assert proc.returncode == 0, proc.stderr
    assert directive in proc.stdout.splitlines()
    assert not (tmp_path / "SUBMITTED").exists() and torque_project.sweep_ids() == []


@pytest.mark.parametrize(("given", "directive", "note"), [
    ("1:00", "#PBS -l walltime=01:00:00", "Note: --walltime 1:00 is read as 01:00:00 (1 h 0 min, HH:MM); a job script's MM:SS reads it as 1 min 0 s: write 00:01:00"),
    ("60", "#PBS -l walltime=01:00:00", "Note: --walltime 60 is read as 60 minutes; a job script's bare number of seconds reads it as 60 s: write 60s"),
])
def test_a_walltime_another_tool_reads_otherwise_is_one_note(torque_project: Project, given: str, directive: str, note: str) -> None:
    proc = _dry_run(torque_project, given)
    assert proc.returncode == 0, proc.stderr
    assert directive in proc.stdout.splitlines()
    notes = [ln for ln in proc.stderr.splitlines() if ln.startswith("Note: --walltime")]
    assert len(notes) == 1 and notes[0].startswith(note), proc.stderr


@pytest.mark.parametrize("given", ["01:00:00", "90m", "4h", "1-00:00:00"])
def test_an_unambiguous_walltime_says_nothing(torque_project: Project, given: str) -> None:
    proc = _dry_run(torque_project, given)
    assert proc.returncode == 0, proc.stderr
    assert "Note: --walltime" not in proc.stderr


def test_a_sweep_files_walltime_gets_the_same_note_with_its_line(torque_project: Project) -> None:
    """``resources.walltime: 1:30`` in the sweep file is read as 1 h 30 min, as the flag is: the
    note names the file, line and key (the flag, when given, is what counts and what is noted)."""
    cfg = torque_project.write_sweep({"grid": {"lr": [0.1]}, "resources": {"walltime": "1:30"}})
    proc = torque_project.hsm("run", "--config", str(cfg), "--sources", "torque", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "#PBS -l walltime=01:30:00" in proc.stdout.splitlines()
    notes = [ln for ln in proc.stderr.splitlines() if ln.startswith("Note: ")]
    assert len(notes) == 1 and "resources.walltime 1:30 is read as 01:30:00" in notes[0], proc.stderr
    assert f"{cfg.name}:" in notes[0], proc.stderr
    proc = torque_project.hsm("run", "--config", str(cfg), "--sources", "torque", "--walltime", "02:00:00", "--dry-run")
    assert proc.returncode == 0 and "Note: " not in proc.stderr, proc.stderr
