"""A scheduler core has never heard of, installed through a real entry point, used as users use
Slurm: ``hpc.system``, ``--sources hpc``, ``hsm worker submit``, ``hsm test``, ``hsm cancel``; its
options in ``compute.<kind>``, checked by its own schema (see third_party_scheduler.py)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml

from hsm_core.testing.project import Project, make_project, wait_for
from plugin_dists import make_dist, plugin_env
from third_party_scheduler import install

#: Only the spool plugin (installed plugins stay out of this test), fast worker heartbeats.
ONLY_SPOOL = {"HSM_LOAD_PLUGINS": "spool", "HSM_WORKER_HEARTBEAT": "0.3", "HSM_WORKER_STALE_TIMEOUT": "3"}


@pytest.fixture
def spool(tmp_path: Path) -> tuple[Project, dict[str, str]]:
    site = tmp_path / "site"
    site.mkdir()
    install(site, make_dist)
    queue = tmp_path / "queue"
    project = make_project(tmp_path / "proj", config_extra=f"  spool:\n    spool_dir: {queue}\nhpc:\n  system: spool\n")
    return project, plugin_env(site, **ONLY_SPOOL)


def _kill_leftovers(queue: Path) -> None:
    """Stop any element still running (a failed assertion must not leave processes behind)."""
    import signal

    for state in queue.glob("*.state"):
        words = state.read_text().split()
        if words[:1] == ["R"]:
            try:
                os.killpg(int(words[1]), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def test_hpc_system_runs_a_sweep_on_a_third_party_scheduler(spool: tuple[Project, dict[str, str]]) -> None:
    project, env = spool
    cfg = project.write_sweep({"grid": {"x": [1, 2, 3]}})
    try:
        proc = project.hsm("run", "--config", str(cfg), "--sources", "hpc", env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
    finally:
        _kill_leftovers(project.root.parent / "queue")
    assert sorted(project.executions()) == sorted(set(project.executions())) and len(project.executions()) == 3
    statuses = project.statuses(project.only_sweep())
    assert {s["state"] for s in statuses.values()} == {"completed"}
    # The job script exported the job under hsm's names; the task runner recorded them.
    assert all(re.fullmatch(r"\d+_\d", str(s["job_id"])) for s in statuses.values()), statuses
    assert all(s["source"] == "spool" for s in statuses.values())
    # hsm test asks the source the target names (by its kind, or hpc: hpc.system); its test comes
    # from ArrayJobSource, the toolkit the plugin is built on.
    for target in ("spool", "hpc"):
        test = project.hsm("test", target, env=env, timeout=120)
        assert test.returncode == 0, test.stdout + test.stderr
        assert f"Testing {target} -> Spool source 'spool'" in test.stdout and "All checks passed." in test.stdout
        assert "[ok] test job completed: hsm test ok on" in test.stdout
    assert not list((project.root / ".hsm" / "hpc_test").iterdir())  # removed once passed
    # hsm queue prints the scheduler's own listing (its queue command runs through the source).
    queue = project.hsm("queue", env=env)
    assert queue.returncode == 0 and queue.stdout.strip() == "spool ok", queue.stdout + queue.stderr


def test_worker_submit_and_cancel_on_a_third_party_scheduler(spool: tuple[Project, dict[str, str]]) -> None:
    project, env = spool
    (project.root / "slow.sh").write_text('sleep "$2"; echo "$HSM_RUN_ID" >> "$HSM_COUNT_DIR/runs.log"\n')
    cfg = project.write_sweep({"name": "wk", "command": "sh slow.sh {x} {delay}", "grid": {"x": [1, 2, 3, 4], "delay": [0.2]}},
                              "wk.yaml")
    last = project.write_sweep({"name": "wk2", "command": "sh slow.sh {x} {delay}", "grid": {"x": [1], "delay": [600]}},
                               "wk2.yaml")
    queue = project.root.parent / "queue"
    try:
        dry = project.hsm("worker", "submit", "--sweep", str(cfg), "--workers", "2", "--sources", "spool", "--dry-run", env=env)
        assert dry.returncode == 0, dry.stderr
        assert "#SPOOL --array=0-1" in dry.stdout and " worker --sweep " in dry.stdout and "--cluster spool" in dry.stdout
        # hpc resolves to hpc.system, as for --sources hpc.
        proc = project.hsm("worker", "submit", "--sweep", str(cfg), "--workers", "2", "--sources", "hpc", env=env)
        assert proc.returncode == 0, proc.stderr
        job = re.search(r"Submitted 2 worker\(s\) to spool: job (\d+)", proc.stdout).group(1)
        wait_for(lambda: len(project.executions()) == 4, timeout=120, what="4 tasks run by the spool workers")
        runs = project.executions()
        assert sorted(runs) == sorted(set(runs))
        sweep = project.outputs / "wk"
        statuses = {d.name: yaml.safe_load((d / "status.yaml").read_text()) for d in (sweep / "tasks").iterdir()}
        # The worker script exports nothing: the worker knew its job from the plugin's job_from_env.
        assert {s["job_id"] for s in statuses.values()} <= {f"{job}_0", f"{job}_1"}
        assert {str(s["array_index"]) for s in statuses.values()} <= {"0", "1"}
        wait_for(lambda: all(p.read_text().split()[:1] == ["C"] for p in queue.glob(f"{job}_*.state")), timeout=60,
                 what="the workers to exit")

        # hsm cancel of a worker sweep says what stops its workers: the plugin's cancel command.
        busy = project.hsm("worker", "submit", "--sweep", str(last), "--workers", "1", "--sources", "spool", env=env)
        assert busy.returncode == 0, busy.stderr
        job2 = re.search(r"job (\d+)", busy.stdout).group(1)
        tasks = project.outputs / "wk2" / "tasks"

        def running() -> Path | None:
            for task in tasks.iterdir() if tasks.is_dir() else ():
                status = task / "status.yaml"
                if status.exists() and (yaml.safe_load(status.read_text()) or {}).get("state") == "running":
                    return task
            return None

        task = wait_for(running, what="the worker to run its task")
        refused = project.hsm("cancel", "wk2", env=env)
        assert refused.returncode == 2, refused.stderr
        commands = re.search(r"stop them with: (.*?) \(each", refused.stderr).group(1).split("; ")
        cancel = next(c for c in commands if c.endswith(f"spoolq.py cancel {job2}"))
        # What it says works: the scheduler stops the worker, which records its task for the next one.
        import shlex
        import subprocess

        subprocess.run(shlex.split(cancel), env={**os.environ, "SPOOL_DIR": str(queue)}, check=True, timeout=60)
        wait_for(lambda: (yaml.safe_load((task / "status.yaml").read_text()) or {}).get("state") == "preempted",
                 what="the cancelled worker to record its task as preempted")
        submissions = [json.loads(ln) for ln in (project.outputs / "wk2" / "logs" / "workers" / "submissions.jsonl").read_text().splitlines()]
        assert submissions[0]["cancel"][-2:] == ["cancel", job2]
    finally:
        _kill_leftovers(queue)


def test_a_third_party_kind_gets_first_class_configuration(spool: tuple[Project, dict[str, str]]) -> None:
    project, env = spool
    schema = json.loads(project.hsm("config", "schema", env=env).stdout)
    spool_schema = schema["properties"]["compute"]["properties"]["spool"]
    assert spool_schema["properties"]["spool_dir"]["type"] == "string"
    assert "spool" in schema["$defs"]["hpc_system"]["examples"]
    assert project.hsm("config", "validate", env=env).returncode == 0

    config = project.root / "hsm_config.yaml"
    good = config.read_text()
    line = next(i for i, ln in enumerate(good.splitlines(), 1) if "spool_dir" in ln)
    config.write_text(good.replace("spool_dir: ", "spool_dir: 3 #"))
    proc = project.hsm("config", "validate", env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"Error: hsm_config.yaml:{line}: compute.spool.spool_dir: expected a string, got 3 (an integer)"
    config.write_text(good.replace("spool_dir:", "spool_dri:"))
    proc = project.hsm("config", "validate", env=env)
    assert proc.stderr.strip() == f"Error: hsm_config.yaml:{line}: compute.spool.spool_dri: unknown key 'spool_dri', did you mean 'spool_dir'?"
    config.write_text(good.replace("system: spool", "system: spoll"))
    proc = project.hsm("config", "validate", env=env)
    assert proc.returncode == 2 and "hpc.system: unknown scheduler 'spoll', did you mean 'spool'?" in proc.stderr

    # Without the plugin the same file still loads (the plugin may be installed where the project
    # runs); validate warns, naming the file and line of each setting nobody provides.
    config.write_text(good)
    proc = project.hsm("config", "validate", env={**env, "HSM_LOAD_PLUGINS": "none"})
    assert proc.returncode == 0, proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("warning: ")]
    assert any("hsm_config.yaml:" in w and "compute.spool: no installed plugin provides the compute source 'spool'" in w
               for w in warnings), proc.stderr
    assert any("hpc.system: no installed plugin provides the scheduler 'spool'" in w for w in warnings), proc.stderr
    assert project.hsm("status", env={**env, "HSM_LOAD_PLUGINS": "none"}).returncode in (0, 2)
