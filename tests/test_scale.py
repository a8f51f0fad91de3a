"""Scale: a 100,000-task sweep starts, the controller idles without burning CPU, memory stays small."""

from __future__ import annotations

import os
import signal
import time

import pytest

from hsm_project import Project


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.slow
def test_controller_of_100k_tasks_idles_cheaply(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"a": list(range(100)), "b": list(range(1000)), "sleep": [120]}})
    proc = project.popen("run", "--config", str(cfg), "--sources", "local:2", "--sweep-id", "huge")
    try:
        first = project.outputs / "huge" / "tasks" / "task_002" / "status.yaml"
        deadline = time.time() + 120
        while not first.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "the sweep never started"
            time.sleep(0.2)
        time.sleep(8)  # let the first index save after dispatch pass
        before = _cpu_seconds(proc.pid)
        time.sleep(10)
        used = _cpu_seconds(proc.pid) - before
        rss = _rss_mb(proc.pid)
        # Two tasks run, 99,998 wait: the controller should be asleep, not polling in a loop. A
        # loop would burn most of the 10 s; on a loaded machine one late save of the 100,000-task
        # index (about a second of CPU) may still fall in the window, so that much is allowed.
        assert used < 2.0, f"controller used {used:.2f} s of CPU in 10 s while waiting"
        assert rss < 400, f"controller holds {rss:.0f} MB for 100,000 tasks"
        # Only dispatched tasks have a directory yet.
        assert len(list((project.outputs / "huge" / "tasks").iterdir())) < 10
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert proc.returncode == 130
