"""An SSH task that completes on its own: what it left running on the remote host ends with it, as
on Slurm at the job's end (docs/reliability.md, "What a task leaves running when it ends"). Judged
from the daemon's own log of ticks and /proc, and the task's stderr.log on the remote host."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ssh_support import Project, push, remote_entry

pytestmark = pytest.mark.sshd

#: Starts a daemon that left the session (``nohup setsid``), which logs its pid then ticks every
#: 50 ms into ``LOG`` for at most 120 s, then completes at once.
SCRIPT = r'''
import os, subprocess, sys, time
LOG = {log!r}
if "--serve" in sys.argv:
    with open(LOG, "a") as fh:
        fh.write("daemon %d\n" % os.getpid())
    for _ in range(2400):
        with open(LOG, "a") as fh:
            fh.write("tick %r\n" % time.time())
        time.sleep(0.05)
    sys.exit(0)
subprocess.Popen(["nohup", "setsid", sys.executable, __file__, "--serve"], stdin=subprocess.DEVNULL,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
while not os.path.exists(LOG) or "tick" not in open(LOG).read():
    time.sleep(0.05)
print("done")
'''


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def test_a_completed_ssh_task_leaves_no_daemon_running(project: Project, sshd, tmp_path: Path) -> None:
    log = tmp_path / "daemon.log"
    (project.root / "train.py").write_text(SCRIPT.format(log=str(log)))
    project.set_remote("srv", remote_entry(sshd, project.remote_dir, kill_grace=1))
    push(project, "srv")
    project.write_sweep({"grid": {"x": [1]}})
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True,
                                env={k: v for k, v in os.environ.items() if k != "HSM_TASK_DIR"})
    try:
        done = project.hsm("run", "--config", "sweeps/sweep.yaml", "--sources", "ssh:srv", "--sweep-id", "e1")
        assert done.returncode == 0, done.stdout + done.stderr
        pid = int(log.read_text().split()[1])
        deadline = time.time() + 15
        while _alive(pid) and time.time() < deadline:
            time.sleep(0.1)
        assert not _alive(pid), "the task's daemon still runs on the remote host after the task completed"
        ticks = log.read_text().count("tick")
        time.sleep(0.3)
        assert log.read_text().count("tick") == ticks  # (no tick since)
        said = (project.remote_dir / "sweeps" / "outputs" / "e1" / "tasks" / "task_001" / "stderr.log").read_text()
        assert f"pid {pid}" in said and "left 1 process(es) running" in said, said
        assert stranger.poll() is None, "an unrelated process of the same user was killed"
    finally:
        stranger.kill()
        stranger.wait()
