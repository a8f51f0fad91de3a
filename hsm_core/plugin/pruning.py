"""Early stopping: the :class:`Pruner` kind (part of :mod:`hsm_core.plugin`, API 1.4).

While a task runs it reports intermediate values of a metric, one per step (``METRIC loss=0.4
step=3`` lines on stdout, or lines of ``$HSM_TASK_DIR/intermediate.jsonl``; see docs/pruning.md).
Each time a running task reports a new step, hsm makes a new pruner (``factory(settings)``), gives
it that trial and every other trial of the sweep with what they reported, and asks it whether to
stop the trial now. A pruner keeps no state of its own between calls: what it must remember about
a trial (a rung it reached ...) it returns as the decision's ``memo``, which hsm keeps in the
trial's task directory and gives back with the trial next time. So a controller or worker killed at
any moment loses nothing, and two processes may judge two trials at the same moment.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

__all__ = ["PrunerSettings", "TrialProgress", "PruneDecision", "Pruner"]


@dataclass(frozen=True)
class PrunerSettings:
    """A parsed ``prune:`` setting of a sweep file."""

    pruner: str  #: the pruner's registered name (``median``, ``asha``, ``hyperband`` ...)
    metric: str  #: the name of the intermediate value the pruner compares
    goal: str  #: ``minimize`` or ``maximize``
    #: A name that stays the same for the whole sweep (its id): for pruners that hash trials into
    #: brackets (Hyperband), so that a trial keeps its bracket whoever judges it.
    study: str = ""
    #: The pruner's own options (``options:`` in the setting), e.g. ``n_warmup_steps``.
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrialProgress:
    """One trial (task) of the sweep as the pruner sees it."""

    number: int  #: the task's index in the sweep (stable: 1, 2 ...)
    #: ``running``, ``completed``, ``pruned`` or ``failed`` (any other end: failed, timed out ...)
    state: str
    #: step -> the metric's value reported at that step (the last report of a step wins)
    intermediate: Mapping[int, float]
    value: float | None = None  #: a completed trial's final value (its metrics, else its last report)
    #: What this pruner returned as ``memo`` when it last judged this trial ({} if never).
    memo: Mapping[str, Any] = field(default_factory=dict)

    @property
    def last_step(self) -> int | None:
        """The highest step reported, or None."""
        return max(self.intermediate) if self.intermediate else None


@dataclass(frozen=True)
class PruneDecision:
    """What a pruner decided about one running trial."""

    prune: bool  #: True: stop the trial now; it is recorded ``pruned``
    #: Kept with the trial and given back as :attr:`TrialProgress.memo` (JSON-serialisable).
    memo: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""  #: one line for the sweep log and ``status.yaml`` (e.g. "below the median at step 4")
    #: The step the decision was taken at, where the pruner looked at the steps one by one
    #: (None: the trial's last reported step).
    step: int | None = None


class Pruner(ABC):
    """Decides whether a running trial should stop early.

    hsm makes a new instance for each decision (``factory(settings)``) and calls :meth:`judge` once.
    Decisions must depend only on what is given (the trials, their memos, the settings), so that
    whoever judges a trial reaches the same decision.
    """

    def __init__(self, settings: PrunerSettings) -> None:
        self.settings = settings

    def check(self) -> None:
        """Refuse settings this pruner cannot honour (an unknown option ...) with a
        :class:`~hsm_core.plugin.ConfigError`; called before a sweep starts."""

    @abstractmethod
    def judge(self, trial: TrialProgress, trials: Sequence[TrialProgress]) -> PruneDecision:
        """Whether to stop ``trial`` (running, with at least one reported step). ``trials`` is every
        trial of the sweep, ``trial`` included, in the order of their numbers."""
