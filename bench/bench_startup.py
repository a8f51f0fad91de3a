"""Start-up of hsm's commands against ``python -c pass`` on the same interpreter, and status/export
of a 100,000-task sweep (issue 19).

A throw-away project runs a real 27-task sweep (``hsm run``, local processes); then each command
is run N times as a fresh process, the median reported with its ratio to ``python -c pass``:

* with hsm's caches (the command index and entry points in ``$HSM_CACHE_DIR``, the project's
  ``.hsm/checked_config.json``) warm, as every command after the first runs;
* with ``HSM_CACHE_DIR=off``: every command loaded, entry points scanned, the config checked
  (what each command paid before the caches; commands still import lazily).

``--big N`` (default 100,000; 0 skips it) also times ``hsm status`` and ``hsm export`` of a
finished N-task sweep, made with hsm's SweepDir (index, metadata, a metrics.json per task; no
task runs), best of 3.

``--extra-dists N`` first installs N more (empty) distributions on ``PYTHONPATH``, each with an
entry point of another group, as a site's conda environment has hundreds: the cached entry points
must not cost a metadata scan of them all.

    python bench/bench_startup.py [--runs 20] [--big 100000] [--extra-dists 300] [--peer /work/main/.venv/bin/python]

The console script next to the interpreter (``.venv/bin/hsm``) is what is timed, as a user runs it.
``--peer PYTHON`` times another checkout's the same way (its own project and caches), one
command after the other, so both sides see the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def median_ms(argv: list[str], cwd: Path, env: dict[str, str], runs: int) -> float:
    subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def make_project(root: Path, env: dict[str, str], hsm: list[str]) -> str:
    (root / "train.py").write_text("import sys\nprint(sys.argv[1:])\n")
    (root / "hsm_config.yaml").write_text(f"paths:\n  python_interpreter: {sys.executable}\n  train_script: train.py\n")
    (root / "sweeps").mkdir()
    (root / "sweeps" / "sweep.yaml").write_text("grid:\n  a: [1, 2, 3]\n  b: [1, 2, 3]\n  c: [1, 2, 3]\n")
    subprocess.run([*hsm, "run", "--config", "sweeps/sweep.yaml", "--sources", "local:4", "--sweep-id", "s27"],
                   cwd=root, env=env, check=True, stdout=subprocess.DEVNULL)
    past = time.time() - 60  # a config written a minute ago, as a project's is (see config.checked_cache)
    os.utime(root / "hsm_config.yaml", (past, past))
    return "s27"


def build_big(root: Path, n: int) -> str:
    """A finished ``n``-task sweep: task dirs with metrics.json (5% failed, without), index, metadata."""
    from hsm_core.state import SweepDir, TaskRecord, now_iso

    sweep = SweepDir(root / "sweeps" / "outputs" / "big")
    sweep.path.mkdir(parents=True)
    sweep.create_layout()
    records = []
    for i in range(1, n + 1):
        rec = TaskRecord(i, f"{i:016x}", {"lr": [0.001, 0.01, 0.1][i % 3], "batch_size": [32, 64, 128, 256][i % 4], "seed": i})
        d = sweep.task_dir(i)
        d.mkdir(parents=True)
        failed = i % 20 == 0
        if not failed:
            (d / "metrics.json").write_text(json.dumps({"loss": 1.0 / (1 + i % 50), "val": {"acc": (i % 100) / 100}}))
        rec.update_from_status({"state": "failed" if failed else "completed", "source": "local",
                                "duration": 20 + i % 7, "exit_code": 1 if failed else 0, "attempt": 1})
        records.append(rec)
    sweep.save_index(records, mapping=True)
    sweep.write_metadata({"sweep_id": "big", "created": now_iso(), "status": "completed", "sources": "local:4", "updated": now_iso()})
    return "big"


def best_s(argv: list[str], cwd: Path, env: dict[str, str], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t)
    return min(times)


def add_distributions(site: Path, n: int) -> None:
    """``n`` installed-looking distributions (a dist-info each: METADATA and a console script)."""
    site.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        info = site / f"fake_dist_{i:03d}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fake-dist-{i:03d}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[console_scripts]\nfake-{i:03d} = fake_dist_{i:03d}:main\n")


def hsm_of(python: str) -> list[str]:
    """The console script next to ``python`` (as a user runs it), else ``python -m hsm_core``."""
    script = Path(python).with_name("hsm")
    return [str(script)] if script.exists() else [python, "-m", "hsm_core"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--big", type=int, default=100_000)
    ap.add_argument("--extra-dists", type=int, default=0)
    ap.add_argument("--peer", default="", help="also time another checkout's interpreter (its hsm beside it), "
                    "e.g. /work/main/.venv/bin/python, each command alternating with this checkout's")
    args = ap.parse_args()
    hsm = hsm_of(sys.executable)
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # users have .pyc files: time what they run
        if args.extra_dists:
            add_distributions(Path(tmp) / "site", args.extra_dists)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(tmp) / "site"), env.get("PYTHONPATH")]))
        # Each side its own project and caches: a checkout's config check and command index are
        # not the other's, so sharing them would time every command with cold caches.
        sides = {"this": hsm, **({"peer": hsm_of(args.peer)} if args.peer else {})}
        setups = {}
        for side, argv0 in sides.items():
            root = Path(tmp) / side / "proj"
            root.mkdir(parents=True)
            side_env = {**env, "HSM_CACHE_DIR": str(Path(tmp) / side / "cache")}
            setups[side] = (argv0, root, side_env, {**side_env, "HSM_CACHE_DIR": "off"}, make_project(root, side_env, argv0))
        root, env, sid = setups["this"][1], setups["this"][2], setups["this"][4]
        out = str(Path(tmp) / "x.csv")
        commands = {
            "hsm --help": ["--help"],
            "hsm --version": ["--version"],
            "hsm status (27 tasks)": ["status", "{sid}"],
            "hsm status --json": ["status", "{sid}", "--json"],
            "hsm monitor errors": ["monitor", "errors", "{sid}"],
            "hsm export": ["export", "{sid}", "--output", out],
        }
        base = median_ms([sys.executable, "-c", "pass"], root, env, args.runs)
        extra = f", {args.extra_dists} more distributions installed" if args.extra_dists else ""
        print(f"Start-up, median of {args.runs} runs{extra}; python -c pass = {base:.1f} ms\n")
        print(f"{'command':<24}" + "".join(f" {side + ' warm':>12} {'ratio':>6} {side + ' off':>11} {'ratio':>6}"
                                         for side in sides))
        for name, argv in commands.items():
            line = f"{name:<24}"
            for side, (argv0, side_root, side_env, off, side_sid) in setups.items():
                full = [*argv0, *(a.replace("{sid}", side_sid) for a in argv)]
                warm = median_ms(full, side_root, side_env, args.runs)
                cold = median_ms(full, side_root, off, args.runs)
                line += f" {warm:>9.1f} ms {warm / base:>5.1f}x {cold:>8.1f} ms {cold / base:>5.1f}x"
            print(line, flush=True)
        if args.big:
            t = time.perf_counter()
            big = build_big(root, args.big)
            print(f"\n{args.big:,}-task sweep built in {time.perf_counter() - t:.1f} s; best of 3:")
            for name, argv in {"hsm status": ["status", big], "hsm status --json": ["status", big, "--json"],
                               "hsm export (csv)": ["export", big, "--output", out]}.items():
                print(f"{name:<24} {best_s([*hsm, *argv], root, env):>8.2f} s")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
