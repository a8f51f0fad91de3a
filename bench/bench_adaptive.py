"""Adaptive search through hsm's ask/tell path against Optuna used directly, on Branin.

For each seed, the same budget of sequential trials on Branin (minimum 0.397887):

* ``hsm tpe``: hsm's path for every trial, as ``hsm run`` takes it when the trial starts: a new
  strategy rebuilt from the sweep dir's trial log (asks and tells in files), told every earlier
  trial, asked once; the result written as the task would (status + metrics.json);
* ``hsm random``: the built-in strategy through the same path;
* ``optuna``: ``optuna.create_study(sampler=TPESampler(seed))`` and ``study.optimize``, in memory.

Prints the best value after the budget per seed and the median, and hsm's time per ask (rebuild +
tell + ask + log write) at the end of the budget. The objective runs in-process: the figures are
the search and its bookkeeping, not task start-up (bench_local.py measures that).

    python bench/bench_adaptive.py [--trials 40] [--seeds 20]

Needs hsm-plugin-optuna installed.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path


def branin(x: float, y: float) -> float:
    a, b, c, r, s, t = 1.0, 5.1 / (4 * math.pi ** 2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return a * (y - b * x ** 2 + c * x - r) ** 2 + s * (1 - t) * math.cos(x) + s


def through_hsm(strategy: str, trials: int, seed: int, startup: int) -> tuple[float, float]:
    from hsm_core.adaptive import AdaptiveSearch, section_settings
    from hsm_core.registry import build_registry
    from hsm_core.state import SweepDir, TaskRecord
    from hsm_core.taskdir import write_status

    registry = build_registry()
    section = {"strategy": strategy, "metric": "loss", "trials": trials, "seed": seed,
               "params": {"x": "interval(-5, 10)", "y": "interval(0, 15)"}}
    if strategy == "tpe":
        section["options"] = {"n_startup_trials": startup}
    settings = section_settings({"search": section}, registry)
    with tempfile.TemporaryDirectory() as tmp:
        sweep = SweepDir(Path(tmp))
        search = AdaptiveSearch(sweep, settings, registry)
        best, last_ask = math.inf, 0.0
        for n in range(1, trials + 1):
            started = time.perf_counter()
            params = search.params_for(TaskRecord(n, f"t{n}", {}))
            last_ask = time.perf_counter() - started
            value = branin(params["x"], params["y"])
            task_dir = sweep.task_dir(n)
            task_dir.mkdir(parents=True)
            write_status(task_dir, {"state": "completed"})
            (task_dir / "metrics.json").write_text(json.dumps({"loss": value}))
            best = min(best, value)
    return best, last_ask


def optuna_direct(trials: int, seed: int, startup: int) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup))
    study.optimize(lambda t: branin(t.suggest_float("x", -5, 10), t.suggest_float("y", 0, 15)), n_trials=trials)
    return float(study.best_value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--startup", type=int, default=10)
    args = parser.parse_args()
    rows = []
    for seed in range(args.seeds):
        tpe, ask = through_hsm("tpe", args.trials, seed, args.startup)
        rnd, rask = through_hsm("random", args.trials, seed, args.startup)
        direct = optuna_direct(args.trials, seed, args.startup)
        rows.append((tpe, rnd, direct, ask, rask))
        print(f"seed {seed}: hsm tpe {tpe:.4f}  hsm random {rnd:.4f}  optuna {direct:.4f}  "
              f"(ask {ask * 1000:.1f} ms tpe, {rask * 1000:.1f} ms random)")
    med = [statistics.median(col) for col in zip(*rows)]
    print(f"median best after {args.trials} trials (Branin min 0.3979): hsm tpe {med[0]:.4f}, hsm random {med[1]:.4f}, "
          f"optuna alone {med[2]:.4f}; hsm ask at trial {args.trials}: {med[3] * 1000:.1f} ms (tpe), "
          f"{med[4] * 1000:.1f} ms (random)")
    ties_or_wins = sum(1 for tpe, _, direct, *_ in rows if tpe <= direct)
    print(f"hsm tpe reached Optuna alone's best (or better) in {ties_or_wins} of {len(rows)} seeds; "
          f"mean best: hsm tpe {statistics.fmean(r[0] for r in rows):.4f}, optuna alone {statistics.fmean(r[2] for r in rows):.4f}")


if __name__ == "__main__":
    main()
