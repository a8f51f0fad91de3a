"""``hsm wandb list`` and ``hsm wandb prune`` (also ``hsm sync prune``)."""

from __future__ import annotations

import json
from typing import Any

import click

from hsm_core.plugin import HsmError, locate_sweep

PROJECT_DIR = click.option("--project-dir", type=click.Path(file_okay=False),
                           help="Project root (default: found from the current directory).")


@click.group("wandb")
def wandb_group() -> None:
    """W&B runs of a sweep: list them, prune old artifact versions."""


@wandb_group.command("list")
@click.argument("sweep_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@PROJECT_DIR
def list_command(sweep_id: str | None, as_json: bool, project_dir: str | None) -> None:
    """The W&B runs of SWEEP_ID found on this machine (default: the most recent sweep)."""
    from hsm_plugin_wandb_sync.discovery import discover

    loc = locate_sweep(sweep_id, project_dir)
    runs = discover(loc.sweep_id, loc.sweep_dir, loc.project_root, loc.project_config)
    rows = []
    for r in runs:
        versions = r.versions()
        rows.append({
            "run_id": r.run_id,
            "finished": r.finished,
            "exit_code": r.exit_code,
            "dirs": [str(d.path) for d in r.dirs],
            "uploaded": r.synced,
            "artifacts": {name: [v.label + _aliases(v, i == len(vs) - 1) for i, v in enumerate(vs)]
                          for name, vs in versions.items()},
        })
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    if not rows:
        click.echo(f"No W&B runs of {loc.sweep_id} on this machine.")
        return
    click.echo(f"W&B runs of {loc.sweep_id}: {len(rows)}")
    for row in rows:
        state = "finished" if row["finished"] else "unfinished"
        if row["finished"] and row["exit_code"]:
            state += f" (exit {row['exit_code']})"
        arts = "; ".join(f"{n}: {len(v)} version(s)" for n, v in row["artifacts"].items()) or "no artifacts"
        click.echo(f"  {row['run_id']}  {state}, {len(row['dirs'])} dir(s), {arts}")


def _aliases(version: Any, last: bool) -> str:
    # Every log record carries "latest" (it was the latest when logged): show it on the last only.
    names = [a for a in version.aliases if a != "latest"] + (["latest"] if last else [])
    return f" ({', '.join(names)})" if names else ""


def human_bytes(n: float) -> str:
    """``1.2 MB`` style."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _server_path(loc: Any, entity: str | None, project: str | None) -> str | None:
    cfg = loc.project_config.get("wandb") or {}
    project = project or cfg.get("project")
    entity = entity or cfg.get("entity")
    if not project:
        return None
    return f"{entity}/{project}" if entity else str(project)


@click.command("prune")
@click.argument("sweep_id", required=False)
@click.option("--keep", type=click.IntRange(min=0), default=1, show_default=True,
              help="Newest versions of each artifact to keep (aliased versions are always kept).")
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; delete nothing.")
@click.option("--local-only", is_flag=True, help="Only the staging files on this machine.")
@click.option("--server-only", is_flag=True, help="Only the W&B server.")
@click.option("--type", "types", multiple=True, help="Only artifacts of this type (repeatable), e.g. model.")
@click.option("--entity", default=None, help="W&B entity (default: wandb.entity in hsm_config.yaml).")
@click.option("--project", default=None, help="W&B project (default: wandb.project in hsm_config.yaml).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@PROJECT_DIR
def prune_command(sweep_id: str | None, keep: int, dry_run: bool, local_only: bool, server_only: bool, types: tuple[str, ...],
                  entity: str | None, project: str | None, as_json: bool, project_dir: str | None) -> None:
    """Delete old artifact versions of SWEEP_ID's runs (default: the latest sweep) on the W&B server and in local staging.

    Keeps the newest --keep versions of each artifact and every version with an alias (latest,
    best, ...); locally, keeps everything a run not yet uploaded to W&B still needs.
    """
    from hsm_plugin_wandb_sync.discovery import discover
    from hsm_plugin_wandb_sync.prune import prune_local, prune_server

    if local_only and server_only:
        raise HsmError("--local-only and --server-only exclude each other")
    loc = locate_sweep(sweep_id, project_dir)
    out: dict[str, Any] = {"sweep_id": loc.sweep_id, "dry_run": dry_run, "local": None, "server": None}
    verb = "would delete" if dry_run else "deleted"
    lines: list[str] = []
    if not server_only:
        runs = discover(loc.sweep_id, loc.sweep_dir, loc.project_root, loc.project_config)
        if types:
            for r in runs:
                for d in r.dirs:
                    d.summary.artifacts = [a for a in d.summary.artifacts if a.type in types]
        local = prune_local(runs, keep=keep, dry_run=dry_run)
        out["local"] = [a.__dict__ for a in local]
        gone = [a for a in local if a.action == "delete"]
        lines.append(f"This machine: {verb} {len(gone)} staging file(s), {human_bytes(sum(a.size for a in gone))}; "
                     f"kept {len(local) - len(gone)}")
        for a in gone[:20]:
            lines.append(f"  {verb}: {a.artifact} of run {a.run_id}: {a.path}")
    server_error: str | None = None
    if not local_only:
        path = _server_path(loc, entity, project)
        if path is None:
            if server_only:
                raise HsmError("no W&B project to prune", hint="set wandb.project in hsm_config.yaml or pass --project")
            lines.append("W&B server: skipped (set wandb.project in hsm_config.yaml or pass --project)")
        else:
            try:
                import wandb

                api = wandb.Api(timeout=30)
                actions = prune_server(api, path, loc.sweep_id, keep=keep, dry_run=dry_run, types=types)
            except Exception as exc:  # no key, no network: say so in one line
                server_error = " ".join(str(exc).split())[:300] or type(exc).__name__
            else:
                out["server"] = [a.__dict__ for a in actions]
                gone_s = [a for a in actions if a.action == "delete"]
                errors = [a for a in actions if a.action == "error"]
                lines.append(f"W&B server ({path}): {verb} {len(gone_s)} artifact version(s), kept "
                             f"{sum(1 for a in actions if a.action == 'keep')}" + (f", {len(errors)} failed" if errors else ""))
                for a in gone_s[:20]:
                    lines.append(f"  {verb}: {a.artifact} of run {a.run_id}")
                for a in errors[:5]:
                    lines.append(f"  failed: {a.artifact} of run {a.run_id}: {a.reason}")
    if as_json:
        out["server_error"] = server_error
        click.echo(json.dumps(out, indent=1))
    else:
        for line in lines:
            click.echo(line)
    if server_error:
        raise HsmError(f"W&B server: {server_error}", hint="check 'wandb login' and the network, or use --local-only")


wandb_group.add_command(prune_command)
