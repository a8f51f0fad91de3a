"""``hsm complete --sources local`` of a sweep whose tasks still run on an SSH host (its controller
killed while the host was down): the run cannot follow them, since it does not use that host. It
says so, naming the tasks and the command that collects them, instead of calling them "still
running locally" and ending with "Done: 2 running" as if nothing were amiss. Real sshd on 127.0.0.1."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest
import yaml
from hsm_core.testing.project import make_project

from hsm_core.testing.services import ServiceUnavailable, require_service, start_sshd

pytestmark = [pytest.mark.sshd]


@pytest.fixture
def remote_project(tmp_path: Path):
    try:
        host = start_sshd("hsm-unfollowed")
    except ServiceUnavailable as exc:
        require_service("sshd", str(exc))
    remote_dir = tmp_path / "remote"
    remote_dir.mkdir()
    entry = {"host": host.host, "port": host.port, "user": host.user, "key": str(host.key_file),
             "known_hosts": str(host.known_hosts), "python_interpreter": sys.executable,
             "project_dir": str(remote_dir), "max_parallel_jobs": 2, "poll_interval": 1}
    project = make_project(tmp_path / "proj", config_extra=yaml.safe_dump({"distributed": {"remotes": {"gpu1": entry}}}))
    project.env.update({"HOME": str(tmp_path / "home"), "HSM_COUNT_DIR": str(tmp_path)})
    project.hsm("remote", "sync", "gpu1", check=True, timeout=120)
    yield project, host
    host.start()  # as the next test expects to find it


def test_complete_with_other_sources_names_the_tasks_it_cannot_follow(remote_project) -> None:
    project, host = remote_project
    project.write_sweep({"grid": {"x": [1, 2], "sleep": [30]}})
    proc = project.popen("run", "--config", "sweeps/sweep.yaml", "--sources", "ssh:gpu1:2")
    sweep = None
    deadline = time.time() + 60
    while time.time() < deadline:
        ids = project.sweep_ids()
        if ids:
            sweep = project.outputs / ids[0]
            states = [s.get("state") for s in project.statuses(sweep).values()]
            if states == ["running", "running"]:
                break
        time.sleep(0.2)
    else:
        proc.kill()
        raise AssertionError(f"tasks never ran on gpu1: {proc.communicate()}")
    host.stop()  # the host goes away; its tasks live on there
    proc.send_signal(signal.SIGKILL)
    proc.communicate()

    dry = project.hsm("complete", "--sources", "local", "--dry-run", check=True)
    note = (f"note: task_001, task_002 run on gpu1, which --sources local does not use: this run does not "
            f"follow them (collect them with: hsm complete {sweep.name} --sources local,ssh:gpu1:2)")
    assert note in dry.stderr, dry.stdout + dry.stderr
    assert "still running locally" not in dry.stdout
    run = project.hsm("complete", "--sources", "local", timeout=60)
    assert note in run.stderr, run.stdout + run.stderr
    assert [s["state"] for s in project.statuses(sweep).values()] == ["running", "running"]  # left alone
    assert project.executions() == []  # nothing ran here
