"""Built-in plugin ``core.commands``: the core CLI commands, registered through the same hook plugins use.

:func:`hsm_core.cli.main.build_cli` registers it (the library never imports the command line). Each
module of :data:`COMMAND_MODULES` adds its commands with ``register(cli)``; the command line loads
one of them alone when only its command is run (:mod:`hsm_core.cli.lazy_group`).
"""

from __future__ import annotations

from importlib import import_module

import click

from hsm_core.plugin import hookimpl

#: The modules of core's commands, in the order they register (``config_cmd`` adds ``init`` first).
COMMAND_MODULES: tuple[str, ...] = tuple(
    f"hsm_core.cli.{name}"
    for name in ("config_cmd", "plugins_cmd", "run_cmd", "status_cmd", "hpc_cmd", "worker_cmd", "sync_cmd",
                 "monitor_cmd", "export_cmd", "manage_cmd", "completion_cmd", "logs_cmd", "task_control_cmd")
)


def register_core_commands(cli: click.Group) -> dict[str, str]:
    """Add every core command to ``cli``; returns which module added each top-level name."""
    owners: dict[str, str] = {}
    for modname in COMMAND_MODULES:
        before = dict(cli.commands)
        import_module(modname).register(cli)
        for name, command in cli.commands.items():
            if before.get(name) is not command:
                owners[name] = modname
    return owners


@hookimpl
def hsm_register_commands(cli: click.Group) -> None:
    # Each module adds its commands; imports stay in register_core_commands so that importing this
    # module loads only click code.
    register_core_commands(cli)
