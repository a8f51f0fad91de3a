"""``hsm run`` (v2), ``hsm sweep`` (v1 spelling) and ``hsm complete``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from hsm_core.cli.resource_options import resource_options
from hsm_core.plugin import HsmError

DEFAULT_CONFIGS = ("sweeps/sweep_config.yaml", "sweeps/sweep.yaml", "sweep.yaml")


def _registry() -> Any:
    from hsm_core.registry import get_registry

    return get_registry()


def _project_root(project_dir: str | None) -> Path:
    from hsm_core.config.project_root import resolve_project_root

    return resolve_project_root(project_dir)


def _complete_config(config: str | None, root: Path) -> Path | None:
    """``hsm complete -c FILE``: the file, found from a sub-directory of the project too."""
    from hsm_core.sweep_file_path import sweep_file_path

    return sweep_file_path(config, root) if config else None


def _default_config(root: Path) -> Path:
    for cand in DEFAULT_CONFIGS:
        if (root / cand).exists():
            return root / cand
    raise HsmError("no sweep file given and none found", hint="pass --config FILE (e.g. sweeps/sweep_config.yaml)")


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


def _print_dry_run(info: dict[str, Any]) -> None:
    """The rich rendering of :func:`hsm_core.dry_run.describe_plan`."""
    from rich.table import Table

    console = _console()
    console.print(f"Total parameter combinations: {info['total_combinations']}\n")
    console.print("[bold]Dry Run Information[/bold]")
    table = Table(title="Parameter Combinations")
    table.add_column("Parameter")
    table.add_column("Values")
    for row in info["parameters"]:
        table.add_row(row["name"], row["values"])
    console.print(table)
    console.print("\nExecution Plan:")
    console.print(f"  Total combinations: {info['total_combinations']}")
    console.print(f"  Tasks to execute: {info['tasks_to_run']}")
    console.print(f"  Sources: {', '.join(r['name'] + ' (' + r['kind'] + ')' for r in info['sources'])}")
    console.print(f"  Tasks per source: ~{info['tasks_per_source']}")
    for reason, k in info["skipped"].items():
        console.print(f"  Skipped: {k} ({reason})")
    if info["first_command"]:
        console.print(f"  First command: {info['first_command']['shell']}", markup=False)
        console.print(f"  Working directory: {info['working_directory']}", markup=False)
        if info["hydra_app"]:
            console.print(f"  Hydra app: {info['hydra_app']}", markup=False)
    if info.get("early_stopping"):
        console.print(f"  Early stopping: {info['early_stopping']}", markup=False)
    if info.get("hydra_preflight"):
        console.print(f"  Hydra pre-flight: {info['hydra_preflight']}", markup=False)


def _run_plan(plan: Any, opts: Any, registry: Any, *, quiet: bool = False) -> None:
    """Carry out ``plan``; the sweep's lease (if the plan holds it) is given back however it ends."""
    try:
        _carry_out(plan, opts, registry, quiet=quiet)
    finally:
        plan.release_lease()


