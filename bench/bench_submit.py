"""Slurm: how long ``hsm run --sources slurm --no-wait`` of a big held sweep takes, side by side
with a bare ``sbatch --array`` of the same size in the same run (issue 19: within 1 s plus
sbatch's own time). The tasks are held (the ``--hold`` escape hatch), so nothing runs; every job
is cancelled afterwards.

    python bench/bench_submit.py [--tasks 10000] [--repeat 1] [--profile OUT.prof] [--peer PYTHON]

hsm runs with its bytecode cached, as an installed hsm does (in a temporary
``PYTHONPYCACHEPREFIX``, filled by one untimed 1,000-task run of each installation first), even
where ``PYTHONDONTWRITEBYTECODE`` is set; ``--compile`` runs it without (every module compiled on
every run: about 0.3 s more). ``--peer`` also times another installation's hsm (its interpreter, e.g. the main checkout's
``.venv/bin/python``), alternating with this one's in the same run: before and after side by side.

Each timed run starts on a quiet CPU, as a user's single submission does: after each hsm run
the bench waits (untimed) for that run's detached row writer (``python -m hsm_core.fastrun_rows``,
about 1 s of CPU for 10,000 tasks) to end and for its cancelled jobs to leave the queue, so the
next run does not share this 2-core machine with them; and before each run, for room in
slurmctld's job table (cancelled elements stay there for ``MinJobAge``; a full table refuses
``sbatch``). It reports the median, the spread and every run, not only the best.

``--profile`` runs the hsm command under cProfile (slower; for finding what costs, not timing).
The cluster is started with hsm_core.testing.services.start_slurm() when SLURM_CONF is not set.
Run it under the cluster lock: ``flock -o /work/cluster.lock python bench/bench_submit.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


#: The environment of the hsm commands (see --compile).
HSM_ENV: dict[str, str] | None = None


def run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw)


def project(root: Path, n: int) -> Path:
    root.mkdir(parents=True)
    (root / "task.py").write_text("print('hi')\n")
    (root / "hsm_config.yaml").write_text(
        f"paths:\n  python_interpreter: {sys.executable}\n  train_script: task.py\n"
        'hpc:\n  system: slurm\n  default_walltime: "00:10:00"\n  extra_directives: ["--hold"]\n'
    )
    (root / "sweeps").mkdir()
    sweep = root / "sweeps" / "sweep.yaml"
    sweep.write_text("grid:\n  x: [" + ", ".join(str(i) for i in range(n)) + "]\n")
    return sweep


def hsm_submission(root: Path, n: int, profile: str | None = None, python: str = sys.executable) -> float:
    """Seconds of the whole ``hsm run --no-wait`` command (a fresh process), then scancel."""
    sweep = project(root, n)
    room_for(n)
    prefix = [python, "-m", "cProfile", "-o", profile, "-m", "hsm_core"] if profile else [python, "-m", "hsm_core"]
    start = time.perf_counter()
    run([*prefix, "run", "--config", str(sweep), "--sources", "slurm", "--no-wait"], cwd=root, env=HSM_ENV)
    elapsed = time.perf_counter() - start
    jobs = [json.loads(line)["job_id"] for d in (root / "sweeps" / "outputs").iterdir()
            for line in (d / "scripts/job_scripts/jobs.jsonl").read_text().splitlines()]
    run(["scancel", *jobs])
    settle(root, jobs)
    return elapsed


def row_writers(root: Path) -> list[int]:
    """Pids of the detached row writers (``python -m hsm_core.fastrun_rows``) of the sweep under
    ``root`` (read from /proc: the writer is in a session of its own, no child of ours)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"hsm_core.fastrun_rows" in argv and any(a.startswith(str(root).encode()) for a in argv):
            pids.append(int(proc.name))
    return pids


def room_for(n: int, timeout: float = 400.0) -> None:
    """Wait (untimed) until slurmctld's job table has room for ``n`` more jobs: cancelled array
    elements stay in it until ``MinJobAge`` (300 s) has passed, and a full table (``MaxJobCount``)
    refuses ``sbatch`` ("Resource temporarily unavailable"), which hsm retries with a backoff (one
    run of 56 s). Runs that follow each other fill it (10,000 records a run here)."""
    config = run(["scontrol", "show", "config"]).stdout
    limit = next((int(line.split("=")[1]) for line in config.splitlines() if line.startswith("MaxJobCount")), 0)
    deadline = time.perf_counter() + timeout
    while limit and time.perf_counter() < deadline:
        records = len(run(["squeue", "-h", "-r", "--states=all", "-o", "%i"]).stdout.split())
        if records + n + 1000 <= limit:
            return
        time.sleep(5)


