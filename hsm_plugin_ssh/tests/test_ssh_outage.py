"""A host that is down for a while (shorter than ``lost_after``): polled at the reconnect backoff's
pace, logged twice (down, back), and shown to the user with the tasks waiting on it and when they
would be run elsewhere.

The host's sshd is stopped (its connections and sessions killed, as ``scripts/sshd.sh stop`` does);
while it is down a listener on its port accepts and drops every connection, like a machine whose
sshd is broken, and counts them: the connection attempts as an outside observer sees them.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from pathlib import Path

import pytest
import yaml

from ssh_support import Project, push, remote_entry, sshd_instance

pytestmark = pytest.mark.sshd

#: Seconds the host stays down; shorter than LOST_AFTER, so the tasks there wait for it.
OUTAGE = 12.0
LOST_AFTER = 120.0
#: The tasks on the host outlive the outage; the local ones are short.
REMOTE_SLEEP = OUTAGE + 6.0

SCRIPT = r'''
import os, sys, time
with open(COUNT_FILE, "a") as fh:  # one line per execution, on whatever host runs it
    fh.write(os.environ["HSM_TASK_ID"] + "\n")
on_the_host = os.path.realpath(os.getcwd()) != LOCAL_ROOT
time.sleep(REMOTE_SLEEP if on_the_host else 0.3)
'''


class DroppingListener:
    """Listens on a port and closes every connection at once; records when each came."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.attempts: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.attempts.append(time.monotonic())
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


def attempts_allowed(seconds: float) -> int:
    """Connection attempts the reconnect backoff permits in ``seconds``: one at once, then one
    after each delay of the schedule."""
    from hsm_plugin_ssh.host import BACKOFF

    n, t = 1, 0.0
    for i in range(1000):
        t += BACKOFF[min(i, len(BACKOFF) - 1)]
        if t > seconds:
            return n
        n += 1
    return n


def remote_running(project: Project, sweep_id: str) -> list[str]:
    tasks = project.remote_dir / "sweeps" / "outputs" / sweep_id / "tasks"
    out = []
    for d in sorted(tasks.glob("task_*")) if tasks.is_dir() else []:
        try:
            if (yaml.safe_load((d / "status.yaml").read_text()) or {}).get("state") == "running":
                out.append(d.name)
        except (OSError, yaml.YAMLError):
            pass
    return out


def wait_for(cond, timeout: float, what: str):
    deadline = time.time() + timeout
    while True:
        value = cond()
        if value:
            return value
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_a_dead_host_is_polled_at_the_backoff_pace_and_its_waiting_tasks_are_shown(project: Project, tmp_path: Path) -> None:
    host = sshd_instance("hsm-plugin-ssh-outage")
    count = tmp_path / "executions.log"
    (project.root / "train.py").write_text(
        f"COUNT_FILE = {str(count)!r}\nLOCAL_ROOT = {str(project.root.resolve())!r}\nREMOTE_SLEEP = {REMOTE_SLEEP}\n" + SCRIPT)
    (project.root / "hsm_config.yaml").write_text(
        (project.root / "hsm_config.yaml").read_text() + "compute:\n  local:\n    max_parallel_jobs: 1\n")
    project.set_remote("r2", remote_entry(host, project.remote_dir, max_parallel_jobs=2, lost_after=LOST_AFTER))
    push(project, "r2")
    project.write_sweep({"grid": {"x": list(range(8))}})
    proc = project.popen("run", "--config", "sweeps/sweep.yaml", "--sources", "local:1,ssh:r2:2", "--sweep-id", "o1")
    listener = None
    try:
        on_host = wait_for(lambda: len(remote_running(project, "o1")) == 2 and remote_running(project, "o1"), 60,
                           "two tasks running on the host")
        host.stop()  # sshd and its sessions killed: the host is gone
        listener = DroppingListener(host.port)
        down_at = time.monotonic()

        # From another terminal: which tasks wait on which host, since when, until when, what to do.
        def waiting():
            res = project.hsm("status", "o1", "--json")
            assert res.returncode == 0, res.stdout + res.stderr
            info = json.loads(res.stdout)
            return [w for w in info["waiting"] if w["source"] == "r2" and w["tasks"]]

        (w,) = wait_for(waiting, OUTAGE - 4, "hsm status --json to show the tasks waiting on r2")
        assert sorted(w["tasks"]) == sorted(on_host)
        assert w["lost_setting"] == "distributed.remotes.r2.lost_after"
        assert abs(w["run_elsewhere_epoch"] - w["since_epoch"] - LOST_AFTER) < 5, w
        assert w["run_elsewhere_epoch"] > time.time() + LOST_AFTER - 30
        hints = " | ".join(w["hints"])
        assert "hsm complete o1" in hints and "hsm cancel o1" in hints and "lost_after" in hints, hints
        shown = project.hsm("monitor", "watch", "o1", "--once", env={"COLUMNS": "200"})
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert "r2 has not answered since" in shown.stdout, shown.stdout
        assert f"2 task(s) wait on it: {', '.join(sorted(on_host))}" in shown.stdout, shown.stdout
        assert "they run elsewhere at" in shown.stdout and "hsm cancel o1" in shown.stdout, shown.stdout
        table = project.hsm("status", "o1", env={"COLUMNS": "200"})
        assert "wait on it" in table.stdout and "they run elsewhere at" in table.stdout, table.stdout

        time.sleep(max(0.0, OUTAGE - (time.monotonic() - down_at)))
        listener.close()
        down_for = time.monotonic() - down_at
        attempts = [t - down_at for t in listener.attempts]
        listener = None
        host.start()
        out, err = proc.communicate(timeout=120)
    finally:
        if listener is not None:
            listener.close()
        host.start()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out + err
    assert "Done: 8 completed" in out, out + err

    # Before: ~20 connection attempts a second. Now: what the backoff allows (one more for the
    # health check and the poll that may race for the same slot).
    assert 1 <= len(attempts) <= attempts_allowed(down_for) + 1, (attempts, down_for)

    # The tasks on the host waited for it and ran once; nothing ran twice.
    runs = count.read_text().split()
    assert len(runs) == 8 and len(set(runs)) == 8, runs
    statuses = project.statuses(project.outputs / "o1")
    assert all(s["state"] == "completed" for s in statuses.values()), statuses
    assert all(statuses[name]["source"] == "r2" and statuses[name]["attempt"] == 1 for name in on_host)

    # The source log: down once, back once, with what failed in between; no line per failed poll.
    log = (project.outputs / "o1" / "logs" / "sources" / "r2.log").read_text().splitlines()
    assert len(log) <= 8, log
    down = [ln for ln in log if "not answering" in ln]
    back = [ln for ln in log if "answering again after" in ln]
    assert len(down) == 1 and len(back) == 1, log
    polls = re.search(r"(\d+) failed polls?", back[0])
    assert polls and int(polls.group(1)) <= attempts_allowed(down_for) + 2, back  # hsm's own count agrees

    # The controller's terminal said it once, and once that the host is back.
    assert err.count("r2 has not answered since") == 1, err
    assert "2 task(s) wait on it" in err and "r2 answers again after" in err, err
    assert "Traceback" not in err, err  # no traceback per reconnection attempt either
    # Over: nothing waits any more.
    assert json.loads(project.hsm("status", "o1", "--json").stdout)["waiting"] == []
    assert not (project.outputs / "o1" / "logs" / "source_outages.json").exists()


