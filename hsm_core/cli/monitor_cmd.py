"""``hsm monitor watch|recent|health|errors`` (v2) and the v1 spellings ``hsm monitor SWEEP_ID``,
``hsm monitor --watch`` and ``hsm recent --days N``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click



def _project_dir(ctx: click.Context, project_dir: str | None) -> str | None:
    """This command's --project-dir, else the monitor group's."""
    if project_dir is None and ctx.parent is not None and ctx.parent.command.name == "monitor":
        project_dir = ctx.parent.params.get("project_dir")
    return project_dir


def _out(ctx: click.Context, project_dir: str | None) -> Path:
    """The output dir of the project."""
    from hsm_core.monitor.status import output_dir

    return output_dir(_project_dir(ctx, project_dir))


def _console() -> Any:
    from hsm_core.monitor.view import make_console

    return make_console()


def _locate(ctx: click.Context, project_dir: str | None, sweep_id: str | None) -> Any:
    """SWEEP_ID of the project (None or ``latest``: the latest sweep; a pull-based sweep may live
    under the workers' storage root)."""
    from hsm_core.monitor.status import locate_sweep

    return locate_sweep(_project_dir(ctx, project_dir), sweep_id)


def _latest(out: Path) -> Any:
    from hsm_core.sweep_select import latest_sweep

    return latest_sweep(out)


# -- watch ------------------------------------------------------------------------------------------


def watch(out: Path, only: Any | None, interval: float, once: bool) -> None:
    """Show one sweep (or every active sweep) until it is finished; ``once``: one frame.
    Which sweeps, and when it is over: :class:`hsm_core.monitor.watch.SweepWatch`."""
    from hsm_core.monitor.view import frame
    from hsm_core.monitor.watch import SweepWatch, ending_line, frame_signature

    console = _console()
    sweeps = SweepWatch(out, only)
    if not sweeps.tracked:
        console.print(f"No active sweeps in {out}.", markup=False)
        console.print("Recent sweeps: hsm monitor recent; one sweep: hsm monitor watch SWEEP_ID")
        return
    if once:
        console.print(frame(sweeps.snapshots()))
        return
    live = None
    last_signature: Any = None
    snaps: list[Any] = []
    try:
        if console.is_terminal:
            from rich.live import Live

            live = Live(console=console, auto_refresh=False, transient=False)
            live.start()
        for snaps in sweeps.rounds(interval):
            view = frame(snaps, interval=interval)
            if live is not None:
                live.update(view, refresh=True)
            elif frame_signature(snaps) != last_signature:
                # Not a terminal (a log file, a pipe): a new frame only when something changed.
                console.print(view)
                last_signature = frame_signature(snaps)
    except KeyboardInterrupt:
        # Ctrl-C is how one stops watching: not an error.
        if live is not None:
            live.stop()
            live = None
        return
    finally:
        if live is not None:
            live.stop()
    try:
        snaps = sweeps.settled(snaps)
    except KeyboardInterrupt:
        return
    for s in snaps:
        console.print(ending_line(s), markup=False)


class MonitorGroup(click.Group):
    """``hsm monitor`` with subcommands, that also takes a bare SWEEP_ID (v1): ``hsm monitor
    SWEEP_ID`` is ``hsm monitor watch SWEEP_ID --once``, ``hsm monitor --watch [SWEEP_ID]`` is
    ``hsm monitor watch [SWEEP_ID]``."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            rest = list(args[1:])
            live = bool(ctx.params.get("watch_flag")) or "--watch" in rest
            rest = [a for a in rest if a != "--watch"]
            new_args = [name]
            if not live:
                new_args.append("--once")
            if ctx.params.get("interval") is not None:
                new_args += ["--interval", str(ctx.params["interval"])]
            return "watch", self.get_command(ctx, "watch"), new_args + rest
        return super().resolve_command(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "[--watch] [SWEEP_ID] | COMMAND [ARGS]...")


@click.group("monitor", cls=MonitorGroup, invoke_without_command=True)
@click.option("--watch", "watch_flag", is_flag=True, help="Keep refreshing (v1 spelling of 'hsm monitor watch').")
@click.option("--interval", type=click.FloatRange(min=0.1), default=None, help="Seconds between refreshes (default 5).")
@click.option("--project-dir", type=click.Path(file_okay=False), help="Project root (default: found from the current dir).")
@click.pass_context
def monitor_group(ctx: click.Context, watch_flag: bool, interval: float | None, project_dir: str | None) -> None:
    """Watch sweeps, list recent ones, show source health and error patterns.

    \b
    hsm monitor watch [SWEEP_ID]   live view (all active sweeps without an id)
    hsm monitor recent --days 7    sweeps of the last days
    hsm monitor health [SWEEP_ID]  per-source health, current and history
    hsm monitor errors [SWEEP_ID]  failed tasks grouped by error pattern (default: the latest sweep)
    hsm monitor SWEEP_ID           one frame of the live view (v1)
    hsm monitor --watch            the live view of all active sweeps (v1)
    """
    if ctx.invoked_subcommand is None:
        watch(_out(ctx, project_dir), None, interval or 5.0, once=not watch_flag)


@monitor_group.command("watch")
@click.argument("sweep_id", required=False)
@click.option("--interval", type=click.FloatRange(min=0.1), default=5.0, show_default=True, help="Seconds between refreshes.")
@click.option("--once", is_flag=True, help="Print one frame and exit.")
@click.option("--project-dir", type=click.Path(file_okay=False))
@click.pass_context
def watch_command(ctx: click.Context, sweep_id: str | None, interval: float, once: bool, project_dir: str | None) -> None:
    """Live progress of SWEEP_ID (default: every active sweep) until it finishes; Ctrl-C exits."""
    watch(_out(ctx, project_dir), _locate(ctx, project_dir, sweep_id) if sweep_id else None, interval, once)


def recent(out: Path, days: float, as_json: bool) -> None:
    """Print the sweeps of the last ``days`` days."""
    from hsm_core.monitor.snapshot import recent_sweeps, take_snapshot
    from hsm_core.monitor.view import recent_table

    snaps = [take_snapshot(sweep) for sweep in recent_sweeps(out, days)]
    if as_json:
        click.echo(json.dumps([
            {"sweep_id": s.sweep_id, "path": str(s.path), "created": s.metadata.get("created"), "status": s.status,
             "total": s.total, "counts": s.counts, "progress": round(s.progress, 1), "duration": s.elapsed}
            for s in snaps
        ], indent=1))
        return
    console = _console()
    if not snaps:
        console.print(f"No sweeps in the last {days:g} day(s) in {out}.", markup=False)
        return
    console.print(recent_table(snaps, f"Sweeps of the last {days:g} day(s)"))


_days_option = click.option("--days", type=click.FloatRange(min=0), default=7, show_default=True, help="How many days back.")


@monitor_group.command("recent")
@_days_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--project-dir", type=click.Path(file_okay=False))
@click.pass_context
def recent_command(ctx: click.Context, days: float, as_json: bool, project_dir: str | None) -> None:
    """Sweeps created or run in the last DAYS days, newest first."""
    recent(_out(ctx, project_dir), days, as_json)


@click.command("recent")
@_days_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--project-dir", type=click.Path(file_okay=False))
def recent_v1_command(days: float, as_json: bool, project_dir: str | None) -> None:
    """Recent sweeps (v1 spelling of 'hsm monitor recent')."""
    from hsm_core.monitor.status import output_dir

    recent(output_dir(project_dir), days, as_json)


@monitor_group.command("health")
@click.argument("sweep_id", required=False)
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True, help="History lines to show (0: all).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--project-dir", type=click.Path(file_okay=False))
@click.pass_context
def health_command(ctx: click.Context, sweep_id: str | None, limit: int, as_json: bool, project_dir: str | None) -> None:
    """Health of each source of SWEEP_ID (default: the active sweeps, else the latest): now and history."""
    from hsm_core.monitor.logs import read_health
    from hsm_core.monitor.snapshot import active_sweeps, take_snapshot
    from hsm_core.monitor.view import health_current_table, health_history_table

    out = _out(ctx, project_dir)
    sweeps = [_locate(ctx, project_dir, sweep_id)] if sweep_id else (active_sweeps(out) or [_latest(out)])
    console = _console()
    docs = []
    for i, sweep in enumerate(sweeps):
        tracker = read_health(sweep.logs_dir, keep=10**9 if limit == 0 else max(limit, 200))
        snap = take_snapshot(sweep, health=tracker)
        if as_json:
            docs.append({
                "sweep_id": sweep.sweep_id,
                "sources": {
                    name: {"state": h.state, "since": h.since.isoformat() if h.since else None, "message": h.message,
                           "checks": h.checks, "failed_checks": h.failures}
                    for name, h in tracker.current.items()
                } | {r.name: {"state": "unknown"} for r in snap.sources if r.name not in tracker.current},
                "history": [
                    {"time": e.when.isoformat() if e.when else None, "source": e.source, "event": e.event, "message": e.message}
                    for e in (tracker.events[-limit:] if limit else tracker.events)
                ],
            })
            continue
        if i:
            console.print()
        console.print(health_current_table(snap, tracker.current))
        if tracker.events:
            console.print(health_history_table(tracker.events, limit))
        else:
            console.print(f"No health checks logged yet ({sweep.logs_dir / 'health_status.log'}).", markup=False)
    if as_json:
        click.echo(json.dumps(docs, indent=1))


@monitor_group.command("errors")
@click.argument("sweep_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print error_patterns as JSON.")
@click.option("--project-dir", type=click.Path(file_okay=False))
@click.pass_context
def errors_command(ctx: click.Context, sweep_id: str | None, as_json: bool, project_dir: str | None) -> None:
    """Failed tasks of SWEEP_ID (default: the latest sweep) grouped by error pattern; writes logs/errors/*.yaml."""
    from hsm_core.monitor.errors import CATEGORY_TITLES, analyze, error_documents, write_error_files
    from hsm_core.monitor.shared_params import shared_by_category

    sweep = _locate(ctx, project_dir, sweep_id)
    records = sweep.records()
    report = analyze(sweep, records.values())
    shared = shared_by_category(((f.diagnosis.category, f.record) for f in report.failed), records.values())
    try:
        paths = write_error_files(sweep, report)
    except OSError as exc:  # a read-only sweep (someone else's, an archive): the analysis is what matters
        paths = []
        click.echo(f"Note: logs/errors/*.yaml not written ({exc.strerror or exc}); the analysis follows", err=True)
    if as_json:
        doc = error_documents(report)[1]
        doc["shared_params"] = {s.category: {"count": s.count, "values": s.values, "explains_all": s.complete} for s in shared}
        click.echo(json.dumps(doc, indent=1, default=str))
        return
    if not report.failed:  # plain lines: rich (a fifth of this command's start-up) is not loaded
        click.echo(f"No failed tasks in {sweep.sweep_id}.")
        for p in paths:
            click.echo(f"Wrote {p.relative_to(sweep.path)}")
        return
    from hsm_core.monitor.view import errors_table

    console = _console()
    cats = ", ".join(f"{CATEGORY_TITLES.get(c, c)}: {n}" for c, n in report.by_category().items())
    console.print(errors_table(report))
    console.print(f"By category: {cats}", markup=False)
    for s in shared:
        console.print(s.describe(CATEGORY_TITLES.get(s.category, s.category)), markup=False, soft_wrap=True)
    for i, g in enumerate(report.groups, 1):
        console.print(f"  {i}. {g.pattern}\n     e.g. {g.tasks[0].record.name}: {g.example}", markup=False)
    console.print(f"Retry them with: hsm complete {sweep.sweep_id} --retry-failed (only one category: add --only CATEGORY)",
                  markup=False)
    for p in paths:
        console.print(f"Wrote {p.relative_to(sweep.path)}", markup=False)


def register(cli: click.Group) -> None:
    """Add monitor (with its subcommands) and recent (v1)."""
    cli.add_command(monitor_group)
    cli.add_command(recent_v1_command)
