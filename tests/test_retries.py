"""``retries: N``: transient failures run again with backoff, deterministic ones never (issue 17).

The real ``hsm`` runs a real script in a throw-away project. The script counts its own executions
from its task's ``stdout.log`` (one ``START`` line per execution, kept across attempts), so the
number of runs is what the task itself saw, not what hsm says it did.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
from pathlib import Path

import yaml

from hsm_project import Project, wait_for

SCRIPT = r'''
import os, sys
args = dict(a.split("=", 1) for a in sys.argv[1:])
with open(os.path.join(os.environ["HSM_TASK_DIR"], "stdout.log")) as fh:
    before = fh.read().count("START ")
print("START", before + 1, flush=True)
kind = args.get("kind", "ok")
if kind == "flaky" and before == 0:  # a transient NCCL hiccup: the second run works
    print("RuntimeError: NCCL error in: ProcessGroupNCCL.cpp:1269, unhandled system error, NCCL version 2.14.3",
          file=sys.stderr)
    sys.exit(1)
if kind == "node":  # the node keeps failing under it
    print("slurmstepd: error: *** STEP 12.0 ON node7 CANCELLED AT 2026-01-01T00:00:00 DUE TO NODE FAILURE ***",
          file=sys.stderr)
    sys.exit(1)
if kind == "oom" or (args.get("model.name") == "large" and args.get("batch_size") == "128"):
    raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.78 GiB total capacity)")
if kind == "value":
    raise ValueError("learning rate must be positive")
if kind == "slow_flaky" and before == 0:
    print("NCCL WARN Connection closed by remote peer", file=sys.stderr)
    sys.exit(1)
'''


def runs(task_dir: Path) -> int:
    """Executions of a task, from its own log."""
    return (task_dir / "stdout.log").read_text().count("START ")


def by_kind(project: Project, sweep: Path) -> dict[str, Path]:
    out = {}
    for d in (sweep / "tasks").iterdir():
        params = yaml.safe_load((d / "params.yaml").read_text())["params"]
        out[str(params.get("kind"))] = d
    return out


def seconds(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


def test_transient_failures_are_retried_with_backoff_deterministic_ones_never(project: Project) -> None:
    (project.root / "train.py").write_text(SCRIPT)
    cfg = project.write_sweep({"retries": {"max": 2, "backoff": 1}, "grid": {"kind": ["flaky", "oom", "value", "node"]}})
    proc = project.hsm("run", "--config", str(cfg), "--sweep-id", "r")
    assert proc.returncode == 1, proc.stdout + proc.stderr  # oom, value and node end failed
    sweep = project.outputs / "r"
    tasks = by_kind(project, sweep)
    assert {k: runs(d) for k, d in tasks.items()} == {"flaky": 2, "oom": 1, "value": 1, "node": 3}
    status = {k: yaml.safe_load((d / "status.yaml").read_text()) for k, d in tasks.items()}
    assert status["flaky"]["state"] == "completed" and status["flaky"]["attempt"] == 2
    assert [a["state"] for a in status["flaky"]["attempts"]] == ["failed", "completed"]
    assert [a["state"] for a in status["node"]["attempts"]] == ["failed"] * 3
    assert status["oom"]["state"] == status["value"]["state"] == "failed"
    assert len(status["oom"]["attempts"]) == len(status["value"]["attempts"]) == 1
    # One attempt after the other, never two at once, and the backoff doubles (1 s, then 2 s).
    attempts = status["node"]["attempts"]
    gaps = [seconds(b["start_time"]) - seconds(a["end_time"]) for a, b in zip(attempts, attempts[1:])]
    assert gaps[0] >= 1 and gaps[1] >= 2, gaps
    log = (sweep / "logs" / "retries.log").read_text()
    assert "retry 1/2 in 1s: transient (nccl_error)" in log
    assert "retry 2/2 in 2s: transient (node_failure)" in log
    assert "not retried: failed 3 time(s); retries: 2" in log
    assert "out_of_memory" not in log and "python_exception" not in log  # never even considered
    # The run's summary counts each task once, by how it ended.
    assert "Done: 1 completed, 3 failed" in proc.stdout


def test_compute_retries_in_the_project_config_apply_to_every_sweep(project: Project) -> None:
    (project.root / "train.py").write_text(SCRIPT)
    with open(project.root / "hsm_config.yaml", "a") as fh:
        fh.write("  retries:\n    max: 1\n    backoff: 0\n")  # under compute:
    cfg = project.write_sweep({"grid": {"kind": ["node", "flaky"]}})
    proc = project.hsm("run", "--config", str(cfg), "--sweep-id", "p")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    tasks = by_kind(project, project.outputs / "p")
    assert runs(tasks["node"]) == 2 and runs(tasks["flaky"]) == 2
    # The sweep file's own setting wins: no retries at all.
    cfg = project.write_sweep({"retries": 0, "grid": {"kind": ["flaky"]}}, name="none.yaml")
    assert project.hsm("run", "--config", str(cfg), "--sweep-id", "n").returncode == 1
    assert runs(by_kind(project, project.outputs / "n")["flaky"]) == 1


def test_a_retry_left_waiting_by_a_stopped_controller_is_run_by_hsm_complete(project: Project) -> None:
    (project.root / "train.py").write_text(SCRIPT)
    cfg = project.write_sweep({"retries": {"max": 1, "backoff": 600}, "grid": {"kind": ["slow_flaky"]}})
    proc = project.popen("run", "--config", str(cfg), "--sweep-id", "w")
    log = project.outputs / "w" / "logs" / "retries.log"
    try:
        wait_for(lambda: log.exists() and "retry 1/1 in 600s" in log.read_text(), timeout=60)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, out + err
    task = by_kind(project, project.outputs / "w")["slow_flaky"]
    assert runs(task) == 1
    assert yaml.safe_load((task / "status.yaml").read_text())["state"] == "failed"
    # No --retry-failed needed: the sweep's retries still apply, and count the failure already made.
    res = project.hsm("complete", "w")
    assert res.returncode == 0, res.stdout + res.stderr
    assert runs(task) == 2
    assert yaml.safe_load((task / "status.yaml").read_text())["state"] == "completed"


def test_complete_retry_failed_only_one_category(project: Project) -> None:
    (project.root / "train.py").write_text(SCRIPT)
    cfg = project.write_sweep({"grid": {"kind": ["oom", "value", "node"]}})
    assert project.hsm("run", "--config", str(cfg), "--sweep-id", "c").returncode == 1
    tasks = by_kind(project, project.outputs / "c")
    res = project.hsm("complete", "c", "--retry-failed", "--only", "out_of_memory")
    assert res.returncode == 1, res.stdout + res.stderr  # it fails again, of course
    assert "Skipped 2 task(s): not failed with out_of_memory (--only)" in res.stdout
    assert {k: runs(d) for k, d in tasks.items()} == {"oom": 2, "value": 1, "node": 1}
    oom_attempts = yaml.safe_load((tasks["oom"] / "status.yaml").read_text())["attempts"]
    assert [a["attempt"] for a in oom_attempts] == [1, 2]

    bad = project.hsm("complete", "c", "--retry-failed", "--only", "out_of_memroy")
    assert bad.returncode == 2
    assert "unknown failure category 'out_of_memroy', did you mean 'out_of_memory'?" in bad.stderr
    assert "Traceback" not in bad.stderr
    alone = project.hsm("complete", "c", "--only", "out_of_memory")
    assert alone.returncode == 2 and "--only CATEGORY narrows --retry-failed" in alone.stderr
    assert {k: runs(d) for k, d in tasks.items()} == {"oom": 2, "value": 1, "node": 1}  # the refusals ran nothing
    # Tab after --only offers the categories.
    tab = project.hsm(env={"_HSM_COMPLETE": "bash_complete", "COMP_WORDS": "hsm complete c --retry-failed --only n",
                           "COMP_CWORD": "5"}, check=True)
    assert [line.split(",", 1)[1] for line in tab.stdout.splitlines()] == ["node_failure", "nccl_error"]


def test_monitor_errors_names_the_values_the_failures_of_a_category_share(project: Project) -> None:
    (project.root / "train.py").write_text(SCRIPT)
    cfg = project.write_sweep({"grid": {"model.name": ["small", "large"], "batch_size": [32, 128], "seed": [1, 2, 3],
                                        "lr": [0.1]}})
    assert project.hsm("run", "--config", str(cfg), "--sweep-id", "e").returncode == 1
    res = project.hsm("monitor", "errors", "e")
    assert res.returncode == 0, res.stderr
    assert ("all 3 out of memory failures (out_of_memory): model.name=large, batch_size=128; "
            "every task with these values failed this way") in res.stdout
    doc = json.loads(project.hsm("monitor", "errors", "e", "--json", check=True).stdout)
    assert doc["shared_params"]["out_of_memory"] == {"count": 3, "values": {"model.name": "large", "batch_size": 128},
                                                      "explains_all": True}


def test_bad_retries_settings_are_config_errors_with_file_and_line(project: Project) -> None:
    cfg = project.write_sweep("grid:\n  x: [1]\nretries: often\n")
    res = project.hsm("run", "--config", str(cfg), "--dry-run")
    assert res.returncode == 2
    assert "sweep.yaml:3: retries: expected a number of retries (e.g. 2) or {max: N" in res.stderr
    cfg = project.write_sweep("grid:\n  x: [1]\nretries:\n  max: 2\n  backof: 5\n", name="typo.yaml")
    res = project.hsm("run", "--config", str(cfg), "--dry-run")
    assert res.returncode == 2
    assert "typo.yaml:5: retries.backof: unknown key 'backof', did you mean 'backoff'?" in res.stderr
    assert not project.outputs.exists() or project.sweep_ids() == []


def test_a_pull_based_worker_retries_transient_failures_too(project: Project) -> None:
    """``hsm worker`` (no controller) honours the sweep's ``retries:`` the same way: the flaky task
    runs twice under the same worker, the OOM once, and the worker exits 1 for the OOM only."""
    (project.root / "train.py").write_text(SCRIPT)
    cfg = project.write_sweep({"name": "wr", "retries": {"max": 2, "backoff": 0.5},
                               "grid": {"kind": ["flaky", "oom", "node"]}})
    env = {"HSM_WORKER_HEARTBEAT": "0.3", "HSM_WORKER_STALE_TIMEOUT": "2", "HSM_DISABLE_PLUGINS": "all"}
    proc = project.hsm("worker", "--sweep", str(cfg), "--idle-exit", env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    sweep = project.outputs / "wr"
    tasks = by_kind(project, sweep)
    assert {k: runs(d) for k, d in tasks.items()} == {"flaky": 2, "oom": 1, "node": 3}
    assert yaml.safe_load((tasks["flaky"] / "status.yaml").read_text())["state"] == "completed"
    assert [a["state"] for a in yaml.safe_load((tasks["node"] / "status.yaml").read_text())["attempts"]] == ["failed"] * 3


def test_transient_failures_being_retried_do_not_trip_fail_fast(project: Project) -> None:
    """Fail fast stops a run whose first finished tasks all failed alike (compute.fail_fast,
    default 3); the same NCCL hiccup in the first four tasks says nothing about the script when
    each is retried, so the run goes on and every task completes."""
    (project.root / "train.py").write_text(SCRIPT)
    cfg = project.write_sweep({"retries": {"max": 1, "backoff": 0}, "grid": {"kind": ["flaky"], "seed": [1, 2, 3, 4, 5]}})
    proc = project.hsm("run", "--config", str(cfg), "--sweep-id", "ff")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Fail fast" not in proc.stdout + proc.stderr
    for d in (project.outputs / "ff" / "tasks").iterdir():
        assert runs(d) == 2, d
