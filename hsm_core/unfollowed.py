"""Tasks still running on a source the current ``hsm complete`` does not use.

A controller hands the tasks an earlier one left running to the source that runs them; a task on
a source outside this run's ``--sources`` (an SSH host, a cluster) can be neither followed nor
collected by it: the engine leaves it alone. This module names those tasks and the ``--sources``
that would follow them, so that ``hsm complete --sources local`` does not end with "Done: 2
running" as if that were all there is to it.
"""

from __future__ import annotations

from typing import Any, Iterable

from hsm_core.errors import HsmError


def unfollowed(adopted: Iterable[Any], sweep: Any, sources: str, project_data: dict[str, Any],
               registry: Any) -> dict[str, list[str]]:
    """Source name -> names of the adopted tasks running there, for each source that ``sources``
    lacks (tasks of the local runner are watched through their files wherever they came from)."""
    from hsm_core.sources import parse_sources
    from hsm_core.state import read_status

    try:
        used = {r.name for r in parse_sources(sources, project_data, registry)}
    except HsmError:  # refused later, with its own message
        return {}
    out: dict[str, list[str]] = {}
    for rec in adopted:
        status = read_status(sweep.task_dir(rec.index)) or {}
        source = str(status.get("source") or "")
        if source and source not in used and status.get("runner") != "local":
            out.setdefault(source, []).append(rec.name)
    return out


def unfollowed_notes(found: dict[str, list[str]], sweep_id: str, sources: str, sweep_sources: str | None,
                     project_data: dict[str, Any], registry: Any) -> list[str]:
    """One line per source of :func:`unfollowed`: its tasks and the command that follows them."""
    lines = []
    for source, names in found.items():
        entry = _entry_of(source, sweep_sources, project_data, registry)
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        lines.append(f"note: {shown} run on {source}, which --sources {sources} does not use: this run does not "
                     f"follow them (collect them with: hsm complete {sweep_id} --sources {sources},{entry})")
    return lines


def _entry_of(source: str, sweep_sources: str | None, project_data: dict[str, Any], registry: Any) -> str:
    """The ``--sources`` entry the sweep named ``source`` with (``ssh:gpu1:2``), else the name."""
    from hsm_core.sources import parse_sources

    for raw in (sweep_sources or "").split(","):
        try:
            (req,) = parse_sources(raw, project_data, registry)
        except (HsmError, ValueError):
            continue
        if req.name == source:
            return raw.strip()
    return source