def _carry_out(plan: Any, opts: Any, registry: Any, *, quiet: bool = False) -> None:
    from hsm_core.lifecycle import execute

    console = _console()
    n = len(plan.to_run) + len(plan.to_adopt)
    verb = "Starting" if plan.new_sweep else "Completing"

    def header(plan: Any) -> None:
        # Said once the sweep exists: its id is final then (a run started in the same second may
        # have taken the one planned).
        console.print(f"{verb} sweep [bold]{plan.sweep.sweep_id}[/bold]: {n} task(s) on {opts.sources}")
        console.print(f"Sweep directory: {plan.sweep.path}", markup=False)
        for reason, k in plan.skipped.items():
            console.print(f"Skipped {k} task(s): {reason}")

    if n == 0:
        from hsm_core.lifecycle import exit_code, settle_sweep_status

        header(plan)
        settle_sweep_status(plan)
        console.print("Nothing to run.")
        if exit_code(plan, {}):
            console.print(f"Some tasks failed: hsm monitor errors {plan.sweep.sweep_id}; retry with hsm complete {plan.sweep.sweep_id} --retry-failed")
            raise SystemExit(1)
        return
    progress = None
    if sys.stderr.isatty() and not opts.show_output and not quiet:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=_console_err(),
        )
        bar = progress.add_task(plan.sweep.sweep_id, total=n)

        def on_update(rec: Any) -> None:
            from hsm_core.plugin import TaskState

            if TaskState(rec.state).finished:
                progress.advance(bar)

    else:

        def on_update(rec: Any) -> None:
            if rec.state == "pending" and rec.attempt:  # back in the queue after a failure: retries
                click.echo(f"{rec.name} attempt {rec.attempt} failed (exit code {rec.exit_code}) on {rec.source}; "
                           f"retrying (logs/retries.log)", err=True)
            elif rec.state not in ("completed", "submitted", "running", "pending"):
                click.echo(f"{rec.name} {rec.state} (exit code {rec.exit_code}) on {rec.source}", err=True)

    print_err = progress.console.print if progress else _console_err().print

    def on_outage(event: str, outage: Any) -> None:
        # Once when a source stops answering (what waits on it, until when, what to do), when
        # that changes, and once when it answers again: never a line per failed poll.
        from rich.text import Text

        from hsm_core.outages import describe, shown

        if event == "back":
            import time

            from hsm_core.durations import fmt_duration

            took = fmt_duration(time.time() - outage.since)
            text = f"{outage.source} answers again after {took} ({outage.failures_text()} meanwhile)"
            print_err(Text(text, style="green"), soft_wrap=True)
            return
        lines = describe(shown(outage, plan.sweep.sweep_id), hints=bool(outage.tasks))
        print_err(Text("\n".join(lines), style="yellow"), soft_wrap=True)

    try:
        if progress:
            progress.start()
        counts = execute(plan, opts, registry, on_update=on_update, on_ready=header, on_outage=on_outage,
                         on_fail_fast=lambda line: print_err(line, style="yellow", soft_wrap=True, markup=False))
    finally:
        if progress:
            progress.stop()
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    if plan.lease is not None and plan.lease.lost:
        console.print(f"This controller's tasks: {summary}")
        raise plan.lease.lost_error()
    console.print(f"Done: {summary}")
    from hsm_core.adaptive import best_trial, describe_best

    best = best_trial(plan.sweep.path)  # an adaptive sweep's result, in one line
    if best is not None:
        console.print(f"Best: {describe_best(best)}", markup=False, soft_wrap=True)
    console.print(f"Status: hsm status {plan.sweep.sweep_id}")
    if counts.get("preempted"):
        # Not a failure (the exit code stays 0), but not done either: say what resumes them.
        console.print(f"{counts['preempted']} task(s) preempted: resume with hsm complete {plan.sweep.sweep_id} "
                      "(from their checkpoints, if they saved one)")
    from hsm_core.lifecycle import exit_code

    if exit_code(plan, counts):
        if counts and set(counts) == {"cancelled"}:
            console.print("Every task was cancelled.")
        else:
            console.print(f"Some tasks failed: hsm monitor errors {plan.sweep.sweep_id}; retry with hsm complete {plan.sweep.sweep_id} --retry-failed")
        raise SystemExit(1)


def _failure_categories(prefix: str) -> list[str]:
    """The failure categories of ``hsm monitor errors`` starting with ``prefix`` (Tab after --only)."""
    from hsm_core.monitor.errors import CATEGORY_TITLES

    return [c for c in CATEGORY_TITLES if c.startswith(prefix)]


