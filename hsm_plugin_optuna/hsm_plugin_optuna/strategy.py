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

import itertools
import json
import math
import random
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from hsm_core.plugin import ConfigError, SearchParam, SearchSettings, SearchStrategy, Trial

optuna.logging.set_verbosity(optuna.logging.WARNING)  # hsm reports trials itself

#: The key of hsm's trial data holding a trial's Optuna system attrs.
_SYSTEM_ATTRS = "optuna_system_attrs"
#: Asks of one trial before a configuration some pending trial runs is accepted (a space smaller
#: than the trials running at once has no other).
_MAX_ATTEMPTS = 20
#: Discrete spaces up to this many configurations are enumerated to find a free one.
_ENUMERABLE = 10_000


def _key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


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
        self.pending: set[str] = set()  #: the parameters of trials told as running
        self.asked_attrs: dict[str, Any] = {}  #: the Optuna system attrs of the trial just asked
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
        if self.sampler_name == "TPESampler":
            # Trials still running count as bad results, so that TPE proposes elsewhere while
            # they run (Optuna's advice for parallel workers); no effect on one trial at a time.
            options.setdefault("constant_liar", True)
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
            self.pending.add(_key(params))
        else:
            state, value = TrialState.FAIL, None
        try:
            frozen = create_trial(state=state, value=value, params=params, distributions=self.distributions,
                                  intermediate_values=intermediate,
                                  system_attrs=dict(trial.data.get(_SYSTEM_ATTRS) or {}))
        except ValueError:
            return  # a value outside today's bounds
        self.study.add_trial(frozen)

    def ask(self, number: int) -> dict[str, Any]:
        params: dict[str, Any] = {}
        free = self._free_configurations()
        for attempt in range(_MAX_ATTEMPTS):
            self.study.sampler = self._sampler_for(number, attempt)
            trial = self.study.ask(self.distributions)
            params = dict(trial.params)
            # A configuration a pending trial already runs (several asks while it runs, or a
            # small discrete space): asked again with the next seed, so that concurrent trials
            # differ; told as running, so that the next attempt knows it too.
            if _key(params) not in self.pending or free == []:
                break
        else:
            if free:  # a small discrete space the sampler keeps missing: one of the free ones
                params = dict(random.Random(self.settings.seed * 1_000_003 + number).choice(free))
        # What the sampler stored on the trial (CMA-ES's and NSGA-II's generation and CMA-ES's
        # search distribution): kept in hsm's log, given back to the next asks (trial_data).
        self.asked_attrs = dict(self.study.get_trials(deepcopy=False)[-1].system_attrs)
        params.update(self.constants)
        return {p.name: params[p.name] for p in self.settings.params}

    def _free_configurations(self) -> list[dict[str, Any]] | None:
        """The configurations no pending trial runs, for a discrete space of at most
        :data:`_ENUMERABLE` configurations; None for any other space."""
        choices = []
        for name, dist in self.distributions.items():
            if isinstance(dist, CategoricalDistribution):
                choices.append([(name, c) for c in dist.choices])
            elif isinstance(dist, IntDistribution) and not dist.log:
                choices.append([(name, v) for v in range(dist.low, dist.high + 1, dist.step)])
            else:
                return None
        if math.prod(len(c) for c in choices) > _ENUMERABLE:
            return None
        every = (dict(combo) for combo in itertools.product(*choices))
        return [c for c in every if _key(c) not in self.pending]

    def trial_data(self) -> dict[str, Any]:
        return {_SYSTEM_ATTRS: self.asked_attrs} if self.asked_attrs else {}

    def _sampler_for(self, number: int, attempt: int) -> optuna.samplers.BaseSampler:
        """The sampler for trial ``number``. Its seed follows the trial number: an ask is
        reproducible from the same history, and two trials asked from the same history still
        differ. QMC is the exception: its sequence is one for the whole study (the seed
        scrambles it), and trial ``number`` takes the sequence's next point."""
        if self.sampler_name != "QMCSampler":
            return self._sampler(self.settings.seed * 1_000_003 + number * 101 + attempt)
        sampler = self._sampler(self.settings.seed)
        # Optuna counts QMC points in the study; this study is rebuilt for every ask, so the
        # count is set to what a study that had run trials 1 .. number-1 would hold (trial 1
        # is sampled independently, as Optuna does; trial n takes point n-2, + attempt).
        for _ in range(max(0, number - 2 + attempt)):
            sampler._find_sample_id(self.study, self.distributions)
        return sampler
