"""Built-in plugin: the ``rsync`` sync transport (the system rsync, local or over SSH)."""

from __future__ import annotations

from hsm_core.plugin import SyncTransportRecord, hookimpl


@hookimpl
def hsm_register_sync_transports() -> list[SyncTransportRecord]:
    return [
        SyncTransportRecord(
            "rsync",
            "the system rsync, to a local path or over one multiplexed SSH connection per target",
            "hsm_core.sync.rsync:RsyncTransport",
        )
    ]
