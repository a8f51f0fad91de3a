"""``hsm hold|release|requeue [SWEEP_ID] --tasks 3,5-7``: arguments and output only.

The work is :mod:`hsm_core.task_control`'s (each task's source does it: ``scontrol hold 12345_7``,
``qhold`` ...). ``hsm cancel --tasks`` is in :mod:`hsm_core.cli.hpc_cmd`.
"""

from __future__ import annotations

import click

_HELP = {
    "hold": "Hold queued tasks of SWEEP_ID in the scheduler's queue (they do not start until released).",
    "release": "Release held tasks of SWEEP_ID (they start when the scheduler lets them).",
    "requeue": "Requeue running tasks of SWEEP_ID: the scheduler stops and queues them again; the stopped "
               "attempt stays in each task's attempt history.",
}


def _make(action: str) -> click.Command:
    @click.command(action, help=_HELP[action] + " Default: the latest sweep.")
    @click.argument("sweep_id", required=False)
    @click.option("--tasks", "tasks", required=True, metavar="LIST",
                  help="Task numbers (3 is task_003), ranges, task dir names or ids: 3,5-7.")
    @click.option("--project-dir", type=click.Path(file_okay=False))
    def command(sweep_id: str | None, tasks: str, project_dir: str | None) -> None:
        from hsm_core.cancel import refuse_worker_sweep
        from hsm_core.cli.hpc_cmd import _project, _registry
        from hsm_core.sweep_select import resolve_sweep
        from hsm_core.task_control import ACTIONS, control_tasks, select_tasks

        registry = _registry()
        project = _project(project_dir, registry)
        sweep = resolve_sweep(project, sweep_id)
        refuse_worker_sweep(sweep, sweep.read_metadata(), registry)
        chosen = select_tasks(tasks, sweep.records().values())
        counts = control_tasks(project, registry, sweep, chosen, action, echo=click.echo)
        parts = ", ".join(f"{n} {what}" for what, n in sorted(counts.items()))
        click.echo(f"Sweep {sweep.sweep_id}: {parts}.")
        if counts.get(f"not {ACTIONS[action]}"):
            click.get_current_context().exit(1)

    return command


def register(cli: click.Group) -> None:
    """Add hold, release and requeue."""
    for action in ("hold", "release", "requeue"):
        cli.add_command(_make(action))
