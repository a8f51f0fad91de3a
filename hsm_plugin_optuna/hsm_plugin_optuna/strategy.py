"""Optuna's samplers behind hsm's :class:`~hsm_core.plugin.SearchStrategy` (ask/tell).

Why an in-memory study rebuilt for every ask, not Optuna's ``JournalStorage`` on the sweep dir:
hsm's trial log is already the sweep's one record of asks and results (written once per file,
atomically, and claimed with ``link``, safe on NFS v3+); a second record in Optuna's journal could
disagree with it after a crash between the two writes. Optuna's own file lock
(``JournalFileOpenLock``) is also forcibly broken after a grace period (30 s by default), so a
slow, not dead, writer on a loaded NFS server could interleave with another. Rebuilding costs a
few milliseconds per ask for hundreds of trials, small next to starting a task.
"""

from __future__ import annotations

import math
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from hsm_core.plugin import ConfigError, SearchParam, SearchSettings, SearchStrategy, Trial

optuna.logging.set_verbosity(optuna.logging.WARNING)  # hsm reports trials itself

#: Distributions with no bounds, which Optuna's samplers cannot search.
_UNBOUNDED = ("normal", "log_normal", "beta")


def distribution_of(param: SearchParam, strategy: str) -> BaseDistribution | None:
    """The Optuna distribution of one parameter (None for a constant); ConfigError when Optuna has no form for it."""
    kind, a, q = param.distribution, param.args, param.q
    where = f"search.params.{param.name}"
    if kind == "constant":
        return None
    if kind in _UNBOUNDED:
        raise ConfigError(f"strategy {strategy} needs bounds; a {kind} distribution has none", key=where,
                          hint="use interval(low, high) or {uniform: [low, high]} (or strategy: random)")
    if kind in ("log_uniform", "log_int") and q is not None:
        raise ConfigError("Optuna cannot quantise a logarithmic scale", key=where, hint="drop q, or use a linear scale")
    if kind == "uniform":
        if q is not None:
            return FloatDistribution(float(a[0]), float(a[1]), step=float(q))
        return FloatDistribution(float(a[0]), float(a[1]))
    if kind == "log_uniform":
        return FloatDistribution(float(a[0]), float(a[1]), log=True)
    if kind == "int":
        return IntDistribution(int(a[0]), int(a[1]), step=int(q) if q is not None else 1)
    if kind == "log_int":
        return IntDistribution(int(a[0]), int(a[1]), log=True)
    if kind == "choice":
        if not all(v is None or isinstance(v, (bool, int, float, str)) for v in a):
            raise ConfigError("Optuna's choices are numbers, strings, booleans or null", key=where,
                              hint="name each structured value with a string and map it in the script")
        return CategoricalDistribution(tuple(a))
    raise ConfigError(f"strategy {strategy} has no form for a {kind} distribution", key=where)


class OptunaStrategy(SearchStrategy):
    """An Optuna sampler asked through an in-memory study that is told every earlier trial."""

    def __init__(self, settings: SearchSettings, sampler: str) -> None:
        super().__init__(settings)
        self.sampler_name = sampler
        self.distributions: dict[str, BaseDistribution] = {}
        self.constants: dict[str, Any] = {}
        for p in settings.params:
            dist = distribution_of(p, settings.strategy)
            if dist is None:
                self.constants[p.name] = p.args[0]
            else:
                self.distributions[p.name] = dist
        direction = "minimize" if settings.goal == "minimize" else "maximize"
        self.study = optuna.create_study(direction=direction, sampler=self._sampler(settings.seed))

    def _sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        cls = getattr(optuna.samplers, self.sampler_name)
        options = dict(self.settings.options)
        try:
            return cls(seed=seed, **options)
        except TypeError as exc:
            raise ConfigError(f"{self.settings.strategy}: {exc}", key="search.options",
                              hint=f"the options are those of optuna.samplers.{self.sampler_name}") from None
        except ImportError as exc:
            raise ConfigError(f"{self.settings.strategy} needs {exc.name or exc}", key="search.strategy",
                              hint=f"pip install {exc.name}" if exc.name else None) from None

    def check(self) -> None:
        """Everything is checked when the strategy is made (distributions, sampler options)."""

    def tell(self, trial: Trial) -> None:
        params = {k: v for k, v in trial.params.items() if k in self.distributions}
        if set(params) != set(self.distributions):
            return  # a trial of an earlier space (an edited sweep file): it says nothing of this one
        intermediate: dict[int, float] = {}
        if trial.state == "completed" and trial.value is not None and math.isfinite(trial.value):
            state, value = TrialState.COMPLETE, float(trial.value)
        elif trial.state == "pruned":  # TPE ranks a pruned trial by the last value it reported
            state, value = TrialState.PRUNED, None
            intermediate = {int(k): float(v) for k, v in trial.intermediate.items()}
        elif trial.state == "running":
            state, value = TrialState.RUNNING, None
        else:
            state, value = TrialState.FAIL, None
        try:
            frozen = create_trial(state=state, value=value, params=params, distributions=self.distributions,
                                  intermediate_values=intermediate)
        except ValueError:
            return  # a value outside today's bounds
        self.study.add_trial(frozen)

    def ask(self, number: int) -> dict[str, Any]:
        # The sampler's seed follows the trial number: an ask is reproducible from the same history,
        # and two trials asked from the same history (two workers at once) still differ.
        self.study.sampler = self._sampler(self.settings.seed * 1_000_003 + number)
        trial = self.study.ask(self.distributions)
        params = dict(trial.params)
        params.update(self.constants)
        return {p.name: params[p.name] for p in self.settings.params}
