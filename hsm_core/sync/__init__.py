"""``hsm sync``: copy a sweep's results (and, through plugins, its W&B runs) to other machines.

* :mod:`~hsm_core.sync.config` — ``.hsm/sync_config.yaml``: targets, paths, options, validation.
* :mod:`~hsm_core.sync.planner` — what to send to one target: the sweep's metadata plus the items
  plugins return from ``hsm_sync_items``; ``check_remote_first`` skips what the target has.
* :mod:`~hsm_core.sync.ssh` — one multiplexed SSH connection (ControlMaster) per target.
* :mod:`~hsm_core.sync.rsync` — the core ``rsync`` transport.
* :mod:`~hsm_core.sync.transfers` — parallel transfers, progress bar, summary, ``--continuous``.
* :mod:`~hsm_core.sync.pull` — ``hsm sync pull``: artifacts from a remote workstation.
"""
