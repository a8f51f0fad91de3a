"""Contract suite for pruners (:class:`~hsm_core.plugin.Pruner`, plugin API 1.4).

``check_pruner_contract(factory, settings)`` plays a small study through the pruner the way hsm
does (a new instance per decision, every trial given, the memo kept as JSON between decisions) and
checks what every pruner must do:

* it is made from its settings and ``check()`` passes;
* each decision is a :class:`~hsm_core.plugin.PruneDecision` whose memo survives a JSON round trip;
* the same inputs give the same decision (whoever judges a trial, a controller or a worker after
  a crash, reaches the same verdict);
* a trial better than every finished one at every step is never pruned;
* with ``prunes_outliers`` (the default), a trial far worse than every finished one at every step
  is pruned before its last step, for ``minimize`` and for ``maximize``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Callable, Mapping, Sequence

from hsm_core.plugin import PruneDecision, Pruner, PrunerSettings, TrialProgress

__all__ = ["check_pruner_contract", "play"]

STEPS = 12


def _curve(scale: float, goal: str) -> dict[int, float]:
    """A learning curve: ``scale / (step + 1)`` (mirrored for ``maximize``)."""
    sign = 1.0 if goal == "minimize" else -1.0
    return {s: sign * scale / (s + 1) for s in range(STEPS)}


def _judge(factory: Callable[[PrunerSettings], Any], settings: PrunerSettings, trial: TrialProgress,
           trials: Sequence[TrialProgress]) -> PruneDecision:
    pruner = factory(settings)
    assert isinstance(pruner, Pruner), f"the factory made {type(pruner).__name__}, not a Pruner"
    decision = pruner.judge(trial, list(trials))
    assert isinstance(decision, PruneDecision), f"judge returned {decision!r}, not a PruneDecision"
    again = json.loads(json.dumps(dict(decision.memo)))  # what hsm keeps in the task's pruning.json
    assert again == dict(decision.memo), "the memo must survive a JSON round trip"
    return decision


def play(factory: Callable[[PrunerSettings], Any], settings: PrunerSettings,
         curves: Sequence[Mapping[int, float]]) -> list[TrialProgress]:
    """Run trials 1, 2 ... one after the other, each judged at every step as hsm would; returns
    them as they ended (``completed`` or ``pruned`` at the step judged)."""
    done: list[TrialProgress] = []
    for number, curve in enumerate(curves, start=1):
        memo: Mapping[str, Any] = {}
        seen: dict[int, float] = {}
        state = "completed"
        for step in sorted(curve):
            seen[step] = curve[step]
            me = TrialProgress(number, "running", dict(seen), None, memo)
            decision = _judge(factory, settings, me, [*done, me])
            # Whoever judges next (a fresh instance, the same inputs) decides the same.
            twin = _judge(factory, settings, me, [*done, me])
            assert (twin.prune, dict(twin.memo)) == (decision.prune, dict(decision.memo)), \
                f"trial {number} step {step}: two judges of the same inputs disagree"
            memo = json.loads(json.dumps(dict(decision.memo)))
            if decision.prune:
                state = "pruned"
                break
        last = seen[max(seen)]
        done.append(TrialProgress(number, state, dict(seen), last if state == "completed" else None, memo))
    return done


def check_pruner_contract(factory: Callable[[PrunerSettings], Any], settings: PrunerSettings, *,
                          prunes_outliers: bool = True) -> None:
    """Check a pruner's factory against the contract (see the module docstring); raises
    AssertionError naming what is wrong."""
    first = factory(settings)
    assert isinstance(first, Pruner), f"the factory made {type(first).__name__}, not a Pruner"
    first.check()
    for goal in ("minimize", "maximize"):
        s = replace(settings, goal=goal)
        good = [_curve(1.0 + 0.01 * i, goal) for i in range(6)]
        trials = play(factory, s, good + [_curve(0.5, goal)])
        best = trials[-1]
        assert best.state == "completed", f"{goal}: a trial better than all others at every step was pruned"
        if prunes_outliers:
            trials = play(factory, s, good + [_curve(50.0, goal)])
            worst = trials[-1]
            assert worst.state == "pruned", f"{goal}: a trial 50 times worse than all others at every step ran to its end"
            assert max(worst.intermediate) < STEPS - 1, f"{goal}: the worst trial was pruned only at its last step"
