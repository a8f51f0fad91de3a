"""Array elements without a scheduler: the cost of hsm's task runner per element, in one run.

The real Slurm job script hsm writes (rendered by the Slurm plugin, with its list file, the
``submitted`` statuses and, by default, the shell fast path of hsm_core/fastrun.py) is run once per
element by ``xargs -P 16`` with the variables Slurm would set, against a hand-written element
(``cd`` then ``exec python task.py x=$SLURM_ARRAY_TASK_ID``, its output to a file). Three ways:

* hand-written: the task alone;
* hsm, as configured by default (the shell fast path);
* hsm with the Python task runner in every element (``runner:`` set, as before the fast path).

What Slurm itself adds per element (slurmstepd, the job's cgroup, the controller's round trips) is
the same for all three and left out here, so the ratios are the runner's cost against the smallest
base: on a real cluster they are closer to 1 (bench/bench_slurm.py measures that end to end).

    python bench/bench_array_elements.py [--tasks 200] [--parallel 16] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TASK = "import sys\nargs = dict(a.split('=', 1) for a in sys.argv[1:])\nprint(args)\n"


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _elements(script: Path, n: int, parallel: int, cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds of running ``script`` as elements 0..n-1, ``parallel`` at a time."""
    runner = (f'export SLURM_ARRAY_TASK_ID="$1" SLURM_JOB_ID="1$1"; '
              f'exec bash {script} >> {cwd}/element_"$1".out 2>&1')
    cpu0, start = _children_cpu(), time.perf_counter()
    subprocess.run(["xargs", "-P", str(parallel), "-I{}", "bash", "-c", runner, "_", "{}"],
                   input="".join(f"{i}\n" for i in range(n)), text=True, check=True, cwd=cwd)
    return time.perf_counter() - start, _children_cpu() - cpu0


def _hand_written(root: Path, n: int, parallel: int) -> tuple[float, float]:
    root.mkdir(parents=True)
    (root / "task.py").write_text(TASK)
    script = root / "array.sh"
    script.write_text(f"#!/bin/bash\ncd {root}\nexec {sys.executable} task.py x=$SLURM_ARRAY_TASK_ID\n")
    return _elements(script, n, parallel, root)


def _hsm(root: Path, n: int, parallel: int, options: dict, unmade: bool = False) -> tuple[float, float]:
    """The Slurm plugin's script for a sweep of ``n`` tasks, its elements run here. ``unmade``:
    as a large submission leaves them, the task dirs are made by the elements (from the chunk's
    task file and the fast path's rows)."""
    from hsm_core.plugin.arrayjob.manifest import write_submitted
    from hsm_core.taskdir import read_command, read_status
    from hsm_core.testing import make_sweep
    from hsm_plugin_slurm.source import SlurmSource

    sweep, specs, ctx = make_sweep(root, [{"x": i} for i in range(n)], script=TASK)
    src = SlurmSource("slurm", {"default_walltime": "00:10:00", **options}, ctx)
    src.job_files.job_dir.mkdir(parents=True, exist_ok=True)
    chunk = src.job_files.write_chunk(specs, src.render_script)
    if unmade:
        import shutil

        from hsm_core.fastrun_rows import write_rows
        from hsm_core.task_manifest import write_chunk_tasks
        from hsm_core.taskdir import read_params

        rows = []
        for spec in specs:
            doc = read_params(spec.task_dir)
            rows.append({"params": {"task_id": doc["task_id"], "index": doc["index"], "params": doc["params"]},
                         "command": read_command(spec.task_dir)})
            shutil.rmtree(spec.task_dir)
        write_chunk_tasks(chunk.list_file, rows)
        write_rows(chunk.list_file, rows)
    else:
        write_submitted(specs, source="slurm", per_element=1, script=chunk.script.name)
    wall, cpu = _elements(chunk.script, n, parallel, root)
    states = {(read_status(s.task_dir) or {}).get("state") for s in specs}
    assert states == {"completed"}, states
    assert read_command(specs[0].task_dir)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--parallel", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3, help="best of N, the three interleaved")
    ap.add_argument("--no-python-runner", action="store_true", help="leave out the Python task runner row")
    ap.add_argument("--unmade", action="store_true", help="add a row whose task dirs the elements make (as "
                    "a submission of 1,000 tasks or more leaves them)")
    args = ap.parse_args()
    n, p = args.tasks, args.parallel
    rows: dict[str, list[tuple[float, float]]] = {"hand-written element": [], "hsm, shell fast path (default)": [],
                                                  "hsm, Python task runner": [], "hsm, dirs made by the elements": []}
    with tempfile.TemporaryDirectory(dir=os.environ.get("HSM_BENCH_DIR")) as tmp:
        for i in range(args.repeat):
            base = Path(tmp) / f"r{i}"
            rows["hand-written element"].append(_hand_written(base / "hand", n, p))
            rows["hsm, shell fast path (default)"].append(_hsm(base / "fast", n, p, {}))
            if args.unmade:
                rows["hsm, dirs made by the elements"].append(_hsm(base / "unmade", n, p, {}, unmade=True))
            if not args.no_python_runner:
                rows["hsm, Python task runner"].append(
                    _hsm(base / "python", n, p, {"runner": f"{sys.executable} -m hsm_core.runner"}))
            shutil.rmtree(base, ignore_errors=True)
    hand_wall = min(w for w, _ in rows["hand-written element"])
    hand_cpu = min(c for _, c in rows["hand-written element"])
    print(f"{n} trivial tasks, {p} elements at a time, no scheduler (best of {args.repeat})")
    print(f"{'element':32s} {'wall s':>7s} {'vs hand':>8s} {'CPU ms/element':>15s} {'vs hand':>8s}")
    for name, results in rows.items():
        if not results:
            continue
        wall, cpu = min(w for w, _ in results), min(c for _, c in results)
        print(f"{name:32s} {wall:7.2f} {wall / hand_wall:7.2f}x {1000 * cpu / n:15.1f} {cpu / hand_cpu:7.2f}x")


if __name__ == "__main__":
    main()
