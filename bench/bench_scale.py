"""100,000-task sweeps (issue 19): time to the first task, controller memory, status and export,
and the files and fsyncs each task costs — this checkout side by side with another (``--peer``,
e.g. the main checkout before the change), and the local 1,000-task run against GNU parallel.

* first task: ``hsm run`` of a 100,000-task grid on local processes (2 at a time), from the
  command's start to the moment the first task's own script records that it started; the
  controller's resident memory then and 5 s later.
* status / export: a finished 100,000-task sweep as a controller leaves it (manifest, index with
  each completed task's metrics, a ``metrics.json`` per task, 5% failed), each command a fresh
  process, best of 3; export's first run alone too (it makes the metrics file's cache).
* files and fsyncs per task: a 200-task local sweep run in this process (the local source runs
  the task runner in-process), counting every file and directory created under the sweep and every
  ``fsync``, divided by the tasks (the ``/bin/sh`` wrapper's two marker files are included as files
  it leaves, which it then removes).
* ``--local N``: ``bench/bench_local.py``'s N tasks two at a time, hsm against GNU parallel.

    python bench/bench_scale.py [--tasks 100000] [--peer /work/main/.venv/bin/python] [--local 1000]

Each checkout is run with its own interpreter (``.venv/bin/python``), so the same command compares
the two trees. Nothing here is a test: the figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TASK = "import sys, time\nopen(sys.argv[1], 'a').write(f'{time.time()}\\n')\ntime.sleep(600)\n"


def rss_mb(pid: int) -> float:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def project(root: Path, python: str, script: str = TASK) -> None:
    root.mkdir(parents=True)
    (root / "task.py").write_text(script)
    (root / "hsm_config.yaml").write_text(
        f"paths:\n  python_interpreter: {sys.executable}\n  train_script: task.py\n"
        "compute:\n  local:\n    kill_grace: 1\n")
    (root / "sweeps").mkdir()


def first_task(python: str, root: Path, tasks: int) -> tuple[float, float, float]:
    """(seconds to the first task, RSS then, RSS 5 s later) of ``hsm run`` of ``tasks`` tasks."""
    side = int(tasks ** 0.5)
    other = -(-tasks // side)
    marker = root / "first.txt"
    (root / "sweeps" / "big.yaml").write_text(
        f"command: \"{{python}} task.py {marker}\"\ngrid:\n  a: {list(range(side))}\n  b: {list(range(other))}\n")
    start = time.time()
    proc = subprocess.Popen([python, "-m", "hsm_core", "run", "--config", "sweeps/big.yaml", "--sources", "local:2",
                             "--sweep-id", "big", "--max-runs", str(tasks)], cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not marker.exists() or not marker.read_text().strip():
            if proc.poll() is not None:
                raise SystemExit(f"hsm run ended before a task started (exit {proc.returncode})")
            time.sleep(0.01)
        first = float(marker.read_text().split()[0]) - start
        rss_first = rss_mb(proc.pid)
        time.sleep(5)
        rss_later = rss_mb(proc.pid)
    finally:
        proc.terminate()  # SIGTERM: hsm stops its tasks and saves its state
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return first, rss_first, rss_later


def build_finished(python: str, root: Path, n: int) -> None:
    """A finished ``n``-task sweep as a controller of this checkout leaves it."""
    code = textwrap.dedent(f"""
        import json, os
        from pathlib import Path
        from hsm_core.state import SweepDir, TaskRecord, now_iso
        sweep = SweepDir(Path({str(root)!r}) / "sweeps" / "outputs" / "done")
        sweep.path.mkdir(parents=True)
        sweep.create_layout()
        try:
            from hsm_core import indexed_metrics
        except ImportError:
            indexed_metrics = None
        records = []
        for i in range(1, {n} + 1):
            rec = TaskRecord(i, f"{{i:016x}}", {{"lr": [0.001, 0.01, 0.1][i % 3], "seed": i}})
            d = sweep.task_dir(i)
            d.mkdir()
            failed = i % 20 == 0
            metrics = {{"loss": 1.0 / (1 + i % 50), "val": {{"acc": (i % 100) / 100}}}}
            if not failed:
                (d / "metrics.json").write_text(json.dumps(metrics))
            rec.update_from_status({{"state": "failed" if failed else "completed", "source": "local",
                                    "duration": 20 + i % 7, "exit_code": 1 if failed else 0, "attempt": 1}})
            if indexed_metrics is not None and not failed:
                values = {{"loss": metrics["loss"], "val.acc": metrics["val"]["acc"]}}
                if hasattr(indexed_metrics, "file_stamp"):  # (as a controller keeps them: with the file's stamp)
                    indexed_metrics.remember(sweep.path, rec.task_id, 1, values, task_dir=d.name,
                                             stamp=indexed_metrics.file_stamp(str(d / "metrics.json")))
                else:
                    indexed_metrics.remember(sweep.path, rec.task_id, 1, values)
            records.append(rec)
        sweep.save_index(records, mapping=True)
        sweep.write_metadata({{"sweep_id": "done", "created": now_iso(), "status": "completed", "sources": "local:2"}})
    """)
    subprocess.run([python, "-c", code], check=True)


def best_s(argv: list[str], cwd: Path, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t)
    return min(times)


COUNT = r'''
import builtins, os, sys
counts = {"fsync": 0, "created": 0}
real_fsync, real_open, real_mkdir, real_bopen = os.fsync, os.open, os.mkdir, builtins.open
def fsync(fd):
    counts["fsync"] += 1
    return real_fsync(fd)
os.fsync = fsync
def counted_open(path, flags, *a, **kw):
    if flags & os.O_CREAT:
        counts["created"] += 1
    return real_open(path, flags, *a, **kw)
os.open = counted_open
def counted_mkdir(path, *a, **kw):
    counts["created"] += 1
    return real_mkdir(path, *a, **kw)
os.mkdir = counted_mkdir
def counted_bopen(file, mode="r", *a, **kw):
    if any(c in mode for c in "wax") and not isinstance(file, int) and ("a" not in mode or not os.path.exists(file)):
        counts["created"] += 1  # (an append to a file that exists creates nothing)
    return real_bopen(file, mode, *a, **kw)
builtins.open = counted_bopen
sys.argv = ["hsm", "run", "--config", "sweeps/small.yaml", "--sources", "local:2", "--sweep-id", "small"]
from hsm_core.cli.main import main
try:
    main()
except SystemExit:
    pass
print("FSYNCS", counts["fsync"], "CREATED", counts["created"])
'''


def files_per_task(python: str, root: Path, n: int) -> tuple[float, float, float, float]:
    """(files and dirs left per task, files created per task, fsyncs per task, seconds) of an
    ``n``-task local sweep."""
    (root / "sweeps" / "small.yaml").write_text(f"command: \"{{python}} -c pass\"\ngrid:\n  x: {list(range(n))}\n")
    t = time.perf_counter()
    out = subprocess.run([python, "-c", COUNT], cwd=root, capture_output=True, text=True, check=True).stdout
    took = time.perf_counter() - t
    words = out.split("FSYNCS")[1].split()
    fsyncs, created = int(words[0]), int(words[2])
    sweep = root / "sweeps" / "outputs" / "small"
    left = sum(len(dirs) + len(files) for _, dirs, files in os.walk(sweep))
    # Created: every open with O_CREAT, open() for writing and mkdir by hsm's Python (temporary
    # files of atomic writes and appends to logs included), plus the 2 marker files and 1 rename
    # temporary the /bin/sh wrapper of each task creates.
    return left / n, (created + 3 * n) / n, fsyncs / n, took


def chunk_vs_element(n: int, per_chunk: int = 1000) -> tuple[float, float, float]:
    """Where an array job's task dirs are made, for ``n`` tasks (this checkout only): (seconds the
    controller spends making every dir at submission — mkdir, params.yaml, command.json and the
    ``submitted`` status.yaml, as it does today; seconds it spends writing one task file per chunk
    instead; milliseconds one element spends making its own dir from its chunk's file)."""
    import sys as _sys

    from hsm_core.plugin.arrayjob.manifest import write_submitted
    from hsm_core.plugin import TaskSpec
    from hsm_core.task_manifest import ensure_task_dir, write_chunk_tasks
    from hsm_core.taskdir import write_command, write_params_once

    with tempfile.TemporaryDirectory() as tmp:
        tasks = Path(tmp) / "eager" / "tasks"
        tasks.mkdir(parents=True)
        rows = []
        for i in range(1, n + 1):
            command = {"sweep_id": "s", "task_id": f"t{i}", "index": i, "argv": [_sys.executable, "task.py", f"x={i}"],
                       "python_arg0": True, "cwd": tmp, "env": {"WANDB_RUN_GROUP": "s"}}
            rows.append({"params": {"task_id": f"t{i}", "index": i, "params": {"x": i}}, "command": command})
        t = time.perf_counter()
        specs = []
        for row in rows:
            d = tasks / f"task_{row['params']['index']:03d}"
            d.mkdir()
            write_params_once(d, row["params"]["task_id"], row["params"]["index"], row["params"]["params"])
            write_command(d, row["command"])
            specs.append(TaskSpec(row["params"]["task_id"], row["params"]["index"], {}, d, "s", tasks.parent))
        write_submitted(specs, source="slurm", per_element=1, script="slurm_001.sh")
        eager = time.perf_counter() - t
        lazy_dir = Path(tmp) / "lazy"
        (lazy_dir / "tasks").mkdir(parents=True)
        jobs = lazy_dir / "scripts"
        jobs.mkdir()
        t = time.perf_counter()
        lists = []
        for c in range(0, n, per_chunk):
            list_file = jobs / f"slurm_{c // per_chunk + 1:03d}.list"
            chunk = rows[c:c + per_chunk]
            list_file.write_text("".join(f"../tasks/task_{r['params']['index']:03d}\n" for r in chunk))
            write_chunk_tasks(list_file, chunk)
            lists.append(list_file)
        lazy = time.perf_counter() - t
        elements = min(200, n)
        t = time.perf_counter()
        for i in range(elements):
            ensure_task_dir(lazy_dir / "tasks" / f"task_{i + 1:03d}", list_file=lists[0], line=i)
        per_element = (time.perf_counter() - t) / elements * 1000
    return eager, lazy, per_element


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--peer", default="", help="another checkout's interpreter, e.g. /work/main/.venv/bin/python")
    ap.add_argument("--local", type=int, default=0, help="also run bench_local.py with this many tasks")
    ap.add_argument("--chunk", type=int, default=10_000, help="array-job tasks for the dirs-at-submission figure (0: skip)")
    ap.add_argument("--skip-sweeps", action="store_true", help="only the --chunk and --local figures")
    args = ap.parse_args()
    sides = {"this checkout": sys.executable}
    if args.peer:
        sides["peer"] = args.peer
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, python in ({} if args.skip_sweeps else sides).items():
            root = Path(tmp) / name.replace(" ", "_")
            project(root, python)
            r: dict[str, float] = {}
            r["first"], r["rss_first"], r["rss_later"] = first_task(python, root, args.tasks)
            shutil.rmtree(root / "sweeps" / "outputs", ignore_errors=True)
            build_finished(python, root, args.tasks)
            r["status"] = best_s([python, "-m", "hsm_core", "status", "done"], root)
            r["status_json"] = best_s([python, "-m", "hsm_core", "status", "done", "--json"], root)
            export = [python, "-m", "hsm_core", "export", "done", "--output", str(root / "x.csv")]
            r["export_first"] = best_s(export, root, repeat=1)  # the first reader makes the metrics cache
            r["export"] = best_s(export, root)
            r["export_json"] = best_s([*export[:-1], str(root / "x.json"), "--format", "json"], root)
            r["export_top"] = best_s([*export, "--sort", "loss", "--top", "10"], root)
            r["files"], r["created"], r["fsyncs"], r["small_s"] = files_per_task(python, root, 200)
            results[name] = r
    if results:
        print(f"{args.tasks:,}-task sweep, local disk, 2 tasks at a time\n")
        print(f"{'':<38}" + "".join(f"{n:>16}" for n in results))
    rows = [("first task after hsm run (s)", "first", "{:.2f}"), ("controller RSS then (MB)", "rss_first", "{:.0f}"),
            ("controller RSS 5 s later (MB)", "rss_later", "{:.0f}"), ("hsm status (s)", "status", "{:.2f}"),
            ("hsm status --json (s)", "status_json", "{:.2f}"), ("hsm export csv, first run (s)", "export_first", "{:.2f}"),
            ("hsm export csv (s)", "export", "{:.2f}"), ("hsm export --format json (s)", "export_json", "{:.2f}"),
            ("hsm export --sort loss --top 10 (s)", "export_top", "{:.2f}"),
            ("files+dirs left per task (200)", "files", "{:.2f}"), ("files created per task (200)", "created", "{:.2f}"), ("fsyncs per task (200)", "fsyncs", "{:.2f}"),
            ("200 tasks, whole run (s)", "small_s", "{:.2f}")]
    for label, key, fmt in rows if results else ():
        print(f"{label:<38}" + "".join(f"{fmt.format(r[key]):>16}" for r in results.values()))
    if args.chunk:
        eager, lazy, element = chunk_vs_element(args.chunk)
        print(f"\n{args.chunk:,} array-job tasks: the controller makes every task dir at submission {eager:.2f} s; "
              f"one task file per 1,000-task chunk {lazy:.3f} s ({eager / lazy:.0f}x less), and each element makes "
              f"its own dir as it starts in {element:.2f} ms")
    if args.local:
        print()
        subprocess.run([sys.executable, str(Path(__file__).with_name("bench_local.py")), "--tasks", str(args.local)])


if __name__ == "__main__":
    main()
