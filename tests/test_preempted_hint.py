"""``hsm run`` when a task was preempted (a scheduler's SIGTERM, the warning before the walltime).

A preempted task is not a failure (exit 0: the run did what it could), but it is not done either:
the run's last lines say how many tasks were preempted and the command that resumes them, so a
user who reads only the end of the output is not left with "Done: 1 completed, 1 preempted" and
no next step. The scheduler is the third-party ``spool`` plugin (tests/support/third_party_scheduler.py),
whose elements are local processes: the test preempts one as a scheduler does, SIGTERM to the
element's process group from outside hsm.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from hsm_core.testing.project import Project, make_project, wait_for
from plugin_dists import make_dist, plugin_env
from third_party_scheduler import install

ONLY_SPOOL = {"HSM_LOAD_PLUGINS": "spool"}


@pytest.fixture
def spool(tmp_path: Path):
    site = tmp_path / "site"
    site.mkdir()
    install(site, make_dist)
    queue = tmp_path / "queue"
    project = make_project(tmp_path / "proj", config_extra=f"  spool:\n    spool_dir: {queue}\nhpc:\n  system: spool\n")
    yield project, plugin_env(site, **ONLY_SPOOL), queue
    for state in queue.glob("*.state"):  # a failed assertion leaves no element running
        words = state.read_text().split()
        if words[:1] == ["R"]:
            try:
                os.killpg(int(words[1]), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def test_the_end_of_a_run_names_the_preempted_tasks_and_how_to_resume_them(spool) -> None:
    project, env, queue = spool
    cfg = project.write_sweep({"paired": [{"p": {"x": [1, 2], "sleep": [0, 30]}}]})
    run = project.popen("run", "--config", str(cfg), "--sources", "hpc", env=env)
    try:
        def long_element() -> int | None:
            for state in queue.glob("*_1.state"):
                words = state.read_text().split()
                if words[:1] == ["R"]:
                    return int(words[1])
            return None

        wait_for(lambda: long_element() is not None, 60, what="the long element running")
        sweep = project.only_sweep()
        wait_for(lambda: project.statuses(sweep).get("task_002", {}).get("state") == "running", 60,
                 what="the long task running")
        os.killpg(long_element(), signal.SIGTERM)  # the scheduler preempts it
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, out + err
    states = {k: v.get("state") for k, v in project.statuses(sweep).items()}
    assert states == {"task_001": "completed", "task_002": "preempted"}, states
    assert f"1 task(s) preempted: resume with hsm complete {sweep.name}" in " ".join(out.split()), out
