"""Hook implementations. Cheap to import: paramiko loads only when a connection is opened."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import click

from hsm_core.plugin import ComputeSource, ComputeSourceRecord, HostProviderRecord, hookimpl

#: The plugin-API version this plugin is written for (see hsm_core.plugin.PLUGIN_API_VERSION): hsm
#: loads it only under a core whose API has the same major, else says "upgrade the plugin/hsm-core".
HSM_PLUGIN_API = "1.1"  # 1.1: the record says config_section


@hookimpl
def hsm_register_compute_sources() -> list[ComputeSourceRecord]:
    from hsm_plugin_ssh.schema import REMOTE_SCHEMA

    return [
        ComputeSourceRecord(
            name="ssh",
            summary="A remote machine over SSH: tasks run detached under hsm's runner, results copied back",
            factory="hsm_plugin_ssh.source:SshSource",
            config_schema=REMOTE_SCHEMA,
            aliases=("remote",),
            # ssh:NAME is the entry NAME of distributed.remotes (a name not listed there is the host).
            config_section="distributed.remotes.*",
        )
    ]


@hookimpl
def hsm_register_hosts() -> list[HostProviderRecord]:
    return [HostProviderRecord("ssh", "Hosts reached over SSH (paramiko; ~/.ssh/config, known_hosts)",
                               "hsm_plugin_ssh.host:ssh_host")]


@hookimpl
def hsm_register_commands(cli: click.Group) -> None:
    from hsm_plugin_ssh.commands import register

    register(cli)


@hookimpl
def hsm_before_run(sources: Sequence[ComputeSource], project_config: Mapping[str, Any], options: Mapping[str, Any]) -> None:
    # Most runs have no ssh source: decide that without importing anything.
    if not any(type(s).__module__ == "hsm_plugin_ssh.source" for s in sources):
        return
    from hsm_plugin_ssh.preflight import before_run

    before_run(sources, project_config, options)


@hookimpl
def hsm_test_target(target: str, project_root: str, timeout: float, echo: Callable[[str], None]) -> bool | None:
    if target.split(":")[0].lower() not in ("ssh", "remote"):
        return None
    from hsm_plugin_ssh.commands import test_target

    return test_target(target, project_root, timeout, echo)
