"""Pull-based workers: identical ``hsm worker`` processes share one sweep through file locks.

Each worker expands the sweep file, claims the next unfinished configuration with an atomic lock
file (``.locks/<run id>.lock``), runs it with the core task runner and loops until nothing is left.
No server and no database: the sweep directory on (shared) storage is the whole state, so workers
may be started by hand, as a scheduler's array job, on several clusters, killed and restarted at will.

Modules, one concern each:

* :mod:`~hsm_core.workers.settings` - storage root, heartbeat and stale timeout from flags, env, config.
* :mod:`~hsm_core.workers.layout` - the worker sweep dir, deterministic run ids and task dir names.
* :mod:`~hsm_core.workers.claims` - the lock protocol (claim, heartbeat, exactly-once takeover).
* :mod:`~hsm_core.workers.execute` - running one claimed task under the core runner.
* :mod:`~hsm_core.workers.worker` - the worker loop (resume first, then new work).
* :mod:`~hsm_core.workers.status` - the status table (``hsm worker --status``).
* :mod:`~hsm_core.workers.gitcheck`, :mod:`~hsm_core.workers.registries`,
  :mod:`~hsm_core.workers.submit`, :mod:`~hsm_core.workers.stop` - the extras. Options such as
  ``--wandb-buffer`` come from plugins (the ``hsm_worker_feature`` hook).
"""
