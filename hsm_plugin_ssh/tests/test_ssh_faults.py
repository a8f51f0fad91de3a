"""A host that goes away mid-sweep: the controller survives and every task runs exactly once; a host
that stays away past ``lost_after`` has its tasks run elsewhere.

Each test stops its own sshd instance (killing its connections and the commands they run, like a
host going down) and starts it again on the same port with the same host key.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from ssh_support import Project, push, remote_entry, sshd_instance

pytestmark = pytest.mark.sshd

COUNTING_SCRIPT = r'''
import os, sys, time
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
with open(COUNT_FILE, "a") as fh:  # one line per execution, on whatever host runs it
    fh.write(os.environ["HSM_TASK_ID"] + "\n")
time.sleep(float(args.get("sleep", 0)))
print("done", args)
'''


def counting_project(project: Project, count_file: Path) -> None:
    (project.root / "train.py").write_text(f"COUNT_FILE = {str(count_file)!r}\n" + COUNTING_SCRIPT)


def remote_states(project: Project, sweep_id: str) -> list[str]:
    tasks = project.remote_dir / "sweeps" / "outputs" / sweep_id / "tasks"
    out = []
    for d in sorted(tasks.glob("task_*")) if tasks.is_dir() else []:
        try:
            out.append((yaml.safe_load((d / "status.yaml").read_text()) or {}).get("state"))
        except (OSError, yaml.YAMLError):
            out.append(None)
    return out


def wait_for(cond, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def local_statuses(project: Project, sweep_id: str) -> dict[str, dict]:
    tasks = project.outputs / sweep_id / "tasks"
    return {d.name: yaml.safe_load((d / "status.yaml").read_text()) for d in sorted(tasks.glob("task_*"))}


def test_dropped_connection_mid_sweep_every_task_once(project: Project, tmp_path: Path) -> None:
    host = sshd_instance("hsm-plugin-ssh-drop")
    count = tmp_path / "executions.log"
    counting_project(project, count)
    project.set_remote("drop", remote_entry(host, project.remote_dir, max_parallel_jobs=2))
    push(project, "drop")
    project.write_sweep({"grid": {"x": [1, 2, 3, 4], "sleep": [3]}})
    proc = project.popen("run", "--config", "sweeps/sweep.yaml", "--sources", "ssh:drop", "--sweep-id", "d1")
    try:
        wait_for(lambda: "running" in remote_states(project, "d1"), 60, "a task running remotely")
        host.stop()  # the host "goes down": its connections (and our poll) are cut
        time.sleep(3)
        host.start()
        out, err = proc.communicate(timeout=180)
    finally:
        host.start()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out + err
    assert "Done: 4 completed" in out
    runs = count.read_text().split()
    assert len(runs) == 4 and len(set(runs)) == 4, runs  # every task ran exactly once
    statuses = local_statuses(project, "d1")
    assert all(s["state"] == "completed" and s["attempt"] == 1 for s in statuses.values()), statuses
    log = (project.outputs / "d1" / "logs" / "sources" / "drop.log").read_text()
    assert "poll failed" in log or "launch failed" in log  # the outage was noticed, and survived


def test_host_gone_longer_than_lost_after_tasks_run_elsewhere(project: Project, tmp_path: Path) -> None:
    host = sshd_instance("hsm-plugin-ssh-drop")
    count = tmp_path / "executions.log"
    counting_project(project, count)
    (project.root / "hsm_config.yaml").write_text(
        (project.root / "hsm_config.yaml").read_text() + "compute:\n  local:\n    max_parallel_jobs: 1\n"
    )
    project.set_remote("drop", remote_entry(host, project.remote_dir, max_parallel_jobs=2, lost_after=1))
    push(project, "drop")
    project.write_sweep({"grid": {"x": [1, 2, 3], "sleep": [2]}})
    proc = project.popen("run", "--config", "sweeps/sweep.yaml", "--sources", "ssh:drop,local", "--sweep-id", "l1")
    try:
        wait_for(lambda: "running" in remote_states(project, "l1"), 60, "a task running remotely")
        host.stop()  # and it stays down until the sweep is over
        out, err = proc.communicate(timeout=180)
    finally:
        host.start()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out + err
    statuses = local_statuses(project, "l1")
    assert all(s["state"] == "completed" for s in statuses.values()), statuses
    moved = [s for s in statuses.values() if any(a.get("state") == "lost" for a in s.get("attempts") or [])]
    assert moved, statuses
    for s in moved:  # the lost attempt on drop is in the history; the rerun happened here
        assert s["source"] == "local"
        assert [a["state"] for a in s["attempts"]][-2:] == ["lost", "completed"]
    log = (project.outputs / "l1" / "logs" / "sources" / "drop.log").read_text()
    assert "reported lost" in log


def test_killed_controller_then_complete_adopts_remote_tasks(project: Project, sshd, tmp_path: Path) -> None:
    import signal

    count = tmp_path / "executions.log"
    counting_project(project, count)
    project.set_remote("srv", remote_entry(sshd, project.remote_dir, max_parallel_jobs=3))
    push(project, "srv")
    project.write_sweep({"grid": {"x": [1, 2, 3], "sleep": [3]}})
    proc = project.popen("run", "--config", "sweeps/sweep.yaml", "--sources", "ssh:srv", "--sweep-id", "k1")
    try:
        wait_for(lambda: remote_states(project, "k1").count("running") == 3, 60, "three tasks running remotely")
        proc.send_signal(signal.SIGKILL)  # no clean-up at all: the remote runners are on their own
        proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    local = local_statuses(project, "k1")
    assert all(s["state"] in ("submitted", "running") and s["source_data"]["srv"]["dir"] for s in local.values()), local
    done = project.hsm("complete", "k1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Done: 3 completed" in done.stdout
    assert all(s["state"] == "completed" for s in local_statuses(project, "k1").values())
    runs = count.read_text().split()
    assert len(runs) == 3 and len(set(runs)) == 3, runs  # adopted, not run again


def test_a_launch_whose_answer_is_lost_runs_each_task_once(project: Project, sshd, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection drops after the launch command started the runners but before their pids
    came back. The tasks are not handed to the local source (they would run twice): the next poll
    finds each runner by its task dir and follows it to the end."""
    from hsm_core.testing import run_sweep
    from hsm_plugin_ssh import remote_scripts
    from hsm_plugin_ssh.host import HostUnreachable, SshHost

    count = tmp_path / "executions.log"
    counting_project(project, count)
    project.set_remote("srv", remote_entry(sshd, project.remote_dir, max_parallel_jobs=2))
    push(project, "srv")
    real_run = SshHost.run
    cut: list[str] = []

    def run(self, argv, **kw):
        res = real_run(self, argv, **kw)
        if remote_scripts.LAUNCH in argv and not cut:
            cut.append("launch")
            raise HostUnreachable("connection to srv lost while running a command (simulated)")
        return res

    monkeypatch.setattr(SshHost, "run", run)
    monkeypatch.chdir(project.root)
    cfg = project.write_sweep({"grid": {"x": [1, 2, 3, 4], "sleep": [1]}})
    counts = run_sweep(cfg, project_root=project.root, sweep_id="cut", sources="ssh:srv:2,local:1", verify_sync=False)
    assert cut == ["launch"] and counts == {"completed": 4}
    runs = count.read_text().split()
    assert len(runs) == 4 and len(set(runs)) == 4, runs  # every task ran exactly once
    log = (project.outputs / "cut" / "logs" / "sources" / "srv.log").read_text()
    assert "launch of 2 task(s) cut off" in log
