"""``hsm complete`` after the user edited the sweep file the sweep was started from: it runs the
sweep's own copy (``sweep_config.yaml``), and says so in one line with the command that runs the
edited file, instead of reporting "0 task(s)" as if the new values did not exist."""

from __future__ import annotations

from hsm_project import Project


def test_complete_says_when_the_sweep_file_gained_combinations_since_the_run(project: Project) -> None:
    sweep_file = project.write_sweep({"grid": {"x": [1, 2]}})
    project.hsm("run", "--config", "sweeps/sweep.yaml", "--sources", "local:2", check=True)
    assert len(project.executions()) == 2

    # A comment is no new combination: nothing to say.
    sweep_file.write_text("# the first grid\n" + sweep_file.read_text())
    quiet = project.hsm("complete", check=True)
    assert "has changed" not in quiet.stderr + quiet.stdout

    sweep_file.write_text("grid:\n  x: [1, 2, 3]\n")
    for args in (("complete", "--dry-run"), ("complete",)):
        proc = project.hsm(*args, check=True)
        note = [ln for ln in proc.stderr.splitlines() if "has changed" in ln]
        assert note == [
            "note: sweeps/sweep.yaml has changed since this sweep copied it (1 combination not in the sweep); "
            "hsm complete runs the sweep's own copy (sweep_config.yaml); to run the edited file: "
            f"hsm complete {project.only_sweep().name} -c sweeps/sweep.yaml"
        ], proc.stderr
    assert len(project.executions()) == 2  # the note changes nothing

    proc = project.hsm("complete", "-c", "sweeps/sweep.yaml", check=True)
    assert "has changed" not in proc.stderr and len(project.executions()) == 3
    again = project.hsm("complete", check=True)
    assert "has changed" not in again.stderr  # the sweep's copy is the edited file now


def test_an_edited_sweep_file_that_no_longer_loads_is_named_not_fatal(project: Project) -> None:
    sweep_file = project.write_sweep({"grid": {"x": [1]}})
    project.hsm("run", "--config", "sweeps/sweep.yaml", "--sources", "local:1", check=True)
    sweep_file.write_text("grid:\n  x: [1, 2\n")  # half-way through an edit
    proc = project.hsm("complete", check=True)
    assert ("note: sweeps/sweep.yaml has changed since this sweep copied it (and does not load now); "
            "hsm complete runs the sweep's own copy") in proc.stderr, proc.stderr