#: What the last settle() waited for (printed with the results).
SETTLED: list[float] = []


def settle(root: Path, jobs: list[str], timeout: float = 120.0) -> None:
    """Wait (untimed) until the run under ``root`` has no row writer left and its cancelled
    ``jobs`` are out of the queue: the next timed run then has the CPU to itself."""
    start = time.perf_counter()
    deadline = start + timeout
    while time.perf_counter() < deadline:
        queued = run(["squeue", "-h", "-r", "-o", "%i", "-j", ",".join(jobs)]).stdout.split() if jobs else []
        if not row_writers(root) and not queued:
            break
        time.sleep(0.1)
    SETTLED.append(time.perf_counter() - start)


def bare_sbatch(root: Path, n: int) -> float:
    """Seconds of one ``sbatch --array=0-(n-1)`` of a held script, then scancel."""
    root.mkdir(parents=True, exist_ok=True)
    bare = root / "bare.sh"
    bare.write_text(f"#!/bin/bash\n#SBATCH --array=0-{n - 1}\n#SBATCH --hold\n#SBATCH --output=/dev/null\ntrue\n")
    start = time.perf_counter()
    job = run(["sbatch", "--parsable", str(bare)]).stdout.strip().split(";")[0]
    elapsed = time.perf_counter() - start
    run(["scancel", job])
    settle(root, [job])
    return elapsed


def summary(times: list[float]) -> str:
    """Median, spread (min-max) and each run of ``times``."""
    return (f"median {statistics.median(times):.2f}s, spread {min(times):.2f}-{max(times):.2f}s; each run: "
            + " ".join(f"{x:.2f}" for x in times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=1, help="N timed runs (median, spread, best)")
    ap.add_argument("--profile", help="write a cProfile of one hsm run here (not timed)")
    ap.add_argument("--peer", help="another installation's Python: its hsm is timed too, alternating")
    ap.add_argument("--compile", action="store_true", help="no bytecode cache: every module compiled on every run")
    args = ap.parse_args()
    if not os.environ.get("SLURM_CONF"):
        from hsm_core.testing.services import start_slurm

        os.environ["SLURM_CONF"] = str(start_slurm().conf)
    hsm_s, bare_s, peer_s = [], [], []
    with tempfile.TemporaryDirectory(dir=os.environ.get("HSM_BENCH_DIR")) as tmp:
        if not args.compile:
            global HSM_ENV
            HSM_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            HSM_ENV["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
            for python in [sys.executable, *([args.peer] if args.peer else [])]:
                hsm_submission(Path(tmp) / f"warm-{len(python)}-{abs(hash(python))}", 1000, python=python)
        for i in range(args.repeat):
            bare_s.append(bare_sbatch(Path(tmp) / f"bare{i}", args.tasks))
            # Alternating which goes first, so neither always follows the bare sbatch.
            if args.peer and i % 2 == 0:
                peer_s.append(hsm_submission(Path(tmp) / f"peer{i}", args.tasks, python=args.peer))
            hsm_s.append(hsm_submission(Path(tmp) / f"hsm{i}", args.tasks))
            if args.peer and i % 2 == 1:
                peer_s.append(hsm_submission(Path(tmp) / f"peer{i}", args.tasks, python=args.peer))
        if args.profile:
            hsm_submission(Path(tmp) / "profiled", args.tasks, args.profile)
    b = min(bare_s)
    print(f"Submission of {args.tasks:,} held tasks, {args.repeat} run(s) each: bare sbatch --array "
          f"{b:.3f}s (best)")
    print("  hsm run --no-wait (whole command): " + summary(hsm_s) + f"; median - sbatch {statistics.median(hsm_s) - b:.2f}s")
    if peer_s:
        print(f"  peer ({args.peer}): " + summary(peer_s))
    print(f"  each run started after the previous run's row writer ended and its jobs left the queue "
          f"(waited {min(SETTLED):.1f}-{max(SETTLED):.1f}s, untimed)")
    print(f"  load average {os.getloadavg()[0]:.1f}; bytecode {'compiled every run' if args.compile else 'cached'}")


if __name__ == "__main__":
    main()
