"""Search methods through the real ``hsm run`` against Optuna alone, on Branin and on an SVC on digits.

For each objective, the same budget of N trials per method, every trial a real task started by
``hsm run`` in a throw-away project (the script computes the objective and writes metrics.json):

* ``grid``: a ``grid:`` of about N points (sqrt(N) values per parameter, log-spaced for a
  log-scale parameter); one run (a grid has no seed);
* ``random``: a ``random:`` section of N samples, per seed;
* ``tpe``: a ``search:`` section with hsm-plugin-optuna's TPE, one trial at a time (``parallel: 1``);
* ``tpe x4``: the same with ``parallel: 4`` (4 trials at once on a local source of 4 slots, each ask
  told the others as running; Branin tasks sleep ``--task-sleep`` seconds so that they overlap);
* ``optuna``: ``optuna.create_study(sampler=TPESampler(seed=seed, n_startup_trials=...))`` and
  ``study.optimize`` in this process: Optuna alone, same seed, same sampler settings.

Prints the best value after N trials per method (median over the seeds and every seed), then the
overhead per trial with an instant objective: the wall time of ``hsm run`` per task for a grid (task
start and bookkeeping), and for the random and TPE search strategies (+ ask and tell from the trial
log), and hsm's time for one ask at the end of the budget measured in-process.

    python bench/bench_search.py [--objective branin|svc|both] [--seeds 5] [--trials 36]

Needs hsm-plugin-optuna, and scikit-learn for the SVC objective (a bench-only dependency:
``pip install scikit-learn``). Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

# -- objectives: the same code as a task script and in this process ------------------------------------

BRANIN = '''
import math
def objective(x, y):
    a, b, c, r, s, t = 1.0, 5.1 / (4 * math.pi ** 2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return a * (y - b * x ** 2 + c * x - r) ** 2 + s * (1 - t) * math.cos(x) + s
'''

SVC = '''
from functools import lru_cache
@lru_cache(maxsize=1)
def _data():
    from sklearn.datasets import load_digits
    return load_digits(return_X_y=True)
def objective(C, gamma):
    """3-fold cross-validated accuracy of an RBF SVC on scikit-learn's digits (higher is better)."""
    from sklearn.model_selection import cross_val_score
    from sklearn.svm import SVC
    X, y = _data()
    return float(cross_val_score(SVC(C=C, gamma=gamma), X, y, cv=3).mean())
'''

TASK = '''
import json, os, sys, time
{code}
time.sleep({sleep})
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
value = objective(**{{k: float(v) for k, v in args.items()}})
with open(os.path.join(os.environ["HSM_TASK_DIR"], "metrics.json"), "w") as fh:
    json.dump({{"{metric}": value}}, fh)
