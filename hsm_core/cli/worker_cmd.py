"""``hsm worker``: pull-based workers (a replacement for ``wandb agent``), their status, submission."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from hsm_core.cli.resource_options import resource_options
from hsm_core.plugin import HsmError


def _registry() -> Any:
    from hsm_core.registry import get_registry

    return get_registry()


def _project(project_dir: str | None, registry: Any) -> Any:
    from hsm_core.config.project_config import load_project_config
    from hsm_core.config.project_root import resolve_project_root

    return load_project_config(resolve_project_root(project_dir), registry)


def _setup(sweep_file: str | None, project_dir: str | None, cluster: str, storage_root: str | None,
           registry_name: str | None) -> tuple[Any, Any, Any]:
    from hsm_core.workers.settings import resolve_settings
    from hsm_core.workers.worker import open_sweep

    if not sweep_file:
        raise HsmError("which sweep? pass --sweep FILE", hint="e.g. hsm worker --sweep sweeps/my_sweep.yaml")
    from hsm_core.config.project_root import resolve_project_root
    from hsm_core.sweep_file_path import sweep_file_path

    path = sweep_file_path(sweep_file, resolve_project_root(project_dir))
    if not path.is_file():
        raise HsmError(f"sweep file {sweep_file} does not exist")
    registry = _registry()
    project = _project(project_dir, registry)
    settings = resolve_settings(project.root, project.data, cluster=cluster, storage_root=storage_root,
                                registry=registry_name)
    from hsm_core.bulk_read import without_cycle_collection

    with without_cycle_collection():  # 100,000 configurations expanded: 0.3 s of collector passes
        return open_sweep(project, path, registry, settings), registry, settings


@click.group("worker", invoke_without_command=True)
@click.option("--sweep", "sweep_file", type=click.Path(dir_okay=False), help="The sweep file (YAML) to work on.")
@click.option("--cluster", default="local", show_default=True, envvar="HSM_CLUSTER",
              help="Name of this cluster: recorded with each claim, selects workers.clusters.NAME settings.")
@click.option("--wandb-buffer", is_flag=True,
              help="Run wandb offline in the task and sync at checkpoints and at the end (hsm-plugin-wandb-sync).")
@click.option("--feature", "features", multiple=True, metavar="NAME",
              help="A worker option a plugin provides (repeatable); --wandb-buffer is --feature wandb-buffer.")
@click.option("--max-tasks", type=click.IntRange(min=1), help="Stop after running N tasks.")
@click.option("--allow-behind", is_flag=True, help="Run even if the project is behind its git upstream.")
@click.option("--storage-root", type=click.Path(file_okay=False),
              help="Root of the shared output tree (default: $HSM_STORAGE_ROOT, workers.storage_root, the project's output dir).")
@click.option("--idle-exit", is_flag=True, help="Exit as soon as nothing is claimable, instead of watching other workers' claims.")
@click.option("--retry-failed", is_flag=True, help="Also run configurations whose last attempt failed.")
@click.option("--registry", "registry_name", help="Task registry asked before claiming (e.g. wandb); default workers.registry.")
@click.option("--status", "show_status", is_flag=True, help="Print the status table and exit (no GPU needed).")
@click.option("--json", "as_json", is_flag=True, help="With --status: machine-readable output.")
@click.option("--summary", is_flag=True, help="With --status: counts only, no table.")
@click.option("--all", "all_rows", is_flag=True, help="With --status: list every configuration, even in a long sweep.")
@click.option("--project-dir", type=click.Path(file_okay=False), help="Project root (default: found from the current dir).")
@click.pass_context
def worker_group(ctx: click.Context, sweep_file, cluster, wandb_buffer, features, max_tasks, allow_behind, storage_root,
                 idle_exit, retry_failed, registry_name, show_status, as_json, summary, all_rows, project_dir) -> None:
    """Claim and run the configurations of a sweep file until none is left.

    Start as many identical workers as you like (by hand, as an array job of your scheduler, or
    with `hsm worker submit`); they coordinate through lock files in the sweep directory.
    """
    if ctx.invoked_subcommand is not None:
        return
    setup, registry, settings = _setup(sweep_file, project_dir, cluster, storage_root, registry_name)
    if show_status:
        from hsm_core.workers.status import collect, render

        view = None
        if settings.registry:
            from hsm_core.workers.registries import RegistryView, load_task_registry

            impl = load_task_registry(registry, settings.registry, settings.registry_options,
                                      sweep_id=setup.sweep.sweep_id, project_root=setup.project.root,
                                      project_config=setup.project.data)
            view = RegistryView(impl, settings.registry, setup.sweep.sweep_id, lambda line: click.echo(line, err=True))
        table = collect(setup, view)
        if as_json:
            click.echo(json.dumps(table.to_json(), indent=1, default=str))
        else:
            render(table, all_rows=False if summary else (True if all_rows else None))
        return
    from hsm_core.workers.gitcheck import check_not_behind
    from hsm_core.workers.worker import Worker, WorkerOptions

    check_not_behind(setup.project.root, allow_behind)
    features = tuple(dict.fromkeys((*(("wandb-buffer",) if wandb_buffer else ()), *features)))
    worker = Worker(setup, registry, WorkerOptions(features=features, max_tasks=max_tasks, idle_exit=idle_exit,
                                                   retry_failed=retry_failed))
    report = worker.run()
    ctx.exit(report.exit_code)


@worker_group.command("submit")
@click.option("--sweep", "sweep_file", required=True, type=click.Path(dir_okay=False), help="The sweep file (YAML).")
@click.option("--workers", "-n", "count", required=True, type=click.IntRange(min=1), help="How many workers.")
@click.option("--sources", "-s", "source", default="hpc", show_default=True,
              help="Where the workers run: an installed batch scheduler (one array job; `hsm plugins` lists them), hpc "
                   "(hpc.system, else the scheduler found here), or local (background processes).")
@click.option("--cluster", default=None, help="Cluster name passed to the workers, and its hpc.clusters entry "
                                              "(default: the source's name).")
@resource_options("worker")
@click.option("--wandb-buffer", is_flag=True, help="Passed to every worker.")
@click.option("--feature", "features", multiple=True, metavar="NAME", help="Passed to every worker (repeatable).")
@click.option("--max-tasks", type=click.IntRange(min=1), help="Passed to every worker.")
@click.option("--allow-behind", is_flag=True, help="Skip the git check here and in the workers.")
@click.option("--storage-root", type=click.Path(file_okay=False), help="Passed to every worker.")
@click.option("--idle-exit", is_flag=True, help="Passed to every worker.")
@click.option("--retry-failed", is_flag=True, help="Passed to every worker.")
@click.option("--registry", "registry_name", help="Passed to every worker.")
@click.option("--dry-run", is_flag=True, help="Write the job script and print it; submit nothing.")
@click.option("--project-dir", type=click.Path(file_okay=False))
def submit_command(sweep_file, count, source, cluster, wandb_buffer, features, max_tasks, allow_behind, storage_root,
                   idle_exit, retry_failed, registry_name, dry_run, project_dir, resources) -> None:
    """Start N workers on SWEEP: one array job of N elements on a batch scheduler, or N local processes."""
    from hsm_core.workers.gitcheck import check_not_behind
    from hsm_core.workers.submit import SubmitRequest, scheduler_request, submit

    registry = _registry()
    from hsm_core.run_resources import from_command_line

    overrides = from_command_line(resources).values  # one vocabulary with hsm run's flags, checked alike
    kind, cluster, options = scheduler_request(source, _project(project_dir, registry).data, registry, cluster, overrides)
    setup, _registry_obj, settings = _setup(sweep_file, project_dir, cluster, storage_root, registry_name)
    check_not_behind(setup.project.root, allow_behind)
    setup.sweep.ensure(project_root=setup.project.root, sweep_file=setup.sweep_file, tasks=setup.tasks, cluster=cluster)
    args: list[str] = []
    if settings.storage_root is not None:
        args += ["--storage-root", str(settings.storage_root)]
    for flag, on in (("--wandb-buffer", wandb_buffer), ("--allow-behind", allow_behind), ("--idle-exit", idle_exit),
                     ("--retry-failed", retry_failed)):
        if on:
            args.append(flag)
    for name in features:
        args += ["--feature", name]
    if max_tasks:
        args += ["--max-tasks", str(max_tasks)]
    if registry_name:
        args += ["--registry", registry_name]
    req = SubmitRequest(setup.sweep, setup.project.root, setup.sweep_file, count, kind, cluster, args, options)
    result = submit(req, registry, setup.project.data, dry_run=dry_run)
    if result.script is not None and dry_run:
        click.echo(result.script.read_text(), nl=False)
        click.echo(f"# written to {result.script}; submit with: cd {result.script.parent} && {' '.join(result.command)}")
        return
    if dry_run:
        click.echo(f"would start {count} worker(s): {' '.join(result.command)}")
        return
    if result.source == "local":
        click.echo(f"Started {count} local worker(s): pids {' '.join(map(str, result.pids))}")
    else:
        click.echo(f"Submitted {count} worker(s) to {kind}: job {result.job_id} ({result.script})")
    click.echo(f"Status: hsm worker --sweep {sweep_file} --status")


def register(cli: click.Group) -> None:
    """Add worker (and worker submit)."""
    cli.add_command(worker_group)
