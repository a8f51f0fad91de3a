"""Adaptive search: the :class:`SearchStrategy` kind (part of :mod:`hsm_core.plugin`, API 1.3).

A sweep file's ``search:`` section runs ``trials`` trials, each a task like any other. When a
trial's task is about to start, hsm rebuilds a strategy from the sweep's trial log (on the sweep
directory, no server), *tells* it every finished trial, and *asks* it for the new trial's
parameters. A strategy therefore keeps no state of its own between calls: everything it needs is
given again each time, so a controller or worker killed at any moment loses nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["SearchParam", "SearchSettings", "Trial", "SearchStrategy"]


@dataclass(frozen=True)
class SearchParam:
    """One parameter of the search space, as written in the section (the forms of ``random:``).

    ``distribution`` is one of ``uniform``, ``log_uniform``, ``int``, ``log_int``, ``normal``,
    ``log_normal``, ``beta``, ``choice`` or ``constant``; ``args`` are its arguments (``[low, high]``,
    ``[mu, sigma]``, ``[a, b]``, the choices, or the one constant value); ``q`` the step of a
    quantised parameter (None: continuous). A strategy that cannot handle a distribution raises
    :class:`~hsm_core.plugin.ConfigError` from :meth:`SearchStrategy.check`.
    """

    name: str
    distribution: str
    args: tuple[Any, ...]
    q: float | int | None = None


@dataclass(frozen=True)
class SearchSettings:
    """A parsed ``search:`` section."""

    strategy: str  #: the strategy's registered name (``random``, ``tpe`` ...)
    metric: str  #: the name of the metric to optimise (a key of the task's metrics.json)
    goal: str  #: ``minimize`` or ``maximize``
    trials: int  #: the budget: trials run in all
    parallel: int | None  #: at most this many trials at once (None: the sources' capacity)
    seed: int
    params: tuple[SearchParam, ...]
    #: The strategy's own options (``options:`` in the section), e.g. a sampler's settings.
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Trial:
    """One trial of the log: asked (``state`` ``running``) or told (``completed``/``failed``, or
    ``pruned``: stopped early by the sweep's pruner, API 1.4)."""

    number: int  #: 1, 2 ... in the order asked
    params: Mapping[str, Any]
    state: str  #: ``running`` (asked, no result yet), ``completed``, ``failed`` or ``pruned``
    value: float | None = None  #: the metric, for a completed trial
    #: step -> the metric reported while it ran (API 1.4: given for a pruned trial, which has no
    #: final value; a strategy may rank it by how far it got)
    intermediate: Mapping[int, float] = field(default_factory=dict)


class SearchStrategy(ABC):
    """Proposes trials from the results so far (ask/tell).

    hsm makes a new instance for every ask (``factory(settings)``), calls :meth:`tell` once for
    each earlier trial in trial order (finished ones with their value, running ones with state
    ``running`` so that a strategy may avoid proposing them again), then :meth:`ask` once. Two
    processes may ask at the same moment: each gets its own trial number and the strategy need not
    lock anything. Asks must be reproducible from ``settings.seed`` and the trial number where the
    strategy allows it.
    """

    def __init__(self, settings: SearchSettings) -> None:
        self.settings = settings

    def check(self) -> None:
        """Refuse settings this strategy cannot honour (a distribution it has no form for ...)
        with a :class:`~hsm_core.plugin.ConfigError`; called before a sweep starts."""

    @abstractmethod
    def tell(self, trial: Trial) -> None:
        """Learn one earlier trial (finished, or still running)."""

    @abstractmethod
    def ask(self, number: int) -> dict[str, Any]:
        """The parameters of trial ``number`` (a value for every parameter of the space)."""
