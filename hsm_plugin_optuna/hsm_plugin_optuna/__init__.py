"""hsm-plugin-optuna: Optuna's samplers as hsm search strategies (``search: {strategy: tpe}``) and its
pruners for early stopping (``prune: {pruner: median}``).

Each ask builds an in-memory Optuna study from the trials hsm gives it (the sweep directory's
trial log is the only state; see :mod:`hsm_plugin_optuna.strategy` for why not Optuna's journal
file), then uses Optuna's ask-and-tell interface. optuna is imported only when a trial is asked.
"""

__version__ = "0.1.0"
