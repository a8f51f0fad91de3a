"""Local execution: 1,000 short tasks at parallel 2 — hsm vs GNU parallel vs xargs -P, same commands.

Every tool runs ``python3 task.py x=N`` for N in 1..1000 with two at a time. hsm additionally
writes a task dir per task (params, command, status, logs) and the sweep index. Also times
``hsm --help`` and ``hsm status`` start-up against a bare ``python3 -c pass``.

    python bench/bench_local.py [--tasks 1000] [--parallel 2]

Prints seconds per tool and the ratio to GNU parallel (lower is better for hsm).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TASK = "import sys\nargs = sys.argv[1:]\n"


def timed(argv: list[str], cwd: Path, **kw) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    return time.perf_counter() - start


def best_of(n: int, argv: list[str], cwd: Path) -> float:
    return min(timed(argv, cwd) for _ in range(n))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--parallel", type=int, default=2)
    args = ap.parse_args()
    n, p = args.tasks, args.parallel
    hsm = [sys.executable, "-m", "hsm_core"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "task.py").write_text(TASK)
        (root / "hsm_config.yaml").write_text(
            f"paths:\n  python_interpreter: python3\n  train_script: task.py\n"
        )
        (root / "sweeps").mkdir()
        (root / "sweeps" / "sweep.yaml").write_text("grid:\n  x: [" + ", ".join(str(i) for i in range(1, n + 1)) + "]\n")
        inputs = "\n".join(str(i) for i in range(1, n + 1)) + "\n"

        results: dict[str, float] = {}
        if shutil.which("parallel"):
            start = time.perf_counter()
            subprocess.run(["parallel", "-j", str(p), "python3", "task.py", "x={}"], input=inputs, text=True,
                           cwd=root, check=True, stdout=subprocess.DEVNULL)
            results["GNU parallel"] = time.perf_counter() - start
        start = time.perf_counter()
        subprocess.run(["xargs", "-P", str(p), "-I{}", "python3", "task.py", "x={}"], input=inputs, text=True,
                       cwd=root, check=True, stdout=subprocess.DEVNULL)
        results["xargs -P"] = time.perf_counter() - start
        results["hsm run"] = timed([*hsm, "run", "--config", "sweeps/sweep.yaml", "--sources", f"local:{p}", "--sweep-id", "bench"], root)

        status = best_of(5, [*hsm, "status", "bench", "--json"], root)
        helptime = best_of(5, [*hsm, "--help"], root)
        bare = best_of(5, [sys.executable, "-c", "pass"], root)

    base = results.get("GNU parallel") or results["xargs -P"]
    base_name = "GNU parallel" if "GNU parallel" in results else "xargs -P"
    print(f"{n} tasks of `python3 task.py x=N`, parallel {p}, {os.cpu_count()} CPUs")
    print(f"{'tool':<14}{'seconds':>10}{'per task ms':>14}{'vs ' + base_name:>20}")
    for name, secs in results.items():
        print(f"{name:<14}{secs:>10.2f}{1000 * secs / n:>14.2f}{secs / base:>19.2f}x")
    print(f"\nstart-up (best of 5): python3 -c pass {bare * 1000:.0f} ms, hsm --help {helptime * 1000:.0f} ms, "
          f"hsm status (1 sweep of {n}) {status * 1000:.0f} ms")


if __name__ == "__main__":
    main()
