"""``hsm export [SWEEP_ID] --format csv|json`` and ``hsm report [SWEEP_ID] [--metric NAME]`` (no id: the latest sweep)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from hsm_core.bulk_read import without_cycle_collection


@click.command("export")
@click.argument("sweep_id", required=False)
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to FILE instead of stdout.")
@click.option("--best", is_flag=True, help="Only the best trial so far of an adaptive (search:) sweep.")
@click.option("--sort", "sort", metavar="COLUMN", help="Order rows by this metric, parameter or column (ascending).")
@click.option("--desc", is_flag=True, help="With --sort: highest first.")
@click.option("--top", type=int, metavar="N", help="Only the first N rows (alone: the N best by the sweep's metric:).")
@click.option("--project-dir", type=click.Path(file_okay=False))
@without_cycle_collection()  # (hsm_core.bulk_read: 0.1 s of a 100,000-task export)
def export_command(sweep_id: str | None, fmt: str, output: str | None, best: bool, sort: str | None, desc: bool,
                   top: int | None, project_dir: str | None) -> None:
    """One row per task of SWEEP_ID (default: the latest sweep): id, parameters, status, source, duration, exit code, metrics."""
    from hsm_core.atomic import atomic_write_text
    from hsm_core.monitor.status import locate_sweep

    from hsm_core.metrics_freshness import Check

    sweep = locate_sweep(project_dir, sweep_id)
    fresh = Check(str(sweep.path))  # (a big sweep's stats run beside the index's reading)
    records = list(sweep.records().values())
    if best or os.path.isdir(os.path.join(sweep.path, "search")):  # (a grid: the search machinery, 12 ms, not imported)
        from hsm_core.adaptive import with_trial_params

        records = with_trial_params(sweep.path, records)  # an adaptive sweep's asked values
    if best:
        from hsm_core.adaptive import best_record

        records = best_record(sweep, records)
    from hsm_core.monitor.scheduler_link import task_links

    records = list(records)
    links = task_links(sweep, records, project_dir=project_dir)  # scheduler ids, accounting if kept
    from hsm_core.monitor.export_columns import csv_text, export_columns, json_text, ordered

    # export_text's bytes, built a column at a time (100,000 tasks within a second); --sort,
    # --desc and --top reorder the columns by the one sorted by
    table = ordered(export_columns(sweep, records, links=links, fresh=fresh), sweep, sort=sort, desc=desc, top=top)
    text = csv_text(table) if fmt == "csv" else json_text(table)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = Path(output)
    if path.parent and not path.parent.is_dir():
        from hsm_core.plugin import HsmError

        raise HsmError(f"cannot write {output}: directory {path.parent} does not exist", hint="create it first or choose another --output")
    atomic_write_text(path, text, fsync=False)
    rows = max(0, text.count("\n") - 1) if fmt == "csv" else None
    click.echo(f"Wrote {output}" + (f" ({rows} task rows)" if rows is not None else ""), err=True)


@click.command("report")
@click.argument("sweep_id", required=False)
@click.option("--metric", help="Metric to plot against each parameter (default: the first one found).")
@click.option("--output-dir", "-o", type=click.Path(file_okay=False, path_type=Path),
              help="Write the reports here instead of the sweep's reports/ (e.g. for a read-only sweep).")
@click.option("--project-dir", type=click.Path(file_okay=False))
def report_command(sweep_id: str | None, metric: str | None, output_dir: Path | None, project_dir: str | None) -> None:
    """Write SWEEP_ID's reports/completion_report.html (and error_analysis.html, performance_analysis.yaml);
    default: the latest sweep."""
    from hsm_core.monitor.status import locate_sweep
    from hsm_core.monitor.report import build_reports
    from hsm_core.plugin import HsmError

    sweep = locate_sweep(project_dir, sweep_id)
    try:
        paths = build_reports(sweep, metric=metric, records=sweep.records(), output_dir=output_dir)
    except OSError as exc:
        where = output_dir if output_dir is not None else sweep.path / "reports"
        hint = f"write them elsewhere with: hsm report {sweep.sweep_id} --output-dir DIR" if output_dir is None else None
        raise HsmError(f"cannot write the reports into {where}: {exc.strerror or exc}", hint=hint) from None
    for path in paths:
        click.echo(f"Wrote {path}")


def register(cli: click.Group) -> None:
    """Add export and report."""
    cli.add_command(export_command)
    cli.add_command(report_command)
