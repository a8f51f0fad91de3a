"""Hook implementations. Cheap to import: optuna loads only when a strategy or pruner is made."""

from __future__ import annotations

from hsm_core.plugin import PrunerRecord, SearchStrategyRecord, hookimpl

#: The plugin-API version this plugin is written for: 1.3 added search strategies, 1.4 pruners.
HSM_PLUGIN_API = "1.4"

#: Strategy name -> (Optuna sampler class, one-line summary).
SAMPLERS = {
    "tpe": ("TPESampler", "Optuna's Tree-structured Parzen Estimator (Bayesian optimisation)"),
    "cmaes": ("CmaEsSampler", "Optuna's CMA-ES (continuous and integer parameters; needs the cmaes package)"),
    "gp": ("GPSampler", "Optuna's Gaussian-process sampler (needs scipy and torch)"),
    "qmc": ("QMCSampler", "Optuna's quasi-Monte Carlo sampler (Sobol; needs scipy)"),
    "nsga2": ("NSGAIISampler", "Optuna's NSGA-II genetic algorithm"),
    "optuna-random": ("RandomSampler", "Optuna's random sampler"),
}

#: Pruner name -> (Optuna pruner class, one-line summary).
PRUNERS = {
    "median": ("MedianPruner", "Optuna's median rule: stop a trial worse than the median of earlier ones at the same step"),
    "percentile": ("PercentilePruner", "Optuna's percentile rule (options: percentile, n_startup_trials, n_warmup_steps)"),
    "asha": ("SuccessiveHalvingPruner", "Optuna's asynchronous successive halving (ASHA)"),
    "hyperband": ("HyperbandPruner", "Optuna's Hyperband (successive halving over several brackets)"),
    "threshold": ("ThresholdPruner", "Optuna's threshold rule: stop a trial outside lower/upper bounds"),
}


@hookimpl
def hsm_register_search_strategies() -> list[SearchStrategyRecord]:
    return [SearchStrategyRecord(name, summary, _factory(name)) for name, (_cls, summary) in SAMPLERS.items()]


@hookimpl
def hsm_register_pruners() -> list[PrunerRecord]:
    return [PrunerRecord(name, summary, _pruner_factory(name)) for name, (_cls, summary) in PRUNERS.items()]


def _factory(name: str) -> "object":
    """A factory ``settings -> OptunaStrategy`` for the strategy ``name`` (imports optuna lazily)."""

    def make(settings: object) -> object:
        from hsm_plugin_optuna.strategy import OptunaStrategy

        return OptunaStrategy(settings, SAMPLERS[name][0])  # type: ignore[arg-type]

    return make


def _pruner_factory(name: str) -> "object":
    """A factory ``settings -> OptunaPruner`` for the pruner ``name`` (imports optuna lazily)."""

    def make(settings: object) -> object:
        from hsm_plugin_optuna.pruners import OptunaPruner

        return OptunaPruner(settings, PRUNERS[name][0])  # type: ignore[arg-type]

    return make
