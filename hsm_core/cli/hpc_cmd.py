"""``hsm cancel``, ``hsm queue`` and ``hsm test TARGET``: arguments and output only.

The work is the library's: :mod:`hsm_core.cancel` cancels a sweep's tasks through its sources,
:mod:`hsm_core.targets` makes the source a target names and lists a scheduler's queue,
:mod:`hsm_core.target_check` runs the checks of the source a target names.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click


def _registry() -> Any:
    from hsm_core.registry import get_registry

    return get_registry()


def _root(project_dir: str | None) -> Path:
    from hsm_core.config.project_root import resolve_project_root

    return resolve_project_root(project_dir)


def _project(project_dir: str | None, registry: Any) -> Any:
    from hsm_core.config.project_config import load_project_config

    return load_project_config(_root(project_dir), registry)


@click.command("cancel")
@click.argument("sweep_id", required=False)
@click.option("--wait", type=float, default=60.0, show_default=True, help="Seconds to wait for the tasks to stop.")
@click.option("--tasks", metavar="LIST", help="Only these tasks: numbers (3 is task_003), ranges, dir names or ids: 3,5-7.")
@click.option("--project-dir", type=click.Path(file_okay=False))
def cancel_command(sweep_id: str | None, wait: float, tasks: str | None, project_dir: str | None) -> None:
    """Cancel the queued and running tasks of SWEEP_ID (default: the latest sweep; scheduler jobs are cancelled through the scheduler)."""
    from hsm_core.cancel import cancel_sweep, refuse_worker_sweep
    from hsm_core.sweep_select import resolve_sweep

    registry = _registry()
    project = _project(project_dir, registry)
    sweep = resolve_sweep(project, sweep_id)
    sweep_id = sweep.sweep_id
    refuse_worker_sweep(sweep, sweep.read_metadata(), registry)
    only = None
    if tasks is not None:
        from hsm_core.task_control import select_tasks

        only = {r.task_id for r in select_tasks(tasks, sweep.records().values())}
    counts = cancel_sweep(project, sweep, registry, wait=wait, echo=click.echo, only=only)
    if not counts and only is not None:
        click.echo(f"Sweep {sweep_id}: none of these tasks is queued or running; nothing cancelled.")
        return
    if not counts:
        click.echo(f"Sweep {sweep_id}: nothing queued or running; marked cancelled.")
        return
    parts = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    click.echo(f"Sweep {sweep_id}: {parts}. Continue later with: hsm complete {sweep_id}")


@click.command("queue")
@click.argument("sweep_id", required=False)
@click.option("--cluster", help="A cluster from hpc.clusters (default: the hpc section / detected scheduler).")
@click.option("--all", "ended", is_flag=True, help="Also the jobs that ended and the scheduler still remembers.")
@click.option("--watch", is_flag=True, help="Refresh until Ctrl-C.")
@click.option("--interval", type=float, default=5.0, show_default=True, help="Seconds between refreshes with --watch.")
@click.option("--project-dir", type=click.Path(file_okay=False))
def queue_command(sweep_id: str | None, cluster: str | None, ended: bool, watch: bool, interval: float, project_dir: str | None) -> None:
    """Show your jobs still queued or running in the batch scheduler (hpc.system, or the one found
    here); with SWEEP_ID only that sweep's array jobs; --all adds the ended ones."""
    from hsm_core.targets import queue_listing, scheduler_source, sweep_job_ids

    registry = _registry()
    project = _project(project_dir, registry)
    source = scheduler_source(f"hpc:{cluster}" if cluster else "hpc", project, registry)
    job_ids: tuple[str, ...] = ()
    if sweep_id:
        from hsm_core.sweep_select import resolve_sweep

        job_ids = sweep_job_ids(resolve_sweep(project, sweep_id).path, source)
    try:
        while True:
            listing = queue_listing(source, job_ids, ended=ended)
            if watch:
                click.clear()
                click.echo(f"{source.scheduler_name} queue ({' '.join(source.queue_argv())}), every {interval:g}s; "
                           f"Ctrl-C to stop  {time.strftime('%H:%M:%S')}")
            click.echo(listing.rstrip() or "(no jobs)")
            if not watch:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        return


@click.command("test")
@click.argument("target")
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Seconds to wait for the test job.")
@click.option("--project-dir", type=click.Path(file_okay=False))
def test_command(target: str, timeout: float, project_dir: str | None) -> None:
    """Check a compute target: hpc, hpc:NAME, an installed scheduler, or what a plugin adds (ssh:NAME).

    The source the target names runs its own checks (ComputeSource.test).
    """
    from hsm_core.target_check import check_target

    if not check_target(target, _root(project_dir), _registry(), timeout=timeout, echo=click.echo):
        click.echo(f"{target}: some checks failed (see above).", err=True)
        click.get_current_context().exit(1)
    click.echo("All checks passed.")


def register(cli: click.Group) -> None:
    """Add cancel, queue and test."""
    cli.add_command(cancel_command)
    cli.add_command(queue_command)
    cli.add_command(test_command)
