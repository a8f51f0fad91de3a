"""Optuna's pruners behind hsm's :class:`~hsm_core.plugin.Pruner` (early stopping).

Like the samplers (:mod:`hsm_plugin_optuna.strategy`), each decision builds an in-memory study from
what hsm gives it: every trial of the sweep with its intermediate values, as trial number = the
task's index (so Hyperband's bracket of a trial, a hash of the study's name and the trial's
number, is the same whoever judges it), and each trial's ``system_attrs`` from the memo hsm kept
(where successive halving records the rungs a trial reached). The pruner then judges the running
trial, and what it wrote into that trial's ``system_attrs`` goes back to hsm as the memo.
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

import optuna
from optuna.trial import TrialState, create_trial

from hsm_core.plugin import ConfigError, PruneDecision, Pruner, PrunerSettings, TrialProgress

optuna.logging.set_verbosity(optuna.logging.WARNING)  # hsm says what was pruned itself

#: The memo's key for the last step judged (the rest of the memo is the trial's system_attrs).
_LAST_STEP = "hsm.last_step"
#: Optuna's states for hsm's trial states.
_STATES = {"running": TrialState.RUNNING, "completed": TrialState.COMPLETE, "pruned": TrialState.PRUNED,
           "failed": TrialState.FAIL}


class OptunaPruner(Pruner):
    """One of ``optuna.pruners`` (its options are the class's keyword arguments)."""

    def __init__(self, settings: PrunerSettings, class_name: str) -> None:
        super().__init__(settings)
        self.class_name = class_name
        self.pruner = self._make()

    def _make(self) -> optuna.pruners.BasePruner:
        cls = getattr(optuna.pruners, self.class_name)
        try:
            return cls(**dict(self.settings.options))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{self.settings.pruner}: {exc}", key="prune.options",
                              hint=f"the options are those of optuna.pruners.{self.class_name}") from None

    def check(self) -> None:
        """The options were checked when the pruner was made."""

    def judge(self, trial: TrialProgress, trials: Sequence[TrialProgress]) -> PruneDecision:
        direction = "minimize" if self.settings.goal == "minimize" else "maximize"
        study = optuna.create_study(study_name=self.settings.study or "hsm", direction=direction, pruner=self.pruner)
        by_number = {t.number: t for t in trials}
        # The judged trial enters the study as it stood when last judged; its newer steps are then
        # reported one by one, asking the pruner after each, as an objective calling
        # trial.report() and trial.should_prune() at every step would (successive halving
        # records a rung at the first step that reaches it, not at whatever step hsm saw last).
        seen = trial.memo.get(_LAST_STEP)
        seen = int(seen) if isinstance(seen, (int, float)) and not isinstance(seen, bool) else -1
        memo = {k: v for k, v in trial.memo.items() if k != _LAST_STEP}
        earlier = {s: v for s, v in trial.intermediate.items() if s <= seen}
        by_number[trial.number] = TrialProgress(trial.number, "running", earlier, None, memo)
        if isinstance(self.pruner, optuna.pruners.HyperbandPruner):
            # Hyperband puts a trial in a bracket by its number: numbers are task indexes here,
            # the ones no started task holds failed placeholders, which no pruner counts.
            numbers = list(range(0, max(by_number) + 1))
        else:
            numbers = sorted(by_number)
        for number in numbers:
            study.add_trial(_frozen(by_number.get(number)))
        position = numbers.index(trial.number)
        live = optuna.trial.Trial(study, study.get_trials(deepcopy=False)[position]._trial_id)
        prune, step = False, seen
        for step in sorted(s for s in trial.intermediate if s > seen):
            live.report(float(trial.intermediate[step]), step)
            if live.should_prune():
                prune = True
                break
        after = study.get_trials(deepcopy=False)[position]
        memo = {k: v for k, v in after.system_attrs.items() if _json_safe(v)}
        memo[_LAST_STEP] = step
        reason = ""
        if prune:
            value = trial.intermediate[step]
            reason = f"{self.settings.pruner} ({self.class_name}) at step {step}: {self.settings.metric}={value:.6g}"
        return PruneDecision(prune, memo, reason, step=step if prune else None)

def _frozen(t: TrialProgress | None) -> optuna.trial.FrozenTrial:
    """The trial as Optuna's record (a failed placeholder for None)."""
    if t is None:
        return create_trial(state=TrialState.FAIL)
    state = _STATES.get(t.state, TrialState.FAIL)
    intermediate = {int(k): float(v) for k, v in t.intermediate.items()}
    value = None
    if state == TrialState.COMPLETE:
        value = t.value if t.value is not None else (intermediate[max(intermediate)] if intermediate else None)
        if value is None or not math.isfinite(value):
            state = TrialState.FAIL
            value = None
    return create_trial(state=state, value=value, intermediate_values=intermediate,
                        system_attrs=dict(t.memo or {}))


def _json_safe(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True