def _console_err() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _common_run(
    config: str | None,
    sources: str | None,
    parallel_limit: int | None,
    count_only: bool,
    dry_run: bool,
    max_runs: int | None,
    show_output: bool,
    strategy: str | None,
    sweep_id: str | None,
    no_wait: bool,
    project_dir: str | None,
    overrides: dict[str, Any] | None = None,
    no_verify_sync: bool = False,
    as_json: bool = False,
    resources: dict[str, Any] | None = None,
    after: str | None = None,
) -> None:
    from hsm_core.lifecycle import ExecOptions, plan_run
    from hsm_core.sweep import count, load_spec

    if as_json and not (count_only or dry_run):
        raise HsmError("--json goes with --count-only or --dry-run", hint="follow a running sweep with: hsm status --json")
    registry = _registry()
    root = _project_root(project_dir)
    from hsm_core.sweep_file_path import sweep_file_path

    cfg = sweep_file_path(config, root) if config else _default_config(root)
    if count_only:
        spec = load_spec(cfg, registry)
        total = count(spec, registry)
        if as_json:
            click.echo(json.dumps({"config_file": str(cfg), "total_combinations": total}))
        else:
            click.echo(f"Total parameter combinations: {total}")
        return
    plan = plan_run(cfg, registry, project_root=root, sweep_id=sweep_id, max_runs=max_runs)
    from hsm_core.preflight import check_run, sources_setting, strategy_setting

    # Everything that can be checked is checked now, for --dry-run too: a refused run writes nothing.
    chosen_sources = sources_setting(sources, plan.project, plan.spec)
    chosen_strategy = strategy_setting(strategy, plan.project, plan.spec)
    requests = check_run(plan.project, plan.spec, [(r.name, r.params) for r in plan.to_run], registry,
                         sources=chosen_sources, strategy=chosen_strategy)
    sources, strategy = chosen_sources[0], chosen_strategy[0]
    if after:
        overrides = {**(overrides or {}), "after": _after_for(after, requests, registry)}
    command_line_resources = _checked_resources(plan, requests, registry, resources)
    if dry_run:
        from hsm_core.dry_run import describe_plan
        from hsm_core.dry_run_scripts import job_script_plans
        from hsm_core.hydra_check import hydra_preflight
        from hsm_core.run_resources import run_resources

        info = describe_plan(plan, registry, sources, strategy, count(plan.spec, registry))
        info["hydra_preflight"] = hydra_preflight(plan.project, plan.spec, [(r.name, r.params) for r in plan.to_run])
        chosen = run_resources(plan.spec, registry, command_line_resources)
        info["resources"] = chosen.to_json()
        info["job_scripts"] = job_script_plans(plan, registry, requests, chosen, info["tasks_per_source"])
        if as_json:
            click.echo(json.dumps(info, indent=1, default=str))
        else:
            _print_dry_run(info)
            _print_job_scripts(info["job_scripts"])
        return
    opts = ExecOptions(
        sources=sources,
        strategy=strategy,
        parallel_limit=parallel_limit,
        show_output=show_output,
        no_wait=no_wait,
        command_line=" ".join(["hsm", *sys.argv[1:]]),
        verify_sync=not no_verify_sync,
    )
    if overrides:
        opts.source_overrides = overrides
    opts.resources = command_line_resources
    _run_plan(plan, opts, registry)


def _after_for(after: str, requests: Any, registry: Any) -> str:
    """``--after`` is for batch schedulers: a run on none of them is refused (exit 2). Which
    sweep or job it names is checked by the scheduler's source (hsm_core.plugin.arrayjob.dependencies)."""
    from hsm_core.plugin import ComputeSourceRecord

    if not any(getattr(registry.get(ComputeSourceRecord.kind, r.kind), "batch_scheduler", False) for r in requests):
        raise HsmError(f"--after {after}: only jobs of a batch scheduler can wait for other jobs",
                       hint="run with --sources hpc (a batch scheduler), or start this sweep once the other has ended")
    return after


def _sweep_file_walltime_note(spec: Any) -> str | None:
    """The walltime note for the sweep file's ``resources.walltime`` (``file:line resources.walltime``
    in place of the flag), when the command line gave none."""
    from hsm_core.config.lines import display_path, line_of
    from hsm_core.walltime_note import ambiguous_walltime_note

    section = spec.settings.get("resources")
    value = section.get("walltime") if isinstance(section, dict) else None
    if value in (None, ""):
        return None
    where = "resources.walltime"
    if spec.path:
        where = f"{display_path(spec.path)}:{line_of(spec.settings, ['resources', 'walltime'])} {where}"
    return ambiguous_walltime_note(where, value)


