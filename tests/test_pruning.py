"""Early stopping in core, without Optuna: intermediate reports, a third-party pruner through
``hsm_register_pruners`` stopping real processes (a script that ignores SIGTERM is killed after
the grace), the ``pruned`` state recorded whoever sees the end, and bad ``prune:`` settings.

(Optuna's pruners, the kill-and-complete test and ``hsm worker``: hsm_plugin_optuna/tests/test_optuna_pruning.py.)
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

import pytest
import yaml

from hsm_core.intermediate import ReportReader, parse_json_line, parse_stdout_line
from hsm_core.plugin import PruneDecision, Pruner, PrunerRecord, PrunerSettings, TrialProgress, hookimpl
from hsm_core.state import reconcile_status
from hsm_core.taskdir import EXIT_MARKER, read_status, write_status
from hsm_core.testing import fresh_registry
from hsm_core.testing.inprocess import run_sweep
from hsm_core.testing.project import Project, make_project
from hsm_core.testing.pruners import check_pruner_contract

# -- reports ------------------------------------------------------------------------------------


def test_metric_lines_with_a_step_are_intermediate_reports() -> None:
    assert parse_stdout_line("METRIC loss=0.41 step=3") == (3, {"loss": 0.41})
    assert parse_stdout_line("epoch 2 | METRIC loss=1e-3 acc=0.9 step=12") == (12, {"loss": 0.001, "acc": 0.9})
    nan = parse_stdout_line("METRIC loss=nan step=1")
    assert nan is not None and nan[1]["loss"] != nan[1]["loss"]  # a diverged run's NaN is kept
    assert parse_stdout_line("METRIC loss=0.41") is None  # no step: a final metric, for the collectors
    assert parse_stdout_line("METRIC loss=0.41 step=1.5") is None
    assert parse_stdout_line("loss=0.41 step=3") is None
    assert parse_json_line('{"step": 3, "loss": 0.41, "note": "x"}') == (3, {"loss": 0.41})
    assert parse_json_line('{"loss": 0.41}') is None and parse_json_line("not json") is None


def test_the_reader_reads_what_was_appended_and_a_line_once_it_is_whole(tmp_path: Path) -> None:
    reader = ReportReader()
    out = tmp_path / "stdout.log"
    out.write_text("training...\nMETRIC loss=1.0 step=0\nMETRIC loss=0.5 st")
    assert reader.values(tmp_path, "loss") == {0: 1.0}
    with out.open("a") as fh:
        fh.write("ep=1\n")
    assert reader.values(tmp_path, "loss") == {0: 1.0, 1: 0.5}
    # intermediate.jsonl wins where both report a step; a resumed run's repeated step: the last wins
    (tmp_path / "intermediate.jsonl").write_text('{"step": 1, "loss": 0.4}\n{"step": 2, "loss": 0.3}\n{"step": 2, "loss": 0.2}\n')
    assert reader.values(tmp_path, "loss") == {0: 1.0, 1: 0.4, 2: 0.2}
    out.write_text("METRIC loss=9 step=0\n")  # a new file (rotated): read from its start
    assert reader.values(tmp_path, "loss")[0] == 9.0


# -- a third-party pruner -------------------------------------------------------------------------


class RatioPruner(Pruner):
    """Stops a trial whose value at a step is worse than ``ratio`` times the best finished trial's."""

    def judge(self, trial: TrialProgress, trials: Sequence[TrialProgress]) -> PruneDecision:
        sign = 1.0 if self.settings.goal == "minimize" else -1.0
        step = trial.last_step
        best = [sign * t.intermediate[step] for t in trials if t.state == "completed" and step in t.intermediate]
        if step is None or not best:
            return PruneDecision(False, {"seen": step})
        limit = min(best) * float(self.settings.options.get("ratio", 3))
        if sign * trial.intermediate[step] > limit:
            return PruneDecision(True, {"seen": step}, f"{self.settings.metric} beyond {limit:g} at step {step}")
        return PruneDecision(False, {"seen": step})


class RatioPlugin:
    @hookimpl
    def hsm_register_pruners(self) -> list[PrunerRecord]:
        return [PrunerRecord("ratio", "stops trials far worse than the best", RatioPruner)]


def test_a_third_party_pruner_follows_the_contract() -> None:
    check_pruner_contract(RatioPruner, PrunerSettings("ratio", "loss", "minimize", "s", {"ratio": 3}))


SCRIPT = r'''
import json, os, signal, sys, time
args = {k.lstrip("-"): v for k, v in (a.split("=", 1) for a in sys.argv[1:] if "=" in a)}
q = float(args["q"])
task = os.environ["HSM_TASK_ID"]
def say(*words):
    with open(os.path.join(os.environ["HSM_COUNT_DIR"], "runs.log"), "a") as fh:
        fh.write(" ".join([task, *map(str, words)]) + "\n")
if os.environ.get("TOY_DEAF"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a script that never stops by itself
say("start", q)
for step in range(12):
    print(f"METRIC loss={q / (step + 1)} step={step}", flush=True)
    say("step", step)
    time.sleep(0.3)
say("end")
'''


