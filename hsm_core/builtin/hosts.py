"""Built-in plugin: the ``local`` host (commands and copies on this machine)."""

from __future__ import annotations

from hsm_core.plugin import HostProviderRecord, LocalHost, hookimpl


@hookimpl
def hsm_register_hosts() -> list[HostProviderRecord]:
    return [HostProviderRecord("local", "This machine", LocalHost)]
