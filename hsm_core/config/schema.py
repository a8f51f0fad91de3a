"""The JSON Schemas of ``hsm_config.yaml`` and of sweep files: the core's plus what plugins add.

:func:`core_schema` reads ``hsm_core/schemas/{project,sweep}.json``; :func:`build_schema` merges
in the ``config_schema`` fragments of the installed plugins' components (``hsm config schema``
prints the result). :func:`deref`, :func:`known_keys` and :func:`schema_at` walk a schema for the
checks of :mod:`hsm_core.config.validation`.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any, Literal, Mapping, Sequence

from hsm_core.plugins import KIND_HOOKS, get_registry

#: Sweep-file sections the core expanders handle (plugins add more through ExpanderRecord.section).
CORE_SECTIONS: tuple[str, ...] = ("grid", "paired")

__all__ = [
    "CORE_SECTIONS",
    "SchemaName",
    "build_schema",
    "core_schema",
    "deref",
    "known_keys",
    "resolve_registry",
    "schema_at",
]

SchemaName = Literal["project", "sweep"]


@functools.lru_cache(maxsize=None)
def _core_schema_text(which: str) -> str:
    from importlib import resources

    if which not in ("project", "sweep"):
        raise ValueError(f"unknown schema {which!r} (expected 'project' or 'sweep')")
    return resources.files("hsm_core").joinpath("schemas", f"{which}.json").read_text(encoding="utf-8")


def core_schema(which: SchemaName) -> dict[str, Any]:
    """The core JSON Schema (without plugin fragments) of ``hsm_config.yaml`` or of a sweep file."""
    return json.loads(_core_schema_text(which))


def _open_fragment(fragment: Mapping[str, Any]) -> dict[str, Any]:
    # A plugin's "additionalProperties: false" would reject the core keys of the same entry.
    frag = copy.deepcopy(dict(fragment))
    frag.pop("additionalProperties", None)
    frag.pop("unevaluatedProperties", None)
    return frag


def resolve_registry(registry: Any) -> Any:
    """``registry``, or the process-wide plugin registry when it is None."""
    return get_registry() if registry is None else registry


def _merge_fragment(node: dict[str, Any], fragment: Mapping[str, Any]) -> None:
    """Add a plugin's fragment to a node of the core schema: its properties join the node's (a key
    both define must satisfy both), ``additionalProperties: false`` closes the node, any other rule
    of the fragment applies through ``allOf``."""
    frag = copy.deepcopy(dict(fragment))
    props = node.setdefault("properties", {})
    for key, sub in (frag.pop("properties", None) or {}).items():
        props[key] = {"allOf": [props[key], sub]} if key in props else sub
    if frag.pop("additionalProperties", None) is False:
        node["additionalProperties"] = False
    for key in ("type", "description", "title", "$schema", "$id"):
        frag.pop(key, None)
    if frag:
        node.setdefault("allOf", []).append(frag)


def _schema_node(schema: dict[str, Any], section: str, create: bool) -> dict[str, Any] | None:
    """The node of the project schema at a dotted ``section`` (``compute.local``;
    ``distributed.remotes.*`` is one entry of that mapping); with ``create``, a missing last key is
    added as an empty object under an existing parent."""
    parts = section.split(".")
    node: Any = schema
    for i, part in enumerate(parts):
        node = deref(node, schema)
        if not isinstance(node, dict):
            return None
        if part == "*":
            node = node.get("additionalProperties")
        elif part in node.get("properties", {}):
            node = node["properties"][part]
        elif create and i == len(parts) - 1 and node.get("type") == "object":
            created: dict[str, Any] = {"type": "object"}
            node.setdefault("properties", {})[part] = created
            node = created
        else:
            return None
    node = deref(node, schema)
    return node if isinstance(node, dict) else None


def build_schema(registry: Any, which: SchemaName) -> dict[str, Any]:
    """The core schema of ``which`` plus the fragments plugins registered (``hsm config schema``).

    ``registry`` is a :class:`~hsm_core.plugins.PluginRegistry` (None: the process-wide one).
    Fragments are merged this way:

    * project, every compute source: its ``config_schema`` validates its options where its record
      says they live (``config_section``): ``compute.<name>`` by default (``compute.local`` for the
      built-in source), one entry of a mapping for a section ending in ``.*`` (the ssh plugin:
      every ``distributed.remotes.NAME``).
    * project, batch schedulers (``batch_scheduler=True``) also: the fragment applies to ``hpc:``
      and to every ``hpc.clusters.NAME`` whose ``system`` is that name (``if``/``then``).
    * sweep, expanders: a top-level section (and one under the v1 ``sweep:``) named after the
      record's ``section``; for ``grid``/``paired`` the fragment is added to the core rules.
    * Every other fragment is listed under ``$defs.plugins.KIND.NAME`` for reference only.

    ``hpc.system`` accepts any name at load (a project may name a scheduler whose plugin is not
    installed on this machine: ``hsm config validate`` warns, a run that uses it fails); the
    installed ones are listed as ``examples``. ``compute`` accepts a mapping under any other key,
    for the same reason.
    """
    registry = resolve_registry(registry)
    schema = core_schema(which)
    defs = schema.setdefault("$defs", {})
    plugin_defs: dict[str, dict[str, Any]] = {}
    kinds = _component_kinds()
    used: set[tuple[str, str]] = set()

    if which == "project":
        props = schema["properties"]
        compute = props["compute"]
        core_compute = set(compute["properties"])
        hpc, cluster = props["hpc"], defs["cluster"]
        systems: list[str] = []
        for name, rec in sorted(registry.components("compute_source").items()):
            frag = dict(rec.config_schema or {})
            scheduler = bool(getattr(rec, "batch_scheduler", False))
            if scheduler:
                systems += [name, *getattr(rec, "aliases", ())]
            section = rec.options_section() if hasattr(rec, "options_section") else f"compute.{name}"
            own_default = section == f"compute.{name}"
            if own_default and name in core_compute and name != "local":
                continue  # a kind may not take over a core setting such as compute.strategy
            node = _schema_node(schema, section, create=own_default)
            if node is not None:
                if own_default and name != "local":
                    node.setdefault("properties", {}).setdefault("max_parallel_jobs", {"type": "integer", "minimum": 1})
                    node.setdefault("description", f"options of the {name} compute source ({rec.summary})")
                if frag:
                    _merge_fragment(node, frag)
            if frag and scheduler:
                cond = {
                    "if": {"properties": {"system": {"enum": [name, *getattr(rec, "aliases", ())]}}, "required": ["system"]},
                    "then": _open_fragment(frag),
                }
                hpc.setdefault("allOf", []).append(cond)
                cluster.setdefault("allOf", []).append(copy.deepcopy(cond))
            if frag and (node is not None or scheduler):
                used.add(("compute_source", name))
        defs["hpc_system"]["examples"] = [*systems, "auto"]
        known = ", ".join(sorted(compute["properties"]))
        compute["additionalProperties"] = {
            "type": "object",
            "x-message": f"not a compute setting ({known}); under compute:, a mapping is the options of a compute source",
        }
    else:
        props = schema["properties"]
        inner = props["sweep"]["properties"]
        for rec in registry.components("expander").values():
            section = getattr(rec, "section", "") or rec.name
            frag = copy.deepcopy(dict(rec.config_schema or {}))
            if section in CORE_SECTIONS:
                if frag:
                    for target in (props, inner):
                        target[section] = {"allOf": [target[section], copy.deepcopy(frag)]}
            elif section in props:  # a plugin may not take over a setting such as 'name'
                continue
            else:
                props[section] = frag
                inner[section] = copy.deepcopy(frag)
            used.add(("expander", rec.name))

    for kind in kinds:
        for name, rec in registry.components(kind).items():
            if rec.config_schema and (kind, name) not in used:
                plugin_defs.setdefault(kind, {})[name] = copy.deepcopy(dict(rec.config_schema))
    if plugin_defs:
        defs["plugins"] = plugin_defs
    return schema


def _component_kinds() -> list[str]:
    return list(KIND_HOOKS)


def deref(node: Any, root: Mapping[str, Any]) -> Any:
    """``node`` with its local ``$ref`` (``#/$defs/...``) followed; ``{}`` for any other reference."""
    seen = 0
    while isinstance(node, dict) and "$ref" in node and seen < 20:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            return {}
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        node = target
        seen += 1
    return node


def known_keys(node: Any, root: Mapping[str, Any], depth: int = 0) -> set[str]:
    """Every key ``node`` names, with those of its ``allOf``/``anyOf``/``oneOf``/``then``/``else``."""
    node = deref(node, root)
    if not isinstance(node, dict) or depth > 10:
        return set()
    keys = set(node.get("properties", {}))
    for sub in node.get("allOf", []) + node.get("anyOf", []) + node.get("oneOf", []):
        keys |= known_keys(sub, root, depth + 1)
    for k in ("then", "else"):
        if k in node:
            keys |= known_keys(node[k], root, depth + 1)
    return keys


def schema_at(schema: Mapping[str, Any], path: Sequence[Any]) -> Any:
    """The schema node validating the value at ``path`` (a key the node does not name falls to
    its ``additionalProperties``)."""
    node: Any = schema
    for part in path:
        node = deref(node, schema)
        if not isinstance(node, dict):
            return {}
        props = node.get("properties", {})
        if part in props:
            node = props[part]
        else:
            extra = node.get("additionalProperties", {})
            node = extra if isinstance(extra, dict) else {}
    return deref(node, schema)
