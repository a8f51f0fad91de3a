"""Pull-based workers: claim overhead per task with 8 workers, vs the task-per-job array mode.

Every mode runs the same N tasks (``sh task.sh x=N``, which sleeps 20 ms) eight at a time:

* **bare**: ``xargs -P 8 sh task.sh`` - the tasks alone, no bookkeeping (the floor).
* **array (local)**: what one element of a task-per-job array does, ``hsm-task --list LIST``
  with ``HSM_ARRAY_INDEX`` set (as a scheduler plugin's job script does), started per task by
  ``xargs -P 8`` (one Python start-up per task).
* **workers (local)**: 8 ``hsm worker`` processes sharing the sweep through lock files.
* With the local Slurm running (``scripts/slurm.sh``): **array (slurm)**, one
  ``sbatch --array=0-(N-1)%8`` of ``hsm-task --list``, and **workers (slurm)**,
  ``hsm worker submit --workers 8 --sources slurm``.

Per-task overhead = (wall time - bare wall time) x 8 / N: what each task costs on top of its own
run, start-up amortised. For the workers, the time each worker spends between two tasks (scan
the sweep dir, claim, write the task files: "picked in" in the worker logs) is also reported as
median and worst over all tasks.

    python bench/bench_workers.py [--tasks 400] [--workers 8] [--slurm-tasks 200] [--no-slurm]

``--pick-sizes 1000,10000,100000`` measures instead how a worker's pick grows with the sweep: in a
sweep of each size, one worker alone runs ``--pick-tasks`` tasks, then ``--pick-workers`` workers
at once run as many more each; "picked in" is reported per size (median, p95), with the worker's
start-up (expanding the sweep file, up to its first pick) apart. ``--compare PYTHON`` runs the same
with another checkout's interpreter (e.g. ``/work/main/.venv/bin/python``) side by side:

    python bench/bench_workers.py --pick-sizes 1000,10000,100000 [--compare /path/to/python]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TASK = "sleep 0.02\n"
HSM = [sys.executable, "-m", "hsm_core"]
ENV = {**os.environ, "HSM_DISABLE_PLUGINS": "all"}  # hsm core only: no half-installed plugin in the way


def project(root: Path, n: int) -> Path:
    root.mkdir(parents=True)
    (root / "task.sh").write_text(TASK)
    (root / "hsm_config.yaml").write_text("project:\n  name: bench\n")
    (root / "sweeps").mkdir()
    sweep = root / "sweeps" / "bench.yaml"
    sweep.write_text('name: bench\ncommand: "sh task.sh {args}"\ngrid:\n  x: [' + ", ".join(map(str, range(n))) + "]\n")
    return sweep


def array_sweep(root: Path, n: int) -> Path:
    """Task dirs for the array mode (as `hsm run` writes them) and their list file."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from hsm_core.registry import build_registry
    from hsm_core.prepare import CommandPlan, materialize
    from hsm_core.state import SweepDir, TaskRecord
    from hsm_core.sweep import default_task_id

    sweep = SweepDir(root / "sweeps" / "outputs" / "array")
    sweep.create_layout()
    records = [TaskRecord(i + 1, default_task_id({"x": i}), {"x": i}) for i in range(n)]
    plan = CommandPlan(["sh", "task.sh", "{args}"], sys.executable, None, "hydra", root)
    specs = materialize(sweep, records, plan, build_registry(entry_points=False), {})
    lst = sweep.path / "scripts" / "job_scripts" / "tasks.list"
    lst.write_text("".join(f"{s.task_dir}\n" for s in specs))
    return lst


def picked_ms(sweep_dir: Path) -> tuple[list[float], int]:
    """("picked in" times of every task, claim races lost to other workers in total)."""
    out, lost = [], 0
    for log in (sweep_dir / "logs" / "workers").glob("*.log"):  # not slurm-*.out: same lines again
        text = log.read_text(errors="replace")
        out += [float(m) for m in re.findall(r"picked in ([0-9.]+) ms", text)]
        lost += sum(int(m) for m in re.findall(r"after ([0-9]+) lost race", text))
    return out, lost


