"""What the shell completes: sweep ids and ``--sources`` entries of the project at hand.

Completion runs on every Tab press, so it reads as little as it can (directory names, the
project's ``hsm_config.yaml``) and never fails: any error means "no suggestions".
"""

from __future__ import annotations

from typing import Any


def _project(project_dir: str | None) -> Any:
    from hsm_core.config.project_config import load_project_config
    from hsm_core.config.project_root import resolve_project_root

    return load_project_config(resolve_project_root(project_dir))


def sweep_id_candidates(project_dir: str | None) -> list[str]:
    """The project's sweep ids, newest first, then ``latest``; [] when there is no project."""
    from hsm_core.sweep_select import LATEST, sweep_ids

    try:
        ids = sweep_ids(_project(project_dir).output_dir)
    except Exception:  # a bad config or no project: nothing to suggest, never a traceback mid-line
        return []
    return ids + ([LATEST] if ids and LATEST not in ids else [])


def source_candidates(project_dir: str | None, registry: Any) -> list[str]:
    """Entries ``--sources`` accepts here: every installed kind (and its aliases), ``hpc``, each
    ``hpc:CLUSTER`` of ``hpc.clusters`` and each ``KIND:NAME`` of a kind with named entries
    (``ssh:gpu1`` for ``distributed.remotes.gpu1``)."""
    from hsm_core.plugin import ComputeSourceRecord
    from hsm_core.sources import HPC, named_entries

    try:
        data = _project(project_dir).data
    except Exception:
        data = {}
    out: list[str] = []
    try:
        records = registry.components(ComputeSourceRecord.kind)
    except Exception:
        return []
    batch = False
    for name, record in sorted(records.items()):
        out += [name, *getattr(record, "aliases", ())]
        batch = batch or bool(getattr(record, "batch_scheduler", False))
        try:
            entries = named_entries(record, data)
        except Exception:
            entries = None
        if entries is not None:
            out += [f"{name}:{entry}" for entry in sorted(entries[1])]
    if batch:
        clusters = (data.get("hpc") or {}).get("clusters") if isinstance(data.get("hpc"), dict) else None
        out += [HPC] + [f"{HPC}:{c}" for c in sorted(clusters or {})]
    seen: set[str] = set()
    return [c for c in out if not (c in seen or seen.add(c))]


def complete_list(candidates: list[str], incomplete: str) -> list[str]:
    """Candidates for the last entry of a comma-separated list (``local:2,ss`` -> ``local:2,ssh:gpu1``)."""
    head, _, last = incomplete.rpartition(",")
    prefix = head + "," if head else ""
    return [prefix + c for c in candidates if c.startswith(last)]