def _checked_resources(plan: Any, requests: Any, registry: Any, given: dict[str, Any] | None,
                       earlier: tuple[dict[str, Any], str] | None = None) -> Any:
    """The command line's resources (over ``earlier``: those of the run that started the sweep, and
    the file recording them), checked with the sweep file's against the chosen sources: a flag no
    source can honour stops the run (exit 2), any other resource a source ignores is a one-line
    warning."""
    from hsm_core.run_resources import check_directives, from_command_line, run_resources, unused_resources

    command_line = from_command_line(given or {})
    from hsm_core.walltime_note import ambiguous_walltime_note

    walltime = (given or {}).get("walltime")
    note = ambiguous_walltime_note("--walltime", walltime) if walltime else _sweep_file_walltime_note(plan.spec)
    if note:
        click.echo(f"Note: {note}", err=True)
    if earlier and earlier[0]:
        first = from_command_line(earlier[0])
        first.origins = {k: f"{earlier[1]}:" for k in first.origins}  # said as a file's, never fatal
        command_line = command_line.over(first)
    chosen = run_resources(plan.spec, registry, command_line)
    check_directives(requests, registry, chosen)
    from hsm_core.resource_check import check_expressible, check_rule_parameters

    check_rule_parameters(plan.spec, registry)
    check_expressible(requests, registry, chosen, plan.project)
    for line, fatal in unused_resources(requests, registry, chosen):
        if fatal:
            raise HsmError(line, hint="choose a batch scheduler with --sources (e.g. --sources hpc), or drop the flag")
        click.echo(f"Warning: {line}", err=True)
    return command_line


def _print_job_scripts(plans: list[dict[str, Any]]) -> None:
    """The job scripts ``--dry-run`` would submit and each source's array plan (nothing submitted)."""
    for p in plans:
        click.echo(f"\nJob scripts of {p['source']} ({p['scheduler']}), nothing submitted:")
        for line in p["plan"]:
            click.echo(f"  {line}")
        for chunk in p["chunks"]:
            if chunk.get("script") is None:
                continue
            click.echo(f"----- {chunk['script_file']} ({chunk['tasks']} task(s)) -----")
            click.echo(chunk["script"], nl=not chunk["script"].endswith("\n"))


_run_options = [
    click.option("--config", "-c", "config", type=click.Path(dir_okay=False), help="Sweep file (default: sweeps/sweep_config.yaml)."),
    click.option("--count-only", is_flag=True, help="Print the number of combinations and exit."),
    click.option("--dry-run", is_flag=True, help="Show parameters and the execution plan; run nothing."),
    click.option("--max-runs", type=click.IntRange(min=1), help="Run only the first N combinations."),
    click.option("--show-output", is_flag=True, help="Stream task output to the terminal."),
    click.option("--strategy", help="round_robin (default), least_loaded, random, or a plugin's."),
    click.option("--sweep-id", help="Name of the sweep (default: sweep_YYYYMMDD_HHMMSS)."),
    click.option("--no-wait", is_flag=True, help="Exit once tasks are submitted (schedulers); follow with hsm status."),
    click.option("--project-dir", type=click.Path(file_okay=False), help="Project root (default: found from the current dir)."),
    click.option("--no-verify-sync", is_flag=True, help="Skip the check that remote (ssh:) projects match this one."),
    click.option("--json", "as_json", is_flag=True, help="With --count-only or --dry-run: print the result as JSON."),
    # A flag of hsm complete typed here by habit: one line saying where it belongs, not click's
    # "no such option".
    click.option("--retry-failed", is_flag=True, hidden=True, expose_value=False, is_eager=True,
                 callback=lambda ctx, param, value: _misplaced_retry_failed(ctx) if value else None),
]


def _misplaced_retry_failed(ctx: click.Context) -> None:
    raise HsmError(f"hsm {ctx.info_name} starts a new sweep; --retry-failed is an option of hsm complete",
                   hint="retry the latest sweep's failed tasks with: hsm complete --retry-failed; "
                        "another sweep's with: hsm complete SWEEP_ID --retry-failed")


def _with_run_options(fn: Any) -> Any:
    for opt in reversed(_run_options):
        fn = opt(fn)
    return fn


@click.command("run")
@click.option("--sources", "-s", help='Where to run: "local", "local:4", "ssh:host:8", "hpc", "hpc:cluster", comma separated.')
@click.option("--parallel-limit", type=click.IntRange(min=1), help="Cap on tasks running at once over all sources.")
@click.option("--after", metavar="SWEEP_ID|JOB_ID", help="Batch schedulers: start this sweep's jobs once these sweeps' (or jobs') jobs ended; comma separated.")
@_with_run_options
@resource_options()
def run_command(sources, parallel_limit, after, config, count_only, dry_run, max_runs, show_output, strategy, sweep_id, no_wait, project_dir,
                no_verify_sync, as_json, resources):
    """Run every combination of a sweep file as a task."""
    _common_run(config, sources, parallel_limit, count_only, dry_run, max_runs, show_output, strategy, sweep_id, no_wait, project_dir,
                no_verify_sync=no_verify_sync, as_json=as_json, resources=resources, after=after)


