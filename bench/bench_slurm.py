"""Slurm: 200 trivial tasks on the local cluster — hsm vs a hand-written ``sbatch --array`` vs
submitit's ``map_array``, in one run; and the submission time of a 10,000-task sweep.

* hand-written: one ``sbatch --array=0-199`` script running ``python task.py x=$SLURM_ARRAY_TASK_ID``
  with its output in a file per element, then ``squeue`` every 0.5 s until the array is gone.
  With ``--system torque`` (``pbs``) it is what a PBS user writes by hand on that system instead:
  ``qsub -t 0-199`` (``-J 0-199``) of a script running ``python task.py x=$PBS_ARRAYID``
  (``$PBS_ARRAY_INDEX``), with the front-end's own output file per element (``NAME.oID.INDEX``,
  which qsub names so when the array is given on its command line), then ``qstat`` every 0.5 s
  until no element of the array is left unfinished. Slurm's qsub front-end sets only
  ``SLURM_ARRAY_TASK_ID`` in the elements (not ``PBS_ARRAYID``), and its ``qstat`` lists every
  element as a job of its own (ids known only once they start; finished ones stay, state ``C``,
  while slurmctld remembers them), so the script falls back to ``SLURM_ARRAY_TASK_ID`` and the
  poll looks for the array's rows by its unique job name.
* hsm: ``hsm run --sources slurm`` on a sweep of the same 200 commands, end to end (expansion,
  task dirs, one array job, status per task, index) until the command exits; once as configured
  by default (one task per array element) and once with ``tasks_per_element: 10`` (packing: each
  element runs 10 tasks one after the other, so one task runner starts per 10 tasks).
* hsm with the Python task runner in every element (``runner:`` set): what each element ran before
  the shell fast path of hsm_core/fastrun.py, side by side with the default.
* submitit: ``AutoExecutor(...).map_array(fn, range(200))`` then every ``result()``.

All three use this interpreter. Then ``hsm run --no-wait`` of 10,000 tasks (held with the
``--hold`` escape hatch, so nothing runs; cancelled afterwards) against ``sbatch --array=0-9999``
of a held script.

    SLURM_CONF=... python bench/bench_slurm.py [--tasks 200] [--big 10000] [--repeat 1] [--system torque]
        [--no-submitit] [--no-python-runner] [--no-packed]

The cluster is started with hsm_core.testing.services.start_slurm() when SLURM_CONF is not set.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TASK = "import sys\nargs = dict(a.split('=', 1) for a in sys.argv[1:])\nprint(args)\n"


def square(x: int) -> int:
    """The submitit task (module level so that it pickles)."""
    return x * x


def run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw)


def warm_bytecode() -> None:
    """Byte-compile hsm's packages, as installing them does (pip writes the ``.pyc`` files): in a
    checkout run with ``PYTHONDONTWRITEBYTECODE`` set, every ``hsm run`` would otherwise compile its
    modules again, about 0.15 s of its start that no installed hsm pays."""
    import compileall
    import importlib

    for name in ("hsm_core", "hsm_plugin_slurm", "hsm_plugin_pbs", "hsm_plugin_wandb_sync", "hsm_plugin_optuna"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        compileall.compile_dir(Path(module.__file__).parent, quiet=1)


def wait_gone(job_id: str, interval: float = 0.5) -> None:
    while run(["squeue", "-h", "-j", job_id, "-o", "%i"]).stdout.strip():
        time.sleep(interval)


#: ``hpc.system`` of the hsm rows and the hand-written one (``--system``): ``slurm``, or ``torque`` /
#: ``pbs`` through Slurm's qsub front-end (the submitit row stays plain Slurm: the same cluster).
SYSTEM = "slurm"


def project(root: Path, n: int, hpc_extra: str = "") -> Path:
    root.mkdir(parents=True)
    (root / "task.py").write_text(TASK)
    (root / "hsm_config.yaml").write_text(
        f"paths:\n  python_interpreter: {sys.executable}\n  train_script: task.py\n"
        f"hpc:\n  system: {SYSTEM}\n  default_walltime: \"00:10:00\"\n{hpc_extra}"
    )
    (root / "sweeps").mkdir()
    sweep = root / "sweeps" / "sweep.yaml"
    sweep.write_text("grid:\n  x: [" + ", ".join(str(i) for i in range(n)) + "]\n")
    return sweep


def bench_hand_written(root: Path, n: int) -> float:
    root.mkdir(parents=True)
    (root / "task.py").write_text(TASK)
    (root / "out").mkdir()
    script = root / "array.sh"
    script.write_text(
        "#!/bin/bash\n"
        f"#SBATCH --array=0-{n - 1}\n"
        f"#SBATCH --output={root}/out/%A_%a.log\n"
        "#SBATCH --time=00:10:00\n"
        f"cd {root}\n"
        f"exec {sys.executable} task.py x=$SLURM_ARRAY_TASK_ID\n"
    )
    start = time.perf_counter()
    job_id = run(["sbatch", "--parsable", str(script)], cwd=root).stdout.strip().split(";")[0]
    wait_gone(job_id)
    elapsed = time.perf_counter() - start
    assert len(list((root / "out").iterdir())) == n
    return elapsed


def machine_cpu() -> float | None:
    """CPU seconds this machine has spent busy (user, nice, system, irq, softirq: every process,
    Slurm's daemons and the elements included) since it booted; None without ``/proc/stat``. On a
    quiet machine the difference across a row is what that row cost, with far less spread than
    its wall time."""
    try:
        with open("/proc/stat") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


#: Machine CPU seconds of each row, per run (:func:`machine_cpu`).
CPU: dict[str, list[float]] = {}


def measured(name: str, row: dict[str, float], fn, *args, **kw) -> None:
    """Run one tool's row: its wall time into ``row``, the machine's CPU meanwhile into CPU."""
    before = machine_cpu()
    row[name] = fn(*args, **kw)
    after = machine_cpu()
    if before is not None and after is not None:
        row["cpu:" + name] = after - before


#: ``-t`` for Torque, ``-J`` for PBS Pro, and the variable each sets in an element (Slurm's qsub
#: front-end sets neither: the script falls back to ``SLURM_ARRAY_TASK_ID``).
PBS_ARRAY = {"torque": ("-t", "PBS_ARRAYID"), "pbs": ("-J", "PBS_ARRAY_INDEX")}


def array_unfinished(name: str) -> bool:
    """True while ``qstat`` lists a row of the job named ``name`` not finished (state C, F, X)."""
    for line in run(["qstat"]).stdout.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[1] == name and parts[-2] not in ("C", "F", "X"):
            return True
    return False


def bench_hand_written_pbs(root: Path, n: int, name: str) -> float:
    """``qsub -t 0-N`` (``-J``) of a plain script, then ``qstat`` every 0.5 s until it is done."""
    root.mkdir(parents=True)
    (root / "task.py").write_text(TASK)
    out = root / "out"
    out.mkdir()
    flag, var = PBS_ARRAY[SYSTEM]
    script = root / "array.sh"
    script.write_text(f"#!/bin/bash\ncd {root}\nexec {sys.executable} task.py x=${{{var}:-$SLURM_ARRAY_TASK_ID}}\n")
    start = time.perf_counter()
    # Submitted from out/: the element logs (NAME.oID.INDEX, -j oe: one per element) land there.
    run(["qsub", flag, f"0-{n - 1}", "-N", name, "-j", "oe", "-l", "walltime=00:10:00", str(script)], cwd=out)
    while array_unfinished(name):
        time.sleep(0.5)
    elapsed = time.perf_counter() - start
    assert len(list(out.iterdir())) == n
    return elapsed


#: Where the default hsm row's time went, per run (seconds after ``hsm run`` started).
PHASES: list[dict[str, float]] = []
#: The baseline row's controller CPU, per run (``--baseline``): before and after side by side.
BASELINE_CPU: list[float] = []


def phases(root: Path, started: float, elapsed: float) -> dict[str, float]:
    """When the array job was submitted (its ``jobs.jsonl`` line), the first task started and the
    last ended (each ``status.yaml``), and the command exited, against its start."""
    import glob

    out = next((root / "sweeps" / "outputs").iterdir())
    starts, ends = [], []
    for path in glob.glob(str(out / "tasks" / "*" / "status.yaml")):
        for line in Path(path).read_text().splitlines():
            if line.startswith("start_epoch:"):
                starts.append(float(line.split(":", 1)[1]))
        ends.append(Path(path).stat().st_mtime)
    submitted = (out / "scripts" / "job_scripts" / "jobs.jsonl").stat().st_mtime
    return {"submitted": submitted - started, "first start": min(starts) - started,
            "last end": max(ends) - started, "exit": elapsed, "exit - last end": elapsed - (max(ends) - started)}


def checkout_path(checkout: str) -> str:
    """``PYTHONPATH`` that runs ``checkout``'s hsm_core and plugins. Each plugin's package is one
    level down (``hsm_plugin_pbs/hsm_plugin_pbs``): with the checkout alone on the path, its
    ``hsm_plugin_pbs/`` project dir is only a namespace package, and the installed (editable)
    plugins of this checkout were imported instead."""
    plugins = sorted(str(d) for d in Path(checkout).glob("hsm_plugin_*") if (d / d.name / "__init__.py").is_file())
    return os.pathsep.join([checkout, *plugins])


def bench_hsm(root: Path, n: int, hpc_extra: str = "", record_phases: bool = False, checkout: str | None = None) -> float:
    """``checkout``: run the hsm of that checkout (its packages first on ``PYTHONPATH``, which the
    elements inherit through the scheduler) instead of this one: before and after in one run."""
    sweep = project(root, n, hpc_extra)
    # Each checkout keeps its own caches (entry points, command index), as an installed hsm does:
    # sharing one, the two would find each other's answers stale at every run.
    cache = root.parent.parent / ("cache-baseline" if checkout else "cache")
    env = dict(os.environ, HSM_CACHE_DIR=str(cache), **({"PYTHONPATH": checkout_path(checkout)} if checkout else {}))
    import resource

    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.time()
    start = time.perf_counter()
    run([sys.executable, "-m", "hsm_core", "run", "--config", str(sweep), "--sources", SYSTEM], cwd=root, env=env)
    elapsed = time.perf_counter() - start
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    # The controller's own CPU (with its sbatch and squeue calls), taken from the elements' 2 cores.
    cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    if record_phases:
        PHASES.append(phases(root, started, elapsed))
        PHASES[-1]["controller CPU"] = cpu
    elif checkout:
        BASELINE_CPU.append(cpu)
    out = run([sys.executable, "-m", "hsm_core", "status", "--json"], cwd=root, env=env).stdout
    assert json.loads(out)["counts"]["completed"] == n, out
    return elapsed


def bench_submitit(root: Path, n: int) -> float | None:
    try:
        import submitit
    except ImportError:
        return None
    executor = submitit.AutoExecutor(folder=str(root / "submitit"), cluster="slurm")
    executor.update_parameters(timeout_min=10, slurm_array_parallelism=n)
    start = time.perf_counter()
    jobs = executor.map_array(square, range(n))
    results = [j.result() for j in jobs]
    elapsed = time.perf_counter() - start
    assert results == [x * x for x in range(n)]
    return elapsed


def bench_big_submission(root: Path, n: int) -> tuple[float, float]:
    """Seconds to submit n held tasks: hsm run --no-wait vs a bare sbatch --array."""
    sweep = project(root / "hsm", n, '  extra_directives: ["--hold"]\n')
    start = time.perf_counter()
    run([sys.executable, "-m", "hsm_core", "run", "--config", str(sweep), "--sources", "slurm", "--no-wait"], cwd=root / "hsm")
    hsm_s = time.perf_counter() - start
    out_dir = root / "hsm" / "sweeps" / "outputs"
    jobs = [json.loads(line)["job_id"] for d in out_dir.iterdir() for line in (d / "scripts/job_scripts/jobs.jsonl").read_text().splitlines()]
    run(["scancel", *jobs])
    bare = root / "bare.sh"
    bare.write_text(f"#!/bin/bash\n#SBATCH --array=0-{n - 1}\n#SBATCH --hold\n#SBATCH --output=/dev/null\ntrue\n")
    start = time.perf_counter()
    job = run(["sbatch", "--parsable", str(bare)]).stdout.strip().split(";")[0]
    bare_s = time.perf_counter() - start
    run(["scancel", job])
    return hsm_s, bare_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--big", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each tool, interleaved (median and spread)")
    ap.add_argument("--system", default="slurm", choices=["slurm", "torque", "pbs"], help="hpc.system of the hsm rows")
    ap.add_argument("--no-submitit", action="store_true")
    ap.add_argument("--no-python-runner", action="store_true", help="leave out the Python task runner row")
    ap.add_argument("--no-packed", action="store_true", help="leave out the tasks_per_element row")
    ap.add_argument("--baseline", metavar="CHECKOUT", help="add a default row run by another checkout of hsm "
                    "(e.g. `git archive` of an earlier commit): before and after, interleaved in one run")
    args = ap.parse_args()
    global SYSTEM
    SYSTEM = args.system
    if not os.environ.get("SLURM_CONF"):
        from hsm_core.testing.services import start_slurm

        os.environ["SLURM_CONF"] = str(start_slurm().conf)
    n = args.tasks
    warm_bytecode()
    if args.baseline:
        import compileall

        for name in ("hsm_core", "hsm_plugin_slurm", "hsm_plugin_pbs"):
            compileall.compile_dir(Path(args.baseline) / name, quiet=1)
    logging.getLogger("submitit").setLevel(logging.ERROR)  # it warns at every poll that sacct is off
    hsm_default = f"hsm run --sources {SYSTEM}"
    hsm_packed = "hsm, tasks_per_element: 10"
    # The Python task runner in every element (what a `runner:` setting, or a case the shell fast
    # path leaves to it, runs): the default before hsm_core/fastrun.py.
    hsm_python = "hsm, Python task runner"
    hsm_baseline = "same, baseline checkout"
    hand_name = "hand-written sbatch --array" if SYSTEM == "slurm" else f"hand-written qsub {PBS_ARRAY[SYSTEM][0]}"
    results: dict[str, list[float]] = {
        hand_name: [], hsm_baseline: [], hsm_default: [], hsm_python: [], hsm_packed: [],
        "submitit map_array": [],
    }
    with tempfile.TemporaryDirectory(dir=os.environ.get("HSM_BENCH_DIR")) as tmp:
        done = attempts = 0
        while done < args.repeat and attempts < 2 * args.repeat:
            attempts += 1
            base = Path(tmp) / f"r{attempts}"
            row: dict[str, float] = {}
            try:
                if SYSTEM == "slurm":
                    measured(hand_name, row, bench_hand_written, base / "hand", n)
                else:  # a name of its own in qstat's 16-character column
                    measured(hand_name, row, bench_hand_written_pbs, base / "hand", n, f"hw{os.getpid() % 100000}r{attempts}")
                if args.baseline:
                    measured(hsm_baseline, row, bench_hsm, base / "hsm_baseline", n, checkout=os.path.abspath(args.baseline))
                measured(hsm_default, row, bench_hsm, base / "hsm", n, record_phases=True)
                if not args.no_python_runner:
                    measured(hsm_python, row, bench_hsm, base / "hsm_python", n, f'  runner: "{sys.executable} -m hsm_core.runner"\n')
                if not args.no_packed:
                    measured(hsm_packed, row, bench_hsm, base / "hsm_packed", n, "  tasks_per_element: 10\n")
                s = None if args.no_submitit else bench_submitit(base / "submitit", n)
                if s is not None:
                    row["submitit map_array"] = s
            except subprocess.CalledProcessError as exc:
                # The cluster is shared: another user restarting it makes a command fail. The run
                # is left out whole, so that every row keeps the same runs.
                print(f"run {attempts} left out: {exc.cmd[:3]} failed: {exc.stderr.strip()[-200:]}", file=sys.stderr)
                del PHASES[done:]
                del BASELINE_CPU[done:]
                continue
            for name, value in row.items():
                if name.startswith("cpu:"):
                    CPU.setdefault(name[4:], []).append(value)
                else:
                    results[name].append(value)
            done += 1
        big = bench_big_submission(Path(tmp) / "big", args.big) if args.big else None
    hand = results[hand_name]
    base_s = statistics.median(hand)
    print(f"Slurm, {n} trivial tasks, hsm and hand-written rows with system: {SYSTEM} ({args.repeat} interleaved runs: "
          "median, spread; lower is better)")
    print(f"{'tool':34s} {'median s':>9s} {'min-max s':>12s} {'vs hand-written':>16s} {'per run':>s}")
    for name, times in results.items():
        if times:
            paired = " ".join(f"{t / h:.2f}x" for t, h in zip(times, hand))
            print(f"{name:34s} {statistics.median(times):9.2f} {min(times):5.2f}-{max(times):5.2f} "
                  f"{statistics.median(times) / base_s:15.2f}x  {paired}")
    if results["submitit map_array"]:
        sub = statistics.median(results["submitit map_array"])
        line = f"vs submitit (medians): hsm {statistics.median(results[hsm_default]) / sub:.2f}x"
        if results[hsm_packed]:
            line += f", packed {statistics.median(results[hsm_packed]) / sub:.2f}x"
        print(line)
    hand_cpu = CPU.get(hand_name)
    if hand_cpu:
        print("The machine's CPU during each row (every process: Slurm's daemons, the elements, the controller;"
              " meaningful on a quiet machine):")
        for name, values in CPU.items():
            paired = " ".join(f"{c / h:.2f}x" for c, h in zip(values, hand_cpu))
            print(f"  {name:32s} {statistics.median(values):7.2f} s  {min(values):5.2f}-{max(values):5.2f}"
                  f"  {statistics.median(values) / statistics.median(hand_cpu):6.2f}x  {paired}")
    if PHASES:
        print(f"{hsm_default}, where the time went (median s after the command started, min-max):")
        for key in PHASES[0]:
            values = [p[key] for p in PHASES]
            print(f"  {key:12s} {statistics.median(values):6.2f}  {min(values):5.2f}-{max(values):5.2f}")
    if BASELINE_CPU:
        print(f"  (baseline's controller CPU {statistics.median(BASELINE_CPU):6.2f}  "
              f"{min(BASELINE_CPU):5.2f}-{max(BASELINE_CPU):5.2f})")
    if big:
        print(f"Submission of {args.big:,} held tasks: hsm run --no-wait {big[0]:.2f}s (whole command), bare sbatch --array {big[1]:.2f}s")


if __name__ == "__main__":
    main()
