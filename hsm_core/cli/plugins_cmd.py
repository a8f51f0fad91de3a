"""``hsm plugins``: what is installed, what each plugin provides, and what failed to load."""

from __future__ import annotations

import json

import click


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins_command(as_json: bool) -> None:
    """List plugins (built-in and installed), their status and what they provide."""
    from hsm_core.plugins import get_registry

    registry = get_registry()
    for kind in ("compute_source",):
        registry.components(kind)  # fills in what each plugin provides
    rows = []
    for p in registry.plugins:
        rows.append(
            {
                "name": p.name,
                "distribution": p.distribution,
                "version": p.version,
                "status": p.status,
                "builtin": p.builtin,
                "error": p.error,
                "provides": p.provides,
            }
        )
    conflicts = {}
    from hsm_core.plugins import KIND_HOOKS

    for kind in KIND_HOOKS:
        for name, dists in registry.conflicts(kind).items():
            conflicts[f"{kind}:{name}"] = dists
    if as_json:
        click.echo(json.dumps({"plugins": rows, "conflicts": conflicts}, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="hsm plugins")
    for col in ("Plugin", "Distribution", "Version", "Status", "Provides"):
        table.add_column(col)
    for r in rows:
        provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in r["provides"].items()) or "-"
        status = r["status"] + (f" ({r['error']})" if r["error"] else "")
        table.add_row(r["name"], r["distribution"], r["version"], status, provides)
    console = Console(highlight=False)
    console.print(table)
    for key, dists in conflicts.items():
        console.print(f"[red]conflict[/red]: {key} registered by {' and '.join(dists)}")


def register(cli: click.Group) -> None:
    """Add plugins."""
    cli.add_command(plugins_command)
