"""What a configuration names against what is installed here: schedulers and compute sources.

A project may name a scheduler or a compute source whose plugin is not installed on this machine
(it may be where the project runs), so loading accepts it; :func:`check_systems` still refuses a
near miss of an installed scheduler (a typo), and :func:`unprovided_sources` lists the rest for
``hsm config validate`` to warn about.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from hsm_core.config.lines import key_path, line_of
from hsm_core.config.schema import core_schema
from hsm_core.config.validation import did_you_mean, file_at
from hsm_core.errors import ConfigError
from hsm_core.install_hints import install_hint
from hsm_core.plugin import ComputeSourceRecord
from hsm_core.plugins import PACKAGE_HINTS, scheduler_names

__all__ = ["check_systems", "unprovided_sources"]


def check_systems(raw: Any, registry: Any, file: Path | None) -> None:
    """``hpc.system`` (and each cluster's) may name a scheduler whose plugin is not installed here
    (``hsm config validate`` warns about it), but a near-miss of an installed one is a typo."""
    installed = scheduler_names(registry)
    hpc = raw.get("hpc") if isinstance(raw, dict) else None
    if not isinstance(hpc, dict):
        return
    places: list[tuple[tuple[Any, ...], Any]] = [(("hpc", "system"), hpc.get("system"))]
    clusters = hpc.get("clusters")
    if isinstance(clusters, dict):
        places += [(("hpc", "clusters", n, "system"), c.get("system")) for n, c in clusters.items() if isinstance(c, dict)]
    for place, value in places:
        if not isinstance(value, str) or value.lower() in installed or value.lower() == "auto":
            continue
        guess = did_you_mean(value.lower(), installed, cutoff=0.75)
        if guess:
            raise ConfigError(
                f"unknown scheduler {value!r}, did you mean {guess!r}? (installed: {', '.join(installed)}, or auto)",
                file=file_at(raw, list(place), file), line=line_of(raw, list(place)), key=key_path(place),
            )


def unprovided_sources(project_data: Mapping[str, Any], registry: Any) -> list[tuple[list[Any], str]]:
    """Settings naming a compute source that no installed plugin provides, as ``(key path, message)``:
    ``hpc.system`` and each cluster's ``system``, and ``compute.<kind>`` sections. Loading the config
    accepts them (the plugin may be installed where the project runs); ``hsm config validate`` warns."""
    kinds = registry.components(ComputeSourceRecord.kind)
    systems = scheduler_names(registry)

    def hint(name: str) -> str:
        dists = PACKAGE_HINTS.get((ComputeSourceRecord.kind, name))
        return f"; to get it, {install_hint(*dists)}" if dists else ""

    out: list[tuple[list[Any], str]] = []
    hpc = project_data.get("hpc") or {}
    places: list[tuple[list[Any], Any]] = [(["hpc", "system"], hpc.get("system"))]
    for name, entry in (hpc.get("clusters") or {}).items():
        if isinstance(entry, Mapping):
            places.append((["hpc", "clusters", name, "system"], entry.get("system")))
    for path, value in places:
        if isinstance(value, str) and value.lower() not in (*systems, "auto"):
            installed = ", ".join(systems) or "none"
            out.append((path, f"no installed plugin provides the scheduler {value!r} (installed: {installed}); "
                              f"runs that use it fail here{hint(value.lower())}"))
    core_keys = set(core_schema("project")["properties"]["compute"]["properties"])
    for name, value in (project_data.get("compute") or {}).items():
        if name not in core_keys and name not in kinds and isinstance(value, Mapping):
            out.append((["compute", name], f"no installed plugin provides the compute source {name!r}; "
                                           f"these options are not checked{hint(str(name))}"))
    return out