@click.command("sweep")
@click.argument("action", required=False, type=click.Choice(["run"]))
@click.option("--mode", type=click.Choice(["local", "array", "remote", "distributed"]), default="local", show_default=True,
              help="v1 spelling of --sources: local processes, an HPC array job, or one SSH remote.")
@click.option("--parallel-jobs", type=click.IntRange(min=1), help="Parallel local jobs (v1 spelling of local:N).")
@click.option("--remote", help="Remote name for --mode remote.")
@click.option("--walltime", help="Walltime for --mode array, e.g. 04:00:00.")
@click.option("--sources", "-s", help="As in hsm run (overrides --mode).")
@_with_run_options
def sweep_command(action, mode, parallel_jobs, remote, walltime, sources, config, count_only, dry_run, max_runs, show_output, strategy, sweep_id, no_wait, project_dir, no_verify_sync,
                  as_json):
    """Run a sweep (v1 spelling; same as hsm run)."""
    if not sources:
        if mode == "local":
            sources = f"local:{parallel_jobs}" if parallel_jobs else "local"
        elif mode == "array":
            sources = "hpc"
        elif mode == "remote":
            if not remote:
                raise HsmError("--mode remote needs --remote NAME", hint="list remotes with: hsm remote list")
            sources = f"ssh:{remote}"
        else:
            sources = None
    # v1's --walltime is hsm run's: over the sweep file's resources, over hsm_config.yaml.
    _common_run(config, sources, None, count_only, dry_run, max_runs, show_output, strategy, sweep_id, no_wait, project_dir,
                no_verify_sync=no_verify_sync, as_json=as_json, resources={"walltime": walltime})


@click.command("complete")
@click.argument("sweep_id", required=False)
@click.option("--sources", "-s", help="Where to run the missing tasks (default: the sweep's own sources).")
@click.option("--retry-failed", is_flag=True, help="Also run tasks that failed.")
@click.option("--only", "only_category", metavar="CATEGORY", shell_complete=lambda ctx, param, text: _failure_categories(text),
              help="With --retry-failed: run only the tasks that failed with CATEGORY (out_of_memory, nccl_error, ... "
                   "as hsm monitor errors shows them), nothing else.")
@click.option("--dry-run", is_flag=True, help="Show what would run; run nothing.")
@click.option("--parallel-limit", type=click.IntRange(min=1))
@click.option("--strategy", help="Dispatch strategy.")
@click.option("--show-output", is_flag=True)
@click.option("--no-wait", is_flag=True)
@click.option("--wait-for-controller", "wait_for_lease", is_flag=True,
              help="If another hsm run/complete is running the sweep, wait for it to end, then run what it left "
                   "(default: stop at once, exit 2).")
@click.option("--config", "-c", "config", type=click.Path(dir_okay=False), help="An edited sweep file to complete against.")
@click.option("--project-dir", type=click.Path(file_okay=False))
@click.option("--no-verify-sync", is_flag=True, help="Skip the check that remote (ssh:) projects match this one.")
@resource_options()
def complete_command(sweep_id, sources, retry_failed, only_category, dry_run, parallel_limit, strategy, show_output, no_wait,
                     wait_for_lease, config, project_dir, no_verify_sync, resources):
    """Run the tasks of SWEEP_ID (default: the latest sweep) that have not completed (never re-runs completed ones).

    One controller runs a sweep at a time: while another hsm run/complete runs it, this one stops
    at once (exit 2) saying who does, or with --wait-for-controller waits for it."""
    from hsm_core.lifecycle import plan_complete

    if only_category and not retry_failed:
        raise HsmError("--only CATEGORY narrows --retry-failed", hint=f"hsm complete {sweep_id + ' ' if sweep_id else ''}--retry-failed --only {only_category}")
    registry = _registry()
    root = _project_root(project_dir)

    def waiting(holder: Any) -> None:
        what = f"sweep {sweep_id}" if sweep_id else "the latest sweep"
        click.echo(f"hsm: {what} is being run by {holder.describe()}; waiting for it to end (Ctrl-C to stop waiting)",
                   err=True)

    plan = plan_complete(sweep_id, registry, project_root=root, retry_failed=retry_failed, config_file=_complete_config(config, root),
                         take_lease=not dry_run, wait=wait_for_lease, on_wait=waiting)
    sweep_id = plan.sweep.sweep_id
    if config is None:
        from hsm_core.edited_sweep_file import edited_file_note

        note = edited_file_note(plan.sweep.path, plan.sweep.read_metadata(), sweep_id,
                                (r.task_id for r in plan.records.values()), registry)
        if note:
            click.echo(note, err=True)
    try:
        if only_category:
            from hsm_core.retries import keep_only_category

            keep_only_category(plan, only_category)
        _complete(plan, sweep_id, registry, sources, dry_run, parallel_limit, strategy, show_output, no_wait, no_verify_sync,
                  resources)
    finally:
        plan.release_lease()