'''


class Objective:
    """An objective with its space, its metric and its goal."""

    def __init__(self, name: str, code: str, metric: str, goal: str, space: dict[str, tuple[float, float, bool]],
                 optimum: float | None) -> None:
        self.name, self.code, self.metric, self.goal, self.space, self.optimum = name, code, metric, goal, space, optimum
        scope: dict[str, Any] = {}
        exec(code, scope)  # noqa: S102 - the bench's own objective code
        self.fn: Callable[..., float] = scope["objective"]

    def better(self, a: float, b: float) -> bool:
        return a > b if self.goal == "maximize" else a < b

    def best(self, values: list[float]) -> float:
        return max(values) if self.goal == "maximize" else min(values)

    def search_params(self) -> dict[str, str]:
        return {k: (f"tag(log, interval({lo}, {hi}))" if log else f"interval({lo}, {hi})")
                for k, (lo, hi, log) in self.space.items()}

    def grid(self, trials: int) -> dict[str, list[float]]:
        n = max(2, int(math.isqrt(trials)))
        out = {}
        for k, (lo, hi, log) in self.space.items():
            if log:
                out[k] = [float(f"{10 ** (math.log10(lo) + (math.log10(hi) - math.log10(lo)) * i / (n - 1)):.6g}")
                          for i in range(n)]
            else:
                out[k] = [round(lo + (hi - lo) * i / (n - 1), 6) for i in range(n)]
        return out


OBJECTIVES = {
    "branin": Objective("branin", BRANIN, "loss", "minimize", {"x": (-5.0, 10.0, False), "y": (0.0, 15.0, False)},
                        0.397887),
    "svc": Objective("svc", SVC, "accuracy", "maximize", {"C": (0.01, 1000.0, True), "gamma": (1e-5, 0.1, True)}, None),
}

# -- through hsm ------------------------------------------------------------------------------------------


def _project(root: Path, obj: Objective) -> Any:
    from hsm_core.testing.project import make_project

    project = make_project(root, script=TASK.format(code=obj.code, metric=obj.metric, sleep=TASK_SLEEP[0]))
    config = project.root / "hsm_config.yaml"  # room for 4 trials at once on the local source
    config.write_text(config.read_text().replace("max_parallel_jobs: 2", "max_parallel_jobs: 4"))
    return project


#: Seconds each Branin task sleeps (so that 4 parallel trials really overlap); set by --task-sleep.
TASK_SLEEP = [0.0]


#: Sweep kind -> the number of running trials each ask was told about.
PENDING: dict[str, list[int]] = {}


def run_hsm(obj: Objective, section: dict[str, Any], tmp: Path, tag: str) -> tuple[list[float], float]:
    """Run one sweep with ``hsm run``; the metric of each trial in trial order, and the wall time."""
    project = _project(tmp / tag, obj)
    cfg = project.write_sweep({"metric": {"name": obj.metric, "goal": obj.goal}, **section})
    started = time.perf_counter()
    proc = project.hsm("run", "--config", str(cfg), "--sweep-id", "b", timeout=3600)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"hsm run failed for {tag}: {proc.stderr[-2000:]}")
    rows = json.loads(project.hsm("export", "b", "--format", "json", check=True).stdout)
    from hsm_core.adaptive import TrialLog

    asks = TrialLog(project.outputs / "b").asked().values()
    if asks:  # how many trials ran while each was asked (parallel: 0 .. 3)
        PENDING.setdefault(tag.rsplit("-", 1)[0], []).extend(a.get("running_before", 0) for a in asks)
    rows.sort(key=lambda r: int(str(r["task"]).rsplit("_", 1)[-1]) if str(r["task"]).startswith("task_") else 0)
    return [float(r[obj.metric]) for r in rows if r.get(obj.metric) is not None], wall


def optuna_direct(obj: Objective, trials: int, seed: int, startup: int) -> list[float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=obj.goal,
                                sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup))

    def objective(trial: Any) -> float:
        args = {k: trial.suggest_float(k, lo, hi, log=log) for k, (lo, hi, log) in obj.space.items()}
        return obj.fn(**args)

    study.optimize(objective, n_trials=trials)
    return [float(t.value) for t in study.trials]


def ask_time(obj: Objective, trials: int, seed: int, startup: int) -> float:
    """hsm's time for one TPE ask with ``trials - 1`` trials in the log (rebuild, tell, ask, write)."""
    from hsm_core.adaptive import AdaptiveSearch, section_settings
    from hsm_core.registry import build_registry
    from hsm_core.state import SweepDir, TaskRecord
    from hsm_core.taskdir import write_status

    registry = build_registry()
    settings = section_settings({"search": {"strategy": "tpe", "metric": obj.metric, "trials": trials, "seed": seed,
                                            "options": {"n_startup_trials": startup},
                                            "params": obj.search_params()}}, registry)
    with tempfile.TemporaryDirectory() as tmp:
        sweep = SweepDir(Path(tmp))
        search = AdaptiveSearch(sweep, settings, registry)
        last = 0.0
        for n in range(1, trials + 1):
            started = time.perf_counter()
            params = search.params_for(TaskRecord(n, f"t{n}", {}))
            last = time.perf_counter() - started
            d = sweep.task_dir(n)
            d.mkdir(parents=True)
            write_status(d, {"state": "completed"})
            (d / "metrics.json").write_text(json.dumps({obj.metric: obj.fn(**params) if obj.name == "branin" else 0.5}))
    return last


def compare(obj: Objective, trials: int, seeds: int, startup: int, tmp: Path) -> dict[str, list[float]]:
    """Best value after ``trials`` trials per method and seed."""
    best: dict[str, list[float]] = {m: [] for m in ("grid", "random", "tpe", "tpe x4", "optuna")}
    grid, _ = run_hsm(obj, {"grid": obj.grid(trials)}, tmp, f"{obj.name}-grid")
    best["grid"] = [obj.best(grid)] * seeds
    print(f"{obj.name}: grid of {len(grid)} points: best {obj.best(grid):.6g}", flush=True)
    for seed in range(seeds):
        rnd, _ = run_hsm(obj, {"random": {"samples": trials, "seed": seed, "params": obj.search_params()}}, tmp,
                         f"{obj.name}-random-{seed}")
        tpe_section = {"strategy": "tpe", "trials": trials, "seed": seed, "options": {"n_startup_trials": startup},
                       "params": obj.search_params()}
        tpe, _ = run_hsm(obj, {"search": {**tpe_section, "parallel": 1}}, tmp, f"{obj.name}-tpe-{seed}")
        par, _ = run_hsm(obj, {"search": {**tpe_section, "parallel": 4}}, tmp, f"{obj.name}-tpe4-{seed}")
        direct = optuna_direct(obj, trials, seed, startup)
        for name, values in (("random", rnd), ("tpe", tpe), ("tpe x4", par), ("optuna", direct)):
            assert len(values) == trials, (name, len(values))
            best[name].append(obj.best(values))
        print(f"{obj.name} seed {seed}: " + "  ".join(f"{m} {best[m][-1]:.6g}" for m in best), flush=True)
    return best


def overhead(trials: int, tmp: Path) -> dict[str, float]:
    """Seconds of ``hsm run`` wall time per task with an instant objective, per kind of sweep."""
    obj = Objective("instant", "def objective(x, y):\n    return x + y\n", "loss", "minimize",
                    {"x": (0.0, 1.0, False), "y": (0.0, 1.0, False)}, None)
    params = obj.search_params()
    kinds = {
        "grid": {"grid": {"x": [i / trials for i in range(trials)], "y": [0.5]}},
        "search random": {"search": {"strategy": "random", "trials": trials, "parallel": 1, "params": params}},
        "search tpe": {"search": {"strategy": "tpe", "trials": trials, "parallel": 1, "params": params}},
    }
    out = {}
    for name, section in kinds.items():
        _, wall = run_hsm(obj, section, tmp, f"overhead-{name.replace(' ', '-')}")
        out[name] = wall / trials
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objective", choices=["branin", "svc", "both"], default="both")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=36)
    parser.add_argument("--startup", type=int, default=10, help="TPE's n_startup_trials (hsm and Optuna alike)")
    parser.add_argument("--overhead-trials", type=int, default=40)
    parser.add_argument("--task-sleep", type=float, default=0.3,
                        help="seconds each Branin task sleeps, so that 4 parallel trials overlap as real ones do")
    args = parser.parse_args()
    names = ["branin", "svc"] if args.objective == "both" else [args.objective]
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            obj = OBJECTIVES[name]
            TASK_SLEEP[0] = args.task_sleep if name == "branin" else 0.0
            best = compare(obj, args.trials, args.seeds, args.startup, Path(tmp))
            opt = f" (optimum {obj.optimum})" if obj.optimum is not None else ""
            print(f"\n{name}: best {obj.metric} after {args.trials} trials ({obj.goal}){opt}, median over {args.seeds} seeds:")
            for method, values in best.items():
                print(f"  {method:8s} {statistics.median(values):.6g}   (seeds: {', '.join(f'{v:.4g}' for v in values)})")
            for kind, pending in PENDING.items():
                if kind.startswith(name):
                    print(f"  {kind}: trials running at each ask: mean {statistics.fmean(pending):.2f}, "
                          f"max {max(pending)}")
        TASK_SLEEP[0] = 0.0
        ov = overhead(args.overhead_trials, Path(tmp))
        print(f"\nhsm run wall time per task, instant objective, {args.overhead_trials} tasks one at a time:")
        for kind, seconds in ov.items():
            print(f"  {kind:14s} {seconds * 1000:.0f} ms")
        print(f"  TPE ask at trial {args.trials} (in-process: rebuild from the log, tell, ask, record): "
              f"{ask_time(OBJECTIVES['branin'], args.trials, 0, args.startup) * 1000:.1f} ms")


if __name__ == "__main__":
    sys.exit(main())
