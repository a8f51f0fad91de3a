"""Parsing ``--sources`` and creating compute sources.

Syntax (comma separated): ``local``, ``local:4``, ``KIND``, ``KIND:N``, ``KIND:NAME``,
``KIND:NAME:N`` where KIND is any installed compute source (``ssh:NAME`` with the ssh plugin, a
batch scheduler such as ``slurm:CLUSTER``), and ``hpc``, ``hpc:CLUSTER``, ``hpc:CLUSTER:16``: the
batch scheduler that the cluster's ``system`` names in ``hsm_config.yaml``, or the one detected on
this machine.

Where a kind's options come from is told by its record (:class:`~hsm_core.plugin.ComputeSourceRecord`),
never by its name: ``compute.<kind>`` (or the record's ``config_section``); for a batch scheduler
also ``hpc:`` below it and ``hpc.clusters.NAME`` above it; for a section of named entries
(``distributed.remotes.*``), the entry ``KIND:NAME`` selects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from hsm_core.install_hints import install_hint
from hsm_core.plugin import (
    ComponentNotFound,
    ComputeSource,
    ComputeSourceRecord,
    ConfigError,
    HsmError,
    SourceContext,
)
from hsm_core.plugins import PACKAGE_HINTS, scheduler_records

#: The ``--sources`` kind standing for "the batch scheduler of hpc.system, or the one detected here".
HPC = "hpc"


@dataclass
class SourceRequest:
    """One entry of ``--sources`` after parsing."""

    kind: str  #: registered compute-source name (``local``, ``ssh``, a scheduler ...)
    name: str  #: instance name, unique in the sweep (``local``, ``server1``, ``cluster``)
    capacity: int | None
    options: dict[str, Any] = field(default_factory=dict)
    spelled: str = ""


def _int(text: str, item: str, where: str = "--sources") -> int:
    if not text.isdigit() or int(text) < 1:
        raise HsmError(f"invalid capacity {text!r} in {where} entry {item!r}", hint="use a positive number, e.g. local:4")
    return int(text)


def _hpc_hint() -> str:
    return install_hint(*PACKAGE_HINTS.get((ComputeSourceRecord.kind, HPC), ()))


def _detect_hpc(registry: Any) -> str:
    installed = scheduler_records(registry)
    for rec in installed.values():
        try:
            if rec.detected():
                return rec.name
        except Exception:
            continue
    found = f"none of the installed schedulers ({', '.join(installed)}) is usable here" if installed else "no scheduler plugin is installed"
    hint = "set hpc.system in hsm_config.yaml" + ("" if installed else f", or {_hpc_hint()}")
    raise HsmError(f"no HPC scheduler found on this machine ({found})", hint=hint)


def _section(data: Mapping[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def kind_options(record: Any, project_data: Mapping[str, Any]) -> dict[str, Any]:
    """The options every source of ``record``'s kind starts from: ``hpc:`` (batch schedulers;
    without ``clusters``), then the kind's own section (``compute.<kind>``; later wins)."""
    out: dict[str, Any] = {}
    if getattr(record, "batch_scheduler", False):
        out.update({k: v for k, v in dict(project_data.get("hpc") or {}).items() if k != "clusters"})
    section = record.options_section() if hasattr(record, "options_section") else f"compute.{record.name}"
    if not section.endswith(".*"):
        own = _section(project_data, section)
        if isinstance(own, Mapping):
            out.update({k: v for k, v in own.items() if k != "clusters"})
    return out


