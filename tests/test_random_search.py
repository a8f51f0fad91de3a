"""The built-in ``random:`` section (random search, issue 18).

The sampling logic is checked as pure functions; the section as an expander through the expander
contract (other processes, other hash seeds, the real ``hsm``); and a real ``hsm run`` of a
random x grid sweep in a throw-away project, judged from the arguments each task's own process
received.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hsm_core.builtin.random_search import RandomExpander, parse_distribution, parse_section
from hsm_core.plugin import ConfigError
from hsm_core.testing import ExpanderContract


class TestRandomExpander(ExpanderContract):
    expander = "random"

    def valid_sections(self) -> list[Any]:
        return [
            {"samples": 8, "seed": 1, "lr": {"log_uniform": [1e-5, 1e-1]}},
            {"samples": 5, "seed": 3, "lr": "tag(log, interval(1e-4, 1))", "opt": "adam,sgd",
             "layers": "int(interval(1, 8))", "width": {"int": [32, 512], "q": 32}, "init": {"normal": [0, 1]}},
            {"samples": 4, "optimizer": {"name": ["adam", "sgd"], "lr": {"uniform": [0, 1], "q": 0.1}}},
            {"samples": 6, "seed": 0, "params": {"seed": [1, 2, 3], "samples": [10, 20]}},
        ]

    def invalid_sections(self) -> list[tuple[Any, str]]:
        return [
            ({"samples": 0, "lr": [1, 2]}, "samples must be"),
            ({"lr": [1, 2]}, "'samples' is missing"),
            ({"samples": 3, "lr": [1, 2]}, "more than the 2 distinct"),
            ({"samples": 2, "lr": {"uniform": [1]}}, "uniform takes"),
            ({"samples": 2, "lr": {"log_uniform": [0, 1]}}, "needs low above 0"),
            ({"samples": 2, "lr": {"uniforn": [0, 1]}}, "did you mean 'uniform'"),
            ({"samples": 2, "lr": "interval(0,1"}, "expected ')'"),
            ({"samples": 2, "lr": "tag(fidelity, interval(0,1))"}, "unknown tag"),
            ({"samples": 2, "seed": "x", "lr": [1, 2]}, "seed must be"),
            ({"samples": 2}, "no parameter"),
        ]

    def huge_section(self) -> Any:
        return {"samples": 10**9, "seed": 1, "lr": {"uniform": [0, 1]}}


def _draw(section: dict) -> list[dict]:
    expander = RandomExpander()
    expander.validate(section, "random")
    return list(expander.expand(section))


def test_each_distribution_stays_in_its_range():
    sets = _draw({"samples": 400, "seed": 5, "u": {"uniform": [-1, 1]}, "lu": "tag(log, interval(1e-5, 1e-1))",
                  "i": {"int": [2, 4]}, "li": {"log_int": [1, 1000]}, "c": ["a", "b", "c"],
                  "q": {"uniform": [0, 1], "q": 0.25}, "n": {"normal": [10, 2]}, "ln": {"log_normal": [0, 0.5]},
                  "iq": {"int": [0, 100], "q": 10}, "hydra_int": "int(interval(1, 3))", "r": "range(0, 10, 5)"})
    col = {k: [s[k] for s in sets] for k in sets[0]}
    assert all(-1 <= v < 1 for v in col["u"]) and min(col["u"]) < -0.9 and max(col["u"]) > 0.9
    assert all(1e-5 <= v <= 1e-1 for v in col["lu"])
    # log-uniform: about as many draws in each decade
    decades = [sum(1 for v in col["lu"] if 10 ** (e - 1) <= v < 10**e) for e in (-4, -3, -2, -1)]
    assert min(decades) > 60, decades
    assert set(col["i"]) == {2, 3, 4} and all(isinstance(v, int) for v in col["i"])  # both ends included
    assert all(1 <= v <= 1000 and isinstance(v, int) for v in col["li"])
    assert sum(v < 10 for v in col["li"]) > 100  # a log scale: small values are common
    assert set(col["c"]) == {"a", "b", "c"}
    assert set(col["q"]) <= {0.0, 0.25, 0.5, 0.75, 1.0}
    assert abs(statistics.mean(col["n"]) - 10) < 0.5 and 1.5 < statistics.stdev(col["n"]) < 2.5
    assert all(v > 0 for v in col["ln"])
    assert set(col["iq"]) <= set(range(0, 101, 10)) and all(isinstance(v, int) for v in col["iq"])
    assert set(col["hydra_int"]) == {1, 2, 3}
    assert set(col["r"]) == {0, 5}


def test_weighted_choice_follows_its_weights():
    sets = _draw({"samples": 1000, "x": {"uniform": [0, 1]}, "c": {"choice": ["a", "b", "never"], "weights": [3, 1, 0]}})
    counts = {v: sum(s["c"] == v for s in sets) for v in ("a", "b", "never")}
    assert counts["never"] == 0 and 680 < counts["a"] < 820, counts
    with pytest.raises(ConfigError, match="weights must be 2 numbers"):
        parse_section({"samples": 1, "c": {"choice": ["a", "b"], "weights": [1]}}, "random")
    with pytest.raises(ConfigError, match="more than the 1 distinct"):  # a value of weight 0 is never drawn
        parse_section({"samples": 2, "c": {"choice": ["a", "b"], "weights": [1, 0]}}, "random")


def test_the_seed_decides_and_a_new_parameter_leaves_the_others_alone():
    base = {"samples": 10, "seed": 1, "lr": {"log_uniform": [1e-5, 1e-1]}, "opt": ["adam", "sgd"]}
    assert _draw(base) == _draw(dict(base))
    assert _draw(base) != _draw({**base, "seed": 2})
    more = _draw({**base, "dropout": {"uniform": [0, 0.5]}})
    assert [{k: s[k] for k in ("lr", "opt")} for s in more] == _draw(base)


def test_the_sets_are_distinct_even_in_a_small_space():
    sets = _draw({"samples": 6, "seed": 0, "a": [1, 2, 3], "b": [True, False]})
    assert sorted(json.dumps(s, sort_keys=True) for s in sets) == sorted(
        json.dumps({"a": a, "b": b}, sort_keys=True) for a in (1, 2, 3) for b in (True, False))


def test_the_values_are_the_same_in_a_process_with_another_hash_seed():
    section = {"samples": 5, "seed": 42, "lr": "tag(log, interval(1e-5, 1e-1))", "opt": "adam,sgd,lamb"}
    code = ("import json,sys; from hsm_core.builtin.random_search import RandomExpander as R; "
            "print(json.dumps(list(R().expand(json.loads(sys.argv[1])))))")
    env_runs = []
    for seed in ("0", "123"):
        proc = subprocess.run([sys.executable, "-c", code, json.dumps(section)], capture_output=True, text=True,
                              env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)},
                              check=True)
        env_runs.append(json.loads(proc.stdout))
    assert env_runs[0] == env_runs[1] == _draw(section)


def test_floats_keep_ten_significant_digits():
    for s in _draw({"samples": 50, "seed": 9, "x": {"log_uniform": [1e-7, 1]}, "y": {"normal": [0, 1]}}):
        for v in s.values():
            assert float(f"{v:.10g}") == v


@pytest.mark.parametrize("value,kind", [
    ([1, 2], "choice"), ("a,b", "choice"), ("choice(a,b)", "choice"), ("range(0,4)", "choice"),
    ("interval(0,1)", "uniform"), ("tag(log, interval(1, 10))", "log_uniform"),
    ("int(interval(1, 10))", "int"), ("tag(log, int(interval(1, 10)))", "log_int"),
    ({"loguniform": [1, 2]}, "log_uniform"), ({"randint": [1, 2]}, "int"), ({"normal": [0, 1], "q": 0.5}, "normal"),
    (3, "constant"), ("plain", "constant"),
])
def test_what_each_form_means(value, kind):
    assert parse_distribution(value).kind == kind


def test_count_only_of_a_billion_samples_is_instant(project):
    cfg = project.write_sweep({"random": {"samples": 10**9, "seed": 1, "lr": {"uniform": [0, 1]}},
                               "grid": {"seed": [1, 2, 3]}})
    t0 = time.monotonic()
    proc = project.hsm("run", "--config", str(cfg), "--count-only", check=True)
    assert "3000000000" in proc.stdout.replace(",", "")
    assert time.monotonic() - t0 < 30


def test_dry_run_shows_the_distributions(project):
    cfg = project.write_sweep("random:\n  samples: 7\n  seed: 3\n  lr: tag(log, interval(1e-5, 1e-1))\n"
                              "  width: {int: [32, 512], q: 32}\ngrid:\n  seed: [1, 2]\n")
    out = project.hsm("run", "--config", str(cfg), "--dry-run", check=True).stdout
    assert "(random)" in out and "7 samples drawn, seed 3" in out
    assert "log-uniform [1e-05, 0.1]" in out and "integer [32, 512], step 32" in out
    assert "Total parameter combinations: 14" in out


def test_a_parameter_in_random_and_grid_is_refused(project):
    cfg = project.write_sweep("grid:\n  lr: [1, 2]\nrandom:\n  samples: 2\n  lr: {uniform: [0, 1]}\n")
    proc = project.hsm("run", "--config", str(cfg), "--dry-run")
    assert proc.returncode == 2
    assert "sweep.yaml:5: random.lr: parameter 'lr' is also set in grid" in proc.stderr
    assert not project.sweep_ids()


def _argvs(sweep: Path) -> list[dict[str, str]]:
    out = []
    for task in sorted((sweep / "tasks").iterdir()):
        line = next(ln for ln in (task / "stdout.log").read_text().splitlines() if ln.startswith("ARGV "))
        out.append(dict(a.split("=", 1) for a in json.loads(line[5:])))
    return out


def test_hsm_runs_a_random_times_grid_sweep_and_complete_finds_nothing_new(project):
    """The real ``hsm run``: 4 samples x 2 grid values = 8 tasks, each told its drawn values; the
    same 4 draws meet each grid value, and ``hsm complete`` (a new process) re-draws the same
    sets, so there is nothing left to run; with samples raised to 5 it runs just the new draw."""
    cfg = project.write_sweep(
        "grid:\n  x: [1, 2]\n"
        "random:\n  samples: 4\n  seed: 11\n"
        "  optimizer:\n    lr: tag(log, interval(1e-5, 1e-1))\n    name: adam,sgd\n"
        "  layers: int(interval(2, 8))\n"
    )
    project.hsm("run", "--config", str(cfg), "--sources", "local:2", check=True)
    sweep = project.only_sweep()
    argvs = _argvs(sweep)
    assert len(argvs) == 8 and len(project.executions()) == 8
    draws = {x: sorted((a["optimizer.lr"], a["optimizer.name"], a["layers"]) for a in argvs if a["x"] == x)
             for x in ("1", "2")}
    assert draws["1"] == draws["2"] and len(set(draws["1"])) == 4
    for a in argvs:
        assert 1e-5 <= float(a["optimizer.lr"]) <= 1e-1
        assert a["optimizer.name"] in ("adam", "sgd") and 2 <= int(a["layers"]) <= 8
    expected = sorted((str(s["optimizer.lr"]), s["optimizer.name"], str(s["layers"]))
                      for s in _draw({"samples": 4, "seed": 11, "optimizer": {
                          "lr": "tag(log, interval(1e-5, 1e-1))", "name": "adam,sgd"}, "layers": "int(interval(2, 8))"}))
    assert draws["1"] == expected
    proc = project.hsm("complete", sweep.name, "--sources", "local:2", check=True)
    assert len(project.executions()) == 8, proc.stdout
    # More samples keep the first draws: complete runs only the new sets (1 more x 2 grid values).
    cfg.write_text(cfg.read_text().replace("samples: 4", "samples: 5"))
    proc = project.hsm("complete", sweep.name, "--config", str(cfg), "--sources", "local:2", check=True)
    assert len(project.executions()) == 10, proc.stdout
    assert len(_argvs(sweep)) == 10
