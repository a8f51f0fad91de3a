"""End to end: `hsm run`, `hsm sweep` (v1), `hsm complete`, `hsm status` on local processes."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest
import yaml

from hsm_project import Project, wait_for


def _only_sweep(project: Project) -> Path:
    ids = project.sweep_ids()
    assert len(ids) == 1, ids
    return project.outputs / ids[0]


def _status(task_dir: Path) -> dict:
    return yaml.safe_load((task_dir / "status.yaml").read_text())


def test_run_creates_the_sweep_directory_and_every_task_completes(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [1, 2, 3], "model.depth": [2, 4]}, "metadata": {"tags": ["t"]}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", "local:2")
    assert proc.returncode == 0, proc.stderr
    sweep = _only_sweep(project)
    for name in ("sweep_config.yaml", "sweep_metadata.yaml", "task_mapping.yaml", "logs", "scripts/job_scripts", "reports"):
        assert (sweep / name).exists(), name
    assert (sweep / "sweep_config.yaml").read_text() == cfg.read_text()
    tasks = sorted((sweep / "tasks").iterdir())
    assert [t.name for t in tasks] == [f"task_00{i}" for i in range(1, 7)]
    seen = set()
    for t in tasks:
        status = _status(t)
        assert status["state"] == "completed" and status["exit_code"] == 0
        params = yaml.safe_load((t / "params.yaml").read_text())["params"]
        seen.add((params["x"], params["model.depth"]))
        assert f"model.depth={params['model.depth']}" in (t / "stdout.log").read_text()
        assert json.loads((t / "metrics.json").read_text())["score"] == params["x"] * 2
        assert (t / "results").is_dir()
    assert len(seen) == 6
    assert sorted(project.executions()) == sorted(yaml.safe_load((t / "params.yaml").read_text())["task_id"] for t in tasks)
    mapping = yaml.safe_load((sweep / "task_mapping.yaml").read_text())
    assert {v["state"] for v in mapping["tasks"].values()} == {"completed"}
    meta = yaml.safe_load((sweep / "sweep_metadata.yaml").read_text())
    assert meta["status"] == "completed" and meta["total_tasks"] == 6

    status = project.hsm("status", "--json")
    info = json.loads(status.stdout)
    assert info["counts"]["completed"] == 6 and info["total"] == 6


def test_count_only_is_instant_for_a_billion_combinations(project: Project) -> None:
    cfg = project.write_sweep({"grid": {f"p{i}": list(range(10)) for i in range(10)}})
    proc = project.hsm("run", "--config", str(cfg), "--count-only", timeout=20)
    assert proc.returncode == 0, proc.stderr
    assert "10000000000" in proc.stdout
    assert project.sweep_ids() == []


def test_dry_run_shows_the_plan_and_runs_nothing(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"learning_rate": [0.1, 0.01], "batch_size": [32, 64, 128]}})
    proc = project.hsm("run", "--config", str(cfg), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "Total parameter combinations: 6" in proc.stdout
    assert "learning_rate" in proc.stdout and "3 values" in proc.stdout
    assert "Tasks to execute: 6" in proc.stdout
    assert project.sweep_ids() == [] and project.executions() == []


def test_huge_grid_is_refused_without_exhausting_memory(project: Project) -> None:
    cfg = project.write_sweep({"grid": {f"p{i}": list(range(10)) for i in range(12)}})
    proc = project.hsm("run", "--config", str(cfg), timeout=30)
    assert proc.returncode == 2
    assert "1,000,000,000,000 combinations" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("evil", ["$(touch {d}/pwned)", "a; touch {d}/pwned2", "`touch {d}/pwned3`", "x\ntouch {d}/pwned4", "--help"])
def test_parameter_values_reach_the_script_literally(project: Project, evil: str) -> None:
    value = evil.format(d=project.root)
    cfg = project.write_sweep({"grid": {"name": [value], "x": [1]}})
    proc = project.hsm("run", "--config", str(cfg))
    assert proc.returncode == 0, proc.stderr
    sweep = _only_sweep(project)
    out = (sweep / "tasks" / "task_001" / "stdout.log").read_text()
    argv = json.loads(next(ln for ln in out.splitlines() if ln.startswith("ARGV "))[5:])
    assert f"name={value}" in argv
    assert not list(project.root.glob("pwned*"))


def test_argparse_style_and_command_template(project: Project) -> None:
    cfg = project.write_sweep(
        {"grid": {"lr": [0.5]}, "args_style": "argparse", "command": "{python} train.py --tag 'a b' {args} x=2"}
    )
    proc = project.hsm("run", "--config", str(cfg))
    assert proc.returncode == 0, proc.stderr
    out = (_only_sweep(project) / "tasks" / "task_001" / "stdout.log").read_text()
    argv = json.loads(next(ln for ln in out.splitlines() if ln.startswith("ARGV "))[5:])
    assert argv == ["--tag", "a b", "--lr", "0.5", "x=2"]


@pytest.mark.parametrize("bad", ["../escape", "a/b", "..", "x/../../y"])
def test_sweep_ids_with_path_parts_are_rejected(project: Project, bad: str) -> None:
    cfg = project.write_sweep({"grid": {"x": [1]}})
    proc = project.hsm("run", "--config", str(cfg), "--sweep-id", bad)
    assert proc.returncode == 2
    assert "invalid sweep id" in proc.stderr and "Traceback" not in proc.stderr
    proc = project.hsm("status", bad)
    assert proc.returncode == 2 and "invalid sweep id" in proc.stderr
    assert not (project.root.parent / "escape").exists()


def test_unknown_sweep_id_is_one_clear_line(project: Project) -> None:
    proc = project.hsm("status", "sweep_19990101_000000")
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("Error: unknown sweep id") and len(proc.stderr.strip().splitlines()) == 1


def test_failed_tasks_give_exit_1_and_retry_failed_reruns_only_them(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [1, 2], "fail_once": [0, 1]}})
    proc = project.hsm("run", "--config", str(cfg), "--sweep-id", "s1")
    assert proc.returncode == 1
    assert "--retry-failed" in proc.stdout
    first = project.executions()
    assert len(first) == 2  # the two fail_once=1 tasks exited before recording an execution
    dry = project.hsm("complete", "s1", "--dry-run")
    assert "0 task(s) would run" in dry.stdout and "failed (use --retry-failed)" in dry.stdout
    proc = project.hsm("complete", "s1", "--retry-failed")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = project.executions()
    assert len(after) == 4 and after[:2] == first  # completed tasks were not run again
    info = json.loads(project.hsm("status", "s1", "--json").stdout)
    assert info["counts"]["completed"] == 4
    failed_task = next(d for d in (project.outputs / "s1" / "tasks").iterdir() if (d / "fail_once.marker").exists())
    status = _status(failed_task)
    assert status["attempt"] == 2 and [a["state"] for a in status["attempts"]] == ["failed", "completed"]
    assert "attempt 2" in (failed_task / "stdout.log").read_text()


def test_complete_after_config_edit_runs_only_new_combinations(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [1, 2]}})
    assert project.hsm("run", "--config", str(cfg), "--sweep-id", "s2").returncode == 0
    edited = project.write_sweep({"grid": {"x": [1, 2, 3]}}, name="edited.yaml")
    proc = project.hsm("complete", "s2", "--config", str(edited))
    assert proc.returncode == 0, proc.stderr
    runs = project.executions()
    assert len(runs) == 3 and len(set(runs)) == 3
    tasks = sorted(p.name for p in (project.outputs / "s2" / "tasks").iterdir())
    assert tasks == ["task_001", "task_002", "task_003"]
    backups = list((project.outputs / "s2").glob("sweep_config.*.yaml"))
    assert len(backups) == 1 and "x:\n  - 1\n  - 2\n" in backups[0].read_text()


def test_ctrl_c_interrupts_running_tasks_and_complete_finishes(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [1, 2, 3, 4], "sleep": [30]}})
    proc = project.popen("run", "--config", str(cfg), "--sweep-id", "s3")
    tasks = project.outputs / "s3" / "tasks"
    deadline = time.time() + 30
    while len([d for d in tasks.glob("task_*") if (d / "status.yaml").exists() and _status(d)["state"] == "running"]) < 2:
        assert time.time() < deadline, "tasks never started"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "hsm complete s3" in err
    states = sorted(_status(d)["state"] for d in tasks.iterdir() if (d / "status.yaml").exists())
    assert states == ["interrupted", "interrupted"]
    edited = project.write_sweep({"grid": {"x": [1, 2, 3, 4], "sleep": [0]}}, name="fast.yaml")
    done = project.hsm("complete", "s3", "--config", str(edited))
    # The edit changes every parameter set, so these are new tasks; the interrupted ones stay as they were.
    assert done.returncode == 0, done.stderr


def test_interrupted_tasks_are_rerun_by_complete(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [1, 2], "sleep": [1]}})
    proc = project.popen("run", "--config", str(cfg), "--sweep-id", "s4")
    tasks = project.outputs / "s4" / "tasks"
    deadline = time.time() + 30
    while not any((d / "status.yaml").exists() and _status(d)["state"] == "running" for d in tasks.glob("task_*")):
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    done = project.hsm("complete", "s4")
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(set(project.executions())) == sorted(project.executions())  # each task ran to the end once
    assert len(project.executions()) == 2


def test_sigkill_of_the_controller_loses_nothing(project: Project) -> None:
    """SIGKILL `hsm run` at random moments; `hsm complete` finishes; no completed task runs twice."""
    rng = random.Random(7)
    cfg = project.write_sweep({"grid": {"x": list(range(12)), "sleep": [0.2]}})
    proc = project.popen("run", "--config", str(cfg), "--sweep-id", "k1")
    # Killed before it wrote anything there is no sweep at all (nothing to lose): start the clock
    # once the sweep exists, whatever the load on this machine.
    wait_for(lambda: (project.outputs / "k1" / "sweep_metadata.yaml").exists(), timeout=60, what="the sweep dir")
    for round_ in range(3):
        time.sleep(rng.uniform(0.0, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        status = project.hsm("status", "k1", "--json")
        assert status.returncode == 0, status.stderr
        json.loads(status.stdout)
        proc = project.popen("complete", "k1")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    final = project.hsm("complete", "k1")
    assert final.returncode == 0
    info = json.loads(project.hsm("status", "k1", "--json").stdout)
    assert info["counts"]["completed"] == 12
    runs = project.executions()
    assert len(runs) == 12 and len(set(runs)) == 12, runs


def test_show_output_streams_task_lines(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [5]}})
    proc = project.hsm("run", "--config", str(cfg), "--show-output")
    assert proc.returncode == 0
    assert "[task_001] ARGV" in proc.stdout


def test_v1_sweep_command_and_file_format(project: Project) -> None:
    cfg = project.write_sweep(
        {
            "sweep": {
                "grid": {"seed": [1, 2]},
                "paired": [{"model_and_data": {"model.name": ["cnn", "mlp"], "data.aug": ["basic", "none"]}}],
            }
        },
        name="sweep.yaml",
    )
    proc = project.hsm("sweep", "--mode", "local", "--parallel-jobs", "2", "--config", str(cfg))
    assert proc.returncode == 0, proc.stderr
    sweep = _only_sweep(project)
    combos = set()
    for t in (sweep / "tasks").iterdir():
        p = yaml.safe_load((t / "params.yaml").read_text())["params"]
        combos.add((p["seed"], p["model.name"], p["data.aug"]))
    assert combos == {(s, m, a) for s in (1, 2) for m, a in (("cnn", "basic"), ("mlp", "none"))}


def test_missing_source_plugin_names_the_package(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [1]}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", "slurm", env={"HSM_DISABLE_PLUGINS": "all"})
    assert proc.returncode == 2
    assert "unknown compute source 'slurm'" in proc.stderr and "hsm-plugin-slurm" in proc.stderr
    assert "local" in proc.stderr and "Traceback" not in proc.stderr
    assert project.sweep_ids() == []


def test_gpu_slots_from_config(project: Project) -> None:
    (project.root / "hsm_config.yaml").write_text(
        (project.root / "hsm_config.yaml").read_text().replace("max_parallel_jobs: 2", "gpus: [0, 1]")
    )
    cfg = project.write_sweep({"grid": {"x": [1, 2, 3, 4], "sleep": [0.2]}})
    assert project.hsm("run", "--config", str(cfg)).returncode == 0
    devices = []
    for t in (_only_sweep(project) / "tasks").iterdir():
        env = json.loads(next(ln for ln in (t / "stdout.log").read_text().splitlines() if ln.startswith("ENV "))[4:])
        devices.append(env["CUDA_VISIBLE_DEVICES"])
    assert sorted(set(devices)) == ["0", "1"]


def test_status_of_a_large_sweep_and_rebuild(project: Project) -> None:
    """10,000 tasks: status reads the index; --rebuild recreates it from the task dirs."""
    from hsm_core.state import SweepDir, TaskRecord, write_status

    sweep = SweepDir(project.outputs / "big")
    sweep.path.mkdir(parents=True)
    sweep.create_layout()
    sweep.write_metadata({"sweep_id": "big", "status": "completed"})
    records = []
    for i in range(1, 10001):
        rec = TaskRecord(i, f"id{i}", {"x": i}, state="completed" if i % 10 else "failed", source="local", duration=1.0)
        records.append(rec)
    sweep.save_index(records)
    info = json.loads(project.hsm("status", "big", "--json").stdout)
    assert info["total"] == 10000 and info["counts"]["completed"] == 9000 and info["counts"]["failed"] == 1000
    # Rebuild from task dirs: only 3 exist, so the index shrinks to them.
    from hsm_core.atomic import atomic_write_yaml

    for i in (1, 2, 3):
        d = sweep.task_dir(i)
        d.mkdir(parents=True)
        atomic_write_yaml(d / "params.yaml", {"task_id": f"id{i}", "index": i, "params": {"x": i}})
        write_status(d, {"state": "completed", "exit_code": 0})
    info = json.loads(project.hsm("status", "big", "--json", "--rebuild").stdout)
    assert info["total"] == 3 and info["counts"]["completed"] == 3
