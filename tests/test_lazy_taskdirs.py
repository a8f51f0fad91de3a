"""Task dirs made when each task starts, from the sweep's manifest (issue 19): every reader finds
the tasks nobody started yet, a made dir is whole before its task starts, a controller killed
mid-sweep is continued without running anything twice or losing anything, and sweeps made before
the manifest (every dir made up front) still read."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from hsm_project import Project, wait_for
from hsm_core.testing.project import make_project
from hsm_core.task_manifest import MANIFEST_FILE, find_entry, materialize, read_manifest, write_manifest, entry

#: Checks its own task dir as it starts (the files hsm promises are there, whole), then logs its
#: start and end (epoch seconds) to the project's runs file: executions counted from the task's own log.
CHECKING_SCRIPT = r'''
import json, os, sys, time
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
d = os.environ["HSM_TASK_DIR"]
names = sorted(os.listdir(d))
problems = [n for n in ("params.yaml", "command.json") if n not in names]
with open(os.path.join(d, "command.json")) as fh:
    command = json.load(fh)
if command["task_id"] != os.environ["HSM_TASK_ID"]:
    problems.append("command.json of another task")
log = os.path.join(os.environ["HSM_COUNT_DIR"], "runs.jsonl")
start = time.time()
time.sleep(float(args.get("sleep", 0)))
with open(log, "a") as fh:
    fh.write(json.dumps({"task": os.environ["HSM_TASK_ID"], "start": start, "end": time.time(), "problems": problems}) + "\n")
with open(os.path.join(d, "metrics.json"), "w") as fh:
    json.dump({"score": float(args.get("x", 0))}, fh)
sys.exit(int(args.get("exit", 0)))
'''


@pytest.fixture
def checking(tmp_path: Path) -> Project:
    return make_project(tmp_path / "proj", script=CHECKING_SCRIPT)


def runs(project: Project) -> list[dict]:
    path = project.root / "runs.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def status_json(project: Project, sweep_id: str) -> dict:
    proc = project.hsm("status", sweep_id, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    info = json.loads(proc.stdout)
    info["counts"] = {k: v for k, v in info["counts"].items() if v}
    return info


def assert_each_ran_once_alone(project: Project, expected: int) -> None:
    done = runs(project)
    tasks = [r["task"] for r in done]
    assert sorted(set(tasks)) == sorted(tasks), f"a task ran twice: {tasks}"
    assert len(tasks) == expected
    assert not [r for r in done if r["problems"]], done


def test_only_started_tasks_have_dirs_and_each_dir_is_whole_before_its_task_starts(checking: Project) -> None:
    cfg = checking.write_sweep({"grid": {"x": list(range(6))}})
    done = checking.hsm("run", "--config", str(cfg), "--sweep-id", "lazy", "--parallel-limit", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert_each_ran_once_alone(checking, 6)
    sweep = checking.outputs / "lazy"
    manifest = read_manifest(sweep)
    assert [(row["index"], row["params"]) for row in manifest] == [(i + 1, {"x": i}) for i in range(6)]
    assert sorted(p.name for p in (sweep / "tasks").iterdir()) == [f"task_00{i}" for i in range(1, 7)]  # no temporaries left


def test_status_export_and_a_lost_index_see_the_tasks_nobody_started(checking: Project) -> None:
    cfg = checking.write_sweep({"grid": {"x": list(range(8)), "sleep": [30]}})
    proc = checking.popen("run", "--config", str(cfg), "--sweep-id", "half", "--parallel-limit", "2")
    sweep = checking.outputs / "half"
    try:
        wait_for(lambda: len(list((sweep / "tasks").glob("task_*"))) == 2 and (sweep / "task_index.json").exists(),
                 what="two tasks started")
        info = status_json(checking, "half")
        assert sum(info["counts"].values()) == 8 and info["counts"].get("pending") == 6, info["counts"]
        (sweep / "task_index.json").unlink()  # a lost cache: rebuilt from the manifest and the two dirs
        info = status_json(checking, "half")
        assert sum(info["counts"].values()) == 8 and info["counts"].get("pending") == 6, info["counts"]
        rows = json.loads((sweep / "task_index.json").read_text())["tasks"]
        assert [(r["index"], r["params"]["x"]) for r in rows] == [(i + 1, i) for i in range(8)]
        out = checking.root / "half.json"
        exported = checking.hsm("export", "half", "--format", "json", "--output", str(out))
        assert exported.returncode == 0, exported.stdout + exported.stderr
        text = out.read_text()
        assert text.count('"pending"') == 6, text[:2000]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)


def test_a_controller_killed_mid_sweep_is_continued_without_running_anything_twice(checking: Project) -> None:
    cfg = checking.write_sweep({"grid": {"x": list(range(10)), "sleep": [0.5]}})
    proc = checking.popen("run", "--config", str(cfg), "--sweep-id", "killed", "--parallel-limit", "2")
    sweep = checking.outputs / "killed"
    try:
        wait_for(lambda: len(runs(checking)) >= 3, what="three tasks done")
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # no clean-up at all: its running tasks go on alone
        proc.communicate(timeout=30)
    (sweep / "task_index.json").unlink(missing_ok=True)  # and the index with it, for good measure
    started = len(list((sweep / "tasks").glob("task_*")))
    assert started < 10, "every task dir was made before the controller was killed"
    info = status_json(checking, "killed")
    assert sum(info["counts"].values()) == 10, info["counts"]
    done = checking.hsm("complete", "killed")
    assert done.returncode == 0, done.stdout + done.stderr
    wait_for(lambda: len(runs(checking)) >= 10, what="the orphaned tasks to end")
    time.sleep(1.0)
    assert_each_ran_once_alone(checking, 10)
    info = status_json(checking, "killed")
    assert info["counts"] == {"completed": 10}, info["counts"]


def test_complete_and_retry_failed_on_a_half_run_lazy_sweep(checking: Project) -> None:
    cfg = checking.write_sweep({"grid": {"x": list(range(6)), "sleep": [0.3]}})
    proc = checking.popen("run", "--config", str(cfg), "--sweep-id", "retry", "--parallel-limit", "1")
    sweep = checking.outputs / "retry"
    wait_for(lambda: len(runs(checking)) >= 2, what="two tasks done")
    proc.send_signal(signal.SIGINT)  # a clean stop part-way: the rest have no dirs
    proc.communicate(timeout=60)
    assert len(list((sweep / "tasks").glob("task_*"))) < 6
    # What ran before the continuation, and which tasks it finished: a task stopped by the Ctrl-C
    # after it logged its run (but before it exited) is not finished, and rightly runs again.
    before = len(runs(checking))
    finished = {yaml.safe_load((d / "params.yaml").read_text())["task_id"] for d in (sweep / "tasks").glob("task_*")
                if (d / "status.yaml").exists() and yaml.safe_load((d / "status.yaml").read_text()).get("state") == "completed"}
    # A task that failed: its status says so (as a failed run writes it).
    failed_dir = sweep / "tasks" / "task_001"
    status = yaml.safe_load((failed_dir / "status.yaml").read_text())
    status.update(state="failed", exit_code=1)
    (failed_dir / "status.yaml").write_text(yaml.safe_dump(status))
    (sweep / "task_index.json").unlink()
    first = checking.hsm("complete", "retry")
    assert first.returncode == 1, first.stdout + first.stderr  # the failed task is left, and said
    assert status_json(checking, "retry")["counts"] == {"completed": 5, "failed": 1}
    again = checking.hsm("complete", "retry", "--retry-failed")
    assert again.returncode == 0, again.stdout + again.stderr
    assert status_json(checking, "retry")["counts"] == {"completed": 6}
    first_id = yaml.safe_load((failed_dir / "params.yaml").read_text())["task_id"]
    again_ran = [r["task"] for r in runs(checking)[before:]]
    assert again_ran.count(first_id) == 1, again_ran  # the failed one ran again, once
    assert not set(again_ran) & (finished - {first_id}), again_ran  # no finished task ran again
    assert len(again_ran) == len(set(again_ran)), again_ran  # and nothing twice
    assert {r["task"] for r in runs(checking)} == {e["id"] for e in read_manifest(sweep)}  # every task ran


def test_an_old_sweep_with_every_dir_and_no_manifest_still_reads_and_completes(checking: Project) -> None:
    cfg = checking.write_sweep({"grid": {"x": list(range(4))}})
    assert checking.hsm("run", "--config", str(cfg), "--sweep-id", "old").returncode == 0
    sweep = checking.outputs / "old"
    (sweep / MANIFEST_FILE).unlink()  # as hsm wrote sweeps before the manifest
    (sweep / "task_index.json").unlink()
    assert status_json(checking, "old")["counts"] == {"completed": 4}
    edited = checking.write_sweep({"grid": {"x": list(range(6))}}, name="more.yaml")
    done = checking.hsm("complete", "old", "--config", str(edited))
    assert done.returncode == 0, done.stdout + done.stderr
    assert_each_ran_once_alone(checking, 6)
    # The manifest now lists the old tasks and the new ones, with the indices they have.
    assert [(r["index"], r["params"]["x"]) for r in read_manifest(sweep)] == [(i + 1, i) for i in range(6)]
    (sweep / "task_index.json").unlink()
    assert status_json(checking, "old")["counts"] == {"completed": 6}


def _race(task_dir: str, n: int, barrier, results) -> None:
    barrier.wait()
    made = materialize(Path(task_dir), {"task_id": "t1", "index": 1, "params": {"x": n}},
                       {"task_id": "t1", "index": 1, "argv": ["true", str(n)], "env": {}})
    results.put(made)


def test_racing_processes_make_a_task_dir_once_and_whole(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    for round_ in range(5):
        task_dir = tmp_path / f"r{round_}" / "tasks" / "task_001"
        barrier, results = ctx.Barrier(6), ctx.Queue()
        procs = [ctx.Process(target=_race, args=(str(task_dir), n, barrier, results)) for n in range(6)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        made = [results.get(timeout=5) for _ in procs]
        assert made.count(True) == 1, made
        assert sorted(os.listdir(task_dir)) == ["command.json", "params.yaml"]
        winner = json.loads((task_dir / "command.json").read_text())["argv"][1]
        assert yaml.safe_load((task_dir / "params.yaml").read_text())["params"] == {"x": int(winner)}  # one maker's files, both
        assert os.listdir(task_dir.parent) == ["task_001"]  # no temporary dir left


def test_find_entry_bisects_to_any_task_of_a_big_manifest(tmp_path: Path) -> None:
    write_manifest(tmp_path, [entry(i, f"id{i}", {"x": "y" * (i % 37)}) for i in range(1, 5001)])
    for index in (1, 2, 17, 2500, 4999, 5000):
        assert find_entry(tmp_path, index) == {"index": index, "id": f"id{index}", "params": {"x": "y" * (index % 37)}}
    assert find_entry(tmp_path, 0) is None and find_entry(tmp_path, 5001) is None
    assert find_entry(tmp_path / "none", 1) is None


def test_export_takes_a_completed_tasks_metrics_from_the_sweeps_metrics_file_until_it_changes(checking: Project) -> None:
    cfg = checking.write_sweep({"grid": {"x": [1, 2]}})
    assert checking.hsm("run", "--config", str(cfg), "--sweep-id", "m").returncode == 0
    sweep = checking.outputs / "m"
    kept = [json.loads(line) for line in (sweep / "task_metrics.jsonl").read_text().splitlines()]
    assert sorted((k["attempt"], k["values"]["score"]) for k in kept) == [(1, 1.0), (1, 2.0)]
    out = checking.root / "m.json"
    assert checking.hsm("export", "m", "--format", "json", "--output", str(out)).returncode == 0
    assert sorted(r["score"] for r in json.loads(out.read_text())) == [1.0, 2.0]
    # What the controller kept is what export shows until the file changes: an evaluation that
    # rewrites metrics.json after the sweep is seen (hsm_core/metrics_freshness.py) ...
    (sweep / "tasks" / "task_001" / "metrics.json").write_text('{"score": 99}')
    assert checking.hsm("export", "m", "--format", "json", "--output", str(out)).returncode == 0
    assert sorted(r["score"] for r in json.loads(out.read_text())) == [2.0, 99]
    # ... and so is the file of a task that ran again.
    status_file = sweep / "tasks" / "task_001" / "status.yaml"
    status = yaml.safe_load(status_file.read_text())
    status.update(attempt=2, state="running")
    status_file.write_text(yaml.safe_dump(status))
    index = json.loads((sweep / "task_index.json").read_text())
    index["tasks"][0]["state"] = "running"  # as a controller running it again would have it
    (sweep / "task_index.json").write_text(json.dumps(index))
    status.update(state="completed")
    status_file.write_text(yaml.safe_dump(status))
    assert checking.hsm("export", "m", "--format", "json", "--output", str(out)).returncode == 0
    assert sorted(r["score"] for r in json.loads(out.read_text())) == [2.0, 99]


def _element_sweep(tmp_path: Path, n: int) -> tuple[Path, Path, list[dict]]:
    """A sweep dir whose controller left its task dirs to the array elements: a list file and the
    chunk's task file, no tasks/ entries."""
    import sys

    sweep = tmp_path / "outputs" / "s"
    (sweep / "tasks").mkdir(parents=True)
    jobs = sweep / "scripts" / "job_scripts"
    jobs.mkdir(parents=True)
    code = "import os, sys; open(os.path.join(os.environ['HSM_TASK_DIR'], 'ran'), 'a').write(' '.join(sys.argv[1:]) + '\\n')"
    rows = []
    for i in range(1, n + 1):
        params = {"task_id": f"t{i}", "index": i, "params": {"x": i}}
        command = {"sweep_id": "s", "task_id": f"t{i}", "index": i, "argv": [sys.executable, "-c", code, f"x={i}"],
                   "python_arg0": True, "cwd": str(tmp_path), "env": {"MY_VAR": f"v{i}"}}
        rows.append({"params": params, "command": command})
    list_file = jobs / "slurm_001.list"
    list_file.write_text("".join(f"../../tasks/task_{i:03d}\n" for i in range(1, n + 1)))
    from hsm_core.task_manifest import write_chunk_tasks

    write_chunk_tasks(list_file, rows)
    return sweep, list_file, rows


