"""``hsm status``: counts, durations and sources of a sweep (or all sweeps), from the files alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


STATE_ORDER = ("completed", "failed", "running", "submitted", "pending", "interrupted", "cancelled", "timeout", "preempted", "lost")


def output_dir(project_dir: str | None) -> Path:
    """The project's sweeps output dir (``paths.output_dir``, default ``sweeps/outputs``)."""
    from hsm_core.config.project_config import load_project_config
    from hsm_core.config.project_root import resolve_project_root

    return load_project_config(resolve_project_root(project_dir)).output_dir


def locate_sweep(project_dir: str | None, sweep_id: str | None) -> Any:
    """SWEEP_ID of the project as a SweepDir (None or ``latest``: the latest sweep), see
    :func:`hsm_core.sweep_select.resolve_sweep`."""
    from hsm_core.config.project_config import load_project_config
    from hsm_core.config.project_root import resolve_project_root
    from hsm_core.sweep_select import resolve_sweep

    return resolve_sweep(load_project_config(resolve_project_root(project_dir)), sweep_id)


def list_sweeps(out: Path) -> list[Path]:
    """Sweep dirs under ``out``, oldest first (by the creation time in their metadata)."""
    from hsm_core.sweep_select import sweeps_by_creation

    return [s.path for s in sweeps_by_creation(out)]


def summarize(sweep_path: Path, *, rebuild: bool = False) -> dict[str, Any]:
    """Counts per state, durations and per-source numbers of one sweep."""
    from hsm_core.state import SweepDir

    sweep = SweepDir(sweep_path)
    records = sweep.rebuild_index() if rebuild else sweep.records()
    from hsm_core.sweep_end import settle_ended_sweep

    settle_ended_sweep(sweep)  # every job ended with nobody watching: say how the sweep ended
    meta = sweep.read_metadata()
    counts = {s: 0 for s in STATE_ORDER}
    per_source: dict[str, dict[str, int]] = {}
    durations = []
    for r in records.values():
        counts[r.state] = counts.get(r.state, 0) + 1
        if r.source:
            src = per_source.setdefault(r.source, {})
            src[r.state] = src.get(r.state, 0) + 1
        if r.state == "completed" and isinstance(r.duration, (int, float)):
            durations.append(float(r.duration))
    total = len(records)
    from hsm_core.progress import finished_tasks, progress_percent
    from hsm_core.lease import current_holder
    from hsm_core.outages import read_outages

    holder = current_holder(sweep.path)
    outages = read_outages(sweep.logs_dir)
    return {
        "sweep_id": sweep.sweep_id,
        "path": str(sweep.path),
        "status": meta.get("status"),
        "created": meta.get("created"),
        "sources": meta.get("sources"),
        #: The hsm run/complete running the sweep right now (None when none is).
        "controller": holder.to_json() if holder is not None else None,
        "total": total,
        "counts": {k: v for k, v in counts.items() if v or k in ("completed", "failed", "running", "pending")},
        #: Tasks in a final state, and their share in percent: as hsm monitor watch shows them.
        "done": finished_tasks(counts),
        "progress": progress_percent(counts, total),
        "per_source": per_source,
        "duration": {
            "mean": round(sum(durations) / len(durations), 3) if durations else None,
            "max": max(durations) if durations else None,
            "total": round(sum(durations), 3) if durations else None,
        },
        # Sources the running controller cannot reach: the tasks waiting on each, since when,
        # when they run elsewhere, and what the user can do (logs/source_outages.json).
        "waiting": outages["sources"] if outages else [],
    }


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

    console = Console(highlight=False)
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
    if as_json:
        click.echo(json.dumps(info, indent=1))
    else:
        _print_one(info)


def register(cli: click.Group) -> None:
    """Add status."""
    cli.add_command(status_command)
