"""``hsm logs TASK [SWEEP_ID] [-f]``: a task's stdout and stderr (:mod:`hsm_core.monitor.follow`)."""

from __future__ import annotations

import sys

import click


@click.command("logs")
@click.argument("task")
@click.argument("sweep_id", required=False)
@click.option("--follow", "-f", is_flag=True, help="Keep printing what the task writes until it ends.")
@click.option("--interval", type=click.FloatRange(min=0.05), default=0.5, show_default=True,
              help="Seconds between looks with --follow.")
@click.option("--project-dir", type=click.Path(file_okay=False))
def logs_command(task: str, sweep_id: str | None, follow: bool, interval: float, project_dir: str | None) -> None:
    """Print TASK's output (stdout.log to stdout, stderr.log to stderr) of SWEEP_ID (default: the
    latest sweep). TASK is a task number (3 for task_003), a task dir name or a task id."""
    from hsm_core.monitor.follow import print_logs
    from hsm_core.monitor.status import locate_sweep
    from hsm_core.task_control import select_tasks

    sweep = locate_sweep(project_dir, sweep_id)
    records = sweep.records()
    chosen = select_tasks(task, records.values(), option="TASK")
    if len(chosen) != 1:
        from hsm_core.errors import HsmError

        raise HsmError(f"hsm logs shows one task, not {len(chosen)} ({task})", hint="name one task: hsm logs 3")
    rec = chosen[0]
    task_dir = sweep.record_dir(rec)
    if not task_dir.is_dir():
        # Its dir is made when it first starts (task_manifest.jsonl lists it until then): say so,
        # rather than print nothing as for a task that wrote nothing.
        click.echo(f"hsm: {task_dir.name} has not started yet ({rec.state}): no output"
                   + ("; waiting for it to start" if follow else ""), err=True)
    try:
        print_logs(task_dir, sys.stdout.buffer, sys.stderr.buffer, follow=follow, interval=interval)
    except KeyboardInterrupt:
        return


def register(cli: click.Group) -> None:
    """Add logs."""
    cli.add_command(logs_command)
