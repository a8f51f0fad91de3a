"""Adaptive search (issue 18): the ``search:`` section, the trial log, the built-in ``random``
strategy, as the real ``hsm`` runs them.

The objective is a real script that writes metrics.json; executions are counted from the lines
the script itself appends (one ``start`` and one ``end`` line per execution, with the time), never
from hsm's own records.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from hsm_core.adaptive import TrialLog
from hsm_core.plugin import ConfigError, SearchSettings, SearchStrategy, Trial
from hsm_core.testing.project import Project, make_project, wait_for

#: A toy objective: loss = (x - 3)^2 + (y + 1)^2; logs each execution's start and end.
OBJECTIVE = r'''
import json, os, sys, time
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
task_dir = os.environ["HSM_TASK_DIR"]
log = os.path.join(os.environ["HSM_COUNT_DIR"], "runs.log")
def note(word):
    with open(log, "a") as fh:
        fh.write(f"{os.environ['HSM_TASK_ID']} {word} {time.time():.6f} {json.dumps(args, sort_keys=True)}\n")
note("start")
time.sleep(float(os.environ.get("TOY_SLEEP", "0")))
x, y = float(args["x"]), float(args["y"])
with open(os.path.join(task_dir, "metrics.json"), "w") as fh:
    json.dump({"loss": (x - 3) ** 2 + (y + 1) ** 2}, fh)
note("end")
'''


def _sweep(strategy: str = "random", trials: int = 6, parallel: int | None = 2, **extra: Any) -> dict[str, Any]:
    section: dict[str, Any] = {"strategy": strategy, "metric": {"name": "loss", "goal": "minimize"}, "trials": trials,
                               "seed": 0,
                               "params": {"x": "interval(-10, 10)", "y": {"uniform": [-10, 10]}}}
    if parallel is not None:
        section["parallel"] = parallel
    section.update(extra)
    return {"search": section}


def _runs(project: Project) -> list[tuple[str, str, float, dict[str, str]]]:
    path = project.root / "runs.log"
    out = []
    for line in (path.read_text().splitlines() if path.exists() else []):
        task, word, when, args = line.split(" ", 3)
        out.append((task, word, float(when), json.loads(args)))
    return out


def _assert_each_ran_once(project: Project, trials: int) -> list[dict[str, str]]:
    """Every trial's task started exactly once and ended; returns the arguments each got, by start."""
    runs = _runs(project)
    starts = [r for r in runs if r[1] == "start"]
    ends = [r for r in runs if r[1] == "end"]
    assert len(starts) == trials, [r[0] for r in starts]
    assert len({r[0] for r in starts}) == trials  # no task ran twice
    assert sorted(r[0] for r in ends) == sorted(r[0] for r in starts)
    params = [json.dumps(r[3], sort_keys=True) for r in starts]
    assert len(set(params)) == trials  # no two trials got the same parameters
    return [r[3] for r in starts]


@pytest.fixture
def toy(tmp_path: Path) -> Project:
    return make_project(tmp_path / "proj", script=OBJECTIVE)


def test_a_search_sweep_runs_its_trials_with_the_parameters_the_log_records(toy: Project) -> None:
    cfg = toy.write_sweep(_sweep(trials=6))
    dry = toy.hsm("run", "--config", str(cfg), "--dry-run", check=True).stdout
    assert "6 trials chosen by random, minimize loss" in dry
    assert "x=<x>" in dry and "search.trial" not in dry  # values are chosen as each trial starts
    ran = toy.hsm("run", "--config", str(cfg), check=True).stdout
    got = _assert_each_ran_once(toy, 6)
    sweep = toy.only_sweep()
    asks = TrialLog(sweep).asked()
    assert sorted(asks) == [1, 2, 3, 4, 5, 6]
    # What each process received is what the log says its trial was asked.
    logged = sorted(json.dumps({k: str(v) for k, v in a["params"].items()}, sort_keys=True) for a in asks.values())
    assert logged == sorted(json.dumps(g, sort_keys=True) for g in got)
    info = json.loads(toy.hsm("status", "--json", check=True).stdout)
    losses = {(float(g["x"]) - 3) ** 2 + (float(g["y"]) + 1) ** 2 for g in got}
    assert info["best"]["value"] == pytest.approx(min(losses))
    assert f"Best: trial {info['best']['trial']}: loss=" in ran
    assert set(info["best"]["params"]) == {"x", "y"}
    text = toy.hsm("status", check=True).stdout
    assert "Best trial" in text and "loss=" in text
    best = toy.hsm("export", "--best", check=True).stdout.splitlines()
    assert len(best) == 2 and best[0].startswith("task,id,x,y")