@pytest.fixture
def toy(tmp_path: Path) -> Project:
    return make_project(tmp_path / "proj", script=SCRIPT)


def _runs(project: Project) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for line in (project.root / "runs.log").read_text().splitlines():
        task, word, *rest = line.split()
        r = out.setdefault(task, {"starts": 0, "steps": 0, "end": False})
        if word == "start":
            r["starts"] += 1
            r["q"] = float(rest[0])
        r["steps"] += word == "step"
        r["end"] = r["end"] or word == "end"
    return out


@pytest.mark.parametrize("deaf", [False, True])
def test_a_plugin_pruner_stops_bad_trials_and_they_read_pruned(toy: Project, monkeypatch: pytest.MonkeyPatch, deaf: bool) -> None:
    """In-process run with the plugin registered: the bad trial is stopped early (killed after the
    project's kill_grace of 2 s when it ignores SIGTERM) and recorded ``pruned``; the others complete."""
    monkeypatch.setenv("HSM_COUNT_DIR", str(toy.root))
    if deaf:
        monkeypatch.setenv("TOY_DEAF", "1")
    # (retries: 2 retries failures; a pruned trial is not one, and runs once)
    cfg = toy.write_sweep({"grid": {"q": [1.0, 1.2, 20.0]}, "prune": {"pruner": "ratio", "metric": "loss"},
                           "retries": 2})
    registry = fresh_registry(extra=[("ratio", RatioPlugin())])
    started = time.monotonic()
    counts = run_sweep(cfg, project_root=toy.root, sweep_id="r", registry=registry)
    assert counts == {"completed": 2, "pruned": 1}
    assert time.monotonic() - started < 30
    runs = {r["q"]: r for r in _runs(toy).values()}
    assert all(r["starts"] == 1 for r in runs.values())
    assert runs[1.0]["end"] and runs[1.2]["end"] and runs[1.0]["steps"] == 12
    assert not runs[20.0]["end"] and runs[20.0]["steps"] < 11
    status = yaml.safe_load((toy.outputs / "r" / "tasks" / "task_003" / "status.yaml").read_text())
    assert status["state"] == "pruned" and "beyond" in status["message"]
    if deaf:
        assert status.get("signal") == "SIGKILL" or status.get("exit_code") in (-9, 137)


# -- the decision is what counts, whoever records the end ------------------------------------------


def test_a_task_its_pruner_stopped_reads_pruned_from_its_exit_code_too(tmp_path: Path) -> None:
    """The controller that stopped it was killed before recording the end: the next look finds
    the wrapper's exit code (0: the script checkpointed and exited) and the decision, and records
    ``pruned``, not ``completed``."""
    d = tmp_path / "task_001"
    d.mkdir()
    write_status(d, {"state": "running", "host": "elsewhere", "attempt": 1, "start_epoch": time.time()})
    (d / EXIT_MARKER).write_text("0\n")  # the script checkpointed on SIGTERM and exited 0
    (d / "pruning.json").write_text(json.dumps({"pruned": True, "step": 3, "reason": "median at step 3"}))
    status = reconcile_status(d, read_status(d))
    assert status is not None and status["state"] == "pruned" and "median" in status["message"]
    assert read_status(d)["state"] == "pruned"


def test_a_task_that_ended_by_itself_before_the_decision_stays_completed(tmp_path: Path) -> None:
    """Its exit code was left before the pruner decided (the decision raced with its end)."""
    d = tmp_path / "task_001"
    d.mkdir()
    now = time.time()
    write_status(d, {"state": "running", "host": "elsewhere", "attempt": 1, "start_epoch": now - 10})
    (d / EXIT_MARKER).write_text("0\n")
    os.utime(d / EXIT_MARKER, (now - 5, now - 5))  # when it ended
    (d / "pruning.json").write_text(json.dumps({"pruned": True, "step": 3, "judged_epoch": now - 1}))
    status = reconcile_status(d, read_status(d))
    assert status is not None and status["state"] == "completed"


# -- bad settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("prune, words", [
    ({"pruner": "median", "metric": "loss", "patience": 3}, "unknown key 'patience' in prune"),
    ({"pruner": "median"}, "metric must name the intermediate value"),
    ({"pruner": "median", "metric": "loss", "goal": "lowest"}, "goal must be minimize or maximize"),
    ({"pruner": "nosuch", "metric": "loss"}, "nosuch"),
    (["median"], "prune"),
])
def test_bad_prune_settings_are_one_line_errors_before_anything_runs(toy: Project, prune: Any, words: str) -> None:
    cfg = toy.write_sweep({"grid": {"q": [1.0]}, "prune": prune})
    proc = toy.hsm("run", "--config", str(cfg))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert words in proc.stderr and "Traceback" not in proc.stderr
    assert not toy.sweep_ids() and not (toy.root / "runs.log").exists()
