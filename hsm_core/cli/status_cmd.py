"""``hsm status``: counts, durations and sources of a sweep (or all sweeps), from the files alone.

What is counted, and where sweeps are found: :mod:`hsm_core.monitor.status`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from hsm_core.monitor.status import list_sweeps, locate_sweep, output_dir, summarize
from hsm_core.plugin import HsmError


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    s = float(s)
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(int(s), 60)
    h, m = divmod(m, 60)
    return f"{h}h {m}m" if h else f"{m}m {sec}s"


def _print_one(info: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    table = Table(title=f"Sweep Status: {info['sweep_id']}")
    table.add_column("Metric")
    table.add_column("Value")
    table.add_row("Status", str(info.get("status") or "-"))
    ctl = info.get("controller")
    if ctl:
        from hsm_core.lease import short_time

        table.add_row("Controller", f"{ctl['command']} (pid {ctl['pid']} on host {ctl['host']}, since {short_time(ctl['since'])})")
    table.add_row("Progress", f"{info['counts'].get('completed', 0)}/{info['total']} ({info['progress']}%)")
    for state, n in info["counts"].items():
        table.add_row(state.capitalize(), str(n))
    table.add_row("Mean duration", _fmt_seconds(info["duration"]["mean"]))
    table.add_row("Total task time", _fmt_seconds(info["duration"]["total"]))
    console.print(table)
    if info["per_source"]:
        st = Table(title="Per source")
        st.add_column("Source")
        states = sorted({s for d in info["per_source"].values() for s in d})
        for s in states:
            st.add_column(s.capitalize(), justify="right")
        for name, d in sorted(info["per_source"].items()):
            st.add_row(name, *(str(d.get(s, 0)) for s in states))
        console.print(st)
    if info.get("waiting"):
        from rich.text import Text

        from hsm_core.outages import describe

        for outage in info["waiting"]:
            console.print(Text("\n".join(describe(outage)), style="yellow"), soft_wrap=True)


@click.command("status")
@click.argument("sweep_id", required=False)
@click.option("--all", "all_", is_flag=True, help="One line per sweep.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--rebuild", is_flag=True, help="Rebuild the index from the task dirs first.")
@click.option("--project-dir", type=click.Path(file_okay=False))
def status_command(sweep_id: str | None, all_: bool, as_json: bool, rebuild: bool, project_dir: str | None) -> None:
    """Show the status of SWEEP_ID (default: the most recent sweep), or of all sweeps."""
    out = output_dir(project_dir)
    if all_:
        from hsm_core.monitor.snapshot import warn_damaged
        from hsm_core.state import DamagedSweepError

        infos = []
        for p in list_sweeps(out):
            try:
                infos.append(summarize(p, rebuild=rebuild))
            except DamagedSweepError as exc:  # one damaged sweep must not hide all the others
                warn_damaged(exc)
        if as_json:
            click.echo(json.dumps(infos, indent=1))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"Sweeps in {out}")
        for col in ("Sweep", "Created", "Status", "Tasks", "Completed", "Failed", "Running", "Pending"):
            table.add_column(col)
        for i in infos:
            c = i["counts"]
            table.add_row(i["sweep_id"], str(i["created"] or "-"), str(i["status"] or "-"), str(i["total"]),
                          str(c.get("completed", 0)), str(c.get("failed", 0)), str(c.get("running", 0) + c.get("submitted", 0)), str(c.get("pending", 0)))
        Console(highlight=False).print(table)
        return
    if sweep_id is None:
        sweeps = list_sweeps(out)
        if not sweeps:
            raise HsmError(f"no sweeps in {out}", hint="start one with: hsm run --config sweeps/sweep_config.yaml")
        path = sweeps[-1]
    else:
        path = locate_sweep(project_dir, sweep_id).path
    info = summarize(path, rebuild=rebuild)
    if as_json:
        click.echo(json.dumps(info, indent=1))
    else:
        _print_one(info)


def register(cli: click.Group) -> None:
    """Add status."""
    cli.add_command(status_command)