def test_the_same_seed_gives_the_same_random_trials(tmp_path: Path) -> None:
    seen = []
    for name in ("a", "b"):
        project = make_project(tmp_path / name, script=OBJECTIVE)
        project.hsm("run", "--config", str(project.write_sweep(_sweep(trials=3, parallel=1))), check=True)
        seen.append({n: a["params"] for n, a in TrialLog(project.only_sweep()).asked().items()})
    assert seen[0] == seen[1]


def test_a_killed_controller_loses_no_trial_and_complete_runs_each_once(toy: Project) -> None:
    """SIGKILL ``hsm run`` mid-study; ``hsm complete`` finishes: exactly ``trials`` executions, one
    per trial, none overlapping another copy of itself, and the later trials learn from the earlier."""
    cfg = toy.write_sweep(_sweep(trials=8, parallel=2))
    proc = toy.popen("run", "--config", str(cfg), "--sweep-id", "k", env={"TOY_SLEEP": "0.6"})
    wait_for(lambda: sum(1 for r in _runs(toy) if r[1] == "end") >= 3, timeout=120, what="three trials to end")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    asked_before = TrialLog(toy.outputs / "k").asked()
    assert 3 <= len(asked_before) < 8
    done = toy.hsm("complete", "k", env={"TOY_SLEEP": "0.6"})
    assert done.returncode == 0, done.stdout + done.stderr
    _assert_each_ran_once(toy, 8)
    asks = TrialLog(toy.outputs / "k").asked()
    assert sorted(asks) == list(range(1, 9))
    for n, ask in asked_before.items():  # an ask made before the kill kept its parameters
        assert asks[n]["params"] == ask["params"]
    assert max(a["completed_before"] for a in asks.values()) >= 5  # later asks were told the results
    info = json.loads(toy.hsm("status", "k", "--json", check=True).stdout)
    assert info["counts"]["completed"] == 8 and info["best"] is not None


def test_two_processes_asking_at_once_never_get_the_same_trial(tmp_path: Path) -> None:
    """The log's claim: 16 threads record trial 5 at once, and all read back the one first ask."""
    log = TrialLog(tmp_path)
    results: list[dict[str, Any]] = []
    barrier = threading.Barrier(16)

    def ask(i: int) -> None:
        barrier.wait()
        results.append(log.record_ask(5, {"trial": 5, "params": {"who": i}}))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({json.dumps(r, sort_keys=True) for r in results}) == 1
    assert [p.name for p in (tmp_path / "search" / "asks").iterdir()] == ["000005.json"]  # no temp file left


@pytest.mark.parametrize("section, message", [
    ({"grid": {"lr": [1, 2]}, **_sweep()}, "cannot be combined with grid"),
    (_sweep(strategy="nosuch"), "nosuch"),
    (_sweep(trials=0), "trials must be a whole number"),
    (_sweep(metric={"name": "loss", "goal": "up"}), "goal must be minimize or maximize"),
    (_sweep(samples=3), "unknown key 'samples'"),
])
def test_bad_search_sections_are_one_line_errors(toy: Project, section: dict[str, Any], message: str) -> None:
    proc = toy.hsm("run", "--config", str(toy.write_sweep(section)))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not toy.sweep_ids()  # a refused run writes nothing


