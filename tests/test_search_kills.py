"""Kill tests of an adaptive sweep with real Optuna (TPE): controllers and workers SIGKILLed
mid-study, the study continues to its budget, no trial lost, none run twice.

Executions are counted from the objective's own log (a ``start`` and an ``end`` line per
execution, with the time), never from hsm's records.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hsm_core.adaptive import TrialLog
from hsm_core.testing.project import Project, make_project, wait_for

pytest.importorskip("hsm_plugin_optuna", reason="the kill tests run Optuna's TPE (pip install ./hsm_plugin_optuna)")

OBJECTIVE = r'''
import json, os, sys, time
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
log = os.path.join(os.environ["HSM_COUNT_DIR"], "runs.log")
def note(word):
    with open(log, "a") as fh:
        fh.write(f"{os.environ['HSM_TASK_ID']} {word} {time.time():.6f} {json.dumps(args, sort_keys=True)}\n")
note("start")
time.sleep(float(os.environ.get("TOY_SLEEP", "0")))
# TOY_GATE: once one trial ended, the others wait while this file exists (the sweep is surely
# still running while the test does something next to it, however slow the machine).
gate = os.environ.get("TOY_GATE")
while gate and os.path.exists(gate) and " end " in open(log).read():
    time.sleep(0.05)
x, y = float(args["x"]), float(args["y"])
with open(os.path.join(os.environ["HSM_TASK_DIR"], "metrics.json"), "w") as fh:
    json.dump({"loss": (x - 3) ** 2 + (y + 1) ** 2}, fh)
note("end")
'''


def _sweep(trials: int, parallel: int | None, name: str | None = None) -> dict[str, Any]:
    section: dict[str, Any] = {"strategy": "tpe", "trials": trials, "seed": 0, "options": {"n_startup_trials": 4},
                               "params": {"x": "interval(-10, 10)", "y": "interval(-10, 10)"}}
    if parallel is not None:
        section["parallel"] = parallel
    return {"metric": {"name": "loss", "goal": "minimize"}, "search": section, **({"name": name} if name else {})}


def _runs(project: Project) -> list[tuple[str, str, float, dict[str, str]]]:
    path = project.root / "runs.log"
    out = []
    for line in (path.read_text().splitlines() if path.exists() else []):
        task, word, when, args = line.split(" ", 3)
        out.append((task, word, float(when), json.loads(args)))
    return out


def _ends(project: Project) -> int:
    return sum(1 for r in _runs(project) if r[1] == "end")


def _assert_study_complete(project: Project, sweep: Path, trials: int, asked_before: dict[int, Any]) -> None:
    """Every trial asked once (kept its first parameters), started once, ended once; the study
    reached its budget and later asks were told earlier results."""
    runs = _runs(project)
    starts = [r for r in runs if r[1] == "start"]
    ends = [r for r in runs if r[1] == "end"]
    assert len(starts) == trials and len({r[0] for r in starts}) == trials, [r[0] for r in starts]
    assert sorted(r[0] for r in ends) == sorted(r[0] for r in starts)
    assert len({json.dumps(r[3], sort_keys=True) for r in starts}) == trials
    asks = TrialLog(sweep).asked()
    assert sorted(asks) == list(range(1, trials + 1))
    for n, ask in asked_before.items():
        assert asks[n]["params"] == ask["params"]
    by_task = {a["task_id"]: a["params"] for a in asks.values()}
    for task, _, _, args in starts:  # each execution ran with the parameters its trial was asked
        assert {k: float(v) for k, v in args.items()} == pytest.approx(by_task[task])
    assert max(a["completed_before"] for a in asks.values()) >= trials // 2


@pytest.fixture
def toy(tmp_path: Path) -> Project:
    return make_project(tmp_path / "proj", script=OBJECTIVE)


def test_a_controller_killed_twice_mid_study_completes_to_its_budget(toy: Project) -> None:
    cfg = toy.write_sweep(_sweep(10, 2))
    env = {"TOY_SLEEP": "0.5"}
    first = toy.popen("run", "--config", str(cfg), "--sweep-id", "k", env=env)
    wait_for(lambda: _ends(toy) >= 2, timeout=180, what="two trials to end")
    first.send_signal(signal.SIGKILL)
    first.wait()
    second = toy.popen("complete", "k", env=env)
    ends = _ends(toy)
    wait_for(lambda: _ends(toy) >= ends + 2, timeout=180, what="two more trials to end")
    second.send_signal(signal.SIGKILL)
    second.wait()
    asked_before = TrialLog(toy.outputs / "k").asked()
    assert len(asked_before) < 10
    done = toy.hsm("complete", "k", env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    _assert_study_complete(toy, toy.outputs / "k", 10, asked_before)
    info = json.loads(toy.hsm("status", "k", "--json", check=True).stdout)
    assert info["counts"]["completed"] == 10 and info["best_runs"][0]["value"] == info["best"]["value"]


def test_a_turn_left_by_a_controller_killed_while_asking_does_not_stop_the_study(toy: Project) -> None:
    """A process SIGKILLed while it held the ask turn (the lock file stays): the next ask takes it
    over at once (its holder is provably dead on this machine), not after the stale timeout."""
    cfg = toy.write_sweep(_sweep(4, 1))
    run = toy.popen("run", "--config", str(cfg), "--sweep-id", "t", env={"TOY_SLEEP": "0.3"})
    wait_for(lambda: _ends(toy) >= 1, timeout=180, what="a trial to end")
    run.send_signal(signal.SIGKILL)
    run.wait()
    search = toy.outputs / "t" / "search"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom hsm_core.search_turn import ask_turn\n"
        f"with ask_turn({str(search)!r}):\n    print('held', flush=True)\n    time.sleep(600)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (search / ".locks" / "ask.lock").exists()
    started = time.monotonic()
    done = toy.hsm("complete", "t", timeout=300)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 60  # not the 120 s a lock of another machine would wait
    _assert_study_complete(toy, toy.outputs / "t", 4, {})


def test_workers_killed_mid_study_lose_no_trial_and_a_new_worker_finishes_it(toy: Project) -> None:
    """Two ``hsm worker`` processes on one TPE study, both SIGKILLed while trials run; a new worker
    finishes the study: every trial run exactly once, with the parameters first asked for it."""
    cfg = toy.write_sweep(_sweep(8, None, name="shared"))
    env = {"TOY_SLEEP": "0.6", "HSM_WORKER_HEARTBEAT": "0.3", "HSM_WORKER_STALE_TIMEOUT": "3"}
    workers = [toy.popen("worker", "--sweep", str(cfg), env=env) for _ in range(2)]
    wait_for(lambda: _ends(toy) >= 2, timeout=180, what="two trials to end")
    for w in workers:
        w.send_signal(signal.SIGKILL)
    for w in workers:
        w.wait()
    sweep = toy.outputs / "shared"
    asked_before = TrialLog(sweep).asked()
    assert len(asked_before) < 8
    last = toy.popen("worker", "--sweep", str(cfg), env=env)
    out, err = last.communicate(timeout=600)
    assert last.returncode == 0, err
    # a trial the killed workers left running ended on its own; wait for its end line
    wait_for(lambda: _ends(toy) >= 8, timeout=60, what="every trial to end")
    _assert_study_complete(toy, sweep, 8, asked_before)
    assert len({a["by"] for a in TrialLog(sweep).asked().values()}) >= 2  # asks from the killed and the new


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_two_controllers_of_one_study_never_run_a_trial_twice(toy: Project) -> None:
    """``hsm complete`` while another controller runs the sweep is refused (the lease), and the
    study still ends with each trial run once."""
    cfg = toy.write_sweep(_sweep(6, 2))
    gate = toy.root / "hold-trials"
    gate.touch()
    first = toy.popen("run", "--config", str(cfg), "--sweep-id", "two", env={"TOY_SLEEP": "0.4", "TOY_GATE": str(gate)})
    wait_for(lambda: _ends(toy) >= 1, timeout=180, what="a trial to end")
    rival = toy.hsm("complete", "two", timeout=120)
    gate.unlink()
    assert rival.returncode != 0 and "Traceback" not in rival.stderr
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    _assert_study_complete(toy, toy.outputs / "two", 6, {})
