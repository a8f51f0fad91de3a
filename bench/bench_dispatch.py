"""Dispatch overhead per task with three sources at once (local + an SSH host + Slurm) vs local only.

The same N trivial tasks (``python train.py x=N``), six at a time in every configuration:

* floor: ``xargs -P 6`` of the same commands, no hsm;
* ``hsm run --sources local:6``;
* ``hsm run --sources local:2,ssh:NAME:2,slurm:2``: a real sshd on 127.0.0.1 (scripts/sshd.sh) with
  its own copy of the project, and the local Slurm (scripts/slurm.sh); the same interpreter.

For each: wall time; overhead per task = (wall - floor) x 6 / N, the time each of the six slots
loses per task; controller CPU per task = user + system time of the ``hsm`` process itself
(getrusage inside it: the tasks, the remote runners and the Slurm jobs are not in it; the local
source's in-process runner bookkeeping is); and how many tasks each source ran. Settings are the
defaults (ssh ``poll_interval`` 5 s, Slurm ``poll_interval_max`` 30 s, health checks every 300 s).

    python bench/bench_dispatch.py [--tasks 200] [--repeat 1] [--each-source]

``--each-source`` adds the SSH host alone and Slurm alone (six slots each), to show where the
mixed figure comes from.

Needs hsm-plugin-ssh and hsm-plugin-slurm installed, and sshd and Slurm startable (as root, after
scripts/install-test-services.sh).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))
from cross_support import REMOTE, make_project  # the cross-source test project

from hsm_core.testing.services import start_slurm, start_sshd

TASK = "import sys\nargs = sys.argv[1:]\n"
SLOTS = 6
SSHD_NAME = "hsm-bench-dispatch"

#: Runs the hsm CLI and, at exit, writes the process's own CPU time (children excluded) to a file.
WRAPPER = r"""
import atexit, json, resource, sys
out = sys.argv.pop(1)
def dump():
    r = resource.getrusage(resource.RUSAGE_SELF)
    with open(out, "w") as fh:
        json.dump({"user": r.ru_utime, "sys": r.ru_stime}, fh)
atexit.register(dump)
sys.argv[0] = "hsm"
from hsm_core.cli.main import main
main()
"""


def use_defaults(root: Path) -> None:
    """Drop the test project's faster polling: the benchmark measures the defaults."""
    path = root / "hsm_config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["hpc"].pop("poll_interval_max", None)
    cfg["distributed"]["remotes"][REMOTE].pop("poll_interval", None)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def floor(root: Path, n: int) -> float:
    inputs = "\n".join(str(i) for i in range(n)) + "\n"
    start = time.perf_counter()
    subprocess.run(["xargs", "-P", str(SLOTS), "-I{}", sys.executable, "train.py", "x={}"], input=inputs,
                   text=True, cwd=root, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def hsm_run(project, sources: str, sweep_id: str, n: int) -> tuple[float, float, dict[str, int]]:
    """(wall seconds, controller CPU seconds, tasks per source) of one ``hsm run``."""
    cpu_file = project.count_dir / f"{sweep_id}.cpu.json"  # outside the project: it stays in sync
    argv = [sys.executable, "-c", WRAPPER, str(cpu_file), "run", "--config", "sweeps/sweep.yaml",
            "--sources", sources, "--sweep-id", sweep_id]
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=project.root, env=project.env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"hsm run --sources {sources} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    cpu = json.loads(cpu_file.read_text())
    statuses = project.statuses(sweep_id)
    states = collections.Counter(s.get("state") for s in statuses.values())
    assert states == {"completed": n}, states
    return wall, cpu["user"] + cpu["sys"], dict(collections.Counter(s["source"] for s in statuses.values()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=1, help="best of N for each configuration")
    ap.add_argument("--each-source", action="store_true", help="also ssh:NAME:6 alone and slurm:6 alone")
    args = ap.parse_args()
    n = args.tasks
    host, cluster = start_sshd(SSHD_NAME), start_slurm()
    mixed = f"local:2,ssh:{REMOTE}:2,slurm:2"
    configs = {"hsm local:6": f"local:{SLOTS}", f"hsm {mixed}": mixed}
    if args.each_source:
        configs.update({f"hsm ssh:{REMOTE}:6": f"ssh:{REMOTE}:{SLOTS}", "hsm slurm:6": f"slurm:{SLOTS}"})
    walls: dict[str, list[float]] = collections.defaultdict(list)
    cpus: dict[str, list[float]] = collections.defaultdict(list)
    spread: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("HSM_BENCH_DIR")) as tmp:
        project = make_project(Path(tmp), host, cluster, script=TASK)
        use_defaults(project.root)
        project.write_sweep({"grid": {"x": list(range(n))}})
        for i in range(args.repeat):
            walls["floor"].append(floor(project.root, n))
            for j, (label, sources) in enumerate(configs.items()):
                wall, cpu, by_source = hsm_run(project, sources, f"bench_{i}_{j}", n)
                walls[label].append(wall)
                cpus[label].append(cpu)
                spread[label] = by_source
    base = min(walls["floor"])
    print(f"{n} trivial tasks (`python train.py x=N`), {SLOTS} at a time, {os.cpu_count()} CPUs, "
          f"best of {args.repeat}; lower is better")
    print(f"{'configuration':40s}{'seconds':>9s}{'overhead/task':>15s}{'controller CPU/task':>21s}{'vs local:6':>12s}  tasks per source")
    local_wall = min(walls["hsm local:6"])
    print(f"{'floor: xargs -P ' + str(SLOTS):40s}{base:9.2f}{'-':>15s}{'-':>21s}{'-':>12s}")
    for label in configs:
        wall, cpu = min(walls[label]), min(cpus[label])
        per_task = 1000 * (wall - base) * SLOTS / n
        ratio = wall / local_wall
        by = ", ".join(f"{k} {v}" for k, v in sorted(spread[label].items()))
        print(f"{label:40s}{wall:9.2f}{per_task:12.0f} ms{1000 * cpu / n:18.1f} ms{ratio:11.2f}x  {by}")


if __name__ == "__main__":
    main()