def test_search_with_another_section_is_refused_at_its_line_by_the_dry_run_too(toy: Project) -> None:
    """The dry run makes every check of the run: it refused nothing here (or, for a Hydra app,
    blamed a made-up parameter 'search.trial'), and the run's error named neither file nor line."""
    sweep = toy.write_sweep("search:\n  strategy: random\n  trials: 2\n  metric: {name: loss, goal: minimize}\n"
                            "  params:\n    x: {uniform: [0, 1]}\ngrid:\n  lr: [1, 2]\n")
    for extra in (["--dry-run"], []):
        proc = toy.hsm("run", "--config", str(sweep), *extra)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert proc.stderr.strip().splitlines() == [
            "Error: sweeps/sweep.yaml:7: grid: a search: section cannot be combined with grid: (its trials are "
            "chosen one by one) (put every parameter under search: params:)"], proc.stderr
    assert not toy.sweep_ids()


def test_the_built_in_random_strategy_follows_the_contract() -> None:
    from hsm_core.builtin.search import RandomStrategy, parse_settings

    settings = parse_settings(_sweep()["search"])
    assert isinstance(settings, SearchSettings)
    strategy: SearchStrategy = RandomStrategy(settings)
    strategy.tell(Trial(1, {"x": 0.0, "y": 0.0}, "completed", 10.0))
    first, again = strategy.ask(2), RandomStrategy(settings).ask(2)
    assert first == again and set(first) == {"x", "y"} and -10 <= first["x"] <= 10
    with pytest.raises(ConfigError):
        parse_settings({**_sweep()["search"], "params": {"c": {"choice": [1, 2], "weights": [1, 3]}}})


def test_two_workers_share_one_adaptive_sweep_without_running_a_trial_twice(toy: Project) -> None:
    """Two ``hsm worker`` processes pull trials of one search sweep at once: every trial is asked
    once, claimed once and run once; together they run exactly ``trials``."""
    cfg = toy.write_sweep({**_sweep(trials=8, parallel=None), "name": "shared"})
    env = {"TOY_SLEEP": "0.3", "HSM_WORKER_HEARTBEAT": "0.3", "HSM_WORKER_STALE_TIMEOUT": "5"}
    workers = [toy.popen("worker", "--sweep", str(cfg), env=env) for _ in range(2)]
    outputs = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    _assert_each_ran_once(toy, 8)
    asks = TrialLog(toy.outputs / "shared").asked()
    assert sorted(asks) == list(range(1, 9))
    assert len({a["by"] for a in asks.values()}) == 2  # both workers asked for trials
    info = json.loads(toy.hsm("status", "shared", "--json", check=True).stdout)
    assert info["best"] is not None and info["best"]["metric"] == "loss"
    exported = toy.hsm("export", "shared", check=True).stdout.splitlines()
    assert exported[0].startswith("task,id,x,y,") and len(exported) == 9  # the asked values, not placeholders


class _Recorder(SearchStrategy):
    """A third-party strategy: proposes x = the best x so far + 1, and records what it was told."""

    told: list[list[Trial]] = []

    def __init__(self, settings: SearchSettings) -> None:
        super().__init__(settings)
        self.seen: list[Trial] = []
        _Recorder.told.append(self.seen)

    def tell(self, trial: Trial) -> None:
        self.seen.append(trial)

    def ask(self, number: int) -> dict[str, Any]:
        done = [t for t in self.seen if t.state == "completed"]
        best = min(done, key=lambda t: t.value).params["x"] if done else 0.0
        return {"x": best + 1, "y": 0.0}


class _RecorderPlugin:
    from hsm_core.plugin import SearchStrategyRecord, hookimpl

    @hookimpl
    def hsm_register_search_strategies(self) -> list[Any]:
        return [self.SearchStrategyRecord("recorder", "records what it is told", _Recorder)]


