"""One sweep over local processes, a real SSH host (our own sshd on 127.0.0.1) and the real local
Slurm at once: every task done exactly once, a host going down mid-sweep, a killed controller
finished by ``hsm complete`` with other sources.

Executions are counted by the test script itself (one line per run, on whichever source ran it),
so "exactly once" covers the remote and the Slurm jobs too, not only what the controller recorded.
"""

from __future__ import annotations

import collections
import os
import signal
from pathlib import Path

import pytest
import yaml

from cross_support import REMOTE, CrossProject, make_project, require_plugins, services, stop_process, wait_for

pytestmark = [pytest.mark.sshd, pytest.mark.slurm, pytest.mark.slow]

SOURCES = f"local:2,ssh:{REMOTE}:2,slurm:2"
GRID = {"x": list(range(12)), "sleep": [3]}


@pytest.fixture
def cross(tmp_path: Path) -> CrossProject:
    require_plugins("hsm_plugin_ssh", "hsm_plugin_slurm")
    host, cluster = services()
    # Health checks every 2 s instead of 5 min, so an outage shows within the test.
    return make_project(tmp_path, host, cluster, compute_extra={"health_check_interval": 2})


def _counts(project: CrossProject, sweep_id: str) -> collections.Counter:
    return collections.Counter(s.get("state") for s in project.statuses(sweep_id).values())


def _assert_each_task_ran_once(project: CrossProject, sweep_id: str, total: int) -> dict[str, dict]:
    statuses = project.statuses(sweep_id)
    assert len(statuses) == total
    assert {n: s.get("state") for n, s in statuses.items() if s.get("state") != "completed"} == {}
    runs = project.executions()
    assert len(runs) == total and len(set(runs)) == total, collections.Counter(runs).most_common(3)
    assert set(runs) == {s["task_id"] for s in statuses.values()}
    return statuses


def _running_on_host(project: CrossProject, sweep_id: str) -> list[str]:
    """The task dirs running on the ssh host (per the remote's own status files), once both of its
    slots are busy."""
    running = [n for n, state in project.remote_states(sweep_id).items() if state == "running"]
    return running if len(running) == 2 else []


