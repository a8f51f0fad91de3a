"""``hsm status``: counts, durations and sources of a sweep (or all sweeps), from the files alone.

What is counted, and where sweeps are found: :mod:`hsm_core.monitor.status`.
"""

from __future__ import annotations

import json
from typing import Any

import click

from hsm_core.bulk_read import without_cycle_collection

from hsm_core.monitor.status import list_sweeps, locate_sweep, output_dir, summarize


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    s = float(s)
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(int(s), 60)
    h, m = divmod(m, 60)
    return f"{h}h {m}m" if h else f"{m}m {sec}s"


def _fmt_created(iso: Any) -> str:
    """``2026-11-23 12:01`` (local time) for a list of sweeps; the text as is if unreadable."""
    import datetime as _dt

    try:
        return _dt.datetime.fromisoformat(str(iso)).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return str(iso or "-")


def _print_one(info: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    # Values are printed as they are: no ":name:" turned into an emoji (and rich's 1.7 ms table of
    # emoji codes is not loaded).
    console = Console(highlight=False, emoji=False)
    console.print(f"Sweep Status: {info['sweep_id']}", markup=False, soft_wrap=True)  # the whole id, never wrapped
    table = Table()
    table.add_column("Metric")
    table.add_column("Value")
    table.add_row("Status", str(info.get("status") or "-"))
    ctl = info.get("controller")
    if ctl:
        from hsm_core.lease import short_time

        table.add_row("Controller", f"{ctl['command']} (pid {ctl['pid']} on host {ctl['host']}, since {short_time(ctl['since'])})")
    from hsm_core.progress import progress_text

    table.add_row("Progress", progress_text(info["counts"], info["total"]))
    for state, n in info["counts"].items():
        table.add_row(state.capitalize(), str(n))
    table.add_row("Mean duration", _fmt_seconds(info["duration"]["mean"]))
    table.add_row("Total task time", _fmt_seconds(info["duration"]["total"]))
    best = info.get("best")
    if best:
        from hsm_core.adaptive import describe_best

        table.add_row("Best trial", describe_best(best))
    console.print(table)
    if info.get("metric"):  # (a sweep without a metric: the ranking module is not imported)
        from hsm_core.monitor.best import print_best_runs

        print_best_runs(console, info)
    from hsm_core.monitor.dashboard_hint import dashboard_hint

    hint = dashboard_hint(info["sweep_id"], info["path"])
    if hint:
        console.print(hint, markup=False, soft_wrap=True)
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
@click.option("--tasks", "per_task", is_flag=True,
              help="One row per task with its scheduler id, the scheduler's state and pending reason, holds and "
                   "accounting (asks the scheduler once).")
@click.option("--project-dir", type=click.Path(file_okay=False))
@without_cycle_collection()  # (hsm_core.bulk_read: 0.1 s of a 100,000-task status)
def status_command(sweep_id: str | None, all_: bool, as_json: bool, rebuild: bool, per_task: bool,
                   project_dir: str | None) -> None:
    """Show the status of SWEEP_ID (default: the most recent sweep), or of all sweeps."""
    out = output_dir(project_dir)
    if all_:
        from hsm_core.monitor.snapshot import warn_damaged
        from hsm_core.state import DamagedSweepError

        infos = []
        for p in list_sweeps(out):
            try:
                infos.append(summarize(p, rebuild=rebuild, best_runs=as_json))  # the table shows no best runs
            except DamagedSweepError as exc:  # one damaged sweep must not hide all the others
                warn_damaged(exc)
        if as_json:
            click.echo(json.dumps(infos, indent=1))
            return
        from rich.table import Table

        from hsm_core.monitor.view import make_console
        from hsm_core.progress import progress_text

        from rich import box
        from rich.console import Console
        from rich.measure import Measurement

        table = Table(title=f"Sweeps in {out}", box=box.SIMPLE_HEAD, pad_edge=False,
                      collapse_padding=True, title_justify="left")
        for col in ("Sweep", "Created", "Status", "Progress", "Completed", "Failed", "Running", "Pending"):
            table.add_column(col, no_wrap=True)
        for i in infos:
            c = i["counts"]
            created = _fmt_created(i["created"])
            table.add_row(i["sweep_id"], created, str(i["status"] or "-"), progress_text(c, i["total"]),
                          str(c.get("completed", 0)), str(c.get("failed", 0)), str(c.get("running", 0) + c.get("submitted", 0)), str(c.get("pending", 0)))
        console = make_console()
        # The ids are what the user copies into the next command: never cut or wrapped. A table
        # wider than the terminal is printed whole (the terminal folds its lines) rather than shrunk.
        need = Measurement.get(console, console.options.update_width(10_000), table).maximum
        if need > console.width:
            console = Console(highlight=False, width=need)
        console.print(table)
        return
    path = locate_sweep(project_dir, sweep_id).path
    info = summarize(path, rebuild=rebuild)
    if per_task:
        from hsm_core.monitor.task_view import print_task_table, task_rows
        from hsm_core.state import SweepDir

        sweep = SweepDir(path)
        rows = task_rows(sweep, sweep.records().values(), project_dir=project_dir,
                         warn=lambda line: click.echo(f"warning: {line}", err=True))
        if as_json:
            click.echo(json.dumps({**info, "tasks": rows}, indent=1))
        else:
            _print_one(info)
            print_task_table(info["sweep_id"], rows)
        return
    if as_json:
        click.echo(json.dumps(info, indent=1))
    else:
        _print_one(info)


def register(cli: click.Group) -> None:
    """Add status."""
    cli.add_command(status_command)