def named_entries(record: Any, project_data: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """``(dotted section, entries)`` when the kind's instances are named entries of a section
    (``distributed.remotes`` for ``ssh:NAME``); None for the others."""
    section = record.options_section() if hasattr(record, "options_section") else ""
    if not section.endswith(".*"):
        return None
    base = section[:-2]
    entries = _section(project_data, base)
    return base, dict(entries) if isinstance(entries, Mapping) else {}


def parse_sources(
    text: str | Sequence[str], project_data: Mapping[str, Any], registry: Any, *, where: str = "--sources"
) -> list[SourceRequest]:
    """Turn ``--sources`` text into requests, with options from ``hsm_config.yaml``.

    ``text`` may also be a list of entries (a sweep file's ``sources: [local, ssh:gpu1]``). Every
    entry must name an installed compute source: a misspelled one (``lcoal:2``) is an error here,
    before anything is written; ``where`` names the setting in messages (``--sources``,
    ``compute.default_sources`` ...).
    """
    if not isinstance(text, str):
        text = ",".join(str(x) for x in text)
    requests: list[SourceRequest] = []
    compute = project_data.get("compute") or {}
    clusters = dict((project_data.get("hpc") or {}).get("clusters") or {})
    for raw in (x.strip() for x in text.split(",")):
        if not raw:
            continue
        parts = raw.split(":")
        kind = parts[0].lower()
        rest = parts[1:]
        capacity: int | None = None
        name: str | None = None
        options: dict[str, Any] = {}
        record = None if kind == HPC else _known_kind(registry, kind, raw, where)
        if record is not None:
            kind = record.name  # an alias (``remote``) stands for its kind
        entries = named_entries(record, project_data) if record is not None else None
        if kind == "local":
            if len(rest) > 1:
                raise HsmError(f"invalid {where} entry {raw!r}", hint="use local or local:N")
            if rest:
                capacity = _int(rest[0], raw, where)
            name = "local"
            options = dict(compute.get("local") or {})
        elif entries is not None:
            # A kind whose instances are named entries (ssh:NAME[:N] -> distributed.remotes.NAME).
            if not rest or not rest[0]:
                raise HsmError(f"{where} entry {raw!r} needs a name", hint=f"use {kind}:NAME or {kind}:NAME:N")
            if len(rest) > 2:
                raise HsmError(f"invalid {where} entry {raw!r}", hint=f"use {kind}:NAME or {kind}:NAME:N")
            name = rest[0]
            if len(rest) > 1:
                capacity = _int(rest[1], raw, where)
            options = {**kind_options(record, project_data), **dict(entries[1].get(name) or {})}
        else:
            # hpc / a scheduler / any other kind: [kind][:cluster][:N]
            if len(rest) > 2:
                raise HsmError(f"invalid {where} entry {raw!r}", hint=f"use {kind}, {kind}:CLUSTER or {kind}:CLUSTER:N")
            if rest and rest[-1].isdigit() and (len(rest) == 2 or (len(rest) == 1 and rest[0] not in clusters)):
                capacity = _int(rest.pop(), raw, where)
            cluster = rest[0] if rest else None
            entry: dict[str, Any] = {}
            if cluster is not None:
                if cluster not in clusters:
                    known = ", ".join(sorted(clusters)) or "none configured"
                    raise ConfigError(
                        f"unknown cluster {cluster!r} in {where} entry {raw!r} (clusters: {known})",
                        key="hpc.clusters",
                        hint="add it under hpc.clusters in hsm_config.yaml",
                    )
                entry = dict(clusters[cluster])
            if kind == HPC:
                system = str(entry.get("system") or (project_data.get("hpc") or {}).get("system") or "auto").lower()
                kind = _detect_hpc(registry) if system == "auto" else system
                record = _known_kind(registry, kind, raw, f"{where} (hpc.system)")
                kind = record.name
            options = {**kind_options(record, project_data), **entry}
            name = cluster or kind
        if capacity is None:
            capacity = options.get("max_parallel_jobs") or options.get("max_tasks")
        requests.append(SourceRequest(kind, name, capacity, options, raw))
    if not requests:
        raise HsmError(f"no sources given in {where}", hint="e.g. --sources local or --sources local:4,ssh:server1")
    seen: set[str] = set()
    for req in requests:
        if req.name in seen:
            raise HsmError(f"source {req.name!r} given twice in {where}")
        seen.add(req.name)
    return requests


def _known_kind(registry: Any, kind: str, raw: str, where: str) -> Any:
    """The record of ``kind`` (or of the kind it is an alias of); an entry whose kind no installed
    plugin provides is refused (with a "did you mean" and what to install)."""
    try:
        return registry.get(ComputeSourceRecord.kind, kind)
    except ComponentNotFound as exc:
        raise HsmError(f"{where} entry {raw!r}: {exc.message}") from None


def missing_local_commands(request: SourceRequest, record: Any) -> list[str]:
    """The programs ``record.local_commands`` (a scheduler's client commands) that are not on this
    machine's PATH (or the ``env: {PATH: ...}`` of the source's options), when the source runs
    them here, i.e. its options name no login-node ``host:``."""
    import shutil

    commands = tuple(getattr(record, "local_commands", ()) or ())
    host = request.options.get("host")
    if not commands or (host and str(host) not in ("local", "localhost")):
        return []
    path = (request.options.get("env") or {}).get("PATH")
    return [c for c in commands if shutil.which(c, path=path) is None]


def create_sources(requests: list[SourceRequest], registry: Any, context: SourceContext) -> list[ComputeSource]:
    """Instantiate each requested source (a missing plugin is a clear error before anything runs)."""
    sources: list[ComputeSource] = []
    for req in requests:
        rec = registry.get(ComputeSourceRecord.kind, req.kind)
        options = dict(req.options)
        if req.capacity is not None:
            options["max_parallel_jobs"] = req.capacity
        sources.append(rec.load()(req.name, options, context))
    return sources
