"""Hook implementations. Cheap to import: optuna loads only when a strategy is made."""

from __future__ import annotations

from hsm_core.plugin import SearchStrategyRecord, hookimpl

#: The plugin-API version this plugin is written for: 1.3 added search strategies.
HSM_PLUGIN_API = "1.3"

#: Strategy name -> (Optuna sampler class, one-line summary).
SAMPLERS = {
    "tpe": ("TPESampler", "Optuna's Tree-structured Parzen Estimator (Bayesian optimisation)"),
    "cmaes": ("CmaEsSampler", "Optuna's CMA-ES (continuous and integer parameters; needs the cmaes package)"),
    "gp": ("GPSampler", "Optuna's Gaussian-process sampler (needs scipy and torch)"),
    "qmc": ("QMCSampler", "Optuna's quasi-Monte Carlo sampler (Sobol; needs scipy)"),
    "nsga2": ("NSGAIISampler", "Optuna's NSGA-II genetic algorithm"),
    "optuna-random": ("RandomSampler", "Optuna's random sampler"),
}


@hookimpl
def hsm_register_search_strategies() -> list[SearchStrategyRecord]:
    return [SearchStrategyRecord(name, summary, _factory(name)) for name, (_cls, summary) in SAMPLERS.items()]


def _factory(name: str) -> "object":
    """A factory ``settings -> OptunaStrategy`` for the strategy ``name`` (imports optuna lazily)."""

    def make(settings: object) -> object:
        from hsm_plugin_optuna.strategy import OptunaStrategy

        return OptunaStrategy(settings, SAMPLERS[name][0])  # type: ignore[arg-type]

    return make


@hookimpl
def hsm_register_commands(cli: "object") -> None:
    """``hsm optuna-dashboard``: optuna-dashboard as a live view of an adaptive sweep."""
    from hsm_plugin_optuna.dashboard import dashboard_command

    cli.add_command(dashboard_command)  # type: ignore[attr-defined]
