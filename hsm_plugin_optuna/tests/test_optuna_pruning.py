"""Early stopping through the real ``hsm`` with Optuna's pruners: bad trials that report poor
intermediate values are stopped (SIGTERM, their handler runs) and recorded ``pruned``; good ones
complete; a controller killed mid-study and ``hsm complete`` run no pruned trial again.

Executions are counted from the objective's own log (``runs.log``: one line per start, step, stop).
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from hsm_core.plugin import PrunerSettings
from hsm_core.testing.project import Project, make_project, wait_for
from hsm_core.testing.pruners import check_pruner_contract

#: A training script: reports loss = q / (step + 1) at every step, as METRIC lines (or, with
#: TOY_JSONL, in intermediate.jsonl), traps SIGTERM to "checkpoint" and exits 0, as real ones do.
OBJECTIVE = r'''
import json, os, signal, sys, time
args = {k.lstrip("-"): v for k, v in (a.split("=", 1) for a in sys.argv[1:] if "=" in a)}
q = float(args["q"])
task = os.environ["HSM_TASK_ID"]
def say(*words):
    with open(os.path.join(os.environ["HSM_COUNT_DIR"], "runs.log"), "a") as fh:
        fh.write(" ".join([task, *map(str, words)]) + "\n")
step = -1
def on_term(signum, frame):
    say("sigterm", step)  # a real script saves its checkpoint here
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
say("start", q)
steps = int(os.environ.get("TOY_STEPS", "10"))
for step in range(steps):
    loss = q / (step + 1)
    if os.environ.get("TOY_JSONL"):
        with open(os.path.join(os.environ["HSM_TASK_DIR"], "intermediate.jsonl"), "a") as fh:
            fh.write(json.dumps({"step": step, "loss": loss}) + "\n")
    else:
        print(f"METRIC loss={loss} step={step}", flush=True)
    say("step", step)
    time.sleep(float(os.environ.get("TOY_SLEEP", "0.3")))
with open(os.path.join(os.environ["HSM_TASK_DIR"], "metrics.json"), "w") as fh:
    json.dump({"loss": q / steps}, fh)
say("end")
'''

GOOD = (1.0, 1.1, 0.9, 0.8)
BAD = (9.0, 9.5, 9.8)
MEDIAN = {"pruner": "median", "metric": "loss", "options": {"n_startup_trials": 2, "n_warmup_steps": 1}}


def _log(project: Project) -> list[list[str]]:
    path = project.root / "runs.log"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def _by_q(project: Project) -> dict[float, dict[str, Any]]:
    """Per value of q: how many starts, the steps run, whether it ended or got SIGTERM."""
    runs: dict[str, dict[str, Any]] = {}
    for task, word, *rest in _log(project):
        r = runs.setdefault(task, {"starts": 0, "steps": [], "end": False, "sigterm": False})
        if word == "start":
            r["starts"] += 1
            r["q"] = float(rest[0])
        elif word == "step":
            r["steps"].append(int(rest[0]))
        elif word == "end":
            r["end"] = True
        elif word == "sigterm":
            r["sigterm"] = True
    return {r["q"]: r for r in runs.values()}


def _states(project: Project, sweep: Path) -> dict[float, str]:
    """q -> the state of its task."""
    statuses = project.statuses(sweep)
    return {float(yaml.safe_load((d / "params.yaml").read_text())["params"]["q"]): statuses[d.name].get("state")
            for d in sorted((sweep / "tasks").iterdir())}


@pytest.fixture
def toy(tmp_path: Path) -> Project:
    return make_project(tmp_path / "proj", script=OBJECTIVE)


@pytest.mark.parametrize("report", ["stdout", "jsonl"])
def test_bad_trials_are_pruned_early_and_good_ones_complete(toy: Project, report: str) -> None:
    cfg = toy.write_sweep({"grid": {"q": [GOOD[0], GOOD[1], GOOD[2], BAD[0], BAD[1], GOOD[3], BAD[2]]},
                           "prune": MEDIAN})
    env = {"TOY_STEPS": "14", **({"TOY_JSONL": "1"} if report == "jsonl" else {})}
    toy.hsm("run", "--config", str(cfg), "--sweep-id", "p", check=True, timeout=300, env=env)
    runs = _by_q(toy)
    assert sorted(runs) == sorted(GOOD + BAD)
    for q in GOOD:  # ran to the end, once
        assert runs[q]["starts"] == 1 and runs[q]["end"] and runs[q]["steps"] == list(range(14)), (q, runs[q])
    for q in BAD:  # stopped early, cleanly (its SIGTERM handler ran), once
        r = runs[q]
        assert r["starts"] == 1 and not r["end"] and r["sigterm"], (q, r)
        assert max(r["steps"]) < 12, (q, r)
    sweep = toy.outputs / "p"
    states = _states(toy, sweep)
    assert {q: states[q] for q in BAD} == dict.fromkeys(BAD, "pruned")  # although each exited 0 on SIGTERM
    assert {q: states[q] for q in GOOD} == dict.fromkeys(GOOD, "completed")
    for d in (sweep / "tasks").iterdir():  # the decision and the step it was taken at, in the task dir
        q = float(yaml.safe_load((d / "params.yaml").read_text())["params"]["q"])
        record = json.loads((d / "pruning.json").read_text()) if (d / "pruning.json").exists() else {}
        assert record.get("pruned", False) == (q in BAD)
        if q in BAD:
            assert record["step"] in runs[q]["steps"] and "median" in record["reason"]
    # Shown where users look, and never run again, not even with --retry-failed.
    info = json.loads(toy.hsm("status", "p", "--json", check=True).stdout)
    assert info["counts"].get("pruned") == 3 and info["counts"].get("completed") == 4
    assert "Pruned" in toy.hsm("status", "p", check=True).stdout
    exported = toy.hsm("export", "p", "--format", "csv", check=True).stdout
    assert exported.count(",pruned,") == 3, exported
    toy.hsm("report", "p", check=True)
    html = (sweep / "reports" / "completion_report.html").read_text()
    assert '<div class="n ">3</div><div class="l">Pruned</div>' in html and "pruned 3" in html
    for extra in ([], ["--retry-failed"]):
        again = toy.hsm("complete", "p", *extra, timeout=120)
        assert again.returncode == 0, again.stdout + again.stderr
    assert sum(r["starts"] for r in _by_q(toy).values()) == 7
    meta = (sweep / "sweep_metadata.yaml").read_text()
    assert "status: completed" in meta  # pruned trials are done: the sweep is complete


def test_a_killed_controller_then_complete_runs_no_pruned_trial_again(toy: Project) -> None:
    """SIGKILL ``hsm run`` while a bad trial runs; ``hsm complete`` adopts it and prunes it, runs the
    rest: every trial started exactly once, every bad one pruned."""
    # No verdict before step 4 (1.4 s after a start): the controller is killed before it judges the
    # first bad trial, so the next one adopts that trial running and prunes it.
    late = {**MEDIAN, "options": {"n_startup_trials": 2, "n_warmup_steps": 4}}
    cfg = toy.write_sweep({"grid": {"q": [GOOD[0], GOOD[1], BAD[0], GOOD[2], BAD[1]]}, "prune": late})
    env = {"TOY_STEPS": "16", "TOY_SLEEP": "0.35"}
    proc = toy.popen("run", "--config", str(cfg), "--sweep-id", "k", env=env)
    wait_for(lambda: BAD[0] in _by_q(toy), timeout=120, what="the first bad trial to start")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = toy.hsm("complete", "k", env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = _by_q(toy)
    assert sorted(runs) == sorted((*GOOD[:3], *BAD[:2]))
    assert all(r["starts"] == 1 for r in runs.values()), runs
    states = _states(toy, toy.outputs / "k")
    for q in BAD[:2]:
        assert states[q] == "pruned" and runs[q]["sigterm"] and max(runs[q]["steps"]) < 15, (q, runs[q])
        assert not runs[q]["end"]
    for q in GOOD[:3]:
        assert states[q] == "completed" and runs[q]["end"]
    log = (toy.outputs / "k" / "logs" / "sweep.log").read_text()
    assert log.index("complete: ") < log.index("prune: stopping task 3 ")  # the adopted trial
    for extra in ([], ["--retry-failed"]):
        assert toy.hsm("complete", "k", *extra, env=env, timeout=120).returncode == 0
    assert sum(r["starts"] for r in _by_q(toy).values()) == 5


def test_a_worker_prunes_the_task_it_runs(toy: Project) -> None:
    cfg = toy.write_sweep({"name": "w", "grid": {"q": [GOOD[0], GOOD[1], BAD[0], GOOD[2]]}, "prune": MEDIAN})
    proc = toy.hsm("worker", "--sweep", str(cfg), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = _by_q(toy)
    assert all(r["starts"] == 1 for r in runs.values()) and len(runs) == 4
    assert runs[BAD[0]]["sigterm"] and not runs[BAD[0]]["end"]
    assert all(runs[q]["end"] for q in GOOD[:3])
    again = toy.hsm("worker", "--sweep", str(cfg), timeout=120)
    assert again.returncode == 0 and len(_log(toy)) == sum(1 for _ in _log(toy))
    assert sum(r["starts"] for r in _by_q(toy).values()) == 4


@pytest.mark.parametrize("name, options", [
    ("median", {"n_startup_trials": 2, "n_warmup_steps": 1}),
    ("asha", {"min_resource": 1, "reduction_factor": 2}),
    ("hyperband", {"min_resource": 1, "max_resource": 9, "reduction_factor": 3}),
    ("percentile", {"percentile": 25.0, "n_startup_trials": 2}),
])
def test_optunas_pruners_follow_the_contract(name: str, options: dict[str, Any]) -> None:
    from hsm_plugin_optuna.plugin import _pruner_factory

    check_pruner_contract(_pruner_factory(name), PrunerSettings(name, "loss", "minimize", "sweep_x", options))


def test_a_bad_pruner_option_is_a_one_line_error_before_anything_runs(toy: Project) -> None:
    cfg = toy.write_sweep({"grid": {"q": [1.0]}, "prune": {"pruner": "median", "metric": "loss",
                                                          "options": {"n_warmup": 3}}})
    proc = toy.hsm("run", "--config", str(cfg))
    assert proc.returncode == 2 and "n_warmup" in proc.stderr and "Traceback" not in proc.stderr
    assert not toy.sweep_ids() and not _log(toy)


def test_a_wandb_sweep_file_with_hyperband_early_terminate_prunes_the_bad_runs(toy: Project) -> None:
    """wandb's ``early_terminate: {type: hyperband, min_iter, eta}``, as wandb's docs write it, runs
    unchanged: a run that is not in the best 1/eta at a bracket is stopped and recorded pruned."""
    (toy.root / "sweeps").mkdir(exist_ok=True)
    cfg = toy.root / "sweeps" / "wandb.yaml"
    cfg.write_text("program: train.py\nmethod: grid\nmetric:\n  name: loss\n  goal: minimize\n"
                   "parameters:\n  q:\n    values: [1.0, 0.9, 9.0, 0.8, 9.5]\n"
                   "early_terminate:\n  type: hyperband\n  min_iter: 1\n  eta: 2\n")
    dry = toy.hsm("run", "--config", str(cfg), "--dry-run", check=True).stdout
    assert "Early stopping: asha on loss (minimize)" in dry
    toy.hsm("run", "--config", str(cfg), "--sweep-id", "wb", check=True, timeout=300)
    runs = _by_q(toy)
    states = _states(toy, toy.outputs / "wb")
    assert all(r["starts"] == 1 for r in runs.values()) and len(runs) == 5
    for q in (9.0, 9.5):
        assert states[q] == "pruned" and runs[q]["sigterm"] and not runs[q]["end"], (q, runs[q])
    for q in (1.0, 0.9, 0.8):  # each the best so far at every bracket
        assert states[q] == "completed" and runs[q]["end"], (q, runs[q])
    assert "asha" in json.loads(next((toy.outputs / "wb" / "tasks").glob("*/pruning.json")).read_text())["pruner"]


SEARCH_OBJECTIVE = r'''
import json, os, signal, sys, time
args = {k.lstrip("-"): v for k, v in (a.split("=", 1) for a in sys.argv[1:] if "=" in a)}
x = float(args["x"])
task = os.environ["HSM_TASK_ID"]
def say(*words):
    with open(os.path.join(os.environ["HSM_COUNT_DIR"], "runs.log"), "a") as fh:
        fh.write(" ".join([task, *map(str, words)]) + "\n")
signal.signal(signal.SIGTERM, lambda *_: (say("sigterm", 0), sys.exit(0)))
say("start", x)
for step in range(8):
    loss = ((x - 3) ** 2 + 1) * (1 + 1 / (step + 1))
    print(f"METRIC loss={loss} step={step}", flush=True)
    say("step", step)
    time.sleep(0.25)
with open(os.path.join(os.environ["HSM_TASK_DIR"], "metrics.json"), "w") as fh:
    json.dump({"loss": loss}, fh)
say("end")
'''


def test_tpe_with_a_median_pruner_prunes_bad_trials_and_learns_from_them(tmp_path: Path) -> None:
    """search: + prune: together (Optuna's usual pair): every trial runs once, the poor ones are
    pruned early, the best trial is a completed one, and later asks were told the pruned trials."""
    toy = make_project(tmp_path / "proj", script=SEARCH_OBJECTIVE)
    cfg = toy.write_sweep({"search": {"strategy": "tpe", "metric": {"name": "loss", "goal": "minimize"}, "trials": 12,
                                      "parallel": 2, "seed": 1, "options": {"n_startup_trials": 4},
                                      "params": {"x": "interval(-10, 10)"}},
                           "prune": {"pruner": "median", "options": {"n_startup_trials": 3, "n_warmup_steps": 1}}})
    toy.hsm("run", "--config", str(cfg), "--sweep-id", "s", check=True, timeout=300)
    runs = _by_q(toy)  # (keyed by x here)
    assert len(runs) == 12 and all(r["starts"] == 1 for r in runs.values())
    states = {s["index"]: s["state"] for s in toy.statuses(toy.outputs / "s").values()}
    pruned = [i for i, s in states.items() if s == "pruned"]
    assert pruned and set(states.values()) == {"completed", "pruned"}, states
    for r in runs.values():
        assert r["end"] != r["sigterm"]  # either ran to its end or was stopped, never both
    info = json.loads(toy.hsm("status", "s", "--json", check=True).stdout)
    assert info["counts"]["pruned"] == len(pruned) and states[info["best"]["trial"]] == "completed"
    # the sweep's trial log: what each ask knew (docs/configuration.md, adaptive search)
    asks = {int(p.stem): json.loads(p.read_text()) for p in (toy.outputs / "s" / "search" / "asks").glob("*.json")}
    first_pruned = min(pruned)
    # a trial asked after the first pruning knew of it (told as pruned, not as running)
    assert any(a["running_before"] < n - 1 - a["completed_before"] for n, a in asks.items() if n > first_pruned + 2)


def test_a_decision_the_killed_controller_wrote_is_carried_out_by_the_next(toy: Project) -> None:
    """The decision is on disk before the stop: a controller killed between the two leaves a trial
    that ``hsm complete`` stops at once (it does not judge it again) and records pruned."""
    never = {"pruner": "median", "metric": "loss", "options": {"n_startup_trials": 100}}
    cfg = toy.write_sweep({"grid": {"q": [1.0]}, "prune": never})
    env = {"TOY_STEPS": "300", "TOY_SLEEP": "0.1"}  # 30 s if nobody stops it
    proc = toy.popen("run", "--config", str(cfg), "--sweep-id", "d", env=env)
    wait_for(lambda: len(_by_q(toy).get(1.0, {}).get("steps", [])) >= 3, timeout=60, what="three steps")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    task_dir = toy.outputs / "d" / "tasks" / "task_001"
    (task_dir / "pruning.json").write_text(json.dumps({"pruned": True, "step": 2, "reason": "decided, then the crash",
                                                        "judged_epoch": time.time()}))
    started = time.monotonic()
    done = toy.hsm("complete", "d", env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert time.monotonic() - started < 20
    run = _by_q(toy)[1.0]
    assert run["starts"] == 1 and run["sigterm"] and not run["end"] and len(run["steps"]) < 250
    status = yaml.safe_load((task_dir / "status.yaml").read_text())
    assert status["state"] == "pruned" and "decided, then the crash" in status["message"]


FIDELITY_QS = (1.0, 0.9, 9.0, 1.3, 0.8, 9.5, 0.7, 2.0)


@pytest.mark.parametrize("name, cls, options", [
    ("median", "MedianPruner", {"n_startup_trials": 2, "n_warmup_steps": 1}),
    ("asha", "SuccessiveHalvingPruner", {"min_resource": 1, "reduction_factor": 2}),
    ("hyperband", "HyperbandPruner", {"min_resource": 1, "max_resource": 14, "reduction_factor": 2}),
])
def test_hsm_prunes_the_trials_optuna_alone_prunes(toy: Project, name: str, cls: str, options: dict[str, Any]) -> None:
    """One trial at a time, the same objective: the trials hsm prunes (judging from the reports of
    separate processes, with a new pruner for every decision) are the ones an Optuna study with the
    same pruner prunes in-process, trial.report() and trial.should_prune() at every step."""
    import optuna
    from optuna.trial import TrialState, create_trial

    steps = 14
    cfg = toy.write_sweep({"grid": {"q": list(FIDELITY_QS)}, "prune": {"pruner": name, "metric": "loss", "options": options}})
    toy.hsm("run", "--config", str(cfg), "--sweep-id", "fid", "--sources", "local:1", check=True, timeout=400,
            env={"TOY_STEPS": str(steps), "TOY_SLEEP": "0.25"})
    states = _states(toy, toy.outputs / "fid")
    by_hsm = {q for q, s in states.items() if s == "pruned"}

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="fid", direction="minimize", pruner=getattr(optuna.pruners, cls)(**options))
    offset = 0
    if name == "hyperband":  # hsm numbers trials by task index, from 1 (0 holds no trial)
        study.add_trial(create_trial(state=TrialState.FAIL))
        offset = 1

    def objective(trial: optuna.trial.Trial) -> float:
        q = FIDELITY_QS[trial.number - offset]
        for step in range(steps):
            trial.report(q / (step + 1), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return q / steps

    study.optimize(objective, n_trials=len(FIDELITY_QS))
    alone = {FIDELITY_QS[t.number - offset] for t in study.trials if t.state == TrialState.PRUNED}
    assert alone, "the example should prune something"
    assert by_hsm == alone
    runs = _by_q(toy)
    assert all(r["starts"] == 1 for r in runs.values()) and len(runs) == len(FIDELITY_QS)
