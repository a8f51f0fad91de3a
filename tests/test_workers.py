"""Pull-based workers end to end: real `hsm worker` processes, real signals, real files."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from hsm_project import Project
from hsm_core.plugin import TaskRegistry, TaskRegistryRecord, hookimpl

#: Short heartbeat and stale timeout; no installed plugins (core behaviour under test).
FAST = {"HSM_WORKER_HEARTBEAT": "0.3", "HSM_WORKER_STALE_TIMEOUT": "2", "HSM_DISABLE_PLUGINS": "all"}

#: A ~10 ms task: appends "<run id> <attempt>" to executions.log when it completes.
TASK_SH = """#!/bin/sh
sleep 0.01
echo "$HSM_RUN_ID $HSM_ATTEMPT" >> "$HSM_COUNT_DIR/executions.log"
"""

#: A training-like task: one step per `delay` seconds, a checkpoint after every step, resumes from it.
CKPT_PY = r"""
import os, signal, sys, time
args = dict(a.split("=", 1) for a in sys.argv[1:])
ck = os.path.join(os.environ["HSM_CHECKPOINT_DIR"], "step.txt")
start = int(open(ck).read()) if os.path.exists(ck) else 0
with open(os.path.join(os.environ["HSM_COUNT_DIR"], "attempts.log"), "a") as fh:
    fh.write(f"{os.environ['HSM_RUN_ID']} {os.environ['WANDB_RUN_ID']} {os.environ['WANDB_RESUME']} "
             f"start={start} attempt={os.environ['HSM_ATTEMPT']} dir={os.environ['HSM_RUN_DIR']}\n")
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
if args.get("usr1") == "1":  # also saves and stops on the warning before the walltime
    signal.signal(signal.SIGUSR1, lambda *a: stop.append(1))
for step in range(start, int(args.get("steps", 20))):
    if stop:
        print("preempted at step", step, flush=True)
        sys.exit(143)
    time.sleep(float(args.get("delay", 0.1)))
    with open(ck + ".tmp", "w") as fh:
        fh.write(str(step + 1))
    os.replace(ck + ".tmp", ck)
with open(os.path.join(os.environ["HSM_COUNT_DIR"], "executions.log"), "a") as fh:
    fh.write(os.environ["HSM_RUN_ID"] + "\n")