def run_local(root: Path, sweep: Path, n: int, w: int) -> dict[str, float]:
    res: dict[str, float] = {}
    xs = "".join(f"x={i}\n" for i in range(n))
    start = time.perf_counter()
    subprocess.run(["xargs", "-P", str(w), "-I{}", "sh", "task.sh", "{}"], input=xs, text=True, cwd=root, check=True)
    res["bare"] = time.perf_counter() - start

    lst = array_sweep(root, n)
    idx = "".join(f"{i}\n" for i in range(n))
    start = time.perf_counter()
    subprocess.run(["xargs", "-P", str(w), "-I{}", "env", "HSM_ARRAY_INDEX={}", sys.executable, "-m", "hsm_core.runner",
                    "--list", str(lst), "--source", "array"], input=idx, text=True, cwd=root, check=True, env=ENV)
    res["array (local)"] = time.perf_counter() - start

    start = time.perf_counter()
    procs = [subprocess.Popen([*HSM, "worker", "--sweep", str(sweep)], cwd=root, env=ENV, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for _ in range(w)]
    for p in procs:
        p.wait()
    res["workers (local)"] = time.perf_counter() - start
    return res


def slurm_cluster():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from hsm_core.testing.services import ServiceUnavailable, start_slurm

    try:
        return start_slurm()
    except ServiceUnavailable as exc:
        print(f"(no Slurm: {exc}; local modes only)", file=sys.stderr)
        return None


def wait_job(cluster, job: str, timeout: float = 900) -> None:
    deadline = time.time() + timeout
    while cluster.run(["squeue", "-h", "-j", job], check=False).stdout.strip():
        if time.time() > deadline:
            cluster.run(["scancel", job], check=False)
            raise SystemExit(f"job {job} did not finish in {timeout}s")
        time.sleep(0.2)


def run_slurm(cluster, root: Path, sweep: Path, n: int, w: int) -> dict[str, float]:
    res: dict[str, float] = {}
    # The Slurm plugin writes the workers' array (core names no scheduler).
    env = {**ENV, **cluster.env, "HSM_DISABLE_PLUGINS": "", "HSM_LOAD_PLUGINS": "slurm"}
    lst = array_sweep(root, n)
    script = lst.parent / "array.sbatch"
    script.write_text(f"#!/bin/bash\ncd {root}\nexec {sys.executable} -m hsm_core.runner --list {lst} --source slurm --index \"$SLURM_ARRAY_TASK_ID\"\n")
    start = time.perf_counter()
    out = subprocess.run(["sbatch", "--parsable", f"--array=0-{n - 1}%{w}", "--output=/dev/null", str(script)],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    wait_job(cluster, out.split(";")[0])
    res["array (slurm)"] = time.perf_counter() - start

    start = time.perf_counter()
    proc = subprocess.run([*HSM, "worker", "submit", "--sweep", str(sweep), "--workers", str(w), "--sources", "slurm"],
                          cwd=root, env=env, capture_output=True, text=True, check=True)
    job = re.search(r"job (\d+)", proc.stdout).group(1)
    wait_job(cluster, job)
    res["workers (slurm)"] = time.perf_counter() - start
    return res


def single_worker(root: Path, n: int) -> list[float]:
    """One worker alone (no other process competing for the 2 CPUs or the locks)."""
    sweep = project(root, n)
    subprocess.run([*HSM, "worker", "--sweep", str(sweep)], cwd=root, env=ENV, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return picked_ms(root / "sweeps" / "outputs" / "bench")[0]


def pick_scaling(tmp: Path, sizes: list[int], per_worker: int, workers: int, python: str) -> list[dict[str, float]]:
    """Pick times of ``python -m hsm_core worker`` in sweeps of each size (see the module doc)."""
    rows = []
    hsm = [python, "-m", "hsm_core"]
    for n in sizes:
        root = tmp / f"pick-{Path(python).parent.parent.parent.name}-{n}"
        sweep = project(root, n)
        out = root / "sweeps" / "outputs" / "bench"
        begin = time.perf_counter()
        subprocess.run([*hsm, "worker", "--sweep", str(sweep), "--max-tasks", "1"], cwd=root, env=ENV,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        one_task = time.perf_counter() - begin  # start-up (expand, sweep dir, index) + one task
        shutil.rmtree(out / "logs" / "workers")
        subprocess.run([*hsm, "worker", "--sweep", str(sweep), "--max-tasks", str(per_worker)], cwd=root, env=ENV,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        alone = picked_ms(out)[0]
        (out / "logs" / "workers").rename(out / "logs" / "alone")
        procs = [subprocess.Popen([*hsm, "worker", "--sweep", str(sweep), "--max-tasks", str(per_worker)], cwd=root,
                                  env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(workers)]
        for p in procs:
            p.wait()
        crowd, lost = picked_ms(out)
        first = alone[:1]
        rows.append({
            "tasks": n,
            "alone_median": statistics.median(alone[1:] or alone), "alone_p95": _p95(alone[1:] or alone),
            "first_pick": first[0] if first else float("nan"),
            "crowd_median": statistics.median(crowd), "crowd_p95": _p95(crowd),
            "lost": lost / max(1, len(crowd)),
            "one_task_s": one_task,
        })
        shutil.rmtree(root, ignore_errors=True)
    return rows


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18] if len(values) >= 2 else (values[0] if values else float("nan"))


def report_picks(label: str, rows: list[dict[str, float]], per_worker: int, workers: int) -> None:
    print(f"\nPick time by sweep size ({label}): 1 worker alone, then {workers} at once, {per_worker} tasks each")
    print(f"{'tasks':>8}{'alone median':>14}{'alone p95':>11}{'first pick':>12}{f'{workers} at once median':>20}"
          f"{'p95':>8}{'lost/pick':>11}{'1-task run':>12}")
    for r in rows:
        print(f"{r['tasks']:>8,}{r['alone_median']:>12.1f}ms{r['alone_p95']:>9.1f}ms{r['first_pick']:>10.1f}ms"
              f"{r['crowd_median']:>18.1f}ms{r['crowd_p95']:>6.1f}ms{r['lost']:>11.2f}{r['one_task_s']:>11.2f}s")


def report(title: str, res: dict[str, float], n: int, w: int, picked: tuple[list[float], int]) -> None:
    bare = res["bare"]
    print(f"\n{title}: {n} tasks (sleep 20 ms each), {w} at a time, {os.cpu_count()} CPUs")
    print(f"{'mode':<18}{'wall s':>9}{'overhead/task ms':>19}{'vs array':>10}")
    array = next((v for k, v in res.items() if k.startswith("array")), None)
    for name, secs in res.items():
        over = (secs - bare) * w / n * 1000
        ratio = f"{(secs - bare) / (array - bare):.2f}x" if array and name != "bare" and array > bare else ""
        print(f"{name:<18}{secs:>9.2f}{over:>19.1f}{ratio:>10}")
    times, lost = picked
    if times:
        q = statistics.quantiles(times, n=20)
        print(f"{w} workers: time between tasks (scan + claim + task files), {len(times)} tasks: "
              f"median {statistics.median(times):.1f} ms, p95 {q[18]:.1f} ms, worst {max(times):.1f} ms; "
              f"{lost / len(times):.2f} claim races lost per task")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=400)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--slurm-tasks", type=int, default=200)
    ap.add_argument("--no-slurm", action="store_true")
    ap.add_argument("--pick-sizes", help="comma-separated sweep sizes: measure the pick time by size only")
    ap.add_argument("--pick-tasks", type=int, default=100, help="tasks each worker runs per size")
    ap.add_argument("--pick-workers", type=int, default=4)
    ap.add_argument("--compare", help="another checkout's python, run side by side (--pick-sizes)")
    args = ap.parse_args()
    if args.pick_sizes:
        sizes = [int(x) for x in args.pick_sizes.split(",")]
        with tempfile.TemporaryDirectory() as tmp:
            pythons = [("this checkout", sys.executable)] + ([(args.compare, args.compare)] if args.compare else [])
            rows: dict[str, list[dict[str, float]]] = {label: [] for label, _ in pythons}
            for n in sizes:  # size by size, both checkouts back to back: the machine's load drifts
                for label, python in pythons:
                    rows[label] += pick_scaling(Path(tmp), [n], args.pick_tasks, args.pick_workers, python)
            for label, _ in pythons:
                report_picks(label, rows[label], args.pick_tasks, args.pick_workers)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "local"
        sweep = project(root, args.tasks)
        res = run_local(root, sweep, args.tasks, args.workers)
        report("Local", res, args.tasks, args.workers, picked_ms(root / "sweeps" / "outputs" / "bench"))
        alone = single_worker(Path(tmp) / "single", 100)
        print(f"1 worker alone, 100 tasks: median {statistics.median(alone):.1f} ms, worst {max(alone):.1f} ms")
        cluster = None if args.no_slurm else slurm_cluster()
        if cluster is not None:
            root = Path(tmp) / "slurm"
            sweep = project(root, args.slurm_tasks)
            res = {"bare": 0.0}
            xs = "".join(f"x={i}\n" for i in range(args.slurm_tasks))
            start = time.perf_counter()
            subprocess.run(["xargs", "-P", str(args.workers), "-I{}", "sh", "task.sh", "{}"], input=xs, text=True,
                           cwd=root, check=True)
            res["bare"] = time.perf_counter() - start
            res.update(run_slurm(cluster, root, sweep, args.slurm_tasks, args.workers))
            report("Slurm", res, args.slurm_tasks, args.workers, picked_ms(root / "sweeps" / "outputs" / "bench"))


if __name__ == "__main__":
    main()
