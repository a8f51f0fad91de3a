"""Parsing ``--sources`` and creating compute sources.

Syntax (comma separated): ``local``, ``local:4``, ``ssh:NAME``, ``ssh:NAME:8``, ``hpc``,
``hpc:CLUSTER``, ``hpc:CLUSTER:16``, or a source kind directly (``slurm``, ``pbs:CLUSTER``).
``hpc`` resolves to the cluster's ``system`` from ``hsm_config.yaml`` or to the scheduler detected
on this machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from hsm_core.install_hints import install_hint
from hsm_core.plugin import (
    ComputeSource,
    ComputeSourceRecord,
    ConfigError,
    HsmError,
    SourceContext,
)


@dataclass
class SourceRequest:
    """One entry of ``--sources`` after parsing."""

    kind: str  #: registered compute-source name (``local``, ``ssh``, ``slurm`` ...)
    name: str  #: instance name, unique in the sweep (``local``, ``server1``, ``cluster``)
    capacity: int | None
    options: dict[str, Any] = field(default_factory=dict)
    spelled: str = ""


def _int(text: str, item: str, where: str = "--sources") -> int:
    if not text.isdigit() or int(text) < 1:
        raise HsmError(f"invalid capacity {text!r} in {where} entry {item!r}", hint="use a positive number, e.g. local:4")
    return int(text)


def _detect_hpc(registry: Any) -> str:
    for rec in registry.components(ComputeSourceRecord.kind).values():
        if rec.name in ("local", "ssh"):
            continue
        try:
            if rec.detected():
                return rec.name
        except Exception:
            continue
    raise HsmError(
        "no HPC scheduler found on this machine (no sbatch or qsub on PATH, none configured)",
        hint=f"set hpc.system in hsm_config.yaml, or {install_hint('hsm-plugin-slurm', 'hsm-plugin-pbs')}",
    )


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
    hpc = dict(project_data.get("hpc") or {})
    clusters = hpc.pop("clusters", None) or {}
    remotes = ((project_data.get("distributed") or {}).get("remotes")) or {}
    for raw in (x.strip() for x in text.split(",")):
        if not raw:
            continue
        parts = raw.split(":")
        kind = parts[0].lower()
        rest = parts[1:]
        capacity: int | None = None
        name: str | None = None
        options: dict[str, Any] = {}
        if kind == "local":
            if len(rest) > 1:
                raise HsmError(f"invalid {where} entry {raw!r}", hint="use local or local:N")
            if rest:
                capacity = _int(rest[0], raw, where)
            name = "local"
            options = dict(compute.get("local") or {})
        elif kind in ("ssh", "remote"):
            kind = "ssh"
            if not rest or not rest[0]:
                raise HsmError(f"{where} entry {raw!r} needs a host", hint="use ssh:NAME or ssh:NAME:N")
            if len(rest) > 2:
                raise HsmError(f"invalid {where} entry {raw!r}", hint="use ssh:NAME or ssh:NAME:N")
            _known_kind(registry, kind, raw, where)
            name = rest[0]
            if len(rest) > 1:
                capacity = _int(rest[1], raw, where)
            if name in remotes:
                options = dict(remotes[name])
            else:
                options = {"host": name}
        else:
            # hpc / slurm / pbs / a third-party kind: [kind][:cluster][:N]
            if kind != "hpc":
                _known_kind(registry, kind, raw, where)
            if len(rest) > 2:
                raise HsmError(f"invalid {where} entry {raw!r}", hint=f"use {kind}, {kind}:CLUSTER or {kind}:CLUSTER:N")
            if rest and rest[-1].isdigit() and (len(rest) == 2 or (len(rest) == 1 and rest[0] not in clusters)):
                capacity = _int(rest.pop(), raw, where)
            cluster = rest[0] if rest else None
            if cluster is not None:
                if cluster not in clusters:
                    known = ", ".join(sorted(clusters)) or "none configured"
                    raise ConfigError(
                        f"unknown cluster {cluster!r} in {where} entry {raw!r} (clusters: {known})",
                        key="hpc.clusters",
                        hint="add it under hpc.clusters in hsm_config.yaml",
                    )
                options = {**hpc, **dict(clusters[cluster])}
            else:
                options = dict(hpc)
            if kind == "hpc":
                system = str(options.get("system") or "auto").lower()
                kind = _detect_hpc(registry) if system == "auto" else system
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


def _known_kind(registry: Any, kind: str, raw: str, where: str) -> None:
    """Refuse an entry whose kind no installed plugin provides (with a "did you mean")."""
    from hsm_core.plugin import ComponentNotFound

    try:
        registry.get(ComputeSourceRecord.kind, kind)
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