"""


def sweep_dir(project: Project, group: str) -> Path:
    return project.outputs / group


def statuses(project: Project, group: str) -> dict[str, dict[str, Any]]:
    out = {}
    for d in sorted((sweep_dir(project, group) / "tasks").iterdir()):
        out[d.name] = yaml.safe_load((d / "status.yaml").read_text()) if (d / "status.yaml").exists() else {}
    return out


def status_json(project: Project, sweep: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = project.hsm("worker", "--sweep", str(sweep), "--status", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def lock_files(project: Project, group: str) -> list[str]:
    locks = sweep_dir(project, group) / ".locks"
    return sorted(p.name for p in locks.iterdir() if p.name.endswith(".lock")) if locks.is_dir() else []


def executions(project: Project) -> list[str]:
    path = project.root / "executions.log"
    return [ln.split()[0] for ln in path.read_text().splitlines()] if path.exists() else []


def attempts_log(project: Project) -> list[dict[str, str]]:
    path = project.root / "attempts.log"
    rows = []
    for ln in path.read_text().splitlines() if path.exists() else []:
        run, wandb_id, resume, *kv = ln.split()
        row = dict(x.split("=", 1) for x in kv)
        row.update(run=run, wandb_id=wandb_id, resume=resume)
        rows.append(row)
    return rows


def wait_for(cond, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def ckpt_step(project: Project, group: str) -> int:
    for p in (sweep_dir(project, group) / "tasks").glob("*/checkpoints/step.txt"):
        try:
            return int(p.read_text() or 0)
        except (OSError, ValueError):
            return 0
    return 0


def task_pid(project: Project, group: str) -> int:
    (st,) = [s for s in statuses(project, group).values() if s.get("state") == "running"]
    return int(str(st["process"]).split(":")[0])


@pytest.fixture
def wp(project: Project) -> Project:
    (project.root / "task.sh").write_text(TASK_SH)
    (project.root / "ckpt.py").write_text(CKPT_PY)
    return project


def ckpt_sweep(project: Project, name: str, **params: Any) -> Path:
    grid = {"steps": [params.get("steps", 30)], "delay": [params.get("delay", 0.1)], "seed": params.get("seeds", [0])}
    if "usr1" in params:
        grid["usr1"] = [params["usr1"]]
    return project.write_sweep({"name": name, "command": "{python} ckpt.py {args}", "grid": grid}, f"{name}.yaml")


# --------------------------------------------------------------------------------------------


def test_worker_runs_every_configuration_once_with_deterministic_ids_and_dirs(wp: Project) -> None:
    cfg = wp.write_sweep({"command": "{python} ckpt.py {args}", "grid": {"steps": [1], "delay": [0.0], "seed": [1, 2],
                                                                          "lr": [0.1, 0.01]}}, "lr_sweep.yaml")
    proc = wp.hsm("worker", "--sweep", str(cfg), env=FAST)
    assert proc.returncode == 0, proc.stderr
    group = "lr_sweep"  # no name: the file stem
    from hsm_core.sweep import default_task_id

    expected = {}
    for lr in (0.1, 0.01):
        for seed in (1, 2):
            params = {"steps": 1, "delay": 0.0, "seed": seed, "lr": lr}
            expected[f"{default_task_id(params)}_s{seed}"] = default_task_id(params)
    st = statuses(wp, group)
    assert set(st) == set(expected)
    assert all(s["state"] == "completed" and s["run_id"] == expected[name] for name, s in st.items())
    rows = attempts_log(wp)
    assert len(rows) == 4
    for row in rows:
        # The run id is the config hash; W&B gets it as the run id, resumable.
        assert row["wandb_id"] == row["run"] and row["resume"] == "allow" and row["attempt"] == "1"
        assert Path(row["dir"]).name in expected and expected[Path(row["dir"]).name] == row["run"]
    assert sorted(executions(wp)) == sorted(expected.values())
    assert lock_files(wp, group) == []
    # A second worker finds nothing to do: completed configurations are never run again.
    again = wp.hsm("worker", "--sweep", str(cfg), env=FAST)
    assert again.returncode == 0 and "done after 0 task(s)" in again.stderr
    assert len(executions(wp)) == 4
    info = status_json(wp, cfg)
    assert info["counts"] == {"done": 4, "running": 0, "resumable": 0, "failed": 0, "pending": 0}
    # The worker sweep is an ordinary sweep dir: `hsm status <group>` reads it.
    plain = wp.hsm("status", group, "--json")
    assert plain.returncode == 0, plain.stderr
    summary = json.loads(plain.stdout)
    assert summary["counts"]["completed"] == 4 and summary["per_source"] == {"worker:local": {"completed": 4}}


def test_storage_root_gives_project_and_group_dirs(wp: Project, tmp_path: Path) -> None:
    cfg = wp.write_sweep({"name": "bpe16384-n3", "command": "sh task.sh {args}", "grid": {"x": [1, 2]}}, "s.yaml")
    store = tmp_path / "shared storage"
    proc = wp.hsm("worker", "--sweep", str(cfg), env={**FAST, "HSM_STORAGE_ROOT": str(store)})
    assert proc.returncode == 0, proc.stderr
    tasks = list((store / "testproj" / "bpe16384-n3" / "tasks").iterdir())
    assert len(tasks) == 2 and all((t / "status.yaml").exists() for t in tasks)
    assert not (wp.outputs / "bpe16384-n3").exists()
    # Per-cluster storage root from the config, when the environment does not set one.
    cfg_text = (wp.root / "hsm_config.yaml").read_text()
    (wp.root / "hsm_config.yaml").write_text(cfg_text + f"workers:\n  clusters:\n    big:\n      storage_root: {tmp_path / 'big'}\n")
    proc = wp.hsm("worker", "--sweep", str(cfg), "--cluster", "big", env=FAST)
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "big" / "testproj" / "bpe16384-n3" / "tasks").iterdir())) == 2


def test_commands_given_a_group_find_the_sweep_under_the_storage_root(wp: Project, tmp_path: Path) -> None:
    (wp.root / "metric.sh").write_text('echo "METRIC loss=0.$1"\n')
    cfg = wp.write_sweep({"name": "grp", "command": "sh metric.sh {x}", "grid": {"x": [1, 2]}}, "grp.yaml")
    env = {**FAST, "HSM_STORAGE_ROOT": str(tmp_path / "store")}
    assert wp.hsm("worker", "--sweep", str(cfg), env=env).returncode == 0
    status = wp.hsm("status", "grp", "--json", env=env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["counts"]["completed"] == 2
    export = wp.hsm("export", "grp", "--format", "json", env=env)
    assert sorted(row["loss"] for row in json.loads(export.stdout)) == [0.1, 0.2]
    assert "hsm worker --sweep" in wp.hsm("complete", "grp", env=env).stderr
    # Without the storage root this machine cannot know where it is: the usual unknown-id line.
    lost = wp.hsm("status", "grp", env={k: v for k, v in env.items() if k != "HSM_STORAGE_ROOT"})
    assert lost.returncode == 2 and "unknown sweep id 'grp'" in lost.stderr


def test_eight_workers_300_tasks_random_sigkills_every_task_completes_exactly_once(wp: Project) -> None:
    cfg = wp.write_sweep({"name": "many", "command": "sh task.sh {args}", "grid": {"x": list(range(300))}}, "many.yaml")
    rng = random.Random(5)
    workers = [wp.popen("worker", "--sweep", str(cfg), env=FAST) for _ in range(8)]
    kills = 0
    deadline = time.time() + 240
    while kills < 12 and time.time() < deadline:
        time.sleep(rng.uniform(0.2, 0.6))
        alive = [w for w in workers if w.poll() is None]
        if not alive:
            break
        victim = rng.choice(alive)
        victim.kill()  # SIGKILL: no cleanup, its claim stays behind
        victim.wait()
        kills += 1
        workers.append(wp.popen("worker", "--sweep", str(cfg), env=FAST))
    for w in workers:
        try:
            w.communicate(timeout=max(5.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            for x in workers:
                x.kill()
            raise
    assert kills >= 5, "the sweep finished before enough workers were killed; make the tasks longer"
    runs = executions(wp)
    assert len(runs) == 300 and len(set(runs)) == 300, (len(runs), len(set(runs)))
    st = statuses(wp, "many")
    assert len(st) == 300 and {s["state"] for s in st.values()} == {"completed"}
    assert lock_files(wp, "many") == []
    info = status_json(wp, cfg)
    assert info["counts"] == {"done": 300, "running": 0, "resumable": 0, "failed": 0, "pending": 0}
    assert info["stale_locks"] == 0
    assert sorted(t["run_id"] for t in info["tasks"]) == sorted(set(runs))


def test_worker_killed_with_its_task_a_new_worker_resumes_from_the_checkpoint(wp: Project) -> None:
    cfg = ckpt_sweep(wp, "resume", steps=30, delay=0.1)
    w1 = wp.popen("worker", "--sweep", str(cfg), env=FAST)
    wait_for(lambda: ckpt_step(wp, "resume") >= 4, what="first checkpoints")
    pid = task_pid(wp, "resume")
    # The node goes away: the worker and its task die at once, nothing is cleaned up.
    os.killpg(pid, signal.SIGKILL)
    w1.kill()
    w1.wait()
    during = status_json(wp, cfg, env=FAST)
    assert during["counts"]["resumable"] == 1, during
    assert "dead" in during["tasks"][0]["note"]
    w2 = wp.hsm("worker", "--sweep", str(cfg), env=FAST)
    assert w2.returncode == 0, w2.stderr
    first, second = attempts_log(wp)
    assert first["run"] == second["run"] == second["wandb_id"] and first["dir"] == second["dir"]
    assert first["start"] == "0" and int(second["start"]) >= 4 and second["attempt"] == "2"
    assert executions(wp) == [first["run"]]
    (st,) = statuses(wp, "resume").values()
    assert st["state"] == "completed" and [a["state"] for a in st["attempts"]] == ["lost", "completed"]
    assert lock_files(wp, "resume") == []


def test_worker_killed_alone_its_running_task_is_waited_for_not_run_twice(wp: Project) -> None:
    # Slow enough that the orphaned task is still running when the second worker starts (~5 s left).
    cfg = ckpt_sweep(wp, "orphan", steps=15, delay=0.4)
    w1 = wp.popen("worker", "--sweep", str(cfg), env=FAST)
    wait_for(lambda: ckpt_step(wp, "orphan") >= 3, what="first checkpoints")
    w1.kill()  # the task keeps running on this machine
    w1.wait()
    w2 = wp.hsm("worker", "--sweep", str(cfg), env=FAST)
    assert w2.returncode == 0, w2.stderr
    assert "still runs as pid" in w2.stderr
    assert len(attempts_log(wp)) == 1 and len(executions(wp)) == 1
    (st,) = statuses(wp, "orphan").values()
    assert st["state"] == "completed" and st["attempt"] == 1
    assert lock_files(wp, "orphan") == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_preemption_signal_records_the_attempt_releases_the_claim_and_exits_nonzero(wp: Project, sig: int) -> None:
    cfg = ckpt_sweep(wp, "preempt", steps=30, delay=0.1, **({"usr1": 1} if sig == signal.SIGUSR1 else {}))
    w1 = wp.popen("worker", "--sweep", str(cfg), env=FAST)
    wait_for(lambda: ckpt_step(wp, "preempt") >= 3, what="first checkpoints")
    w1.send_signal(sig)
    _, err = w1.communicate(timeout=30)
    assert w1.returncode == 128 + sig, err
    (st,) = statuses(wp, "preempt").values()
    assert st["state"] == "preempted" and st["signal_received"] == signal.Signals(sig).name
    assert lock_files(wp, "preempt") == []  # released: a restarted worker resumes it at once
    assert status_json(wp, cfg)["counts"]["resumable"] == 1
    w2 = wp.hsm("worker", "--sweep", str(cfg), env=FAST)
    assert w2.returncode == 0, w2.stderr
    first, second = attempts_log(wp)
    assert first["run"] == second["run"] and int(second["start"]) >= 3
    (st,) = statuses(wp, "preempt").values()
    assert [a["state"] for a in st["attempts"]] == ["preempted", "completed"]
    assert len(executions(wp)) == 1


def test_the_warning_before_the_walltime_spares_a_task_that_does_not_handle_it(wp: Project) -> None:
    """SIGUSR1 (Slurm's --signal=B:USR1@60 on the worker's job) is passed on only to a task that
    handles it, as the task runner does: its default action would kill a training script that
    only traps SIGTERM at once, without its checkpoint. The task runs on (to the walltime's
    SIGTERM, or here to its end); the worker takes no new task and exits 138."""
    cfg = ckpt_sweep(wp, "warned", steps=15, delay=0.1, seeds=[1, 2])
    w1 = wp.popen("worker", "--sweep", str(cfg), env=FAST)
    wait_for(lambda: ckpt_step(wp, "warned") >= 3, what="first checkpoints")
    w1.send_signal(signal.SIGUSR1)
    _, err = w1.communicate(timeout=60)
    assert w1.returncode == 128 + signal.SIGUSR1, err
    states = [st.get("state") for st in statuses(wp, "warned").values()]
    assert states == ["completed"], states  # ran to its end; the second configuration never started
    (st,) = statuses(wp, "warned").values()
    assert st["attempt"] == 1 and "signal_received" not in st
    assert len(executions(wp)) == 1 and lock_files(wp, "warned") == []


def test_resumable_work_is_taken_before_new_work(wp: Project) -> None:
    cfg = ckpt_sweep(wp, "order", steps=20, delay=0.05, seeds=[1, 2, 3])
    w1 = wp.popen("worker", "--sweep", str(cfg), env=FAST)
    wait_for(lambda: ckpt_step(wp, "order") >= 2, what="first checkpoints")
    w1.send_signal(signal.SIGTERM)
    w1.communicate(timeout=30)
    # Put the preempted task last in file order: it must still go first.
    (wp.root / "sweeps" / "order.yaml").write_text(
        yaml.safe_dump({"name": "order", "command": "{python} ckpt.py {args}",
                        "grid": {"steps": [20], "delay": [0.05], "seed": [3, 2, 1]}}))
    w2 = wp.hsm("worker", "--sweep", str(cfg), "--max-tasks", "1", env=FAST)
    assert w2.returncode == 0, w2.stderr
    rows = attempts_log(wp)
    assert len(rows) == 2 and rows[0]["run"] == rows[1]["run"] and rows[1]["attempt"] == "2"


def test_a_worker_whose_claim_is_taken_over_stops_its_task_and_writes_nothing(wp: Project) -> None:
    cfg = ckpt_sweep(wp, "stolen", steps=100, delay=0.1)
    w1 = wp.popen("worker", "--sweep", str(cfg), "--idle-exit", env={**FAST, "HSM_WORKER_STALE_TIMEOUT": "30"})
    wait_for(lambda: ckpt_step(wp, "stolen") >= 2, what="first checkpoints")
    pid = task_pid(wp, "stolen")
    (lock,) = (sweep_dir(wp, "stolen") / ".locks").glob("*.lock")
    # Another worker (elsewhere) took the claim over, as if ours had gone stale.
    tmp = lock.with_suffix(".tmp")
    tmp.write_text(json.dumps({"token": "someone-else", "host": "far", "machine": "far|x|y", "pid": 1, "cluster": "c2"}))
    os.replace(tmp, lock)
    _, err = w1.communicate(timeout=30)
    assert w1.returncode == 0, err
    assert "claim taken over by another worker" in err
    from hsm_core.workers.claims import process_alive

    assert not process_alive(pid, None)
    (st,) = statuses(wp, "stolen").values()
    assert st["state"] == "running" and st["attempt"] == 1  # left for the new owner
    assert json.loads(lock.read_text())["token"] == "someone-else"
    info = status_json(wp, cfg)
    assert info["counts"]["running"] == 1 and info["tasks"][0]["claimed_by"] == "far/1/c2"


def test_failed_tasks_are_not_retried_unless_asked(wp: Project) -> None:
    (wp.root / "fail.sh").write_text('echo "$HSM_RUN_ID" >> "$HSM_COUNT_DIR/executions.log"; exit 3\n')
    cfg = wp.write_sweep({"name": "bad", "command": "sh fail.sh {args}", "grid": {"x": [1, 2]}}, "bad.yaml")
    proc = wp.hsm("worker", "--sweep", str(cfg), env=FAST)
    assert proc.returncode == 1 and len(executions(wp)) == 2
    assert wp.hsm("worker", "--sweep", str(cfg), env=FAST).returncode == 0 and len(executions(wp)) == 2
    assert status_json(wp, cfg)["counts"]["failed"] == 2
    proc = wp.hsm("worker", "--sweep", str(cfg), "--retry-failed", env=FAST)
    assert proc.returncode == 1 and len(executions(wp)) == 4  # each retried once, not forever


def test_hsm_complete_of_a_worker_sweep_says_how_to_finish_it(wp: Project) -> None:
    cfg = wp.write_sweep({"name": "wk", "command": "sh task.sh {args}", "grid": {"x": [1, 2, 3]}}, "wk.yaml")
    assert wp.hsm("worker", "--sweep", str(cfg), "--max-tasks", "1", env=FAST).returncode == 0
    proc = wp.hsm("complete", "wk", "--retry-failed")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert f"hsm worker --sweep {cfg} --retry-failed" in proc.stderr
    assert len(executions(wp)) == 1  # nothing ran behind the workers' back
    assert wp.hsm("worker", "--sweep", str(cfg), env=FAST).returncode == 0 and len(executions(wp)) == 3


def test_metrics_of_worker_tasks_reach_hsm_export(wp: Project) -> None:
    """Workers run the result collectors as hsm run does: METRIC lines in stdout become metrics."""
    (wp.root / "metric.sh").write_text('echo "METRIC loss=0.$1"\n')
    cfg = wp.write_sweep({"name": "met", "command": "sh metric.sh {x}", "grid": {"x": [1, 2]}}, "met.yaml")
    assert wp.hsm("worker", "--sweep", str(cfg), env=FAST).returncode == 0
    out = wp.hsm("export", "met", "--format", "json")
    assert out.returncode == 0, out.stderr
    assert sorted(row["loss"] for row in json.loads(out.stdout)) == [0.1, 0.2]


def test_hsm_cancel_of_a_worker_sweep_names_what_stops_its_workers(wp: Project) -> None:
    cfg = ckpt_sweep(wp, "stopme", steps=30, delay=0.1)
    w1 = wp.popen("worker", "--sweep", str(cfg), env=FAST)
    wait_for(lambda: ckpt_step(wp, "stopme") >= 2, what="first checkpoints")
    proc = wp.hsm("cancel", "stopme")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"kill {w1.pid}" in proc.stderr and f"hsm worker --sweep {cfg}" in proc.stderr
    assert w1.poll() is None  # hsm cancel itself stopped nothing
    os.kill(w1.pid, signal.SIGTERM)  # what it said to run
    w1.communicate(timeout=30)
    (st,) = statuses(wp, "stopme").values()
    assert st["state"] == "preempted"
    assert wp.hsm("worker", "--sweep", str(cfg), env=FAST).returncode == 0  # resumed, then done
    (st,) = statuses(wp, "stopme").values()
    assert st["state"] == "completed"


def test_stop_commands_name_the_recorded_scheduler_jobs(tmp_path: Path) -> None:
    from hsm_core.workers.stop import stop_commands

    (tmp_path / "logs" / "workers").mkdir(parents=True)
    (tmp_path / "logs" / "workers" / "submissions.jsonl").write_text("\n".join(json.dumps(e) for e in [
        {"source": "slurm", "submitter": "sbatch", "job_id": "3458"},
        {"source": "hpc", "submitter": "sbatch", "job_id": "3460"},
        {"source": "pbs", "submitter": "qsub", "job_id": "12.server"},
        {"source": "local", "pids": [2 ** 22 + 7]},  # long gone: not named
        # Since issue 15 each submission records the command its scheduler's plugin gave to stop it
        # (the entries above, from an older hsm, get theirs from the installed plugins).
        {"source": "myqueue", "job_id": "5", "cancel": ["myq", "cancel", "5"]},
        {"source": "myqueue", "job_id": "6", "cancel": ["myq", "cancel", "6"]},
        {"source": "gone", "job_id": "7"},
    ]) + "\nnot json\n")
    pytest.importorskip("hsm_plugin_slurm")
    pytest.importorskip("hsm_plugin_pbs")
    assert stop_commands(tmp_path) == ["scancel 3458 3460", "qdel 12.server", "myq cancel 5 6", "cancel job 7 of gone"]


def test_git_check_refuses_a_project_behind_its_upstream(wp: Project, tmp_path: Path) -> None:
    def git(*args: str, cwd: Path) -> None:
        subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                       env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                            "GIT_COMMITTER_EMAIL": "t@t"})

    origin = tmp_path / "origin.git"
    git("init", "--bare", "-b", "main", str(origin), cwd=tmp_path)
    git("init", "-b", "main", cwd=wp.root)
    git("add", "-A", cwd=wp.root)
    git("commit", "-m", "one", cwd=wp.root)
    git("remote", "add", "origin", str(origin), cwd=wp.root)
    git("push", "-u", "origin", "main", cwd=wp.root)
    other = tmp_path / "other"
    git("clone", str(origin), str(other), cwd=tmp_path)
    (other / "new.txt").write_text("x")
    git("add", "-A", cwd=other)
    git("commit", "-m", "two", cwd=other)
    git("push", cwd=other)
    git("fetch", cwd=wp.root)  # a local fetch: the remote-tracking ref now knows the new commit
    cfg = wp.write_sweep({"name": "g", "command": "sh task.sh {args}", "grid": {"x": [1]}}, "g.yaml")
    proc = wp.hsm("worker", "--sweep", str(cfg), env=FAST)
    assert proc.returncode == 2
    assert "1 commit behind origin/main" in proc.stderr and "--allow-behind" in proc.stderr
    assert "Traceback" not in proc.stderr and executions(wp) == []
    assert wp.hsm("worker", "--sweep", str(cfg), "--status").returncode == 0  # status needs no check
    proc = wp.hsm("worker", "--sweep", str(cfg), "--allow-behind", env=FAST)
    assert proc.returncode == 0 and len(executions(wp)) == 1


class FileRegistry(TaskRegistry):
    """A task registry reading finished run ids from a file (stands in for W&B run states)."""

    def __init__(self, options: dict) -> None:
        super().__init__(options)
        assert options["sweep_id"] == "two_clusters" and "project_config" in options
        self.path = Path(options["file"])

    def is_finished(self, run_id: str) -> bool | None:
        return run_id in self.path.read_text().split()


class RegistryPlugin:
    @hookimpl
    def hsm_register_task_registries(self):
        return [TaskRegistryRecord("ledger", "finished runs listed in a file", FileRegistry)]


def test_runs_a_registry_calls_finished_elsewhere_are_skipped(wp: Project, tmp_path: Path) -> None:
    from hsm_core.config.project_config import load_project_config
    from hsm_core.registry import build_registry
    from hsm_core.workers.settings import resolve_settings
    from hsm_core.workers.worker import Worker, WorkerOptions, open_sweep

    registry = build_registry(entry_points=False, extra=[("ledger-plugin", RegistryPlugin())])
    cfg = wp.write_sweep({"name": "two_clusters", "command": "sh task.sh {args}", "grid": {"x": [1, 2, 3]}}, "r.yaml")
    project = load_project_config(wp.root, registry)
    ledger = tmp_path / "finished.txt"
    settings = resolve_settings(wp.root, {"workers": {"registry": {"name": "ledger", "file": str(ledger)}}},
                                env={**FAST, "HSM_COUNT_DIR": str(wp.root)})
    setup = open_sweep(project, cfg, registry, settings)
    done_elsewhere = setup.tasks[1].run_id
    ledger.write_text(done_elsewhere + "\n")
    os.environ["HSM_COUNT_DIR"] = str(wp.root)
    try:
        report = Worker(setup, registry, WorkerOptions(quiet=True)).run()
    finally:
        del os.environ["HSM_COUNT_DIR"]
    assert report.exit_code == 0 and report.ran == 2
    assert sorted(executions(wp)) == sorted(t.run_id for t in setup.tasks if t.run_id != done_elsewhere)


def test_submit_local_starts_n_workers_that_share_the_sweep(wp: Project) -> None:
    cfg = wp.write_sweep({"name": "sub", "command": "sh task.sh {args}", "grid": {"x": list(range(20))}}, "sub.yaml")
    proc = wp.hsm("worker", "submit", "--sweep", str(cfg), "--workers", "3", "--sources", "local", env=FAST)
    assert proc.returncode == 0, proc.stderr
    assert "Started 3 local worker(s)" in proc.stdout
    pids = [int(p) for p in proc.stdout.split("pids")[1].split("\n")[0].split()]
    wait_for(lambda: len(executions(wp)) == 20, what="20 executions")
    from hsm_core.workers.claims import process_alive

    wait_for(lambda: not any(process_alive(p, None) for p in pids), what="workers to exit")
    assert sorted(set(executions(wp))) == sorted(executions(wp))
    hosts = {(s["worker"]["pid"]) for s in statuses(wp, "sub").values()}
    assert hosts <= set(pids)


def test_submit_slurm_dry_run_writes_a_requeueable_array_script(wp: Project) -> None:
    cfg = wp.write_sweep({"name": "arr", "command": "sh task.sh {args}", "grid": {"x": [1, 2]}}, "arr.yaml")
    proc = wp.hsm("worker", "submit", "--sweep", str(cfg), "--workers", "8", "--sources", "slurm", "--walltime", "4:00:00",
                  "--gpus", "1", "--wandb-buffer", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    script = proc.stdout
    for line in ("#SBATCH --array=0-7", "#SBATCH --requeue", "#SBATCH --time=04:00:00", "#SBATCH --gres=gpu:1",
                 "#SBATCH --open-mode=append"):
        assert line in script
    assert "exec " in script and " worker --sweep " in script and "--wandb-buffer" in script
    assert "--cluster slurm" in script


#: Only the wandb plugin, which provides --wandb-buffer (the hsm_worker_feature hook).
WANDB_PLUGIN = {"HSM_DISABLE_PLUGINS": "", "HSM_LOAD_PLUGINS": "wandb_sync"}


def test_wandb_buffer_runs_offline_and_syncs_the_run_by_its_id(wp: Project) -> None:
    pytest.importorskip("wandb")
    pytest.importorskip("hsm_plugin_wandb_sync")
    env = {**FAST, **WANDB_PLUGIN, "WANDB_API_KEY": "", "WANDB_SILENT": "true"}
    (wp.root / "wb.py").write_text(
        "import os, wandb\n"
        "run = wandb.init(project='p')\n"
        "assert run.id == os.environ['WANDB_RUN_ID']\n"
        "run.log({'loss': 1.0}); run.finish()\n"
        "open(os.path.join(os.environ['HSM_COUNT_DIR'], 'executions.log'), 'a').write("
        "os.environ['HSM_RUN_ID'] + ' ' + run.id + ' ' + os.environ['WANDB_MODE'] + '\\n')\n"
    )
    cfg = wp.write_sweep({"name": "wb", "command": "{python} wb.py {args}", "grid": {"x": [1]}}, "wb.yaml")
    proc = wp.hsm("worker", "--sweep", str(cfg), "--wandb-buffer", env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr
    (line,) = (wp.root / "executions.log").read_text().splitlines()
    hsm_run_id, wandb_id, mode = line.split()
    assert mode == "offline"
    from hsm_plugin_wandb_sync.env import run_id_for

    assert wandb_id == run_id_for("wb", hsm_run_id)  # the plugin's per-sweep id, which its registry asks by
    (task,) = (sweep_dir(wp, "wb") / "tasks").iterdir()
    assert list(task.glob(f"wandb/offline-run-*/run-{wandb_id}.wandb"))
    # No W&B server here: the upload fails, is reported with the command to retry, and the task
    # still counts as completed.
    assert "wandb-buffer: wandb sync of " + wandb_id in proc.stderr and "retry by hand" in proc.stderr
    (st,) = statuses(wp, "wb").values()
    assert st["state"] == "completed"


def test_wandb_buffer_without_wandb_or_its_plugin_is_a_clear_error(wp: Project) -> None:
    pytest.importorskip("hsm_plugin_wandb_sync")
    cfg = wp.write_sweep({"name": "nowb", "command": "sh task.sh {args}", "grid": {"x": [1]}}, "nowb.yaml")
    code = ("import sys; sys.modules['wandb'] = None; import importlib.util as u; "
            "u.find_spec = (lambda f: (lambda n, *a: None if n == 'wandb' else f(n, *a)))(u.find_spec); "
            "from hsm_core.cli.main import main; main(sys.argv[1:])")
    env = {**os.environ, **FAST, **WANDB_PLUGIN, "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code, "worker", "--sweep", str(cfg), "--wandb-buffer"], cwd=wp.root,
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "--wandb-buffer needs the wandb package" in proc.stderr and "pip install wandb" in proc.stderr
    assert "Traceback" not in proc.stderr
    # W&B is the plugin's business: without it the option says what to install, before any claim.
    proc = wp.hsm("worker", "--sweep", str(cfg), "--wandb-buffer", env=FAST)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("Error: the worker option 'wandb-buffer' needs a plugin that provides it")
    assert "install hsm-plugin-wandb-sync with: " in proc.stderr
    assert executions(wp) == [] and lock_files(wp, "nowb") == []


def test_two_clusters_without_shared_storage_skip_runs_the_wandb_registry_calls_finished(wp: Project, tmp_path: Path) -> None:
    pytest.importorskip("wandb")
    pytest.importorskip("hsm_plugin_wandb_sync")
    (wp.root / "wb.py").write_text(
        "import os, wandb\n"
        "run = wandb.init(project='p'); run.log({'loss': 1.0}); run.finish()\n"
        "open(os.path.join(os.environ['HSM_COUNT_DIR'], 'executions.log'), 'a').write(os.environ['HSM_RUN_ID'] + '\\n')\n"
    )
    cfg = wp.write_sweep({"name": "xc", "command": "{python} wb.py {args}", "grid": {"x": [1, 2]}}, "xc.yaml")
    env = {**FAST, "HSM_DISABLE_PLUGINS": "", "HSM_LOAD_PLUGINS": "wandb_sync", "WANDB_MODE": "offline",
           "WANDB_SILENT": "true", "WANDB_API_KEY": ""}
    wandb_a = tmp_path / "wandb_on_a"
    # Cluster A finishes one of the two runs, in its own storage.
    a = wp.hsm("worker", "--sweep", str(cfg), "--cluster", "a", "--max-tasks", "1",
               env={**env, "HSM_STORAGE_ROOT": str(tmp_path / "a"), "WANDB_DIR": str(wandb_a)}, timeout=180)
    assert a.returncode == 0, a.stderr
    assert len(executions(wp)) == 1
    # Cluster B has its own storage; the wandb registry (here reading A's run logs, as the W&B
    # server would report their states) says which runs finished elsewhere.
    cfg_text = (wp.root / "hsm_config.yaml").read_text()
    (wp.root / "hsm_config.yaml").write_text(
        cfg_text + f"workers:\n  registry:\n    name: wandb\n    local_dirs: [{wandb_a}]\n")
    status = wp.hsm("worker", "--sweep", str(cfg), "--cluster", "b", "--status", "--json",
                    env={**env, "HSM_STORAGE_ROOT": str(tmp_path / "b")})
    assert json.loads(status.stdout)["counts"]["done"] == 1, status.stderr
    b = wp.hsm("worker", "--sweep", str(cfg), "--cluster", "b",
               env={**env, "HSM_STORAGE_ROOT": str(tmp_path / "b"), "WANDB_DIR": str(tmp_path / "wandb_on_b")}, timeout=180)
    assert b.returncode == 0, b.stderr
    runs = executions(wp)
    assert len(runs) == 2 and len(set(runs)) == 2  # B ran only the one A had not finished
    assert "done after 1 task(s)" in b.stderr


def test_a_worker_refuses_a_sweep_that_controllers_run(wp: Project) -> None:
    """A worker sweep named like a sweep of hsm run would share its dir: the same parameters would
    run once in task_NNN (the controller's) and once in a run-id dir (the worker's)."""
    cfg = wp.write_sweep({"name": "shared", "command": "{python} -c pass {args}", "grid": {"x": [1, 2]}}, "shared.yaml")
    run = wp.hsm("run", "--config", str(cfg), "--sweep-id", "shared", env=FAST)
    assert run.returncode == 0, run.stderr
    before = sorted(p.name for p in (sweep_dir(wp, "shared") / "tasks").iterdir())
    worker = wp.hsm("worker", "--sweep", str(cfg), env=FAST)
    assert worker.returncode == 2, worker.stderr
    assert "is a sweep run by hsm run / hsm complete, not by workers" in worker.stderr
    assert len(worker.stderr.strip().splitlines()) == 1, worker.stderr
    assert sorted(p.name for p in (sweep_dir(wp, "shared") / "tasks").iterdir()) == before == ["task_001", "task_002"]


def test_a_misspelt_worker_option_names_the_one_meant(wp: Project) -> None:
    """``--feature wandb-bufer`` is a typo, not a missing plugin: say which option was meant."""
    cfg = ckpt_sweep(wp, "typo", steps=1, delay=0.01)
    proc = wp.hsm("worker", "--sweep", str(cfg), "--feature", "wandb-bufer", env=FAST)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "Error: unknown worker option 'wandb-bufer', did you mean 'wandb-buffer'? (--feature wandb-buffer, "
        "or --wandb-buffer)"], proc.stderr
    assert executions(wp) == []


def test_worker_status_table_in_80_columns_keeps_its_headers_and_params(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A user's 80-column terminal: `hsm worker --status` cut "attempt" and "heartbeat" to
    "attemp" and "heartbea", and dropped the params column when a claim was shown."""
    from hsm_core.workers.status import Row, StatusTable, render

    monkeypatch.setenv("COLUMNS", "80")
    rows = [Row(1, "run_0001", "wandb-abcdef12", {"lr": 0.1, "batch": 32, "model": "resnet50", "seed": 1}, "running",
                "running", 2, claimed_by="node12.cluster/123456/torque", heartbeat_age=3.2),
            Row(2, "run_0002", "wandb-0123abcd", {"lr": 0.2, "batch": 32, "model": "resnet50", "seed": 1}, "resumable",
                "preempted", 1, note="resumes from step 7")]
    render(StatusTable("/tmp/s", "g", rows, counts={"running": 1, "resumable": 1}), all_rows=True)
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80, out
    for header in ("attempt", "heartbeat", "params"):
        assert header in out.split(), out
    assert "lr=0.1" in out and "model=resnet50" in out.replace("\n", " "), out
