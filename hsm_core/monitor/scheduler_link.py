"""Each task's link back to where it runs, asked of the sources that ran it.

``hsm status --tasks`` and ``hsm export`` show, per task, what its source says through the
optional :meth:`ComputeSource.describe_tasks <hsm_core.plugin.ComputeSource.describe_tasks>` (a
scheduler's element id, state, pending reason, hold, accounting). The sweep's sources are made
again from its ``sweep_metadata.yaml`` and the project's configuration, as ``hsm cancel`` makes
them; a source that cannot be made (a plugin not installed here, a project that cannot be read)
simply says nothing: these views never fail because a scheduler cannot be asked.
"""

from __future__ import annotations

import collections
from operator import attrgetter
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

#: The columns a source's description fills in, in the order views show them.
LINK_COLUMNS = ("scheduler_id", "job_id", "scheduler_state", "reason", "held",
                "elapsed", "max_rss", "cpu_efficiency", "nodes")


def sweep_sources(project: Any, registry: Any, sweep: Any, names: Iterable[str],
                  warn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The sources ``names`` of ``sweep``, made as the sweep's run made them (its ``sources``),
    else from the name alone; a name that cannot be made is left out (``warn`` says why)."""
    from hsm_core.errors import HsmError
    from hsm_core.sources import create_sources, parse_sources
    from hsm_core.targets import source_context

    context = source_context(project, registry, sweep.sweep_id, sweep.path)
    made: dict[str, Any] = {}
    try:
        spec = str(sweep.read_metadata().get("sources") or "local")
        for src in create_sources(parse_sources(spec, project.data, registry), registry, context):
            made[src.name] = src
    except HsmError as exc:
        if warn:
            warn(f"cannot recreate the sweep's sources ({exc})")
    out: dict[str, Any] = {}
    for name in names:
        if name in made:
            out[name] = made[name]
            continue
        try:
            out[name] = create_sources(parse_sources(name, project.data, registry), registry, context)[0]
        except HsmError as exc:
            if warn:
                warn(f"source {name!r}: {exc}")
    return out


def load_project(project_dir: str | None) -> tuple[Any, Any] | None:
    """(project, registry) of the project at ``project_dir`` (or around the working directory);
    None when there is none or it cannot be read."""
    from hsm_core.errors import HsmError

    try:
        from hsm_core.config.project_config import load_project_config
        from hsm_core.config.project_root import resolve_project_root
        from hsm_core.registry import get_registry

        registry = get_registry()
        return load_project_config(resolve_project_root(project_dir), registry), registry
    except (HsmError, OSError):
        return None


def task_specs(sweep: Any, records: Iterable[Any]) -> list[Any]:
    """:class:`~hsm_core.plugin.TaskSpec` of index records, as sources are given them."""
    from hsm_core.plugin import TaskSpec

    from hsm_core.state import SweepDir

    root = sweep.path.resolve()
    here = SweepDir(root)  # resolved once: 100,000 resolve() calls would cost seconds
    return [TaskSpec(r.task_id, r.index, r.params, here.record_dir(r), sweep.sweep_id, root) for r in records]


def task_links(sweep: Any, records: Iterable[Any], *, project_dir: str | None, live: bool = False,
               warn: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """task id -> what the task's source says about it (see the module docstring); tasks never
    handed to a source, and sources without a description, are left out."""
    records = list(records)
    if set(map(attrgetter("source"), records)) <= {None, "", "local"}:
        return {}  # a local sweep: nothing to link (one C-level pass, not a loop over 100,000 tasks)
    by_source: dict[str, list[Any]] = collections.defaultdict(list)
    for rec in records:
        if rec.source and rec.state != "pending":
            by_source[str(rec.source)].append(rec)
    by_source.pop("local", None)  # core's own local processes have no scheduler to link to
    if not by_source:
        return {}  # (and no project config or plugin is loaded: export stays as fast as before)
    loaded = load_project(project_dir)
    if loaded is None:
        return {}
    project, registry = loaded
    out: dict[str, dict[str, Any]] = {}
    for name, src in sweep_sources(project, registry, sweep, by_source, warn).items():
        try:
            found = src.describe_tasks(task_specs(sweep, by_source[name]), live=live)
        except Exception as exc:  # a plugin's bug must not break hsm status
            if warn:
                warn(f"source {name!r} could not describe its tasks: {exc}")
            continue
        finally:
            try:
                src.close()
            except Exception:
                pass
        out.update({tid: dict(row) for tid, row in found.items() if row})
    return out


def link_columns(links: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The columns present in ``links``: :data:`LINK_COLUMNS` first, then others a plugin added."""
    present: dict[str, None] = {}
    for row in links.values():
        for key in row:
            present[key] = None
    return [c for c in LINK_COLUMNS if c in present] + [c for c in present if c not in LINK_COLUMNS]


def format_bytes(n: Any) -> str:
    """``1536000`` -> ``1.5M`` (powers of 1024, as the scheduler counts)."""
    if not isinstance(n, (int, float)):
        return "-" if n in (None, "") else str(n)
    value = float(n)
    for unit in ("B", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return str(n)



def add_link_columns(table: Any, links: Mapping[str, Mapping[str, Any]]) -> None:
    """Add the columns of ``links`` to an export table (:class:`hsm_core.monitor.export.Table`)
    after ``exit_code``; a name a parameter or metric already took gets a ``scheduler.`` prefix."""
    columns = link_columns(links)
    if not columns:
        return
    taken = set(table.columns)
    named = {c: (c if c not in taken else f"scheduler.{c}") for c in columns}
    at = table.columns.index("exit_code") + 1 if "exit_code" in table.columns else len(table.columns)
    table.columns[at:at] = list(named.values())
    for row in table.rows:
        found = links.get(row.get("id")) or {}
        for key, col in named.items():
            row[col] = found.get(key)
