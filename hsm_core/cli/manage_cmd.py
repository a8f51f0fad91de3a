"""``hsm cleanup --days N [--dry-run] [--yes]``: delete old sweep directories (v1)."""

from __future__ import annotations

import click


@click.command("cleanup")
@click.option("--days", type=click.FloatRange(min=0), default=30, show_default=True,
              help="Delete sweeps with no activity for more than this many days.")
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@click.option("--yes", "-y", is_flag=True, help="Delete without asking.")
@click.option("--project-dir", type=click.Path(file_okay=False))
def cleanup_command(days: float, dry_run: bool, yes: bool, project_dir: str | None) -> None:
    """Delete sweeps older than DAYS days (asks first; never a sweep that is still running)."""
    from rich.table import Table

    from hsm_core.monitor.status import output_dir
    from hsm_core.monitor.cleanup import delete_sweep, dir_size, find_candidates, fmt_size
    from hsm_core.monitor.view import make_console

    out = output_dir(project_dir)
    console = make_console()
    candidates = find_candidates(out, days)
    if not candidates:
        console.print(f"No sweeps older than {days:g} day(s) in {out}.", markup=False)
        return
    deletable = [c for c in candidates if c.deletable]
    sizes = {c.sweep.sweep_id: dir_size(c.sweep.path) for c in deletable}
    table = Table(title=f"Sweeps older than {days:g} day(s) in {out}")
    for col in ("Sweep", "Created", "Last activity", "Status", "Size", "Action"):
        table.add_column(col)
    for c in candidates:
        action = "keep: still running" if c.running else ("would delete" if dry_run else "delete")
        size = fmt_size(sizes[c.sweep.sweep_id]) if c.deletable else "-"
        table.add_row(c.sweep.sweep_id, c.created.strftime("%Y-%m-%d %H:%M"), c.last_activity.strftime("%Y-%m-%d %H:%M"),
                      c.status, size, action)
    console.print(table)
    total = sum(sizes.values())
    if not deletable:
        console.print("Nothing to delete: every old sweep is still running.")
        return
    if dry_run:
        console.print(f"Dry run: {len(deletable)} sweep(s), {fmt_size(total)}, would be deleted. Nothing was deleted.")
        return
    if not yes:
        try:
            ok = click.confirm(f"Delete {len(deletable)} sweep(s) ({fmt_size(total)})?", default=False)
        except click.Abort:
            ok = False
        if not ok:
            console.print("Nothing deleted.")
            raise SystemExit(1)
    deleted = freed = 0
    for c in deletable:
        try:
            delete_sweep(c, out)
        except (OSError, RuntimeError) as exc:
            console.print(f"Not deleted: {c.sweep.sweep_id}: {exc}", markup=False)
            continue
        deleted += 1
        freed += sizes[c.sweep.sweep_id]
        console.print(f"Deleted {c.sweep.sweep_id}", markup=False)
    console.print(f"Deleted {deleted} sweep(s), freed {fmt_size(freed)}.")


def register(cli: click.Group) -> None:
    """Add cleanup."""
    cli.add_command(cleanup_command)
