"""``hsm plugins``: what is installed, what each plugin provides, and what failed to load.

``--check`` also imports every component's lazy parts (what ``hsm run`` would import when the
component is first used) and exits 1 when anything failed.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import click


def _rows(registry: Any) -> list[dict[str, Any]]:
    return [
        {
            "name": p.name,
            "distribution": p.distribution,
            "version": p.version,
            "api": p.api,
            "status": p.status,
            "builtin": p.builtin,
            "error": p.error,
            "provides": p.provides,
            "warnings": p.warnings,
        }
        for p in registry.plugins
    ]


def _problems(rows: list[dict[str, Any]], checks: list[Any], conflicts: dict[str, list[str]]) -> list[str]:
    """One line per thing that would fail for a user: plugins not loaded, components not importable."""
    from hsm_core.registry import KIND_LABELS

    lines = [f"plugin {r['name']!r} ({r['distribution']} {r['version']}): {r['error']}" for r in rows if r["status"] == "failed"]
    lines += [
        f"{KIND_LABELS.get(c.kind, c.kind)} {c.name!r} of {c.distribution} ({c.part}): {c.error}" for c in checks if c.error
    ]
    lines += [f"{key} is registered by {' and '.join(dists)}" for key, dists in conflicts.items()]
    return lines


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--check", is_flag=True, help="Also import every component of every plugin; exit 1 if any fails.")
@click.pass_context
def plugins_command(ctx: click.Context, as_json: bool, check: bool) -> None:
    """List plugins (built-in and installed), their status and what they provide."""
    from hsm_core.plugin_compat import api_text
    from hsm_core.registry import KIND_HOOKS, KIND_LABELS, get_registry

    registry = get_registry()
    for kind in KIND_HOOKS:
        registry.components(kind)  # fills in what each plugin provides
    checks = registry.check() if check else []
    rows = _rows(registry)
    conflicts = {}
    for kind in KIND_HOOKS:
        for name, dists in registry.conflicts(kind).items():
            conflicts[f"{kind}:{name}"] = dists
    problems = _problems(rows, checks, conflicts) if check else []
    if as_json:
        out: dict[str, Any] = {"plugin_api": api_text(), "plugins": rows, "conflicts": conflicts}
        if check:
            out["check"] = [dataclasses.asdict(c) for c in checks]
            out["problems"] = problems
        click.echo(json.dumps(out, indent=1))
    else:
        _print_table(rows, conflicts, api_text())
        for c in checks:
            mark, detail = ("[FAIL]", f": {c.error}") if c.error else ("[ok]", "")
            click.echo(f"  {mark} {KIND_LABELS.get(c.kind, c.kind)} {c.name} ({c.part}, {c.distribution}){detail}")
        if check:
            click.echo(f"{len(problems)} problem(s)." if problems else f"All {len(checks)} components import.")
    if problems:
        ctx.exit(1)


def _print_table(rows: list[dict[str, Any]], conflicts: dict[str, list[str]], api: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"hsm plugins (plugin API {api})")
    for col in ("Plugin", "Distribution", "Version", "API", "Status", "Provides"):
        table.add_column(col)
    for r in rows:
        provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in r["provides"].items()) or "-"
        table.add_row(r["name"], r["distribution"], r["version"], r["api"] or "-", r["status"], provides)
    console = Console(highlight=False)
    console.print(table)
    # Errors are long: one line each below the table, where they can be read (and copied).
    for r in rows:
        if r["error"]:
            console.print(f"[red]failed[/red]: {r['name']} ({r['distribution']} {r['version']}): {r['error']}", soft_wrap=True)
    for key, dists in conflicts.items():
        console.print(f"[red]conflict[/red]: {key} registered by {' and '.join(dists)}")
    for r in rows:
        for warning in r["warnings"]:
            console.print(f"[yellow]deprecated[/yellow]: {r['name']} ({r['distribution']} {r['version']}): {warning}",
                          soft_wrap=True)


def register(cli: click.Group) -> None:
    """Add plugins."""
    cli.add_command(plugins_command)
