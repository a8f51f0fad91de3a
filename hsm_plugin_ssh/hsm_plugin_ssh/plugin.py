"""Hook implementations. Cheap to import: paramiko loads only when a connection is opened."""

from __future__ import annotations

import click

from hsm_core.plugin import ComputeSourceRecord, HostProviderRecord, hookimpl

#: The plugin-API version this plugin is written for (see hsm_core.plugin.PLUGIN_API_VERSION): hsm
#: loads it only under a core whose API has the same major, else says "upgrade the plugin/hsm-core".
HSM_PLUGIN_API = "1.2"  # 1.1: the record says config_section; 1.2: SshSource.test and before_run


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
                               "hsm_plugin_ssh.host:ssh_host", sync_check="hsm_plugin_ssh.sync_check:check_all")]


@hookimpl
def hsm_register_commands(cli: click.Group) -> None:
    from hsm_plugin_ssh.commands import register

    register(cli)