def _complete(plan: Any, sweep_id: str, registry: Any, sources: str | None, dry_run: bool, parallel_limit: int | None,
              strategy: str | None, show_output: bool, no_wait: bool, no_verify_sync: bool,
              resources: dict[str, Any] | None = None) -> None:
    from hsm_core.lifecycle import ExecOptions

    meta = plan.sweep.read_metadata()
    from hsm_core.config.lines import display_path
    from hsm_core.preflight import Origin, check_run

    meta_file = display_path(plan.sweep.path / "sweep_metadata.yaml")
    chosen_sources = (sources, Origin("--sources")) if sources else (meta.get("sources") or "local", Origin("sources", meta_file))
    chosen_strategy = (strategy, Origin("--strategy")) if strategy else (meta.get("strategy") or "round_robin", Origin("strategy", meta_file))
    requests = check_run(plan.project, plan.spec, [(r.name, r.params) for r in plan.to_run], registry,
                         sources=chosen_sources, strategy=chosen_strategy)
    sources, strategy = chosen_sources[0], chosen_strategy[0]
    # The run's --gpus/--walltime/... hold for its completion; flags given now win over them.
    command_line_resources = _checked_resources(plan, requests, registry, resources,
                                                earlier=(meta.get("command_line_resources") or {}, meta_file))
    console = _console()
    from hsm_core.unfollowed import unfollowed, unfollowed_notes

    elsewhere = unfollowed(plan.to_adopt, plan.sweep, sources, plan.project.data, registry) if plan.to_adopt else {}
    for line in unfollowed_notes(elsewhere, sweep_id, sources, meta.get("sources"), plan.project.data, registry):
        click.echo(line, err=True)
    if dry_run:
        from hsm_core.hydra_check import hydra_preflight

        hydra_note = hydra_preflight(plan.project, plan.spec, [(r.name, r.params) for r in plan.to_run])
        console.print(f"Sweep {sweep_id}: {len(plan.to_run)} task(s) would run on {sources}")
        if hydra_note:
            console.print(f"  Hydra pre-flight: {hydra_note}", markup=False)
        for reason, k in plan.skipped.items():
            console.print(f"  skipped {k}: {reason}")
        watched = len(plan.to_adopt) - sum(len(v) for v in elsewhere.values())
        if watched:
            console.print(f"  {watched} still running (would be watched, not re-run)")
        for rec in plan.to_run[:50]:
            console.print(f"  {rec.name} [{rec.state}] {rec.params}", markup=False)
        if len(plan.to_run) > 50:
            console.print(f"  ... and {len(plan.to_run) - 50} more")
        from hsm_core.lease import current_holder

        holder = current_holder(plan.sweep.path)
        if holder is not None:
            click.echo(f"  being run now by {holder.describe()}: hsm complete would stop (or wait, with --wait-for-controller)")
        return
    opts = ExecOptions(
        sources=sources,
        strategy=strategy,
        parallel_limit=parallel_limit,
        show_output=show_output,
        no_wait=no_wait,
        command_line=" ".join(["hsm", *sys.argv[1:]]),
        verify_sync=not no_verify_sync,
    )
    opts.resources = command_line_resources
    _run_plan(plan, opts, registry)


def register(cli: click.Group) -> None:
    """Add run, sweep and complete."""
    cli.add_command(run_command)
    cli.add_command(sweep_command)
    cli.add_command(complete_command)
