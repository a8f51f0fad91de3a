"""A worker's pick without a look at the whole sweep (hsm_core/workers/pick_queue.py), judged from outside.

Real `hsm worker` processes, several at once; each task writes its own log (``runs.log`` in its run
dir: one ``start`` and one ``end`` line per execution, with the time), from which the tests count
executions and check that no two copies of a task ever ran at the same time.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from hsm_project import Project, wait_for

#: Short heartbeat and stale timeout; no installed plugins (core behaviour under test).
FAST = {"HSM_WORKER_HEARTBEAT": "0.3", "HSM_WORKER_STALE_TIMEOUT": "2", "HSM_DISABLE_PLUGINS": "all"}

#: A task that logs each execution in its own run dir: "start <time> <pid>", then "end <time> <pid>".
TASK_SH = """#!/bin/sh
echo "start $(date +%s.%N) $$" >> "$HSM_RUN_DIR/runs.log"
sleep "${1#d=}"
echo "end $(date +%s.%N) $$" >> "$HSM_RUN_DIR/runs.log"
"""


@pytest.fixture
def wp(project: Project) -> Project:
    (project.root / "task.sh").write_text(TASK_SH)
    return project


def sweep(project: Project, name: str, xs: list[int], delay: float = 0.05) -> Path:
    # d= first: the script sleeps for its first argument.
    return project.write_sweep({"name": name, "command": "sh task.sh {args}",
                                "grid": {"d": [delay], "x": xs}}, f"{name}.yaml")


def sweep_path(project: Project, name: str) -> Path:
    return project.outputs / name


def task_logs(project: Project, name: str) -> dict[str, list[tuple[str, float, int]]]:
    """Per task dir: its executions as (kind, time, pid) lines, from the task's own log."""
    out: dict[str, list[tuple[str, float, int]]] = {}
    for d in sorted((sweep_path(project, name) / "tasks").iterdir()):
        log = d / "runs.log"
        rows = []
        for line in log.read_text().splitlines() if log.exists() else []:
            kind, when, pid = line.split()
            rows.append((kind, float(when), int(pid)))
        out[d.name] = rows
    return out


def states(project: Project, name: str) -> dict[str, str]:
    out = {}
    for d in (sweep_path(project, name) / "tasks").iterdir():
        st = yaml.safe_load((d / "status.yaml").read_text()) if (d / "status.yaml").exists() else {}
        out[d.name] = (st or {}).get("state")
    return out


def copies(rows: list[tuple[str, float, int]], killed_at: list[float]) -> list[tuple[float, float]]:
    """The executions of one task as (start, end) intervals. A copy without an end line was
    killed: it ended by the first kill after its start."""
    starts = [(when, pid) for kind, when, pid in rows if kind == "start"]
    ends = {pid: when for kind, when, pid in rows if kind == "end"}
    out = []
    for when, pid in starts:
        end = ends.get(pid)
        if end is None:
            end = min((k for k in killed_at if k >= when), default=float("inf"))
        out.append((when, end))
    return sorted(out)


def assert_never_overlapped(intervals: list[tuple[float, float]], what: str) -> None:
    for (_, end), (start, _) in zip(intervals, intervals[1:]):
        assert start >= end, f"{what}: two copies ran at once ({intervals})"


