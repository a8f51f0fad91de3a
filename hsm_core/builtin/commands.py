"""Built-in plugin: the core CLI commands, registered through the same hook plugins use."""

from __future__ import annotations

import click

from hsm_core.plugin import hookimpl


@hookimpl
def hsm_register_commands(cli: click.Group) -> None:
    # Each module adds its commands; imports stay here so `hsm --help` loads only click code.
    from hsm_core.cli import config_cmd, hpc_cmd, plugins_cmd, run_cmd, status_cmd, worker_cmd, sync_cmd
    from hsm_core.cli import completion_cmd, export_cmd, manage_cmd, monitor_cmd

    for module in (config_cmd, plugins_cmd, run_cmd, status_cmd, hpc_cmd, worker_cmd, sync_cmd, monitor_cmd, export_cmd, manage_cmd, completion_cmd):
        module.register(cli)