def _crash(root: Path) -> int:
    """Kill every process working in ``root`` (the remote project): a host that goes down takes its
    processes with it, not only its sshd. Only processes of this test run there."""
    killed = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if cwd == str(root) or cwd.startswith(f"{root}/"):
            try:
                os.kill(int(pid), signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed


def test_a_sweep_over_local_ssh_and_slurm_runs_every_task_once(cross: CrossProject) -> None:
    cfg = cross.write_sweep({"grid": {"x": list(range(12)), "sleep": [0.5]}})
    proc = cross.hsm("run", "--config", str(cfg), "--sources", SOURCES, "--sweep-id", "a1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Done: 12 completed" in proc.stdout
    statuses = _assert_each_task_ran_once(cross, "a1", 12)

    by_source = collections.defaultdict(list)
    for name, s in statuses.items():
        by_source[s["source"]].append(name)
        assert s["attempt"] == 1 and [a["state"] for a in s["attempts"]] == ["completed"]
    assert set(by_source) == {"local", REMOTE, "slurm"}, dict(by_source)
    # Each source really ran its tasks: local runners here, the remote's own copy of the task dir
    # (copied back with its runner.log), Slurm array elements with their job logs.
    for name in by_source["local"]:
        assert statuses[name]["runner"] == "local"
    remote_tasks = cross.remote_dir / "sweeps" / "outputs" / "a1" / "tasks"
    assert sorted(p.name for p in remote_tasks.iterdir()) == sorted(by_source[REMOTE])
    for name in by_source[REMOTE]:
        assert yaml.safe_load((remote_tasks / name / "status.yaml").read_text())["state"] == "completed"
        assert (cross.sweep("a1") / "tasks" / name / "runner.log").exists()
    for name in by_source["slurm"]:
        assert statuses[name]["job_id"]
    assert len(list((cross.sweep("a1") / "logs" / "jobs").glob("*.out"))) == len(by_source["slurm"])
    assignments = cross.log("a1", "task_assignments.log").splitlines()
    assert len(assignments) == 12
    assert collections.Counter(ln.rsplit(" ", 1)[1] for ln in assignments) == {k: len(v) for k, v in by_source.items()}


def test_host_down_mid_sweep_others_finish_and_its_tasks_come_back_once(cross: CrossProject) -> None:
    """The host goes away with two tasks running there (they keep running: only the network is
    gone). The other sources finish everything else; once it is back its two tasks are collected,
    not run again."""
    host, _ = services()
    cfg = cross.write_sweep({"grid": GRID})
    proc = cross.popen("run", "--config", str(cfg), "--sources", SOURCES, "--sweep-id", "b1")
    try:
        on_host = wait_for(lambda: _running_on_host(cross, "b1"), 60, "two tasks running on the ssh host", proc)
        host.stop()

        def rest_done() -> bool:
            st = cross.statuses("b1")
            return len(st) == 12 and all(s.get("state") == "completed" for n, s in st.items() if n not in on_host)

        wait_for(rest_done, 120, "local and Slurm to finish the other tasks", proc)
        stuck = cross.statuses("b1")
        # Its two tasks cannot be collected while it is down, and are not given up on either.
        assert all(stuck[n].get("state") in ("submitted", "running") for n in on_host), stuck
        assert {s["source"] for n, s in stuck.items() if n not in on_host} <= {"local", "slurm"}
        health = cross.log("b1", "health_status.log")
        assert f"{REMOTE} unhealthy: " in health
        assert f"{REMOTE} disabled after" in health
        host.start()
        out, err = proc.communicate(timeout=120)
    finally:
        host.start()
        stop_process(proc)
    assert proc.returncode == 0, out + err
    assert "Done: 12 completed" in out
    statuses = _assert_each_task_ran_once(cross, "b1", 12)
    for name in on_host:  # collected from the host, never declared lost, never re-run
        assert statuses[name]["source"] == REMOTE
        assert [a["state"] for a in statuses[name]["attempts"]] == ["completed"]


def test_host_gone_for_good_sweep_completes_on_the_other_sources(tmp_path: Path) -> None:
    """The host crashes (sshd and every process on it) and stays down: after ``lost_after`` its
    tasks run on local and Slurm, each exactly once, and the sweep completes without it."""
    require_plugins("hsm_plugin_ssh", "hsm_plugin_slurm")
    host, cluster = services()
    cross = make_project(tmp_path, host, cluster, compute_extra={"health_check_interval": 2},
                         remote_extra={"lost_after": 3})
    cfg = cross.write_sweep({"grid": GRID})
    proc = cross.popen("run", "--config", str(cfg), "--sources", SOURCES, "--sweep-id", "b2")
    try:
        on_host = wait_for(lambda: _running_on_host(cross, "b2"), 60, "two tasks running on the ssh host", proc)
        host.stop()
        assert _crash(cross.remote_dir) > 0
        out, err = proc.communicate(timeout=150)
    finally:
        host.start()  # back for the next test; the sweep is over by now
        stop_process(proc)
    assert proc.returncode == 0, out + err
    assert "Done: 12 completed" in out
    statuses = _assert_each_task_ran_once(cross, "b2", 12)
    for name in on_host:
        s = statuses[name]
        assert s["source"] in ("local", "slurm")
        assert [(a["state"], a["source"]) for a in s["attempts"]] == [("lost", REMOTE), ("completed", s["source"])]
    assert all(s["source"] != REMOTE for n, s in statuses.items() if n not in on_host)
    health = cross.log("b2", "health_status.log")
    assert f"{REMOTE} unhealthy: " in health and f"{REMOTE} disabled after" in health
    assert "reported lost" in cross.log("b2", f"sources/{REMOTE}.log")


#: Like hsm_core.testing.SCRIPT (counts each execution once it has slept), but sleeps SLOW_FACTOR
#: times longer where that is set: on the ssh host, so its tasks are still running when it is back.
SLOW_THERE = r'''
import os, sys, time
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
time.sleep(float(args.get("sleep", 0)) * float(os.environ.get("SLOW_FACTOR", "1")))
with open(os.path.join(os.environ["HSM_COUNT_DIR"], "runs.log"), "a") as fh:
    fh.write(os.environ["HSM_TASK_ID"] + "\n")
'''


def test_host_back_after_its_tasks_ran_elsewhere_stops_them_there(tmp_path: Path) -> None:
    """Only sshd stops: the host's processes live on, as in a network outage. After ``lost_after``
    its two tasks run locally; when the host answers again the runners still going there are
    stopped, so no task completes twice (even with nothing left for the host to do)."""
    require_plugins("hsm_plugin_ssh")
    host, cluster = services()
    cross = make_project(tmp_path, host, cluster, script=SLOW_THERE, compute_extra={"health_check_interval": 2},
                         remote_extra={"lost_after": 2}, remote_env={"SLOW_FACTOR": "50"})
    # 4 s locally, 200 s on the host: the reruns here outlast sshd's restart, and a runner left
    # going there is still running (a survivor) when the test ends, whatever the machine's load.
    cfg = cross.write_sweep({"grid": {"x": list(range(4)), "sleep": [4]}})
    proc = cross.popen("run", "--config", str(cfg), "--sources", f"local:2,ssh:{REMOTE}:2", "--sweep-id", "b3")
    try:
        on_host = wait_for(lambda: _running_on_host(cross, "b3"), 60, "two tasks running on the ssh host", proc)
        host.stop()
        wait_for(lambda: "reported lost" in cross.log("b3", f"sources/{REMOTE}.log"), 60, "its tasks given up", proc)
        host.start()
        out, err = proc.communicate(timeout=120)
    finally:
        host.start()
        stop_process(proc)
        survivors = _crash(cross.remote_dir)  # never leave a runner behind, whatever happened
    assert proc.returncode == 0, out + err
    source_log = cross.log("b3", f"sources/{REMOTE}.log")
    assert survivors == 0, source_log  # hsm stopped them (they would have run 200 s)
    assert {n: s for n, s in cross.remote_states("b3").items() if n in on_host} == {n: "lost" for n in on_host}
    assert f"stopped 2 abandoned task(s) on {REMOTE}" in cross.log("b3", f"sources/{REMOTE}.log")
    statuses = _assert_each_task_ran_once(cross, "b3", 4)
    for name in on_host:
        assert [(a["state"], a["source"]) for a in statuses[name]["attempts"]] == [("lost", REMOTE), ("completed", "local")]


def test_killed_controller_then_complete_with_other_sources(cross: CrossProject) -> None:
    # 16 tasks: at the kill some are done, some running on each source, some not started yet.
    cfg = cross.write_sweep({"grid": {**GRID, "x": list(range(16))}})
    proc = cross.popen("run", "--config", str(cfg), "--sources", SOURCES, "--sweep-id", "c1")

    def midway() -> bool:
        st = cross.statuses("c1")
        busy = {s.get("source") for s in st.values() if s.get("state") in ("submitted", "running")}
        return _counts(cross, "c1")["completed"] >= 4 and busy >= {"local", REMOTE, "slurm"}

    try:
        wait_for(midway, 90, "tasks done, and tasks running on every source", proc)
        proc.send_signal(signal.SIGKILL)  # no clean-up: runners, remote tasks and jobs are on their own
        proc.communicate()
    finally:
        stop_process(proc)
    before = cross.statuses("c1")
    done_before = {n: s for n, s in before.items() if s.get("state") == "completed"}
    assert 4 <= len(done_before) < 16

    # Finish it elsewhere: no local processes this time, more room on the host and on Slurm.
    done = cross.hsm("complete", "c1", "--sources", f"ssh:{REMOTE}:3,slurm:3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Skipped" in done.stdout and "already completed" in done.stdout
    statuses = _assert_each_task_ran_once(cross, "c1", 16)
    for name, s in done_before.items():  # untouched: not re-run, not rewritten
        assert statuses[name] == s
    never_started = set(statuses) - set(before)  # task dirs are written at dispatch
    assert never_started and all(statuses[n]["source"] in (REMOTE, "slurm") for n in never_started)
    meta = yaml.safe_load((cross.sweep("c1") / "sweep_metadata.yaml").read_text())
    assert meta["status"] == "completed"
