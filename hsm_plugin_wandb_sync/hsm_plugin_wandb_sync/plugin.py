"""Hook implementations of hsm-plugin-wandb-sync. Cheap to import: hsm loads it for every command;
wandb and the modules doing the work are imported inside the hooks."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import click

from hsm_core.plugin import SyncItem, TaskRegistryRecord, TaskSpec, WorkerFeature, hookimpl

#: The plugin-API version this plugin is written for (see hsm_core.plugin.PLUGIN_API_VERSION): hsm
#: loads it only under a core whose API has the same major, else says "upgrade the plugin/hsm-core".
HSM_PLUGIN_API = "1.6"  # 1.1: hsm_worker_feature (--wandb-buffer); 1.5: hsm_task_env_batch; 1.6: RESULTS_DIR

REGISTRY_SCHEMA = {
    "type": "object",
    "properties": {
        "entity": {"type": "string"},
        "project": {"type": "string"},
        "sweep_id": {"type": "string", "description": "only runs of this group (one query for all)"},
        "local_dirs": {"type": "array", "items": {"type": "string"}, "description": "wandb dirs to check first"},
    },
}


@hookimpl
def hsm_task_env(task: TaskSpec, sweep_config: Mapping[str, Any]) -> dict[str, str] | None:
    from hsm_plugin_wandb_sync.env import project_wandb_settings, task_env

    return task_env(task.sweep_id, task.task_id, project_wandb_settings(task.sweep_dir)) or None


@hookimpl
def hsm_task_env_batch(tasks: Sequence[TaskSpec], sweep_config: Mapping[str, Any]) -> list[dict[str, str] | None]:
    """The same variables as :func:`hsm_task_env`, the project's settings read once per block."""
    from hsm_plugin_wandb_sync.env import environ_read, project_wandb_settings, task_env

    environ = environ_read()  # (once: os.environ's lookups were most of the time per task)
    settings: dict[str, Any] = {}
    out: list[dict[str, str] | None] = []
    for task in tasks:
        key = str(task.sweep_dir)
        if key not in settings:
            settings[key] = project_wandb_settings(task.sweep_dir)
        out.append(task_env(task.sweep_id, task.task_id, settings[key], environ) or None)
    return out


@hookimpl
def hsm_sync_items(
    sweep_id: str, sweep_dir: str, project_root: str, project_config: Mapping[str, Any], options: Mapping[str, Any]
) -> list[SyncItem] | None:
    if not options.get("sync_wandb_runs", True):
        return None
    from pathlib import Path

    from hsm_plugin_wandb_sync.items import sync_items

    return sync_items(sweep_id, Path(sweep_dir), Path(project_root), project_config, options)


@hookimpl
def hsm_worker_feature(name: str, log: Callable[[str], None]) -> WorkerFeature | None:
    """``hsm worker --wandb-buffer``: offline W&B runs, uploaded at checkpoints and at the end."""
    if name != "wandb-buffer":
        return None
    from hsm_plugin_wandb_sync.buffer import WandbBuffer

    return WandbBuffer(log)


@hookimpl
def hsm_register_task_registries() -> list[TaskRegistryRecord]:
    return [
        TaskRegistryRecord(
            "wandb",
            "W&B run states: is run X finished (on disk or on the W&B server)",
            "hsm_plugin_wandb_sync.registry:WandbTaskRegistry",
            config_schema=REGISTRY_SCHEMA,
        )
    ]


@hookimpl
def hsm_register_commands(cli: click.Group) -> None:
    from hsm_plugin_wandb_sync.cli import prune_command, wandb_group

    cli.add_command(wandb_group)
    sync = cli.commands.get("sync")
    if isinstance(sync, click.Group):  # `hsm sync prune` too, as the issue spells it
        sync.add_command(prune_command, "prune")
