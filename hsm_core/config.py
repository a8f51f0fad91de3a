"""Loading and validating hsm's YAML files, with errors that name the file, the line and the key.

Two files are configuration: the project's ``hsm_config.yaml`` (v2 location: the project root;
v1 location: ``sweeps/hsm_config.yaml``) and sweep files (``sweeps/sweep_config.yaml``, v1
``sweeps/sweep.yaml``). Both are read with :func:`load_yaml`, which keeps the line of every key,
and checked with :func:`validate` against a JSON Schema made of the core schema
(``hsm_core/schemas/*.json``) plus the fragments plugins register for their components
(:func:`build_schema`). Every problem is one :class:`~hsm_core.plugin.ConfigError` line such as::

    hsm_config.yaml:12: compute.health_chek_interval: unknown key 'health_chek_interval', did you mean 'health_check_interval'?

Numbers follow YAML 1.2 rather than PyYAML's YAML 1.1: ``1e-3`` is a float (YAML 1.1 reads a
string) and ``12:00:00`` is a string (YAML 1.1 reads the base-60 integer 43200).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping, Sequence

import yaml

from hsm_core.plugin import ConfigError

CONFIG_FILENAME = "hsm_config.yaml"
#: Where the project config is looked for, relative to the project root, in this order.
CONFIG_LOCATIONS: tuple[str, ...] = (CONFIG_FILENAME, f"sweeps/{CONFIG_FILENAME}")
DEFAULT_OUTPUT_DIR = "sweeps/outputs"
#: Sweep-file sections the core expanders handle (plugins add more through ExpanderRecord.section).
CORE_SECTIONS: tuple[str, ...] = ("grid", "paired")

__all__ = [
    "CONFIG_FILENAME",
    "CONFIG_LOCATIONS",
    "DEFAULT_OUTPUT_DIR",
    "LineDict",
    "LineList",
    "ProjectConfig",
    "build_schema",
    "core_schema",
    "display_path",
    "dump_yaml",
    "find_config_file",
    "find_project_root",
    "key_path",
    "line_of",
    "load_project_config",
    "load_sweep_file",
    "load_yaml",
    "load_yaml_text",
    "parse_value",
    "set_config_value",
    "to_plain",
    "validate",
    "yaml_inline",
]


# --------------------------------------------------------------------------------------------
# Containers that remember where they came from
# --------------------------------------------------------------------------------------------


class LineDict(dict):
    """A mapping read from YAML. ``lines[key]`` is the 1-based line of each key, ``line`` the
    mapping's own line and ``file`` the file it came from (None when unknown)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lines: dict[Any, int] = {}
        self.line: int | None = None
        self.file: str | None = None


