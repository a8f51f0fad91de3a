"""The best run (issue 18): ``metric: {name, goal}`` in the sweep file, the best runs in ``hsm
status``, ``hsm export --sort/--desc/--top``, and the report's best-runs table, parallel
coordinates and optimisation history, all through the real ``hsm`` on a real objective script.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from hsm_core.testing.project import Project, make_project

#: loss = (x - 3)^2 + (y + 1)^2 and acc = -loss, written to metrics.json; x = 99 fails the task.
OBJECTIVE = r'''
import json, os, sys
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
args = {k.lstrip("-"): v for k, v in args.items()}
x, y = float(args["x"]), float(args["y"])
if x == 99:
    sys.exit("diverged")
loss = (x - 3) ** 2 + (y + 1) ** 2
with open(os.path.join(os.environ["HSM_TASK_DIR"], "metrics.json"), "w") as fh:
    json.dump({"loss": loss, "acc": -loss}, fh)
'''


def _loss(x: float, y: float) -> float:
    return (x - 3) ** 2 + (y + 1) ** 2


@pytest.fixture
def toy(tmp_path: Path) -> Project:
    return make_project(tmp_path / "proj", script=OBJECTIVE)


GRID = {"x": [0, 2, 3, 5, 99], "y": [-1, 1]}


def _grid_sweep(toy: Project, metric: Any, sweep_id: str = "g") -> None:
    data = {"grid": GRID} if metric is None else {"metric": metric, "grid": GRID}
    proc = toy.hsm("run", "--config", str(toy.write_sweep(data)), "--sweep-id", sweep_id)
    assert proc.returncode == 1, proc.stderr  # the two x=99 tasks fail; the rest complete


def _expected() -> list[tuple[float, float, float]]:
    """(loss, x, y) of the completed grid points, lowest loss (highest acc = -loss) first."""
    return sorted((_loss(x, y), x, y) for x in GRID["x"] for y in GRID["y"] if x != 99)


def test_status_shows_the_best_runs_by_the_sweeps_metric(toy: Project) -> None:
    _grid_sweep(toy, {"name": "acc", "goal": "maximize"})
    info = json.loads(toy.hsm("status", "g", "--json", check=True).stdout)
    assert info["metric"] == {"name": "acc", "goal": "maximize"}
    best = info["best_runs"]
    assert [r["value"] for r in best] == [-row[0] for row in _expected()[:5]]  # highest acc first
    assert best[0]["params"] == {"x": 3, "y": -1}
    text = toy.hsm("status", "g", check=True).stdout
    assert "Best runs by acc (maximize)" in text and re.search(r"1 .*task_\d+ .*│\s+-?0 .*x=3 y=-1", text), text


def test_a_metric_name_alone_means_minimize_and_a_sweep_without_one_shows_none(toy: Project) -> None:
    _grid_sweep(toy, "loss", "named")
    info = json.loads(toy.hsm("status", "named", "--json", check=True).stdout)
    assert info["metric"] == {"name": "loss", "goal": "minimize"} and info["best_runs"][0]["value"] == 0.0
    _grid_sweep(toy, None, "plain")
    info = json.loads(toy.hsm("status", "plain", "--json", check=True).stdout)
    assert info["metric"] is None and info["best_runs"] is None
    assert "Best runs" not in toy.hsm("status", "plain", check=True).stdout


def test_export_sorts_by_any_column_and_keeps_the_top(toy: Project) -> None:
    _grid_sweep(toy, {"name": "loss", "goal": "minimize"})
    rows = list(csv.DictReader(io.StringIO(toy.hsm("export", "g", "--top", "3", check=True).stdout)))
    assert [float(r["loss"]) for r in rows] == [e[0] for e in _expected()[:3]]  # --top alone: the sweep's metric
    rows = list(csv.DictReader(io.StringIO(toy.hsm("export", "g", "--sort", "loss", "--desc", check=True).stdout)))
    losses = [r["loss"] for r in rows]
    assert [float(v) for v in losses[:8]] == sorted((e[0] for e in _expected()), reverse=True)
    assert losses[8:] == ["", ""] and {r["status"] for r in rows[8:]} == {"failed"}  # no value: last either way
    data = json.loads(toy.hsm("export", "g", "--format", "json", "--sort", "x", "--top", "2", check=True).stdout)
    assert [(r["x"], r["y"]) for r in data] == [(0, -1), (0, 1)]  # a parameter; ties keep task order


@pytest.mark.parametrize("args, words", [
    (["--sort", "nosuch"], "no column 'nosuch' in the export of sweep g (metrics: loss, acc)"),
    (["--desc"], "--desc reverses the order of --sort"),
    (["--sort", "loss", "--top", "0"], "--top must be at least 1"),
])
def test_bad_export_orders_are_one_line_errors(toy: Project, args: list[str], words: str) -> None:
    _grid_sweep(toy, "loss")
    proc = toy.hsm("export", "g", *args)
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout == ""


def test_top_without_a_metric_says_how_to_declare_one(toy: Project) -> None:
    _grid_sweep(toy, None)
    proc = toy.hsm("export", "g", "--top", "3")
    assert proc.returncode == 2 and "has no metric to rank by" in proc.stderr and "metric: {name" in proc.stderr


def test_a_search_section_takes_the_sweeps_metric_and_refuses_another(toy: Project) -> None:
    params = {"x": "interval(0, 6)", "y": "interval(-3, 1)"}
    ok = toy.write_sweep({"metric": {"name": "acc", "goal": "maximize"},
                          "search": {"strategy": "random", "trials": 4, "parallel": 1, "params": params}})
    toy.hsm("run", "--config", str(ok), "--sweep-id", "s", check=True)
    info = json.loads(toy.hsm("status", "s", "--json", check=True).stdout)
    assert info["best"]["metric"] == "acc" and info["best"]["goal"] == "maximize"
    assert info["best_runs"][0]["value"] == info["best"]["value"]
    clash = toy.write_sweep({"metric": "acc", "search": {"strategy": "random", "metric": "loss", "trials": 2,
                                                         "params": params}}, "clash.yaml")
    proc = toy.hsm("run", "--config", str(clash))
    assert proc.returncode == 2 and "search: optimises loss (minimize) but the sweep's metric is acc" in proc.stderr
    assert "clash.yaml" in proc.stderr and "Traceback" not in proc.stderr and toy.sweep_ids() == ["s"]


@pytest.mark.parametrize("metric, words", [
    ({"name": "loss", "goal": "lowest"}, "metric goal must be minimize or maximize"),
    ({"goal": "minimize"}, "metric must name a metric"),
    ({"name": "loss", "target": 0.1}, "unknown key 'target' in metric"),
])
def test_a_bad_metric_is_refused_before_anything_runs(toy: Project, metric: Any, words: str) -> None:
    proc = toy.hsm("run", "--config", str(toy.write_sweep({"metric": metric, "grid": GRID})))
    assert proc.returncode == 2 and words in proc.stderr and "sweep.yaml:1" in proc.stderr, proc.stderr
    assert not toy.sweep_ids()


def test_a_wandb_grid_files_metric_ranks_its_runs(toy: Project) -> None:
    cfg = toy.root / "sweeps" / "wandb.yaml"
    cfg.parent.mkdir(exist_ok=True)
    cfg.write_text("program: train.py\nmethod: grid\nmetric:\n  name: acc\n  goal: maximize\n"
                   "parameters:\n  x:\n    values: [0, 3, 5]\n  y:\n    value: -1\n")
    toy.hsm("run", "--config", str(cfg), "--sweep-id", "w", check=True)
    info = json.loads(toy.hsm("status", "w", "--json", check=True).stdout)
    assert info["metric"] == {"name": "acc", "goal": "maximize"}
    assert [r["params"]["x"] for r in info["best_runs"]] == [3, 5, 0]


def test_the_report_has_best_runs_parallel_coordinates_and_an_adaptive_history(toy: Project) -> None:
    _grid_sweep(toy, {"name": "loss", "goal": "minimize"})
    toy.hsm("report", "g", check=True)
    html = (toy.outputs / "g" / "reports" / "completion_report.html").read_text()
    best = html[html.index('<h2 id="best">'):html.index('<h2 id="metrics">')]
    assert "By <b>loss</b> (the sweep's metric, minimize)" in best and "the 8 best of 8 completed" in best
    first_row = re.search(r"<tr><td class=num>1</td><td>(task_\d+)</td><td class=num>0</td><td>3</td><td>-1</td>", best)
    assert first_row, best[:2000]
    assert 'aria-label="parallel coordinates of loss"' in best and best.count("<polyline") == 8
    assert "Optimisation history" not in best  # a grid has no history
    # An adaptive sweep: one dot per completed trial and the best-so-far line.
    cfg = toy.write_sweep({"metric": "loss", "search": {"strategy": "random", "trials": 6, "parallel": 2, "seed": 1,
                                                         "params": {"x": "interval(0, 6)", "y": "interval(-3, 1)"}}},
                          "search.yaml")
    toy.hsm("run", "--config", str(cfg), "--sweep-id", "s", check=True)
    toy.hsm("report", "s", check=True)
    html = (toy.outputs / "s" / "reports" / "completion_report.html").read_text()
    history = html[html.index("<h3>Optimisation history</h3>"):]
    assert 'aria-label="optimisation history of loss"' in history
    assert len(re.findall(r"<title>trial \d+: ", history)) == 6
    assert "search.trial" not in html  # the asked parameters, not the placeholders
    assert "<th>x</th><th>y</th>" in html