def test_a_plugin_strategy_is_told_every_earlier_trial_before_each_ask(tmp_path: Path) -> None:
    """Through hsm_register_search_strategies: each ask gets a new instance told every trial so
    far (completed with its value from metrics.json, running), in trial order."""
    from hsm_core.adaptive import AdaptiveSearch, section_settings
    from hsm_core.state import SweepDir, TaskRecord
    from hsm_core.taskdir import write_status
    from hsm_core.testing import fresh_registry

    registry = fresh_registry(extra=[("recorder", _RecorderPlugin())])
    settings = section_settings({"search": _sweep(strategy="recorder")["search"]}, registry)
    assert settings is not None
    sweep = SweepDir(tmp_path / "sweep")
    search = AdaptiveSearch(sweep, settings, registry)
    _Recorder.told.clear()
    first = TaskRecord(1, "t1", {"search.trial": 1})
    assert search.params_for(first) == {"x": 1.0, "y": 0.0}
    d = sweep.task_dir(1)
    d.mkdir(parents=True)
    write_status(d, {"state": "completed"})
    (d / "metrics.json").write_text(json.dumps({"loss": 4.0}))
    second, third = TaskRecord(2, "t2", {"search.trial": 2}), TaskRecord(3, "t3", {"search.trial": 3})
    assert search.params_for(second) == {"x": 2.0, "y": 0.0}  # learned from trial 1
    search.params_for(third)
    assert [(t.number, t.state, t.value) for t in _Recorder.told[1]] == [(1, "completed", 4.0)]
    assert [(t.number, t.state) for t in _Recorder.told[2]] == [(1, "completed"), (2, "running")]
    # asked once: asking trial 2 again (a restarted controller) gives its recorded parameters
    again = TaskRecord(2, "t2", {"search.trial": 2})
    assert search.params_for(again) == {"x": 2.0, "y": 0.0} and len(_Recorder.told) == 3


def test_a_wandb_bayes_file_without_the_optuna_plugin_names_the_package_to_install(toy: Project) -> None:
    cfg = toy.root / "sweeps" / "wandb.yaml"
    cfg.parent.mkdir(exist_ok=True)
    cfg.write_text("program: train.py\nmethod: bayes\nrun_cap: 3\nmetric: {name: loss}\n"
                   "parameters:\n  x: {min: 0.0, max: 1.0}\n  y: {min: 0.0, max: 1.0}\n")
    proc = toy.hsm("run", "--config", str(cfg), env={"HSM_DISABLE_PLUGINS": "all"})
    assert proc.returncode == 2 and "unknown search strategy 'tpe'" in proc.stderr and "hsm-plugin-optuna" in proc.stderr
    assert not toy.sweep_ids() and not _runs(toy)


def test_a_worker_killed_mid_study_loses_no_trial_and_runs_none_twice(toy: Project) -> None:
    """SIGKILL one of two workers while trials run; a third worker joins: the study ends with every
    trial run exactly once (a killed worker's running trial is waited for, not started again), and
    each trial keeps the parameters it was first asked with."""
    cfg = toy.write_sweep({**_sweep(trials=8, parallel=None), "name": "killed"})
    env = {"TOY_SLEEP": "0.8", "HSM_WORKER_HEARTBEAT": "0.3", "HSM_WORKER_STALE_TIMEOUT": "3"}
    first, second = (toy.popen("worker", "--sweep", str(cfg), env=env) for _ in range(2))
    wait_for(lambda: sum(1 for r in _runs(toy) if r[1] == "end") >= 2, timeout=120, what="two trials to end")
    first.send_signal(signal.SIGKILL)
    first.wait()
    asked_before = TrialLog(toy.outputs / "killed").asked()
    third = toy.popen("worker", "--sweep", str(cfg), env=env)
    for w in (second, third):
        out, err = w.communicate(timeout=300)
        assert w.returncode == 0, err
    _assert_each_ran_once(toy, 8)
    asks = TrialLog(toy.outputs / "killed").asked()
    assert sorted(asks) == list(range(1, 9))
    assert all(asks[n]["params"] == a["params"] for n, a in asked_before.items())
    runs = _runs(toy)  # no two copies of one trial overlap (there is one copy of each)
    spans = {t: [w for tt, word, w, _ in runs if tt == t] for t, *_ in runs}
    assert all(len(v) == 2 for v in spans.values())


def test_trials_without_the_metric_are_said_in_the_sweep_log_and_have_no_best(toy: Project) -> None:
    cfg = toy.write_sweep(_sweep(trials=3, parallel=1, metric={"name": "accuracy", "goal": "maximize"}))
    toy.hsm("run", "--config", str(cfg), check=True)
    _assert_each_ran_once(toy, 3)
    log = (toy.only_sweep() / "logs" / "sweep.log").read_text()
    assert "completed without a number for metric 'accuracy'" in log
    assert json.loads(toy.hsm("status", "--json", check=True).stdout)["best"] is None
