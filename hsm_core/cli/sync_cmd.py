"""``hsm sync``: init, list, run/to (one or more targets, --continuous), pull.

The sync guide's commands. Plugins add subcommands to this group (the wandb plugin adds
``hsm sync prune``) through ``hsm_register_commands``: core's commands are registered first, so
``cli.commands["sync"]`` exists when plugins run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from hsm_core.plugin import HsmError

PROJECT_DIR = click.option("--project-dir", type=click.Path(file_okay=False),
                           help="Project root (default: found from the current directory).")


def _root(project_dir: str | None) -> Path:
    from hsm_core.config.project_root import resolve_project_root

    return resolve_project_root(project_dir)


@click.group("sync", invoke_without_command=True)
@click.option("--target", "group_targets", multiple=True, hidden=True)
@click.option("--force", is_flag=True, hidden=True)
@click.pass_context
def sync_group(ctx: click.Context, group_targets: tuple[str, ...], force: bool) -> None:
    """Copy sweep results and W&B runs to other machines (.hsm/sync_config.yaml).

    \b
      hsm sync init                      write .hsm/sync_config.yaml from a template
      hsm sync list                      show the configured targets
      hsm sync to SWEEP_ID [--target T]  sync a sweep (also: hsm sync run)
      hsm sync pull --from NAME:/path    fetch an experiment's artifacts
    """
    if ctx.invoked_subcommand is not None:
        return
    ssh_targets = [t for t in group_targets if t.startswith("ssh:")]
    if ssh_targets:
        # The v2 guide's project push, `hsm sync --force --target ssh:NAME`, is the ssh plugin's
        # `hsm remote sync NAME`.
        root_cli = ctx.find_root().command
        remote = getattr(root_cli, "commands", {}).get("remote")
        push = getattr(remote, "commands", {}).get("sync") if remote is not None else None
        if push is None:
            from hsm_core.install_hints import install_hint

            raise HsmError("pushing the project to an SSH host needs the ssh plugin",
                           hint=f"{install_hint('hsm-plugin-ssh')}, then: hsm remote sync NAME")
        for t in ssh_targets:
            push.main(args=[t.split(":", 1)[1], *(["--force"] if force else [])], prog_name="hsm remote sync",
                      standalone_mode=False, obj=ctx.obj)
        return
    if group_targets:
        raise HsmError("give a sweep id: hsm sync to SWEEP_ID --target NAME")
    click.echo(ctx.get_help())


@sync_group.command("init")
@PROJECT_DIR
def init_command(project_dir: str | None) -> None:
    """Write .hsm/sync_config.yaml from a commented template (never overwrites it)."""
    from hsm_core.sync.config import CONFIG_REL, write_template

    path, written = write_template(_root(project_dir))
    if written:
        click.echo(f"Created {CONFIG_REL}: edit it to add your targets, then check them with 'hsm sync list'.")
    else:
        click.echo(f"{CONFIG_REL} already exists; left unchanged ('hsm sync list' shows what it holds).")


@sync_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@PROJECT_DIR
def list_command(as_json: bool, project_dir: str | None) -> None:
    """Show the configured sync targets and their settings."""
    from hsm_core.sync.config import load_sync_config

    cfg = load_sync_config(_root(project_dir))
    if as_json:
        out = {"default_target": cfg.default_target, "targets": {
            n: {"where": t.describe(), "paths": t.paths, "options": t.options, "transport": t.transport}
            for n, t in cfg.targets.items()}}
        click.echo(json.dumps(out, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    if not cfg.targets:
        click.echo(f"No targets in {cfg.shown}: add one under sync_targets.")
        return
    table = Table(title=f"Sync targets ({cfg.shown})")
    for col in ("Target", "Host", "Paths", "Options"):
        table.add_column(col)
    for name, t in sorted(cfg.targets.items()):
        label = name + (" (default)" if name == cfg.default_target else "")
        paths = "\n".join(f"{k}: {v}" for k, v in t.paths.items()) or "-"
        opts = "\n".join(f"{k}: {'unlimited' if v is None else v}" for k, v in t.options.items())
        table.add_row(label, t.describe(), paths, opts)
    Console(highlight=False, width=max(100, Console().width)).print(table)


def _sync_options(f):  # type: ignore[no-untyped-def]
    for deco in reversed([
        click.argument("sweep_id", required=False),
        click.option("--target", "-t", "targets", multiple=True, help="Target name (repeat for several; default: default_target)."),
        click.option("--dry-run", is_flag=True, help="Show what would be sent; transfer nothing."),
        click.option("--sweep-only", is_flag=True, help="Only the sweep directory (config, logs, status), no W&B runs."),
        click.option("--wandb-only", is_flag=True, help="Only W&B runs, not the sweep directory."),
        click.option("--all-versions", is_flag=True, help="Every artifact version, not just the latest."),
        click.option("--continuous", is_flag=True, help="Keep syncing as tasks finish, until the sweep is done."),
        click.option("--interval", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
                     help="--continuous: seconds between syncs while tasks run (a finished task syncs at once)."),
        click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON."),
        PROJECT_DIR,
    ]):
        f = deco(f)
    return f


def _do_sync(sweep_id: str | None, targets: tuple[str, ...], dry_run: bool, sweep_only: bool, wandb_only: bool,
             all_versions: bool, continuous: bool, interval: float, as_json: bool, project_dir: str | None) -> None:
    from hsm_core.plugin import locate_sweep
    from hsm_core.plugins import get_registry
    from hsm_core.sync.config import effective_options, load_sync_config
    from hsm_core.sync.runner import SyncFlags, run_continuous, run_sync, summary_lines

    root = _root(project_dir)
    cfg = load_sync_config(root)
    chosen = cfg.select(targets)
    flags = SyncFlags(dry_run=dry_run, sweep_only=sweep_only, wandb_only=wandb_only, all_versions=all_versions)
    for t in chosen:  # flag conflicts fail before anything connects
        effective_options(t, sweep_only=sweep_only, wandb_only=wandb_only, all_versions=all_versions)
    loc = locate_sweep(sweep_id, root)
    registry = get_registry()
    show_progress = sys.stderr.isatty() and not as_json
    if continuous:
        if dry_run:
            raise HsmError("--continuous and --dry-run exclude each other")

        def on_round(n: int, reports: list) -> None:
            if as_json:
                return
            for r in reports:
                sent = len([i for i in r.sent])
                click.echo(f"[round {n}] {r.target}: {sent} item(s) sent, {r.files} file(s), "
                           f"{len(r.skipped)} skipped" + (f", {len(r.failed)} FAILED" if r.failed else "")
                           + (f" - {r.error}" if r.error else ""))

        rounds = run_continuous(loc, chosen, flags, registry, interval=interval, show_progress=show_progress,
                                on_round=on_round)
        reports = rounds[-1] if rounds else []
        if as_json:
            click.echo(json.dumps([[r.to_json() for r in rep] for rep in rounds], indent=1))
        else:
            click.echo(f"Sweep {loc.sweep_id} is done; synced in {len(rounds)} round(s).")
            for r in reports:
                for line in summary_lines(r):
                    click.echo(line)
    else:
        reports = run_sync(loc, chosen, flags, registry, show_progress=show_progress)
        if as_json:
            click.echo(json.dumps([r.to_json() for r in reports], indent=1))
        else:
            for r in reports:
                for line in summary_lines(r):
                    click.echo(line)
    errors = [r for r in reports if r.error]
    if errors and len(errors) == len(reports):
        raise HsmError(errors[0].error or "sync failed")
    if errors or any(r.failed for r in reports):
        sys.exit(1)


@sync_group.command("run")
@_sync_options
def run_command(**kwargs) -> None:  # type: ignore[no-untyped-def]
    """Sync SWEEP_ID (default: the most recent sweep) to the target(s)."""
    _do_sync(**kwargs)


@sync_group.command("to")
@_sync_options
def to_command(**kwargs) -> None:  # type: ignore[no-untyped-def]
    """Sync SWEEP_ID to the target(s) (same as 'hsm sync run')."""
    _do_sync(**kwargs)


@sync_group.command("pull")
@click.option("--from", "from_", required=True, metavar="NAME:/PATH",
              help="Host (target, remote, or user@host) and experiment directory, e.g. isc:/shared/artifacts/exp1.")
@click.option("--only", default=None, help="Comma-separated subdirectories (e.g. tensorboard,checkpoints).")
@click.option("--latest-checkpoint", is_flag=True, help="Of checkpoints/, only the newest file.")
@click.option("--dest", type=click.Path(file_okay=False), default="artifacts", show_default=True,
              help="Local directory; the experiment lands in DEST/<experiment>/.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="SSH port (overrides the configured one).")
@click.option("--identity-file", "-i", default=None, help="SSH private key.")
@click.option("--dry-run", is_flag=True, help="Show what would be copied.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@PROJECT_DIR
def pull_command(from_: str, only: str | None, latest_checkpoint: bool, dest: str, port: int | None,
                 identity_file: str | None, dry_run: bool, as_json: bool, project_dir: str | None) -> None:
    """Copy an experiment's artifacts (logs, TensorBoard, checkpoints) from a remote host.

    Incremental and resumable: a second pull copies only what changed; an interrupted one resumes.
    """
    from hsm_core.config.project_config import load_project_config
    from hsm_core.sync.pull import pull_artifacts, resolve_source
    from hsm_core.sync.runner import human_bytes

    root = _root(project_dir)
    project = load_project_config(root)
    source = resolve_source(from_, root, project.data, port=port, identity_file=identity_file)
    parts = [p.strip().strip("/") for p in (only or "").split(",") if p.strip()]
    dest_path = Path(dest).expanduser()
    if not dest_path.is_absolute():
        dest_path = Path.cwd() / dest_path
    report = pull_artifacts(source, dest_path, only=parts, latest_checkpoint=latest_checkpoint, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps({"source": report.source, "dest": str(report.dest), "files": report.files,
                               "bytes": report.bytes, "parts": {k: {"files": r.files, "bytes": r.bytes, "changed": r.changed}
                                                                for k, r in report.parts}, "notes": report.notes}, indent=1))
        return
    verb = "Would copy" if dry_run else "Copied"
    click.echo(f"{verb} {report.files} file(s), {human_bytes(report.bytes)} from {report.source} to {report.dest}")
    for name, r in report.parts:
        click.echo(f"  {name}: {r.files} file(s), {human_bytes(r.bytes)}")
        for m in r.messages:
            click.echo(f"    warning: {m}")
    for note in report.notes:
        click.echo(f"  note: {note}")


def register(cli: click.Group) -> None:
    """Add the sync group."""
    cli.add_command(sync_group)