def _runner(*args: str) -> "subprocess.CompletedProcess[str]":
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "hsm_core.runner", "--source", "slurm", *args],
                          capture_output=True, text=True, timeout=60)


def test_an_array_element_makes_its_missing_task_dir_from_the_chunk_and_runs_it(tmp_path: Path) -> None:
    sweep, list_file, rows = _element_sweep(tmp_path, 3)
    done = _runner("--list", str(list_file), "--index", "1")
    assert done.returncode == 0, done.stderr
    d = sweep / "tasks" / "task_002"
    assert sorted(os.listdir(sweep / "tasks")) == ["task_002"]  # only its own
    assert yaml.safe_load((d / "params.yaml").read_text()) == rows[1]["params"]
    assert json.loads((d / "command.json").read_text()) == rows[1]["command"]
    assert (d / "ran").read_text() == "x=2\n"
    status = yaml.safe_load((d / "status.yaml").read_text())
    assert (status["state"], status["attempt"], status["task_id"]) == ("completed", 1, "t2")
    # A packed element (two tasks one after the other) makes both of its dirs.
    packed = _runner("--list", str(list_file), "--index", "1", "--count", "2")  # element 1: line 2
    assert packed.returncode == 0, packed.stderr
    assert (sweep / "tasks" / "task_003" / "ran").read_text() == "x=3\n"


