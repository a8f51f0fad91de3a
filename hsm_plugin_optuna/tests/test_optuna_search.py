"""hsm-plugin-optuna through the real ``hsm``: TPE learns from the trials hsm ran, wandb's
``method: bayes`` runs with it, what Optuna cannot search is refused before anything runs.

The objective is a real script writing metrics.json; executions are counted from its own log.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hsm_core.plugin import ConfigError, SearchParam, SearchSettings, Trial
from hsm_core.testing.project import Project, make_project
from hsm_plugin_optuna.strategy import OptunaStrategy

OBJECTIVE = r'''
import json, os, sys
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
args = {k.lstrip("-"): v for k, v in args.items()}
with open(os.path.join(os.environ["HSM_COUNT_DIR"], "runs.log"), "a") as fh:
    fh.write(os.environ["HSM_TASK_ID"] + " " + json.dumps(args, sort_keys=True) + "\n")
x, y = float(args["x"]), float(args["y"])
with open(os.path.join(os.environ["HSM_TASK_DIR"], "metrics.json"), "w") as fh:
    json.dump({"loss": (x - 3) ** 2 + (y + 1) ** 2}, fh)
'''


def _loss(args: dict[str, str]) -> float:
    return (float(args["x"]) - 3) ** 2 + (float(args["y"]) + 1) ** 2


def _runs(project: Project) -> list[tuple[str, dict[str, str]]]:
    path = project.root / "runs.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(line.split(" ", 1)[0], json.loads(line.split(" ", 1)[1])) for line in lines]


@pytest.fixture
def toy(tmp_path: Path) -> Project:
    return make_project(tmp_path / "proj", script=OBJECTIVE)


def test_tpe_finds_better_values_than_its_first_trials(toy: Project) -> None:
    """One trial at a time (each ask knows every result): after 6 random start-up trials TPE's
    proposals beat the best of those, as Optuna's own TPE does on this bowl."""
    cfg = toy.write_sweep({"search": {"strategy": "tpe", "metric": {"name": "loss", "goal": "minimize"},
                                      "trials": 20, "parallel": 1, "seed": 0, "options": {"n_startup_trials": 6},
                                      "params": {"x": "interval(-10, 10)", "y": "interval(-10, 10)"}}})
    toy.hsm("run", "--config", str(cfg), check=True, timeout=300)
    runs = _runs(toy)
    assert len(runs) == 20 and len({task for task, _ in runs}) == 20  # each trial ran once
    losses = [_loss(args) for _, args in runs]
    startup, learned = min(losses[:6]), min(losses[6:])
    assert learned < startup / 4, (startup, learned)
    # the later half is better on average than the random start-up: it is learning, not luck
    assert sum(losses[10:]) / 10 < sum(losses[:6]) / 6
    info = json.loads(toy.hsm("status", "--json", check=True).stdout)
    assert info["best"]["value"] == pytest.approx(min(losses))


def test_a_wandb_bayes_sweep_file_runs_with_tpe(toy: Project) -> None:
    (toy.root / "sweeps").mkdir(exist_ok=True)
    cfg = toy.root / "sweeps" / "wandb.yaml"
    cfg.write_text("program: train.py\nmethod: bayes\nrun_cap: 5\nmetric:\n  name: loss\n  goal: minimize\n"
                   "parameters:\n  x:\n    min: -10.0\n    max: 10.0\n  y:\n    min: -10.0\n    max: 10.0\n")
    dry = toy.hsm("run", "--config", str(cfg), "--dry-run", check=True).stdout
    assert "5 trials chosen by tpe, minimize loss" in dry
    toy.hsm("run", "--config", str(cfg), check=True, timeout=300)
    assert len(_runs(toy)) == 5
    assert json.loads(toy.hsm("status", "--json", check=True).stdout)["best"]["metric"] == "loss"


def test_an_unbounded_distribution_is_refused_before_anything_runs(toy: Project) -> None:
    cfg = toy.write_sweep({"search": {"strategy": "tpe", "metric": "loss", "trials": 3,
                                      "params": {"x": {"normal": [0, 1]}, "y": "interval(0, 1)"}}})
    proc = toy.hsm("run", "--config", str(cfg))
    assert proc.returncode == 2 and "needs bounds" in proc.stderr and "Traceback" not in proc.stderr
    assert not toy.sweep_ids() and not _runs(toy)


def _settings(**kw: Any) -> SearchSettings:
    base: dict[str, Any] = dict(strategy="tpe", metric="loss", goal="maximize", trials=10, parallel=None, seed=3,
                                params=(SearchParam("lr", "log_uniform", (1e-5, 1e-1)), SearchParam("n", "int", (1, 4)),
                                        SearchParam("opt", "choice", ("adam", "sgd")), SearchParam("k", "constant", (7,))))
    base.update(kw)
    return SearchSettings(**base)


def test_asks_are_reproducible_and_in_the_space() -> None:
    history = [Trial(1, {"lr": 0.01, "n": 2, "opt": "adam", "k": 7}, "completed", 0.5),
               Trial(2, {"lr": 0.001, "n": 3, "opt": "sgd", "k": 7}, "running"),
               Trial(3, {"lr": 0.1, "n": 1, "opt": "sgd", "k": 7}, "failed")]
    asked = []
    for _ in range(2):
        strategy = OptunaStrategy(_settings(), "TPESampler")
        for trial in history:
            strategy.tell(trial)
        asked.append(strategy.ask(4))
    assert asked[0] == asked[1]
    p = asked[0]
    assert 1e-5 <= p["lr"] <= 1e-1 and p["n"] in (1, 2, 3, 4) and p["opt"] in ("adam", "sgd") and p["k"] == 7


def test_unknown_sampler_options_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="search.options"):
        OptunaStrategy(_settings(options={"no_such_option": 1}), "TPESampler")