class LineList(list):
    """A sequence read from YAML. ``lines[i]`` is the 1-based line of item ``i``."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.lines: list[int] = []
        self.line: int | None = None
        self.file: str | None = None


# yaml.safe_dump / yaml.dump (and hsm_core.atomic.dump_yaml) write them like plain containers.
for _representer in (yaml.representer.SafeRepresenter, yaml.representer.Representer):
    _representer.add_representer(LineDict, yaml.representer.SafeRepresenter.represent_dict)
    _representer.add_representer(LineList, yaml.representer.SafeRepresenter.represent_list)


def to_plain(obj: Any) -> Any:
    """A deep copy of ``obj`` with :class:`LineDict`/:class:`LineList` turned into dict/list."""
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_plain(v) for v in obj]
    return obj


# --------------------------------------------------------------------------------------------
# YAML loading
# --------------------------------------------------------------------------------------------

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"

# YAML 1.1 integers and floats minus the base-60 forms; floats also without a dot (1e-3).
_INT_RE = re.compile(
    r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0[0-7_]+
    |[-+]?(?:0|[1-9][0-9_]*)
    |[-+]?0x[0-9a-fA-F_]+)$""",
    re.X,
)
_FLOAT_RE = re.compile(
    r"""^(?:[-+]?[0-9][0-9_]*(?:\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[eE][-+]?[0-9]+)
    |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


def _resolvers(base: Any, *, keep_yaml11: bool = False) -> dict[str, list[tuple[str, Any]]]:
    # A fresh table: add_implicit_resolver would append to lists shared with PyYAML's classes.
    table = {
        ch: [(tag, rx) for tag, rx in entries if keep_yaml11 or tag not in (_INT_TAG, _FLOAT_TAG)]
        for ch, entries in base.yaml_implicit_resolvers.items()
    }
    for ch in "-+0123456789":
        table.setdefault(ch, []).append((_INT_TAG, _INT_RE))
    for ch in "-+0123456789.":
        table.setdefault(ch, []).append((_FLOAT_TAG, _FLOAT_RE))
    return table


_BaseLoader: Any = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader


class _LineLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Safe loader (C parser when available) building LineDict/LineList and refusing duplicate keys."""

    hsm_file: str | None = None


_LineLoader.yaml_implicit_resolvers = _resolvers(_BaseLoader)


class _Dumper(yaml.SafeDumper):
    """Safe dumper that quotes every string that our loader *or* a plain YAML 1.1 loader would read
    as something else (``1e3``, ``04:00:00``), so what it writes reads back the same everywhere."""


_Dumper.yaml_implicit_resolvers = _resolvers(yaml.SafeDumper, keep_yaml11=True)


def _construct_map(loader: Any, node: yaml.MappingNode) -> Iterator[LineDict]:
    data = LineDict()
    data.line = node.start_mark.line + 1
    data.file = loader.hsm_file
    yield data
    # Duplicates are checked among the mapping's own keys, before '<<' merges are flattened in
    # (a key that overrides a merged one is normal YAML, not a duplicate).
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:
            continue
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            first = seen.get(key)
        except TypeError:
            raise ConfigError("a mapping key must be a scalar", file=loader.hsm_file, line=line) from None
        if first is not None:
            raise ConfigError(
                f"duplicate key (first defined on line {first})",
                file=loader.hsm_file,
                line=line,
                key=str(key),
            )
        seen[key] = line
    loader.flatten_mapping(node)
    lines = data.lines
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        data[key] = loader.construct_object(value_node, deep=False)
        lines[key] = key_node.start_mark.line + 1


def _construct_seq(loader: Any, node: yaml.SequenceNode) -> Iterator[LineList]:
    data = LineList()
    data.line = node.start_mark.line + 1
    data.file = loader.hsm_file
    yield data
    data.extend(loader.construct_object(child, deep=False) for child in node.value)
    data.lines = [child.start_mark.line + 1 for child in node.value]


_LineLoader.add_constructor(_MAP_TAG, _construct_map)
_LineLoader.add_constructor(_SEQ_TAG, _construct_seq)


def _display(path: str | Path) -> str:
    """The path as the user would type it: relative to the cwd when below it."""
    p = Path(path)
    try:
        return str(p.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def display_path(path: str | Path) -> str:
    """A path for messages, as the user would type it: relative to the cwd when below it."""
    return _display(path)


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: How many nodes aliases may add to a YAML document once expanded. A real sweep file reuses a
#: list or a mapping a few times; a "billion laughs" file nests aliases of aliases so that a
#: few lines stand for 10**9 values, and would keep hsm busy (and growing) for hours.
MAX_ALIAS_EXPANSION = 1_000_000


def _check_aliases(root: yaml.Node, file: str | None) -> None:
    """Refuse a document whose aliases expand to more than :data:`MAX_ALIAS_EXPANSION` extra nodes.

    The composed document is a graph in which an alias is the anchored node itself, so the size
    of each node once expanded (1 + the sizes of its children) is counted once per node
    (memoised): linear in the file, whatever the expansion. The error points at the smallest
    node that is too big by itself (the anchor of the level that crosses the limit).
    """
    size: dict[int, int] = {}
    distinct = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    on_path: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            total = 1
            for child in _children(node):
                total += size[id(child)]
            size[key] = total
            continue
        if key in size:
            continue
        if key in on_path:
            raise ConfigError("a YAML alias refers to the node that contains it (a recursive alias)",
                              file=file, line=node.start_mark.line + 1, hint="remove the alias")
        distinct += 1
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in size)
    if size[id(root)] - distinct <= MAX_ALIAS_EXPANSION:
        return
    node = root
    while True:
        bigger = [c for c in _children(node) if size[id(c)] > MAX_ALIAS_EXPANSION]
        if not bigger:
            break
        node = max(bigger, key=lambda c: size[id(c)])
    raise ConfigError(
        f"YAML aliases here expand to {size[id(node)]:,} values, and the whole file to {size[id(root)]:,} "
        f"(at most {MAX_ALIAS_EXPANSION:,} more than the file holds)",
        file=file,
        line=node.start_mark.line + 1,
        hint="write the values out, or reuse a list fewer times",
    )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _load_text(text: str, file: str | None) -> Any:
    loader = _LineLoader(text)
    loader.hsm_file = file
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_aliases(node, file)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "syntax error"
        tab = "\t" in problem
        if mark is not None and not tab:
            line_text = text.split("\n", mark.line + 1)[mark.line] if mark.line < text.count("\n") + 1 else ""
            tab = line_text[mark.column : mark.column + 1] == "\t"
        if tab:
            problem = problem.replace("\t", "\\t") + " (a tab: indent with spaces)"
        if mark is not None:
            problem += f" at column {mark.column + 1}"
        if exc.context and exc.problem and exc.context_mark and exc.context_mark.line != getattr(mark, "line", None):
            problem += f" ({exc.context} on line {exc.context_mark.line + 1})"
        raise ConfigError(
            _one_line(f"invalid YAML: {problem}"),
            file=file,
            line=mark.line + 1 if mark is not None else None,
        ) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1 if isinstance(exc.position, int) else None
        raise ConfigError(
            _one_line(f"invalid YAML: character #x{exc.character:04x} is not allowed ({exc.reason})"),
            file=file,
            line=line,
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(_one_line(f"invalid YAML: {exc}"), file=file) from None
    finally:
        loader.dispose()


def load_yaml_text(text: str, file: str | Path | None = None) -> Any:
    """Parse YAML text like :func:`load_yaml` (``file`` only names it in errors); empty gives None."""
    return _load_text(text, str(file) if file is not None else None)


def load_yaml(path: Path) -> Any:
    """Parse a YAML file safely, keeping the line of every key and item.

    Mappings come back as :class:`LineDict`, sequences as :class:`LineList`; an empty file gives
    an empty :class:`LineDict`. Raises :class:`ConfigError` (with file and line) for a missing or
    unreadable file, a file that is not UTF-8, a YAML syntax error and a duplicate key.
    """
    path = Path(path)
    shown = _display(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("file not found", file=shown, hint="check the path, or run 'hsm config init'") from None
    except IsADirectoryError:
        raise ConfigError("is a directory, expected a YAML file", file=shown) from None
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror or exc}", file=shown) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"file is not UTF-8 text (byte 0x{raw[exc.start]:02x})",
            file=shown,
            line=line,
            hint="save it as UTF-8",
        ) from None
    data = _load_text(text, shown)
    if data is None:
        data = LineDict()
        data.file = shown
    return data


def parse_value(raw: str) -> Any:
    """Parse a command-line value as YAML: ``300`` -> 300, ``true`` -> True, ``[0, 1]`` -> list.

    Text that is not valid YAML, the empty string and any other unquoted text stay exactly as
    typed; a quoted value (``'"300"'``) is the string inside the quotes.
    """
    if raw.strip() == "":
        return raw
    try:
        value = to_plain(_load_text(raw, None))
    except ConfigError:
        return raw
    if isinstance(value, str) and raw.strip()[:1] not in ("'", '"'):
        return raw  # unquoted text is taken literally: YAML would drop a ' # ...' part
    return value


def dump_yaml(data: Any) -> str:
    """YAML text (block style, keys in order) that :func:`load_yaml` reads back unchanged."""
    return yaml.dump(to_plain(data), Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


def yaml_inline(value: Any) -> str:
    """One value as YAML on one line (flow style), quoted only when needed: ``train.py``, ``'1e3'``."""
    text = yaml.dump([to_plain(value)], Dumper=_Dumper, default_flow_style=True, width=1 << 30, allow_unicode=True)
    text = text.strip()
    return text[1:-1]


# --------------------------------------------------------------------------------------------
# Line lookup
# --------------------------------------------------------------------------------------------


def key_path(path: Sequence[Any]) -> str:
    """``['hpc', 'clusters', 'a', 'host']`` -> ``hpc.clusters.a.host``; list indices as ``[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def line_of(data: Any, path: Sequence[Any]) -> int | None:
    """The line of the deepest key of ``path`` found in ``data`` (a LineDict tree), or None."""
    line = getattr(data, "line", None)
    node = data
    for part in path:
        if isinstance(node, dict) and part in node:
            line = getattr(node, "lines", {}).get(part, line)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            lines = getattr(node, "lines", [])
            line = lines[part] if part < len(lines) else line
            node = node[part]
        else:
            break
    return line


# --------------------------------------------------------------------------------------------
# Schemas
# --------------------------------------------------------------------------------------------

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


def _resolve_registry(registry: Any) -> Any:
    if registry is None:
        from hsm_core.plugins import get_registry

        return get_registry()
    return registry


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
        node = _deref(node, schema)
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
    node = _deref(node, schema)
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
    registry = _resolve_registry(registry)
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
    from hsm_core.plugins import KIND_HOOKS

    return list(KIND_HOOKS)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "nothing",
}


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    kind = "an integer" if isinstance(value, int) else "a number" if isinstance(value, float) else "a string"
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"{shown} ({kind})" if not isinstance(value, str) else shown


def _did_you_mean(word: Any, candidates: Sequence[Any], cutoff: float = 0.6) -> str | None:
    import difflib

    names = [str(c) for c in candidates]
    found = difflib.get_close_matches(str(word), names, n=1, cutoff=cutoff)
    return found[0] if found else None


def _extra_keys(error: Any) -> list[Any]:
    props = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
    patterns = error.schema.get("patternProperties", {}) if isinstance(error.schema, dict) else {}
    extras = []
    for key in error.instance:
        if key in props:
            continue
        if isinstance(key, str) and any(re.search(p, key) for p in patterns):
            continue
        extras.append(key)
    return extras


def _message(error: Any) -> tuple[list[Any], str]:
    """(path of the offending key, one-line message) for a jsonschema error."""
    path = list(error.absolute_path)
    v = error.validator
    inst = error.instance
    sch = error.schema if isinstance(error.schema, dict) else {}
    custom = sch.get("x-message")
    if custom:
        return path, str(custom)
    if v == "additionalProperties" and isinstance(inst, dict):
        extras = _extra_keys(error) or list(inst)
        bad = extras[0]
        known = list(sch.get("properties", {}))
        guess = _did_you_mean(bad, known)
        msg = f"unknown key {str(bad)!r}"
        if guess:
            msg += f", did you mean {guess!r}?"
        elif known:
            msg += f" (expected one of: {', '.join(sorted(map(str, known)))})"
        return path + [bad], msg
    if v == "required":
        missing = [k for k in error.validator_value if not (isinstance(inst, dict) and k in inst)]
        names = ", ".join(repr(k) for k in missing) or repr(error.validator_value)
        if isinstance(inst, dict) and missing:
            typo = _did_you_mean(missing[0], [k for k in inst if isinstance(k, str)])
            if typo:
                return path + [typo], f"unknown key {typo!r}, did you mean {missing[0]!r}? ({missing[0]!r} is required)"
        return path, f"missing required key {names}"
    if v == "type":
        expected = error.validator_value
        expected = expected if isinstance(expected, list) else [expected]
        want = " or ".join(_TYPE_NAMES.get(t, t) for t in expected)
        return path, f"expected {want}, got {_describe(inst)}"
    if v in ("enum", "const"):
        allowed = error.validator_value if v == "enum" else [error.validator_value]
        msg = f"must be one of: {', '.join(map(str, allowed))}; got {_describe(inst)}"
        if v == "const":
            msg = f"must be {allowed[0]!r}; got {_describe(inst)}"
        guess = _did_you_mean(inst, allowed) if isinstance(inst, str) else None
        if guess:
            msg += f" (did you mean {guess!r}?)"
        return path, msg
    if v == "minItems":
        if error.validator_value == 1:
            return path, "must not be an empty list"
        return path, f"needs at least {error.validator_value} items, got {len(inst)}"
    if v == "maxItems":
        return path, f"allows at most {error.validator_value} items, got {len(inst)}"
    if v == "minProperties":
        if error.validator_value == 1:
            return path, "must not be empty"
        return path, f"needs at least {error.validator_value} keys"
    if v == "maxProperties":
        return path, f"allows at most {error.validator_value} key(s), got {len(inst)}"
    if v == "minimum":
        return path, f"must be at least {error.validator_value}, got {_describe(inst)}"
    if v == "exclusiveMinimum":
        return path, f"must be greater than {error.validator_value}, got {_describe(inst)}"
    if v == "maximum":
        return path, f"must be at most {error.validator_value}, got {_describe(inst)}"
    if v == "exclusiveMaximum":
        return path, f"must be less than {error.validator_value}, got {_describe(inst)}"
    if v == "pattern":
        return path, f"{_describe(inst)} does not match the expected form {error.validator_value!r}"
    if v == "minLength" and error.validator_value == 1:
        return path, "must not be an empty string"
    return path, _one_line(error.message, 200)


@functools.lru_cache(maxsize=32)
def _validator_for(schema_json: str) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(json.loads(schema_json))


def validate(data: Any, schema: Mapping[str, Any], *, file: str | Path | None) -> None:
    """Check ``data`` against ``schema`` (draft 2020-12); raise the most relevant problem.

    The :class:`ConfigError` names ``file``, the line (when ``data`` came from :func:`load_yaml`),
    the dotted key and a one-line message; an unknown key comes with a "did you mean" when a
    valid key is close.
    """
    from jsonschema.exceptions import best_match

    validator = _validator_for(json.dumps(schema, sort_keys=True))
    error = best_match(validator.iter_errors(data))
    if error is None:
        return
    path, message = _message(error)
    raise ConfigError(message, file=_file_at(data, path, file), line=line_of(data, path), key=key_path(path) or None)


def _file_at(data: Any, path: Sequence[Any], file: str | Path | None) -> str | None:
    """The file to name for an error at ``path``: the layer the value came from when ``data``
    merges several files (:mod:`hsm_core.config_layers`), else ``file``."""
    from hsm_core.config_layers import file_of

    found = file_of(data, path) if getattr(data, "files", None) is not None else None
    if found:
        return found
    return _display(file) if file is not None else None


# --------------------------------------------------------------------------------------------
# Near-miss keys in open sections (plugins may add keys there, so the schema cannot reject them)
# --------------------------------------------------------------------------------------------

_OPEN_LOCATIONS: tuple[tuple[str, ...], ...] = (
    ("hpc",),
    ("hpc", "clusters", "*"),
    ("distributed",),
    ("distributed", "remotes", "*"),
    ("ssh",),
    ("wandb",),
    ("workers",),
    ("compute", "*"),
)
#: Checked before the schema: ``compute`` accepts a mapping under any name (the options of a
#: source whose plugin may not be installed here), so a typo of a setting must be caught first.
_CLOSED_BEFORE_SCHEMA: tuple[tuple[str, ...], ...] = (("compute",),)


def _deref(node: Any, root: Mapping[str, Any]) -> Any:
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


def _known_keys(node: Any, root: Mapping[str, Any], depth: int = 0) -> set[str]:
    node = _deref(node, root)
    if not isinstance(node, dict) or depth > 10:
        return set()
    keys = set(node.get("properties", {}))
    for sub in node.get("allOf", []) + node.get("anyOf", []) + node.get("oneOf", []):
        keys |= _known_keys(sub, root, depth + 1)
    for k in ("then", "else"):
        if k in node:
            keys |= _known_keys(node[k], root, depth + 1)
    return keys


def _schema_at(schema: Mapping[str, Any], path: Sequence[Any]) -> Any:
    """The schema node validating the value at ``path`` (a key the node does not name falls to
    its ``additionalProperties``)."""
    node: Any = schema
    for part in path:
        node = _deref(node, schema)
        if not isinstance(node, dict):
            return {}
        props = node.get("properties", {})
        if part in props:
            node = props[part]
        else:
            extra = node.get("additionalProperties", {})
            node = extra if isinstance(extra, dict) else {}
    return _deref(node, schema)


def _nodes_at(data: Any, loc: Sequence[str], prefix: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if not loc:
        yield prefix, data
        return
    if not isinstance(data, dict):
        return
    head, rest = loc[0], loc[1:]
    if head == "*":
        for k, v in data.items():
            yield from _nodes_at(v, rest, prefix + (k,))
    elif head in data:
        yield from _nodes_at(data[head], rest, prefix + (head,))


def _check_near_misses(
    data: Any, schema: Mapping[str, Any], file: str | Path | None, locations: Sequence[tuple[str, ...]] = _OPEN_LOCATIONS
) -> None:
    for loc in locations:
        for path, node in _nodes_at(data, loc):
            if not isinstance(node, dict):
                continue
            known = _known_keys(_schema_at(schema, path), schema)
            for key in node:
                if not isinstance(key, str) or key in known:
                    continue
                guess = _did_you_mean(key, sorted(known), cutoff=0.8)
                if guess:
                    full = list(path) + [key]
                    raise ConfigError(
                        f"unknown key {key!r}, did you mean {guess!r}?",
                        file=_file_at(data, full, file),
                        line=line_of(data, full),
                        key=key_path(full),
                    )


# --------------------------------------------------------------------------------------------
# The project config
# --------------------------------------------------------------------------------------------


def _get(data: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


@dataclass
class ProjectConfig:
    """The project's validated ``hsm_config.yaml`` (or defaults when there is none).

    ``data`` is plain dicts and lists with defaults applied (``paths.output_dir``); ``raw`` keeps
    the :class:`LineDict` tree for line numbers (see :meth:`error`).
    """

    root: Path
    path: Path | None = None
    data: dict[str, Any] = field(default_factory=dict)
    raw: Any = field(default=None, repr=False, compare=False)
    #: ``(layer, file)`` of every file read, lowest first (``project`` is ``path``; see
    #: :mod:`hsm_core.config_layers`).
    layers: list[tuple[str, Path]] = field(default_factory=list)

    def get(self, dotted: str, default: Any = None) -> Any:
        """The value at a dotted key (``compute.local.max_parallel_jobs``), or ``default``."""
        return _get(self.data, dotted, default)

    def line_of(self, key: str | Sequence[Any]) -> int | None:
        """The line of a key in the config file: dotted (``hpc.clusters.a``) or a sequence of
        names (for names holding dots: ``["distributed", "remotes", "gpu.lab"]``); None if unknown."""
        if self.raw is None:
            return None
        return line_of(self.raw, key.split(".") if isinstance(key, str) else list(key))

    def file_of(self, key: str | Sequence[Any] | None = None) -> str | None:
        """The file (as shown in messages) holding ``key``: the project's ``hsm_config.yaml``, or
        the lower layer the value came from; the project file when ``key`` is None or unknown."""
        from hsm_core.config_layers import file_of

        if key is not None and self.raw is not None:
            found = file_of(self.raw, key.split(".") if isinstance(key, str) else list(key))
            if found:
                return found
        return _display(self.path) if self.path else getattr(self.raw, "file", None)

    def error(
        self, message: str, *, key: str | Sequence[Any] | None = None, hint: str | None = None
    ) -> ConfigError:
        """A ConfigError pointing at ``key`` in this file (for checks made after loading)."""
        return ConfigError(
            message,
            file=self.file_of(key),
            line=self.line_of(key) if key else None,
            key=(key if isinstance(key, str) else key_path(key)) if key else None,
            hint=hint,
        )

    def _path(self, value: str) -> Path:
        p = Path(os.path.expandvars(value)).expanduser()
        return p if p.is_absolute() else self.root / p

    @property
    def name(self) -> str:
        """``project.name``, or the project directory's name."""
        return str(self.get("project.name") or self.root.name)

    @property
    def python_interpreter(self) -> str:
        """``paths.python_interpreter`` (a relative path is taken from the project root; a bare
        name such as ``python3`` is looked up on PATH), default: the Python running hsm."""
        value = self.get("paths.python_interpreter")
        if not value:
            return sys.executable
        value = str(value)
        if os.sep in value or "/" in value or value.startswith("~"):
            return str(self._path(value))
        return value

    @property
    def train_script(self) -> Path | None:
        """``paths.train_script`` as an absolute path (relative ones are under the root), or None."""
        value = self.get("paths.train_script")
        return self._path(str(value)) if value else None

    @property
    def config_dir(self) -> Path | None:
        """``paths.config_dir`` as an absolute path, or None."""
        value = self.get("paths.config_dir")
        return self._path(str(value)) if value else None

    @property
    def output_dir(self) -> Path:
        """Where sweep directories go (absolute); default ``<root>/sweeps/outputs``."""
        return self._path(str(self.get("paths.output_dir") or DEFAULT_OUTPUT_DIR))

    @property
    def args_style(self) -> str:
        """``hydra`` (``key=value``, the default) or ``argparse`` (``--key value``)."""
        return str(self.get("command.args_style") or "hydra")

    @property
    def command_template(self) -> str | None:
        """``command.template`` (tokens ``{python} {script} {args}``), or None."""
        return self.get("command.template")

    @property
    def remotes(self) -> dict[str, dict[str, Any]]:
        """``distributed.remotes`` by name (empty when none)."""
        return dict(self.get("distributed.remotes") or {})

    @property
    def clusters(self) -> dict[str, dict[str, Any]]:
        """``hpc.clusters`` by name (empty when none)."""
        return dict(self.get("hpc.clusters") or {})


def find_config_file(project_root: Path) -> Path | None:
    """``hsm_config.yaml`` in ``project_root``, else ``sweeps/hsm_config.yaml`` (v1), else None."""
    for rel in CONFIG_LOCATIONS:
        p = Path(project_root) / rel
        if p.is_file():
            return p
    return None


def find_project_root(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` (default: cwd) holding ``hsm_config.yaml`` or
    ``sweeps/hsm_config.yaml``; ``start`` itself when there is none."""
    start = Path(start if start is not None else Path.cwd()).absolute()
    for p in (start, *start.parents):
        if (p / CONFIG_FILENAME).is_file():
            # Inside a v1 project's sweeps/ directory: the project is its parent.
            if p.name == "sweeps" and not (p / "sweeps").is_dir():
                return p.parent
            return p
        if (p / "sweeps" / CONFIG_FILENAME).is_file():
            return p
    return start


def _apply_defaults(data: dict[str, Any]) -> dict[str, Any]:
    paths = data.get("paths")
    if not isinstance(paths, dict):
        paths = data["paths"] = {}
    paths.setdefault("output_dir", DEFAULT_OUTPUT_DIR)
    return data


def _check_project(raw: Any, schema: Mapping[str, Any], file: Path | None, registry: Any = None) -> None:
    _check_mapping(raw, file)
    _check_near_misses(raw, schema, file, _CLOSED_BEFORE_SCHEMA)
    validate(raw, schema, file=file)
    _check_near_misses(raw, schema, file)
    _refuse_nul(raw, file)
    if registry is not None:
        _check_systems(raw, registry, file)


def _check_mapping(raw: Any, file: Path | None) -> None:
    if not isinstance(raw, dict):
        raise ConfigError(
            f"expected a mapping of settings at the top level, got {_describe(raw)}",
            file=_display(file) if file is not None else getattr(raw, "file", None),
            line=getattr(raw, "line", 1),
        )


def _check_systems(raw: Any, registry: Any, file: Path | None) -> None:
    """``hpc.system`` (and each cluster's) may name a scheduler whose plugin is not installed here
    (``hsm config validate`` warns about it), but a near-miss of an installed one is a typo."""
    from hsm_core.sources import scheduler_names

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
        guess = _did_you_mean(value.lower(), installed, cutoff=0.75)
        if guess:
            raise ConfigError(
                f"unknown scheduler {value!r}, did you mean {guess!r}? (installed: {', '.join(installed)}, or auto)",
                file=_file_at(raw, list(place), file), line=line_of(raw, list(place)), key=key_path(place),
            )


def _refuse_nul(data: Any, file: Path | str | None, path: tuple[Any, ...] = ()) -> None:
    """Refuse a NUL character anywhere in the file: every string of it may end up in a command
    line, a path or an environment variable, none of which can hold one (exec fails with
    "embedded null byte" once tasks start)."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for k, v in items:
        full = path + (k,)
        here = (getattr(data, "files", None) or {}).get(k) if isinstance(data, dict) else None
        if isinstance(k, str) and "\0" in k or isinstance(v, str) and "\0" in v:
            text = k if isinstance(k, str) and "\0" in k else v
            raise ConfigError(
                f"{_describe(text)} contains a NUL character, which no command line, path or environment variable can hold",
                file=here or (_display(file) if file is not None else None), line=line_of(data, [k]), key=key_path(full),
                hint="remove it",
            )
        _refuse_nul(v, here or file, full)


def load_project_config(project_root: Path, registry: Any = None) -> ProjectConfig:
    """Load and validate the project's configuration: the layers of :mod:`hsm_core.config_layers`
    (site, user, ``HSM_CONFIG``) merged key by key under the project's ``hsm_config.yaml``. No
    file at all means defaults.

    ``registry`` supplies plugin schema fragments (None: the process-wide registry). An error names
    the file and line of the layer the offending value came from.
    """
    from hsm_core.config_layers import PROJECT, layer_files, merge

    root = Path(project_root).expanduser().absolute()
    path = find_config_file(root)
    layers: list[tuple[str, Path]] = []
    raw: Any = LineDict()
    for name, layer_path in layer_files():
        data = load_yaml(layer_path)
        _check_mapping(data, layer_path)
        raw = merge(raw, data) if raw else data
        layers.append((name, layer_path))
    if path is not None:
        data = load_yaml(path)
        _check_mapping(data, path)
        raw = merge(raw, data) if layers else data
        layers.append((PROJECT, path))
    if layers:
        registry = _resolve_registry(registry)
        _check_project(raw, build_schema(registry, "project"), path or layers[-1][1], registry)
    data = _apply_defaults(to_plain(raw))
    return ProjectConfig(root=root, path=path, data=data, raw=raw, layers=layers)


# --------------------------------------------------------------------------------------------
# Sweep files
# --------------------------------------------------------------------------------------------


def _expander_sections(registry: Any) -> list[str]:
    sections = list(CORE_SECTIONS)
    for rec in registry.components("expander").values():
        s = getattr(rec, "section", "") or rec.name
        if s not in sections:
            sections.append(s)
    return sections


def _copy_lines(src: Any, dst: Any) -> Any:
    for attr in ("line", "file"):
        setattr(dst, attr, getattr(src, attr, None))
    return dst


def _normalise_grid(grid: Any) -> Any:
    if not isinstance(grid, dict):
        return grid
    out = _copy_lines(grid, LineDict())
    for key, value in grid.items():
        line = grid.lines.get(key) if isinstance(grid, LineDict) else None
        if not isinstance(value, list):
            wrapped = LineList([value])
            wrapped.line, wrapped.file = line, getattr(grid, "file", None)
            wrapped.lines = [line] if line else []
            value = wrapped
        out[key] = value
        if line:
            out.lines[key] = line
    return out


def _normalise_paired(paired: Any) -> Any:
    # The mapping-of-groups form becomes the seed's list form: one item per group.
    if not isinstance(paired, dict):
        return paired
    out = _copy_lines(paired, LineList())
    for name, group in paired.items():
        item = _copy_lines(paired, LineDict())
        item[name] = group
        line = paired.lines.get(name) if isinstance(paired, LineDict) else None
        if line:
            item.lines[name] = line
            item.line = line
        out.append(item)
        out.lines.append(line or paired.line or 0)
    return out


def _normalise_sweep(data: LineDict, file: str) -> LineDict:
    out = _copy_lines(data, LineDict())
    for key, value in data.items():
        if key == "sweep":
            continue
        out[key] = value
        out.lines[key] = data.lines.get(key, data.line or 1)
    inner = data.get("sweep")
    if isinstance(inner, dict):
        for key, value in inner.items():
            line = inner.lines.get(key) if isinstance(inner, LineDict) else None
            if key in out:
                raise ConfigError(
                    f"'{key}' is given both at the top level and under 'sweep:'; keep one",
                    file=file,
                    line=line,
                    key=f"sweep.{key}",
                )
            out[key] = value
            out.lines[key] = line or data.lines.get("sweep", 1)
    if "grid" in out:
        out["grid"] = _normalise_grid(out["grid"])
    if "paired" in out:
        out["paired"] = _normalise_paired(out["paired"])
    return out


def _check_paired(data: LineDict, file: str) -> None:
    paired = data.get("paired")
    if not isinstance(paired, list):
        return
    for i, item in enumerate(paired):
        if not isinstance(item, dict):
            continue
        for name, group in item.items():
            if not isinstance(group, dict):
                continue
            lengths = {p: len(v) for p, v in group.items() if isinstance(v, list)}
            if len(set(lengths.values())) > 1:
                detail = ", ".join(f"{p}: {n}" for p, n in lengths.items())
                raise ConfigError(
                    f"lists in paired group {name!r} have different lengths ({detail}); "
                    "the i-th values of every list form one set, so they need the same length",
                    file=file,
                    line=line_of(data, ["paired", i, name]),
                    key=f"paired[{i}].{name}",
                )


def _check_overlap(data: LineDict, file: str) -> None:
    owner: dict[Any, str] = {}
    grid = data.get("grid")
    if isinstance(grid, dict):
        for p in grid:
            owner[p] = "grid"
    paired = data.get("paired")
    if not isinstance(paired, list):
        return
    for i, item in enumerate(paired):
        if not isinstance(item, dict):
            continue
        for name, group in item.items():
            if not isinstance(group, dict):
                continue
            for p in group:
                if p in owner:
                    raise ConfigError(
                        f"parameter {str(p)!r} is also set in {owner[p]}; give each parameter one place",
                        file=file,
                        line=line_of(data, ["paired", i, name, p]),
                        key=f"paired[{i}].{name}.{p}",
                    )
                owner[p] = f"paired group {name!r}"


def load_sweep_file(path: Path, registry: Any = None) -> LineDict:
    """Load and validate a sweep file; return it normalised to the v2 form.

    The v1 form (sections under ``sweep:``) is lifted to the top level, a scalar grid value
    becomes a one-item list, and the mapping form of ``paired`` becomes the list form; so v1 and
    v2 files with the same parameters give equal dicts. The result is a :class:`LineDict` (a
    dict) whose ``lines``/``file`` still point into the file, for errors found later.
    """
    path = Path(path)
    shown = _display(path)
    data = load_yaml(path)
    if isinstance(data, dict) and not data:
        raise ConfigError(
            "sweep file is empty",
            file=shown,
            hint="add a 'grid:' section, e.g. grid: {learning_rate: [0.001, 0.01]}",
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a mapping with a 'grid:' section at the top level, got {_describe(data)}",
            file=shown,
            line=getattr(data, "line", 1),
        )
    registry = _resolve_registry(registry)
    validate(data, build_schema(registry, "sweep"), file=path)
    out = _normalise_sweep(data, shown)
    sections = _expander_sections(registry)
    if not any(s in out for s in sections):
        raise ConfigError(
            f"no parameters: add a 'grid:' section (sections: {', '.join(sections)})",
            file=shown,
            hint="e.g. grid: {learning_rate: [0.001, 0.01]}",
        )
    _check_paired(out, shown)
    _check_overlap(out, shown)
    return out


# --------------------------------------------------------------------------------------------
# hsm config set
# --------------------------------------------------------------------------------------------


def _set_nested(data: dict[str, Any], keys: Sequence[str], value: Any, dotted: str) -> None:
    node = data
    for i, k in enumerate(keys[:-1]):
        child = node.get(k)
        if child is None:
            child = node[k] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"{key_path(keys[: i + 1])!r} is {_describe(child)}, not a mapping")
        node = child
    node[keys[-1]] = value


def _indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" "))]


def _key_pattern(key: str) -> str:
    k = re.escape(key)
    return rf"(?:{k}|'{k}'|\"{k}\")"


def _subtree_lines(node: Any) -> Iterator[int]:
    lines = getattr(node, "lines", None)
    if isinstance(lines, dict):
        yield from lines.values()
    elif isinstance(lines, list):
        yield from lines
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        yield from _subtree_lines(child)


def _edit_text(text: str, data: Any, keys: Sequence[str], value: Any) -> str | None:
    """Change or insert one line of ``text`` so that ``keys`` gets ``value``; None if not simple."""
    nl = "\r\n" if "\r\n" in text else "\n"
    lines = text.split(nl)
    node: Any = data
    key_line: int | None = None  # line of keys[depth-1]
    depth = 0
    for i, k in enumerate(keys):
        if not (isinstance(node, dict) and k in node):
            break
        if i == len(keys) - 1:
            old = node[k]
            if isinstance(old, (dict, list)):
                return None
            n = getattr(node, "lines", {}).get(k)
            if not n or n > len(lines):
                return None
            m = re.match(rf"^(\s*{_key_pattern(str(k))}\s*:)(.*)$", lines[n - 1])
            if not m:
                return None
            rest = m.group(2)
            c = re.search(r"\s+#", rest)
            new_line = f"{m.group(1)} {yaml_inline(value)}"
            if c:
                comment = rest[c.start() :].lstrip()
                column = len(m.group(1)) + c.start() + (len(c.group(0)) - 1)  # where '#' was
                new_line = (new_line.ljust(column) if len(new_line) < column else new_line + " ") + comment
            lines[n - 1] = new_line
            return nl.join(lines)
        key_line = getattr(node, "lines", {}).get(k)
        node = node[k]
        depth = i + 1
    rest_keys = list(keys[depth:])
    if depth == 0:
        indent = ""
        insert_at = len(lines)
        if lines and lines[-1] == "":
            insert_at -= 1
    else:
        if not key_line or key_line > len(lines) or not (node is None or isinstance(node, dict)):
            return None
        indent = _indent_of(lines[key_line - 1]) + "  "
        insert_at = key_line
        if isinstance(node, dict) and node:
            below = [ln for ln in getattr(node, "lines", {}).values() if ln > key_line]
            if not below:
                return None
            indent = _indent_of(lines[min(below) - 1])
            # After the mapping's last line, and after lines that continue its last value.
            insert_at = max(ln for ln in _subtree_lines(node) if ln >= key_line)
            while insert_at < len(lines) and lines[insert_at].strip() and len(
                _indent_of(lines[insert_at])
            ) > len(indent):
                insert_at += 1
    block = []
    for j, k in enumerate(rest_keys):
        pad = indent + "  " * j
        if j == len(rest_keys) - 1:
            block.append(f"{pad}{yaml_inline(k)}: {yaml_inline(value)}")
        else:
            block.append(f"{pad}{yaml_inline(k)}:")
    lines[insert_at:insert_at] = block
    out = nl.join(lines)
    if not out.endswith(nl):
        out += nl
    return out


#: Keys whose values are secrets (``env.WANDB_API_KEY``, ``password``, ``HF_TOKEN`` ...).
_SECRET_KEY = re.compile(r"api[_-]?key|passw(or)?d|passphrase|secret|token", re.IGNORECASE)


def set_config_value(path: Path, dotted_key: str, raw_value: str, registry: Any = None) -> Any:
    """Set one key of ``hsm_config.yaml`` (``hsm config set compute.health_check_interval 300``).

    ``raw_value`` is parsed as YAML (``300`` -> 300, ``true`` -> True). The whole resulting config
    is validated first: a bad key or value raises :class:`ConfigError` and leaves the file
    byte-identical. The file is written atomically (temp file, fsync, rename; its permissions are
    kept, a symlink is followed). When the change is one line (an existing scalar) or a new key
    under a block mapping, only that line changes and comments are kept; otherwise the file is
    rewritten from the data, which loses its comments. Creates the file when it does not exist.
    Returns the parsed value.
    """
    from hsm_core.atomic import atomic_write_text

    path = Path(os.path.realpath(Path(path).expanduser()))
    shown = _display(path)
    keys = dotted_key.split(".")
    if not dotted_key or any(not k for k in keys):
        raise ConfigError(f"invalid key {dotted_key!r} (expected dotted names like compute.health_check_interval)")
    exists = path.exists()
    text = ""
    data: Any = LineDict()
    if exists:
        data = load_yaml(path)
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except OSError as exc:  # pragma: no cover - load_yaml read it a moment ago
            raise ConfigError(f"cannot read file: {exc}", file=shown) from None
        if not isinstance(data, dict):
            raise ConfigError("expected a mapping of settings at the top level", file=shown, line=1)
    value = parse_value(raw_value)
    new_data = to_plain(data)
    try:
        _set_nested(new_data, keys, value, dotted_key)
    except ConfigError as exc:
        raise ConfigError(exc.message, file=shown, line=line_of(data, keys), key=dotted_key) from None
    registry = _resolve_registry(registry)
    schema = build_schema(registry, "project")
    _check_near_misses(new_data, schema, path, _CLOSED_BEFORE_SCHEMA)
    validate(new_data, schema, file=path)
    _check_near_misses(new_data, schema, path)
    _check_systems(new_data, registry, path)

    new_text = None
    try:
        candidate = _edit_text(text, data, keys, value)
        if candidate is not None and to_plain(_load_text(candidate, shown)) == new_data:
            new_text = candidate
    except ConfigError:
        new_text = None
    if new_text is None:
        new_text = dump_yaml(new_data)
    mode = None
    if exists:
        mode = path.stat().st_mode & 0o7777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
        path.parent.mkdir(parents=True, exist_ok=True)
    if _SECRET_KEY.search(dotted_key):
        mode &= ~0o077  # the file now holds a password, token or API key: for its owner only
    atomic_write_text(path, new_text, mode=mode)
    return value
