"""Resolving a host name to a :class:`~hsm_core.plugin.Host`.

``local`` is this machine. Any other name is looked up in ``distributed.remotes`` (or given as
``user@host:port``) and handed to the ``ssh`` host provider, which the ssh plugin registers: the
scheduler plugins submit through it without importing any SSH library.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from hsm_core.plugin import ComponentNotFound, Host, HostProviderRecord, HsmError, load_object

#: The host provider that reaches the machines of ``distributed.remotes``.
REMOTE_PROVIDER = "ssh"


def host_config(name: str, project_config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of host ``name``: a ``distributed.remotes`` entry, or parsed from ``user@host:port``."""
    remotes = ((project_config.get("distributed") or {}).get("remotes")) or {}
    if name in remotes:
        return dict(remotes[name])
    user, _, rest = name.rpartition("@")
    host, _, port = rest.partition(":")
    cfg: dict[str, Any] = {"host": host}
    if user:
        cfg["user"] = user
    if port:
        if not port.isdigit():
            raise HsmError(f"invalid port in host {name!r}")
        cfg["port"] = int(port)
    return cfg


def check_remotes_in_sync(project_config: Any, registry: Any, echo: Callable[[str], None]) -> bool:
    """``hsm config validate --check-sync``: the remotes' host provider compares each remote's
    copy of the project with this one (``HostProviderRecord.sync_check``); True when all are in sync."""
    try:
        provider = registry.get(HostProviderRecord.kind, REMOTE_PROVIDER)
    except ComponentNotFound as exc:
        raise HsmError(f"--check-sync needs the {REMOTE_PROVIDER!r} host provider: {exc}") from None
    if provider.sync_check is None:
        raise HsmError(f"the {REMOTE_PROVIDER!r} host provider cannot check that remotes are in sync")
    check = load_object(provider.sync_check) if isinstance(provider.sync_check, str) else provider.sync_check
    return bool(check(project_config, echo))


def get_host(name: str, project_config: Mapping[str, Any], registry: Any = None) -> Host:
    """A connected-on-demand Host for ``name`` (``local`` or a remote through the ssh provider)."""
    if registry is None:
        from hsm_core.registry import get_registry

        registry = get_registry()
    if name in ("local", "localhost", ""):
        return registry.get(HostProviderRecord.kind, "local").load()("local", {})
    provider = registry.get(HostProviderRecord.kind, REMOTE_PROVIDER)
    return provider.load()(name, host_config(name, project_config))