def run_all(procs: list[subprocess.Popen], timeout: float = 180) -> None:
    deadline = time.time() + timeout
    try:
        for p in procs:
            p.communicate(timeout=max(1.0, deadline - time.time()))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def running_task_of(project: Project, name: str, worker_pid: int) -> tuple[Path, int] | None:
    """(task dir, task pid) of the task the worker ``worker_pid`` runs now, once it recorded one."""
    tasks = sweep_path(project, name) / "tasks"
    for d in tasks.iterdir() if tasks.is_dir() else []:
        try:
            st = yaml.safe_load((d / "status.yaml").read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        pid = str(st.get("process") or "").split(":")[0]
        if st.get("state") == "running" and (st.get("worker") or {}).get("pid") == worker_pid and pid.isdigit():
            return d, int(pid)
    return None


def started_task_of(project: Project, name: str, worker_pid: int) -> tuple[Path, int] | None:
    """As running_task_of, once the task itself logged its start: a SIGTERM before that (possible
    under load) stops a task that never ran, and the observer's count would be one short."""
    found = running_task_of(project, name, worker_pid)
    if found and (found[0] / "runs.log").exists() and "start" in (found[0] / "runs.log").read_text():
        return found
    return None


# --------------------------------------------------------------------------------------------


def test_six_workers_at_once_run_every_task_exactly_once_never_two_copies_at_a_time(wp: Project) -> None:
    cfg = sweep(wp, "crowd", list(range(150)), delay=0.02)
    workers = [wp.popen("worker", "--sweep", str(cfg), env=FAST) for _ in range(6)]
    run_all(workers)
    assert [w.returncode for w in workers] == [0] * 6
    logs = task_logs(wp, "crowd")
    assert len(logs) == 150
    for name, rows in logs.items():
        assert [k for k, _, _ in rows] == ["start", "end"], (name, rows)
    assert set(states(wp, "crowd").values()) == {"completed"}
    # Nothing left to pick: no lock, no marker of unfinished work.
    queue = sweep_path(wp, "crowd") / ".queue"
    assert not list((sweep_path(wp, "crowd") / ".locks").glob("*.lock"))
    assert not [p for kind in ("resume", "failed", "pruned") for p in (queue / kind).iterdir()]
    assert yaml.safe_load((sweep_path(wp, "crowd") / "sweep_metadata.yaml").read_text())["status"] == "completed"


def test_sigkilled_workers_leave_their_task_to_be_run_once_more_never_alongside(wp: Project) -> None:
    cfg = sweep(wp, "kills", list(range(40)), delay=0.4)
    workers = [wp.popen("worker", "--sweep", str(cfg), env=FAST) for _ in range(4)]
    killed: dict[str, list[float]] = {}  # task dir -> when its worker and task were killed
    for victim in workers[:3]:
        found = wait_for(lambda v=victim: running_task_of(wp, "kills", v.pid), timeout=60, interval=0.05,
                         what="a task started by the victim")
        task_dir, task_pid = found
        # The node goes away: the worker and its task die at once, nothing is cleaned up.
        victim.kill()
        try:
            os.killpg(task_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        victim.wait()
        killed.setdefault(task_dir.name, []).append(time.time())
        workers.append(wp.popen("worker", "--sweep", str(cfg), env=FAST))
    run_all(workers[3:])
    assert [w.returncode for w in workers[3:]] == [0] * len(workers[3:])
    logs = task_logs(wp, "kills")
    assert len(logs) == 40 and set(states(wp, "kills").values()) == {"completed"}
    cut_short = 0
    for name, rows in logs.items():
        runs = copies(rows, killed.get(name, []))
        assert_never_overlapped(runs, name)
        # Run to its end exactly once; every other copy is one we killed mid-run (a kill landing
        # after the command ended only cost the worker), and ran again only after the kill.
        assert [k for k, _, _ in rows].count("end") == 1, (name, rows)
        assert len(runs) - 1 <= len(killed.get(name, [])), (name, rows, killed.get(name))
        cut_short += len(runs) - 1
    assert cut_short >= 1, "no kill landed mid-task"


def test_a_stopped_task_goes_to_another_worker_and_a_marker_of_a_finished_one_runs_nothing(wp: Project) -> None:
    cfg = sweep(wp, "handoff", list(range(3)), delay=1.0)
    w1 = wp.popen("worker", "--sweep", str(cfg), env=FAST)
    found = wait_for(lambda: started_task_of(wp, "handoff", w1.pid), timeout=60, interval=0.05, what="a task")
    w1.send_signal(signal.SIGTERM)  # preempted: recorded, claim released
    w1.communicate(timeout=30)
    assert w1.returncode == 143
    stopped = found[0].name
    w2 = wp.hsm("worker", "--sweep", str(cfg), "--max-tasks", "1", env=FAST)
    assert w2.returncode == 0, w2.stderr
    logs = task_logs(wp, "handoff")
    assert [k for k, _, _ in logs[stopped]] == ["start", "start", "end"]  # resumed first
    # Stale hints: a resume marker for every started task, finished or not (a dir is named by
    # its run id when there is no seed). The claim and the task's status still decide: the
    # finished one must not run again.
    queue = sweep_path(wp, "handoff") / ".queue" / "resume"
    for name in logs:
        (queue / name).touch()
    w3 = wp.hsm("worker", "--sweep", str(cfg), env=FAST)
    assert w3.returncode == 0, w3.stderr
    logs = task_logs(wp, "handoff")
    assert len(logs) == 3 and set(states(wp, "handoff").values()) == {"completed"}
    assert sorted(len([k for k, _, _ in rows if k == "end"]) for rows in logs.values()) == [1, 1, 1]
    assert not list(queue.iterdir())


def test_failed_tasks_come_back_with_retry_failed_and_a_grown_grid_runs_only_its_new_tasks(wp: Project) -> None:
    (wp.root / "flaky.sh").write_text(
        'echo "start $(date +%s.%N) $$" >> "$HSM_RUN_DIR/runs.log"\n'
        '[ -e "$HSM_COUNT_DIR/fixed" ] || [ "${2#x=}" != 2 ] || exit 3\n'
        'echo "end $(date +%s.%N) $$" >> "$HSM_RUN_DIR/runs.log"\n')
    cfg = wp.write_sweep({"name": "grow", "command": "sh flaky.sh {args}", "grid": {"d": [0], "x": [1, 2, 3]}},
                         "grow.yaml")
    assert wp.hsm("worker", "--sweep", str(cfg), env=FAST).returncode == 1  # x=2 failed
    assert wp.hsm("worker", "--sweep", str(cfg), env=FAST).returncode == 0  # failed: not again
    assert sum(len(r) for r in task_logs(wp, "grow").values()) == 5
    (wp.root / "fixed").touch()
    # The grid grows in the middle of the file order; the failed task is retried once asked.
    cfg.write_text(yaml.safe_dump({"name": "grow", "command": "sh flaky.sh {args}",
                                   "grid": {"d": [0], "x": [1, 2, 10, 11, 3]}}))
    proc = wp.hsm("worker", "--sweep", str(cfg), "--retry-failed", env=FAST)
    assert proc.returncode == 0, proc.stderr
    logs = task_logs(wp, "grow")
    assert len(logs) == 5 and set(states(wp, "grow").values()) == {"completed"}
    counts = sorted(len([k for k, _, _ in rows if k == "start"]) for rows in logs.values())
    assert counts == [1, 1, 1, 1, 2]  # the failed one twice, every other once
    assert yaml.safe_load((sweep_path(wp, "grow") / "sweep_metadata.yaml").read_text())["status"] == "completed"


def test_a_sweep_made_before_markers_existed_still_resumes_its_stopped_task(wp: Project) -> None:
    cfg = sweep(wp, "older", list(range(2)), delay=1.0)
    w1 = wp.popen("worker", "--sweep", str(cfg), env=FAST)
    found = wait_for(lambda: started_task_of(wp, "older", w1.pid), timeout=60, interval=0.05, what="a task")
    w1.send_signal(signal.SIGTERM)
    w1.communicate(timeout=30)
    shutil.rmtree(sweep_path(wp, "older") / ".queue")  # as an earlier hsm left it: no markers
    w2 = wp.hsm("worker", "--sweep", str(cfg), env=FAST)
    assert w2.returncode == 0, w2.stderr
    assert "marked 1 started task" in w2.stderr
    logs = task_logs(wp, "older")
    assert [k for k, _, _ in logs[found[0].name]] == ["start", "start", "end"]
    assert set(states(wp, "older").values()) == {"completed"}