def test_stopping_the_controller_and_cancelling_while_the_host_is_down(project: Project, tmp_path: Path) -> None:
    """What the hints say, done: Ctrl-C while the host is down, then ``hsm cancel``: the tasks on
    the host cannot be stopped, and it says so (not a failure, and they are not marked cancelled);
    once the host is back ``hsm complete`` follows them to their end, each run once."""
    import signal

    host = sshd_instance("hsm-plugin-ssh-outage")
    count = tmp_path / "executions.log"
    (project.root / "train.py").write_text(
        f"COUNT_FILE = {str(count)!r}\nLOCAL_ROOT = {str(project.root.resolve())!r}\nREMOTE_SLEEP = 10\n" + SCRIPT)
    (project.root / "hsm_config.yaml").write_text(
        (project.root / "hsm_config.yaml").read_text() + "compute:\n  local:\n    max_parallel_jobs: 1\n")
    project.set_remote("r2", remote_entry(host, project.remote_dir, max_parallel_jobs=2, lost_after=LOST_AFTER))
    push(project, "r2")
    project.write_sweep({"grid": {"x": list(range(4))}})
    proc = project.popen("run", "--config", "sweeps/sweep.yaml", "--sources", "ssh:r2:2,local:1", "--sweep-id", "o2")
    try:
        on_host = wait_for(lambda: len(remote_running(project, "o2")) == 2 and remote_running(project, "o2"), 60,
                           "two tasks running on the host")
        host.stop()
        wait_for(lambda: (project.outputs / "o2" / "logs" / "source_outages.json").exists(), 20, "the outage noticed")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, out + err
        cancel = project.hsm("cancel", "o2", "--wait", "2")
        assert cancel.returncode == 0, cancel.stdout + cancel.stderr
        assert "cannot cancel 2 task(s) on 'r2'" in cancel.stdout and "2 not cancelled" in cancel.stdout, cancel.stdout
        statuses = project.statuses(project.outputs / "o2")
        assert all(statuses[name]["state"] in ("submitted", "running") for name in on_host), statuses
    finally:
        host.start()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    done = project.hsm("complete", "o2")
    assert done.returncode == 0, done.stdout + done.stderr
    statuses = project.statuses(project.outputs / "o2")
    assert all(s["state"] == "completed" for s in statuses.values()), statuses
    assert all(statuses[name]["attempt"] == 1 and statuses[name]["source"] == "r2" for name in on_host), statuses
    runs = count.read_text().split()
    on_host_ids = {statuses[name]["task_id"] for name in on_host}
    assert all(runs.count(t) == 1 for t in on_host_ids), runs  # followed, not run again
