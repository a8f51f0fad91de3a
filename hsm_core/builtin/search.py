"""Built-in plugin: the ``search:`` sweep section (adaptive search) and the ``random`` strategy.

::

    search:
      strategy: random          # or tpe (hsm-plugin-optuna), or another plugin's
      metric: {name: loss, goal: minimize}
      trials: 40                # the budget
      parallel: 4               # trials at once (default: what the sources hold)
      seed: 0
      params:                   # the forms of random: (distributions, Hydra's syntax, lists)
        lr: tag(log, interval(1e-5, 1e-1))
        layers: {int: [1, 4]}

The section expands into ``trials`` placeholder tasks (``search.trial: N``); each gets its
parameters from the strategy when it is about to start (:mod:`hsm_core.adaptive`).
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from hsm_core.builtin.random_search import Distribution, _uniforms, parse_section
from hsm_core.plugin import (
    ConfigError,
    Expander,
    ExpanderRecord,
    SearchParam,
    SearchSettings,
    SearchStrategy,
    SearchStrategyRecord,
    Trial,
    hookimpl,
)

#: The placeholder parameter of a trial not asked yet (replaced by the asked parameters).
TRIAL_KEY = "search.trial"
_KEYS = ("strategy", "metric", "trials", "parallel", "seed", "params", "options")
_GOALS = {"minimize": "minimize", "min": "minimize", "maximize": "maximize", "max": "maximize"}


def parse_settings(section: Any, where: str = "search") -> SearchSettings:
    """Validate a ``search:`` section; a ConfigError names the key."""
    if not isinstance(section, Mapping):
        raise ConfigError("'search' must be a mapping: strategy, metric, trials, params", key=where)
    unknown = [k for k in section if k not in _KEYS]
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in search (keys: {', '.join(_KEYS)})", key=f"{where}.{unknown[0]}",
                          hint="parameters go under 'params:'")
    trials = section.get("trials")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"trials must be a whole number of at least 1, not {trials!r}", key=f"{where}.trials",
                          hint="e.g. trials: 40")
    parallel = section.get("parallel")
    if parallel is not None and (isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1):
        raise ConfigError(f"parallel must be a whole number of at least 1, not {parallel!r}", key=f"{where}.parallel")
    metric = section.get("metric")
    if isinstance(metric, str):
        metric = {"name": metric}
    if not isinstance(metric, Mapping) or not isinstance(metric.get("name"), str) or not metric.get("name"):
        raise ConfigError("metric must name the metric to optimise: metric: {name: loss, goal: minimize}",
                          key=f"{where}.metric")
    goal = _GOALS.get(str(metric.get("goal", "minimize")).lower())
    if goal is None:
        raise ConfigError(f"metric goal must be minimize or maximize, not {metric.get('goal')!r}", key=f"{where}.metric.goal")
    strategy = section.get("strategy", "random")
    if not isinstance(strategy, str) or not strategy:
        raise ConfigError(f"strategy must be a name (random, tpe ...), not {strategy!r}", key=f"{where}.strategy")
    options = section.get("options") or {}
    if not isinstance(options, Mapping):
        raise ConfigError("options must be a mapping (the strategy's own settings)", key=f"{where}.options")
    params = section.get("params")
    if not isinstance(params, Mapping) or not params:
        raise ConfigError("params must map each parameter to its distribution, e.g. lr: tag(log, interval(1e-5, 1e-1))",
                          key=f"{where}.params")
    # The parameters take the forms of random: (its parser checks them the same way).
    seed = section.get("seed", 0)
    parsed = parse_section({"samples": 1, "seed": seed, "params": params}, where)
    for name, d in parsed.params:
        if d.weights is not None:
            raise ConfigError("weighted choices are for random:; a search strategy weighs its choices itself",
                              key=f"{where}.params.{name}", hint="list the values without weights")
    space = tuple(SearchParam(name, d.kind, d.args, d.q) for name, d in parsed.params)
    return SearchSettings(strategy, metric["name"], goal, trials, parallel, parsed.seed, space, dict(options))


class SearchExpander(Expander):
    """``search:``: ``trials`` tasks whose parameters a strategy chooses as they start."""

    def validate(self, section: Any, where: str) -> None:
        parse_settings(section, where)

    def settings(self, section: Any) -> SearchSettings:
        """The parsed section (for :mod:`hsm_core.adaptive`)."""
        return parse_settings(section)

    def count(self, section: Any) -> int:
        return int(section["trials"])

    def expand(self, section: Any) -> Iterator[dict[str, Any]]:
        for n in range(1, int(section["trials"]) + 1):
            yield {TRIAL_KEY: n}

    def describe(self, section: Any) -> list[tuple[str, str]]:
        """(parameter, distribution) rows for ``--dry-run``."""
        s = parse_settings(section)
        rows = [("(search)", f"{s.trials} trials chosen by {s.strategy}, {s.goal} {s.metric}, seed {s.seed}")]
        return rows + [(p.name, Distribution(p.distribution, p.args, p.q).describe()) for p in s.params]


class RandomStrategy(SearchStrategy):
    """``strategy: random``: each trial drawn independently from the seed and its number (the
    results are ignored): the baseline, and adaptive search without any plugin."""

    def tell(self, trial: Trial) -> None:
        pass  # random search learns nothing

    def ask(self, number: int) -> dict[str, Any]:
        return {p.name: Distribution(p.distribution, tuple(p.args), p.q).sample(_uniforms(self.settings.seed, number, p.name))
                for p in self.settings.params}


@hookimpl
def hsm_register_expanders() -> list[ExpanderRecord]:
    return [ExpanderRecord("search", "Adaptive search: trials proposed from the results so far (ask/tell)",
                           SearchExpander, section="search",
                           config_schema={"type": "object", "description": "strategy, metric, trials, parallel, seed, params"})]


@hookimpl
def hsm_register_search_strategies() -> list[SearchStrategyRecord]:
    return [SearchStrategyRecord("random", "Random search as ask/tell (draws from the seed and the trial number)",
                                 RandomStrategy)]
