"""hsm plugin for Weights & Biases: runs in ``hsm sync``, artifact pruning, a task registry.

* :mod:`~hsm_plugin_wandb_sync.plugin` — hook implementations (cheap to import).
* :mod:`~hsm_plugin_wandb_sync.env` — per-task ``WANDB_*`` environment, deterministic run ids.
* :mod:`~hsm_plugin_wandb_sync.runlog` — reading a run's ``.wandb`` transaction log.
* :mod:`~hsm_plugin_wandb_sync.discovery` — a sweep's runs on disk, resumed dirs grouped.
* :mod:`~hsm_plugin_wandb_sync.items` — what ``hsm sync`` sends for each run.
* :mod:`~hsm_plugin_wandb_sync.prune` — old artifact versions on the server and in staging.
* :mod:`~hsm_plugin_wandb_sync.registry` — "is run X finished on W&B?" for workers.
* :mod:`~hsm_plugin_wandb_sync.buffer` — ``hsm worker --wandb-buffer``: offline runs, synced at checkpoints.

wandb itself is imported only by the functions that need it.
"""

__version__ = "0.1.0"
