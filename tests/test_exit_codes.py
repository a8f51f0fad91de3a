"""Exit codes of hsm run and hsm complete a script (or a cron line) can rely on: 0 every task
completed (or was submitted, with --no-wait), 1 tasks failed, timed out, were lost, or every task
was cancelled; 2 bad input; 130 Ctrl-C (see docs/hpc.md and the README). Every task cancelled is
tested on the real Slurm (hsm_plugin_slurm/tests/test_slurm_verdicts.py)."""

from __future__ import annotations

from hsm_project import Project


def test_complete_exits_1_while_the_sweep_keeps_failed_tasks_it_does_not_retry(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [1, 2], "fail_once": [0, 1]}})
    assert project.hsm("run", "--config", str(cfg), "--sweep-id", "s1").returncode == 1
    proc = project.hsm("complete", "s1")  # nothing to run: the failed ones wait for --retry-failed
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Nothing to run." in proc.stdout and "--retry-failed" in proc.stdout
    assert project.hsm("complete", "s1", "--retry-failed").returncode == 0
    assert project.hsm("complete", "s1").returncode == 0  # all completed now

