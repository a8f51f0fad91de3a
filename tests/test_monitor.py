"""`hsm monitor` (watch, recent, health, errors), the v1 spellings (`hsm monitor SWEEP_ID`,
`hsm monitor --watch`, `hsm recent`) and `hsm cleanup`, on sweeps run for real by `hsm run`."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from hsm_project import Project
from hsm_core.monitor.errors import classify, normalize, read_stderr_tail
from monitor_sweeps import outcome_project, run_outcome_sweep, set_age, task_states, wait_for

VALUE_PATTERN = "ValueError: learning rate <n> out of range at step <n>"
CUDA_OOM = "out of memory (CUDA)"
KILLED_OOM = "out of memory? (killed with SIGKILL, exit code 137)"


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Path]:
    """A finished sweep of 16 tasks: 4 completed, 4 CUDA OOM, 4 ValueError, 4 SIGKILLed."""
    project = outcome_project(tmp_path_factory.mktemp("monitor") / "proj")
    return project, run_outcome_sweep(project)


def _start_slow_sweep(project: Project, sweep_id: str, sleep: float, n: int = 3) -> subprocess.Popen:
    cfg = project.write_sweep({"grid": {"mode": ["ok"], "lr": [0.01 * (i + 1) for i in range(n)], "sleep": [sleep]}},
                              name=f"{sweep_id}.yaml")
    proc = project.popen("run", "--config", str(cfg), "--sources", "local:2", "--sweep-id", sweep_id)
    sweep = project.outputs / sweep_id
    wait_for(lambda: "running" in task_states(sweep).values(), what=f"a running task in {sweep_id}")
    return proc


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)


# -- errors ---------------------------------------------------------------------------------------------


def test_errors_groups_failed_tasks_by_pattern_and_writes_the_yaml_files(done: tuple[Project, Path]) -> None:
    project, sweep = done
    proc = project.hsm("monitor", "errors", sweep.name)
    assert proc.returncode == 0, proc.stderr
    for text in (VALUE_PATTERN, CUDA_OOM, "12 failed task(s)", "Out of memory: 8", "Python exception: 4",
                 "logs/errors/failed_tasks.yaml", "logs/errors/error_patterns.yaml"):
        assert text in proc.stdout, (text, proc.stdout)

    patterns = yaml.safe_load((sweep / "logs" / "errors" / "error_patterns.yaml").read_text())
    assert patterns["total_failed"] == 12
    assert patterns["by_category"] == {"out_of_memory": 8, "python_exception": 4}
    counts = {p["pattern"]: p["count"] for p in patterns["patterns"]}
    assert counts == {CUDA_OOM: 4, VALUE_PATTERN: 4, KILLED_OOM: 4}
    killed = next(p for p in patterns["patterns"] if p["pattern"] == KILLED_OOM)
    assert killed["exit_codes"] == [137] and killed["sources"] == {"local": 4}

    failed = yaml.safe_load((sweep / "logs" / "errors" / "failed_tasks.yaml").read_text())
    assert len(failed["tasks"]) == 12
    value_msgs = {t["message"] for t in failed["tasks"].values() if t["pattern"] == VALUE_PATTERN}
    # Different numbers in the messages, one pattern.
    assert value_msgs == {"ValueError: learning rate 0.001 out of range at step 3",
                          "ValueError: learning rate 0.1 out of range at step 73"}
    some = next(t for t in failed["tasks"].values() if t["pattern"] == CUDA_OOM)
    assert some["state"] == "failed" and some["exit_code"] == 1 and some["params"]["mode"] == "oom"
    assert any("CUDA out of memory" in line for line in some["stderr_tail"])
    assert (sweep / some["stderr"]).is_file()

    as_json = json.loads(project.hsm("monitor", "errors", sweep.name, "--json", check=True).stdout)
    assert {p["pattern"] for p in as_json["patterns"]} == set(counts)


def test_errors_of_a_sweep_without_failures_says_so(tmp_path: Path) -> None:
    project = outcome_project(tmp_path / "proj")
    sweep = run_outcome_sweep(project, "clean", grid={"mode": ["ok"], "lr": [0.1]})
    proc = project.hsm("monitor", "errors", "clean", check=True)
    assert "No failed tasks in clean" in proc.stdout
    assert yaml.safe_load((sweep / "logs" / "errors" / "error_patterns.yaml").read_text())["patterns"] == []


def test_unknown_sweep_is_one_clear_line(done: tuple[Project, Path]) -> None:
    project, _ = done
    for args in (("monitor", "errors", "nope"), ("monitor", "nope"), ("monitor", "watch", "nope", "--once")):
        proc = project.hsm(*args)
        assert proc.returncode == 2, args
        assert "unknown sweep id 'nope'" in proc.stderr and "Traceback" not in proc.stderr


# -- watch ----------------------------------------------------------------------------------------------


def test_one_frame_of_a_finished_sweep_v1_and_v2(done: tuple[Project, Path]) -> None:
    project, sweep = done
    v1 = project.hsm("monitor", sweep.name, check=True).stdout
    v2 = project.hsm("monitor", "watch", sweep.name, "--once", check=True).stdout
    for out in (v1, v2):
        assert f"Sweep Status: {sweep.name}" in out
        assert "16/16 (100.0%)" in out
        rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in out.splitlines() if line.count("│") == 3}
        assert rows["Status"] == "Incomplete"
        assert (rows["Completed"], rows["Failed"], rows["Running"], rows["Pending"]) == ("4", "12", "0", "0")
        assert "Source Utilization" in out and "local" in out and "0/2" in out and "Healthy" in out
        assert f"hsm monitor errors {sweep.name}" in out


def test_watch_of_a_finished_sweep_exits_by_itself(done: tuple[Project, Path]) -> None:
    project, sweep = done
    proc = project.hsm("monitor", "watch", sweep.name, "--interval", "0.2", timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert f"Sweep {sweep.name} finished: incomplete (4 completed, 12 failed)." in proc.stdout


def test_watch_follows_running_sweeps_until_they_finish(tmp_path: Path) -> None:
    project = outcome_project(tmp_path / "proj")
    assert "No active sweeps" in project.hsm("monitor", check=True).stdout
    run = _start_slow_sweep(project, "live", sleep=3.0, n=4)
    try:
        frame = project.hsm("monitor", "watch", "--once", check=True).stdout  # no id: every active sweep
        assert "Sweep Status: live" in frame
        rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in frame.splitlines() if line.count("│") == 3}
        assert rows["Status"] == "Running" and int(rows["Running"]) >= 1
        assert "ETA" in rows
        # v1 spelling of the live view; exits once the sweep is done.
        watch = project.hsm("monitor", "--watch", "--interval", "0.3", timeout=60)
        assert watch.returncode == 0, watch.stderr
        assert "Live Progress Monitor - Updates every 0.3s" in watch.stdout
        assert "Sweep live finished: completed (4 completed, 0 failed)." in watch.stdout
        assert run.wait(timeout=60) == 0
    finally:
        _stop(run)
    assert set(task_states(project.outputs / "live").values()) == {"completed"}


def test_ctrl_c_stops_watching_quietly_and_leaves_the_sweep_running(tmp_path: Path) -> None:
    project = outcome_project(tmp_path / "proj")
    run = _start_slow_sweep(project, "long", sleep=30, n=2)
    try:
        watcher = project.popen("monitor", "watch", "long", "--interval", "0.2")
        assert watcher.stdout is not None
        seen = []
        # Ctrl-C once the first frame is on screen (read line by line: no sleeping on a guess).
        for line in watcher.stdout:
            seen.append(line)
            if "Sweep Status: long" in line:
                break
        watcher.send_signal(signal.SIGINT)
        out, err = watcher.communicate(timeout=30)
        assert watcher.returncode == 0, err
        assert "Traceback" not in err and "Interrupted" not in err
        assert "Sweep Status: long" in "".join(seen)
        assert run.poll() is None, "Ctrl-C on the monitor must not stop the sweep"
    finally:
        _stop(run)


# -- recent / health ------------------------------------------------------------------------------------


def test_recent_lists_sweeps_of_the_last_days(tmp_path: Path) -> None:
    project = outcome_project(tmp_path / "proj")
    new = run_outcome_sweep(project, "new_one", grid={"mode": ["ok"], "lr": [0.1]})
    old = run_outcome_sweep(project, "old_one", grid={"mode": ["ok", "value"], "lr": [0.1]})
    set_age(old, 10)
    week = project.hsm("recent", "--days", "7", check=True).stdout  # v1 spelling
    assert "new_one" in week and "old_one" not in week
    month = json.loads(project.hsm("monitor", "recent", "--days", "30", "--json", check=True).stdout)
    assert [s["sweep_id"] for s in month] == ["new_one", "old_one"]  # newest first
    assert month[1]["counts"] == {"completed": 1, "failed": 1} and month[1]["status"] == "incomplete"
    assert new.is_dir()
    assert "No sweeps in the last 0 day(s)" in project.hsm("monitor", "recent", "--days", "0").stdout


def test_health_shows_current_state_and_history(done: tuple[Project, Path]) -> None:
    project, sweep = done
    out = project.hsm("monitor", "health", sweep.name, check=True).stdout
    assert "Source health" in out and "local" in out and "Healthy" in out and "Health history" in out

    # The lines the engine writes when an SSH host goes down and comes back.
    log = sweep / "logs" / "health_status.log"
    original = log.read_text()
    try:
        with log.open("a") as fh:
            fh.write("2030-01-01T10:00:00+00:00 server1 healthy\n")
            fh.write("2030-01-01T10:05:00+00:00 server1 unhealthy: ssh: connect to host 127.0.0.1 port 2222 refused\n")
            fh.write("2030-01-01T10:05:00+00:00 sources/server1.log failure 1\n")
            fh.write("2030-01-01T10:06:00+00:00 server1 disabled after 3 consecutive failures (ssh: refused)\n")
        doc = json.loads(project.hsm("monitor", "health", sweep.name, "--json", check=True).stdout)[0]
        assert doc["sources"]["server1"]["state"] == "disabled"
        assert doc["sources"]["local"]["state"] == "healthy"
        assert [e["event"] for e in doc["history"] if e["source"] == "server1"] == ["healthy", "unhealthy", "disabled"]
        table = project.hsm("monitor", "health", sweep.name, check=True).stdout
        assert "Disabled" in table and "refused" in table
        with log.open("a") as fh:
            fh.write("2030-01-01T10:07:00+00:00 server1 healthy\n")
            fh.write("2030-01-01T10:07:00+00:00 server1 recovered: enabled again\n")
        doc = json.loads(project.hsm("monitor", "health", sweep.name, "--json").stdout)[0]
        assert doc["sources"]["server1"]["state"] == "healthy"
    finally:
        log.write_text(original)


# -- cleanup --------------------------------------------------------------------------------------------


def test_cleanup_asks_first_never_deletes_a_running_sweep_and_dry_run_deletes_nothing(tmp_path: Path) -> None:
    project = outcome_project(tmp_path / "proj")
    old_a = run_outcome_sweep(project, "old_a", grid={"mode": ["ok"], "lr": [0.1]})
    old_b = run_outcome_sweep(project, "old_b", grid={"mode": ["value"], "lr": [0.1]})
    fresh = run_outcome_sweep(project, "fresh", grid={"mode": ["ok"], "lr": [0.2]})
    for s in (old_a, old_b):
        set_age(s, 45)
    run = _start_slow_sweep(project, "old_running", sleep=30, n=1)
    try:
        set_age(project.outputs / "old_running", 45)

        dry = project.hsm("cleanup", "--days", "30", "--dry-run", "--yes", check=True)
        assert "would delete" in dry.stdout and "Nothing was deleted" in dry.stdout
        assert "keep: still running" in dry.stdout
        assert all(p.is_dir() for p in (old_a, old_b, fresh, project.outputs / "old_running"))

        no = project.hsm("cleanup", "--days", "30", input="n\n")
        assert no.returncode == 1 and "Delete 2 sweep(s)" in no.stdout and "Nothing deleted" in no.stdout
        assert old_a.is_dir() and old_b.is_dir()

        yes = project.hsm("cleanup", "--days", "30", input="y\n")
        assert yes.returncode == 0, yes.stderr
        assert "Deleted old_a" in yes.stdout and "Deleted old_b" in yes.stdout
        assert not old_a.exists() and not old_b.exists()
        assert fresh.is_dir() and (project.outputs / "old_running").is_dir()
        assert run.poll() is None
        again = project.hsm("cleanup", "--days", "30", "--yes", check=True)
        assert "Nothing to delete: every old sweep is still running" in again.stdout
    finally:
        _stop(run)
    assert (project.outputs / "old_running").is_dir()
    # Interrupted just now: its last activity is recent, so it is not old any more.
    assert "No sweeps older than 30 day(s)" in project.hsm("cleanup", "--days", "30", "--yes").stdout


# -- error patterns: pure logic -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "state, code, lines, category, pattern",
    [
        ("failed", 1, ["RuntimeError: CUDA error: device-side assert triggered"], "cuda_error", "CUDA error: device-side assert triggered"),
        ("failed", 1, ["  x = np.zeros((10**12,))", "numpy.core._exceptions._ArrayMemoryError: Unable to allocate 7.28 TiB for an array"],
         "out_of_memory", "out of memory (MemoryError)"),
        ("failed", 1, ["Traceback (most recent call last):", '  File "t.py", line 1', "MemoryError"], "out_of_memory", "out of memory (MemoryError)"),
        ("failed", 137, ["slurmstepd: error: Detected 1 oom-kill event(s) in StepId=12.batch"], "out_of_memory", "out of memory (killed by the OOM killer)"),
        ("failed", 0, ["slurmstepd: error: *** JOB 12 ON n1 CANCELLED AT 2024-01-01T00:00:00 DUE TO TIME LIMIT ***"], "timeout", "timeout: time limit exceeded"),
        ("timeout", None, [], "timeout", "timeout: time limit exceeded"),
        ("lost", None, [], "lost", "lost (the source lost track of it: host down, node failure)"),
        ("failed", 139, ["Segmentation fault (core dumped)"], "killed", "killed by signal SIGSEGV"),
        ("failed", -15, [], "killed", "killed by signal SIGTERM"),
        ("failed", 2, ["usage: train.py [-h]", "train.py: error: unrecognized arguments: --x"], "exit_code", "exit code 2"),
        ("failed", 1,
         ["Traceback (most recent call last):", '  File "/home/u/p/train.py", line 3', "KeyError: 'lr'", "",
          "During handling of the above exception, another exception occurred:", "",
          "Traceback (most recent call last):", '  File "/home/u/p/train.py", line 5',
          "FileNotFoundError: [Errno 2] No such file or directory: '/data/run_17/ckpt.pt'"],
         "python_exception", "FileNotFoundError: [Errno <n>] No such file or directory: '<path>'"),
    ],
)
def test_classify(state: str, code: int | None, lines: list[str], category: str, pattern: str) -> None:
    d = classify(state, code, lines)
    assert (d.category, d.pattern) == (category, pattern)


def test_normalize_makes_similar_messages_equal() -> None:
    a = normalize("RuntimeError: shape mismatch at 0x7f3a2b10 in /tmp/x/y.py: got 128 expected 64.5e-3")
    b = normalize("RuntimeError: shape mismatch at 0x55aa in /scratch/u/z.py: got 7 expected 1")
    assert a == b == "RuntimeError: shape mismatch at <hex> in <path>: got <n> expected <n>"
    assert normalize("conv2d layer v2 failed") == "conv2d layer v2 failed"


def test_only_the_last_attempt_of_stderr_counts(tmp_path: Path) -> None:
    (tmp_path / "stderr.log").write_text(
        "ValueError: first attempt\n==== hsm: attempt 2 on host at 2024-01-01T00:00:00 ====\n"
        "\x1b[31mprogress 10%\rprogress 100%\x1b[0m\nKeyError: 'second'\n"
    )
    assert read_stderr_tail(tmp_path) == ["progress 100%", "KeyError: 'second'"]


def test_monitor_errors_names_the_setup_command_that_failed(project: Project) -> None:
    """A retry on a cluster whose ``module load`` failed: the job script's ``hsm-task --setup-failed``
    records the command (docs/hpc.md); ``hsm monitor errors`` must show it, not "exit code 1" with an
    empty example (the task's stderr is empty: it never ran)."""
    import sys

    project.write_sweep({"grid": {"x": [1], "exit": [3]}})
    project.hsm("run", "--config", "sweeps/sweep.yaml", "--sources", "local:1")
    sweep = project.only_sweep()
    reason = "setup command 2 exited 127: module load cuda/12.1"
    # What the job script runs when its second setup command fails (hsm_setup_failed in the script).
    ran = subprocess.run([sys.executable, "-m", "hsm_core.runner", str(sweep / "tasks" / "task_001"), "--source", "slurm",
                          "--setup-failed", reason], capture_output=True, text=True, env=project.environ(), timeout=60)
    assert ran.returncode == 1 and reason in ran.stderr, ran.stderr
    out = project.hsm("monitor", "errors", sweep.name, check=True).stdout
    assert "module load cuda/12.1" in out and "e.g. task_001: setup command 2 exited 127" in " ".join(out.split()), out
