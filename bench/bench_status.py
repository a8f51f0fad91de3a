"""Status and export of a 10,000-task sweep: hsm vs a naive "read every status.yaml" loop.

The sweep is built synthetically (task dirs with params.yaml, a runner-style status.yaml, metrics.json
and the index, 5% failed with a stderr.log) through the SweepDir API: no 10,000 processes are run.

Compared, each as a fresh process (so interpreter start-up is in every figure):

* ``hsm status SWEEP --json`` vs a loop that ``yaml.safe_load``s every ``status.yaml`` and counts
  states (also with PyYAML's C loader, the best a careful script does).
* ``hsm export SWEEP --format csv`` vs a loop reading every ``params.yaml``, ``status.yaml`` and
  ``metrics.json`` and writing the same CSV.
* ``hsm monitor watch SWEEP --once`` and ``hsm report SWEEP`` for reference (no peer).

    python bench/bench_status.py [--tasks 10000] [--repeat 3]

Prints best-of-N seconds and the ratio to the naive loop (lower is better for hsm).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

NAIVE_STATUS = textwrap.dedent(
    """\
    import sys, yaml
    from pathlib import Path
    Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader) if sys.argv[2] == "c" else yaml.SafeLoader
    counts = {}
    for d in sorted(Path(sys.argv[1], "tasks").iterdir()):
        with open(d / "status.yaml") as fh:
            s = yaml.load(fh, Loader=Loader)
        counts[s["state"]] = counts.get(s["state"], 0) + 1
    print(counts)
    """
)

NAIVE_EXPORT = textwrap.dedent(
    """\
    import csv, json, sys, yaml
    from pathlib import Path
    rows, params, metrics = [], {}, {}
    for d in sorted(Path(sys.argv[1], "tasks").iterdir()):
        p = yaml.safe_load((d / "params.yaml").read_text())
        s = yaml.safe_load((d / "status.yaml").read_text())
        try:
            m = json.loads((d / "metrics.json").read_text())
        except OSError:
            m = {}
        params.update(dict.fromkeys(p["params"]))
        metrics.update(dict.fromkeys(m))
        rows.append({"task": d.name, "id": p["task_id"], **p["params"], "status": s["state"], "source": s.get("source"),
                     "duration": s.get("duration"), "exit_code": s.get("exit_code"), **m})
    cols = ["task", "id", *params, "status", "source", "duration", "exit_code", *metrics]
    with open(sys.argv[2], "w", newline="") as fh:
        w = csv.DictWriter(fh, cols)
        w.writeheader()
        w.writerows(rows)
    """
)


def build_sweep(root: Path, n: int) -> Path:
    """A finished sweep of ``n`` tasks under ``root/sweeps/outputs``; returns its dir."""
    from hsm_core.atomic import atomic_write_yaml
    from hsm_core.state import SweepDir, TaskRecord, finalize_status, now_iso, write_status

    (root / "hsm_config.yaml").write_text("paths:\n  python_interpreter: python3\n  train_script: train.py\n")
    sweep = SweepDir(root / "sweeps" / "outputs" / "sweep_bench")
    sweep.path.mkdir(parents=True)
    sweep.create_layout()
    records = []
    start = time.time() - 3600
    for i in range(1, n + 1):
        params = {"lr": [0.001, 0.01, 0.1][i % 3], "batch_size": [32, 64, 128, 256][i % 4], "seed": i}
        rec = TaskRecord(i, f"{i:016x}", params)
        d = sweep.task_dir(i)
        d.mkdir(parents=True)
        atomic_write_yaml(d / "params.yaml", {"task_id": rec.task_id, "index": i, "params": params}, fsync=False)
        (d / "stdout.log").write_text("")
        failed = i % 20 == 0
        (d / "stderr.log").write_text(f"Traceback (most recent call last):\nValueError: bad value {i}\n" if failed else "")
        t0 = start + i * 0.3
        status = {"task_id": rec.task_id, "index": i, "state": "running", "source": "local", "runner": "local",
                  "host": "node1", "attempt": 1, "start_time": now_iso(), "start_epoch": round(t0, 3)}
        write_status(d, status)
        # finalize_status writes the final status.yaml (atomic, fsync): what the runner leaves behind.
        final = finalize_status(d, status, 1 if failed else 0, end_time=t0 + 20 + i % 7)
        if not failed:
            (d / "metrics.json").write_text(json.dumps({"loss": 1.0 / (1 + i % 50), "val": {"acc": (i % 100) / 100}}))
        rec.update_from_status(final)
        records.append(rec)
    sweep.save_index(records, mapping=True)
    sweep.write_metadata({"sweep_id": sweep.sweep_id, "created": now_iso(), "status": "incomplete", "sources": "local:4",
                          "updated": now_iso()})
    sweep.log("source_utilization.log", "local=0/4")
    sweep.log("health_status.log", "local healthy")
    return sweep.path


def best(argv: list[str], cwd: Path, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    hsm = [sys.executable, "-m", "hsm_core"]
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        sweep = build_sweep(root, args.tasks)
        print(f"built a {args.tasks:,}-task sweep in {time.perf_counter() - t:.1f}s", file=sys.stderr)
        (root / "naive_status.py").write_text(NAIVE_STATUS)
        (root / "naive_export.py").write_text(NAIVE_EXPORT)
        r = args.repeat
        status = {
            "naive loop (yaml.safe_load)": best([py, "naive_status.py", str(sweep), "py"], root, r),
            "naive loop (C loader)": best([py, "naive_status.py", str(sweep), "c"], root, r),
            "hsm status --json": best([*hsm, "status", sweep.name, "--json"], root, r),
        }
        export = {
            "naive loop (yaml.safe_load)": best([py, "naive_export.py", str(sweep), str(root / "naive.csv")], root, r),
            "hsm export --format csv": best([*hsm, "export", sweep.name, "--output", str(root / "hsm.csv")], root, r),
            "hsm export --format json": best([*hsm, "export", sweep.name, "--format", "json", "--output", str(root / "hsm.json")], root, r),
        }
        other = {
            "python3 -c pass": best([py, "-c", "pass"], root, r),
            "hsm monitor watch --once": best([*hsm, "monitor", "watch", sweep.name, "--once"], root, r),
            "hsm monitor errors": best([*hsm, "monitor", "errors", sweep.name], root, r),
            "hsm report": best([*hsm, "report", sweep.name], root, r),
        }
        naive_rows = (root / "naive.csv").read_text().count("\n")
        hsm_rows = (root / "hsm.csv").read_text().count("\n")
        assert naive_rows == hsm_rows == args.tasks + 1, (naive_rows, hsm_rows)

    print(f"\nStatus of a {args.tasks:,}-task sweep (best of {r})")
    print(f"{'tool':<32} {'seconds':>8} {'vs naive':>9}")
    base = status["naive loop (yaml.safe_load)"]
    for name, s in status.items():
        print(f"{name:<32} {s:>8.3f} {s / base:>8.3f}x")
    print(f"\nExport of a {args.tasks:,}-task sweep to CSV (best of {r})")
    base = export["naive loop (yaml.safe_load)"]
    for name, s in export.items():
        print(f"{name:<32} {s:>8.3f} {s / base:>8.3f}x")
    print("\nFor reference")
    for name, s in other.items():
        print(f"{name:<32} {s:>8.3f}")


if __name__ == "__main__":
    main()