def test_two_elements_racing_for_one_missing_dir_make_it_once(tmp_path: Path) -> None:
    import subprocess
    import sys

    sweep, list_file, _ = _element_sweep(tmp_path, 2)
    # Both elements start together; only the making of the dir is raced (the second finds the task
    # running or done and the dir whole, whatever it then does).
    procs = [subprocess.Popen([sys.executable, "-m", "hsm_core.runner", "--list", str(list_file), "--index", str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in (0, 1, 0, 1)]
    for p in procs:
        p.communicate(timeout=60)
    assert sorted(os.listdir(sweep / "tasks")) == ["task_001", "task_002"]  # no temporary dir left behind
    for name in ("task_001", "task_002"):
        assert {"params.yaml", "command.json", "status.yaml"} <= set(os.listdir(sweep / "tasks" / name))


def test_an_element_whose_dir_nothing_describes_says_so(tmp_path: Path) -> None:
    sweep, list_file, _ = _element_sweep(tmp_path, 1)
    (list_file.with_name("slurm_001.tasks.jsonl")).unlink()
    done = _runner("--list", str(list_file), "--index", "0")
    assert done.returncode != 0 and "does not exist" in done.stderr and "Traceback" not in done.stderr


def test_a_torn_line_of_the_metrics_file_costs_only_that_task(tmp_path: Path) -> None:
    from hsm_core.indexed_metrics import known, remember

    remember(tmp_path, "a", 1, {"loss": 0.5})
    remember(tmp_path, "b", 1, {"loss": 0.7})
    remember(tmp_path, "a", 2, {"loss": 0.1})  # a later attempt of a wins
    with open(tmp_path / "task_metrics.jsonl", "a") as fh:
        fh.write('{"id": "c", "attempt": 1, "val')  # a controller killed mid-append
    assert known(tmp_path) == {"a": (2, {"loss": 0.1}), "b": (1, {"loss": 0.7})}
