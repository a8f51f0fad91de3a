"""Optuna's other samplers really run through hsm, and concurrent asks see each other.

* CMA-ES, GP and QMC through the real ``hsm run`` (a real objective script); CMA-ES's search
  distribution lives on across asks (its generation advances), QMC asks the very points Optuna's
  own QMC study asks. A sampler whose optional dependency is missing is skipped with the package
  to install, except under ``CI=true`` where every sampler but GP (torch) must run.

Concurrent asks and kill tests with TPE are hsm-core's tests (tests/test_search_concurrency.py,
tests/test_search_kills.py): they look into the trial log through hsm-core's own modules.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest

from hsm_core.testing.project import Project, make_project

OBJECTIVE = r'''
import json, os, sys
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
with open(os.path.join(os.environ["HSM_COUNT_DIR"], "runs.log"), "a") as fh:
    fh.write(os.environ["HSM_TASK_ID"] + " " + json.dumps(args, sort_keys=True) + "\n")
x, y = float(args["x"]), float(args["y"])
with open(os.path.join(os.environ["HSM_TASK_DIR"], "metrics.json"), "w") as fh:
    json.dump({"loss": (x - 3) ** 2 + (y + 1) ** 2}, fh)
'''

#: Sampler -> the packages Optuna needs for it (beyond optuna itself).
NEEDS = {"cmaes": ("cmaes",), "gp": ("scipy", "torch"), "qmc": ("scipy",)}


def _need(strategy: str) -> None:
    missing = [m for m in NEEDS[strategy] if importlib.util.find_spec(m) is None]
    # torch (GP's) is gigabytes with its CUDA wheels: not a test dependency, so GP runs only where
    # a user has installed it; the others are the [test] extra's and must run under CI.
    if missing == ["torch"] or (missing and os.environ.get("CI") != "true"):
        pytest.skip(f"optuna's {strategy} sampler needs {', '.join(missing)} (pip install {' '.join(missing)})")


def _runs(project: Project) -> list[tuple[str, dict[str, str]]]:
    path = project.root / "runs.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(line.split(" ", 1)[0], json.loads(line.split(" ", 1)[1])) for line in lines]


def _loss(args: dict[str, str]) -> float:
    return (float(args["x"]) - 3) ** 2 + (float(args["y"]) + 1) ** 2


def _run(tmp_path: Path, strategy: str, trials: int, **extra: Any) -> tuple[Project, list[dict[str, str]]]:
    project = make_project(tmp_path / "proj", script=OBJECTIVE)
    section = {"strategy": strategy, "metric": {"name": "loss", "goal": "minimize"}, "trials": trials, "parallel": 1,
               "seed": 0, "params": {"x": "interval(-10, 10)", "y": "interval(-10, 10)"}, **extra}
    project.hsm("run", "--config", str(project.write_sweep({"search": section})), check=True, timeout=600)
    runs = _runs(project)
    assert len(runs) == trials and len({t for t, _ in runs}) == trials  # each trial ran once
    return project, [a for _, a in runs]


def test_cmaes_learns_across_asks(tmp_path: Path) -> None:
    """CMA-ES keeps its generation in hsm's trial log: later generations sample near the optimum."""
    _need("cmaes")
    project, runs = _run(tmp_path, "cmaes", 30)
    losses = [_loss(a) for a in runs]
    assert min(losses[20:]) < min(losses[:6]) and sum(losses[20:]) / 10 < sum(losses[:6]) / 6, losses
    # the trial log as written (docs/configuration.md: search/asks/NNNNNN.json, one per trial)
    asks = [json.loads(p.read_text()) for p in sorted((project.only_sweep() / "search" / "asks").glob("*.json"))]
    generations = [a.get("data", {}).get("optuna_system_attrs", {}).get("cma:generation") for a in asks]
    assert max(g for g in generations if g is not None) >= 2, generations  # the search distribution moved on


def test_gp_sampler_runs_and_improves(tmp_path: Path) -> None:
    _need("gp")
    _, runs = _run(tmp_path, "gp", 14, options={"n_startup_trials": 5})
    losses = [_loss(a) for a in runs]
    assert min(losses[5:]) < min(losses[:5]), losses


def test_qmc_asks_the_points_optuna_alone_asks(tmp_path: Path) -> None:
    """QMC's low-discrepancy sequence is one for the whole study: hsm's trial n is Optuna's trial n."""
    _need("qmc")
    import warnings

    import optuna

    _, runs = _run(tmp_path, "qmc", 8, options={"scramble": True})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # QMCSampler is "experimental"
        study = optuna.create_study(sampler=optuna.samplers.QMCSampler(seed=0, scramble=True))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(lambda t: (t.suggest_float("x", -10, 10) - 3) ** 2 + (t.suggest_float("y", -10, 10) + 1) ** 2,
                   n_trials=8)
    hsm_points = [float(a[k]) for a in runs for k in ("x", "y")]
    optuna_points = [t.params[k] for t in study.trials for k in ("x", "y")]
    assert hsm_points == pytest.approx(optuna_points)


def test_a_prune_setting_without_a_metric_takes_the_sweeps(tmp_path: Path) -> None:
    """One metric per sweep: ``prune:`` without its own ``metric:`` compares the sweep's."""
    project = make_project(tmp_path / "proj", script=OBJECTIVE)
    cfg = project.write_sweep({"metric": {"name": "acc", "goal": "maximize"}, "prune": {"pruner": "median"},
                               "grid": {"x": [1, 2], "y": [0]}})
    dry = project.hsm("run", "--config", str(cfg), "--dry-run", check=True).stdout
    assert "Early stopping: median on acc (maximize)" in dry
    alone = project.write_sweep({"prune": {"pruner": "median"}, "grid": {"x": [1], "y": [0]}}, "alone.yaml")
    proc = project.hsm("run", "--config", str(alone))
    assert proc.returncode == 2 and "metric must name the intermediate value" in proc.stderr
