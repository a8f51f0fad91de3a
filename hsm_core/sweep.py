"""Sweep specification, expansion into parameter sets, and task identity.

A sweep file is made of sections (``grid:``, ``paired:``, and what plugins add); each section is
handled by an :class:`~hsm_core.plugin.Expander` and the sections combine by Cartesian product.
Counting never expands (``--count-only`` is instant for 10**9 combinations); expansion is lazy.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from hsm_core.config.lines import LineDict, display_path, line_of
from hsm_core.config.sweep_file import load_sweep_file
from hsm_core.plugin import ConfigError, ExpanderRecord

#: Top-level sweep-file keys that are settings, not parameter sections.
SETTING_KEYS = frozenset({"metadata", "name", "command", "args_style", "hydra", "sources", "strategy", "description",
                          "retries", "resources", "prune", "metric"})


@dataclass
class SweepSpec:
    """A validated sweep file."""

    sections: dict[str, Any]  #: expander section name -> section content, in file order
    settings: dict[str, Any] = field(default_factory=dict)  #: metadata, command, args_style ...
    path: Path | None = None

    @property
    def metadata(self) -> dict[str, Any]:
        """The ``metadata:`` block (description, tags ...)."""
        return dict(self.settings.get("metadata") or {})


def spec_from_dict(data: Mapping[str, Any], registry: Any, path: Path | None = None) -> SweepSpec:
    """Split a normalised sweep dict into parameter sections and settings; validate the sections.

    ``settings`` keeps the line of each key when ``data`` came from the file (``line_of``).
    """
    expanders = _expanders(registry)
    sections: dict[str, Any] = {}
    settings: dict[str, Any] = _with_lines(data, {})
    shown = display_path(path) if path is not None else None  # as the user would type it
    from hsm_core.sweep_metric import settle_sweep_metric

    settle_sweep_metric(data, shown)  # one metric per sweep: a search: section without one takes it
    for key, value in data.items():
        if key in SETTING_KEYS:
            settings[key] = value
            _refuse_nul(value, shown, data, [key])
        elif key in expanders:
            # An expander only gets this text for its errors (ConfigError(key=where)): give it the
            # file and the section's line, so that its errors point into the file too.
            line = _line(data, [key])
            where = f"{shown}{f':{line}' if line else ''}: {key}" if path else key
            expanders[key].validate(value, where)
            _check_passable(value, shown, key, lines=(data, [key]))
            sections[key] = value
        else:
            raise ConfigError(f"unknown sweep section (known: {', '.join(sorted(expanders))})", file=shown,
                              line=_line(data, [key]), key=key)
    if not sections:
        raise ConfigError("no parameters: add a 'grid:' (or 'paired:') section", file=shown)
    _check_one_place(sections, expanders, data, shown)
    _check_search_alone(sections, data, shown)
    spec = SweepSpec(sections, settings, path)
    if settings.get("resources") is not None:
        from hsm_core.run_resources import from_sweep

        from_sweep(spec, registry)  # a bad walltime is refused wherever the file is read
    return spec


def _check_search_alone(sections: Mapping[str, Any], data: Any, shown: str | None) -> None:
    """Refuse ``search:`` next to another parameter section, at that section's line, wherever the
    file is read (``--dry-run`` too): adaptive search chooses its trials one by one, so they cannot
    be multiplied with a grid. (``hsm_core.adaptive`` says the same when it starts the search.)"""
    if "search" not in sections or len(sections) == 1:
        return
    other = next(name for name in sections if name != "search")
    raise ConfigError(f"a search: section cannot be combined with {other}: (its trials are chosen one by one)",
                      file=shown, line=_line(data, [other]), key=other, hint="put every parameter under search: params:")


def _check_one_place(sections: Mapping[str, Any], expanders: Mapping[str, Any], data: Any, shown: str | None) -> None:
    """Refuse a parameter set by two sections (``lr`` in ``grid:`` and in ``random:``): the later
    would silently win. Sections name their parameters through ``describe`` (rows ``(..)`` are notes)."""
    owner: dict[str, str] = {}
    for name, section in sections.items():
        describe = getattr(expanders.get(name), "describe", None)
        rows = describe(section) if describe is not None else None
        if rows is None:
            continue
        for param in dict.fromkeys(row[0] for row in rows if not str(row[0]).startswith("(")):
            if param in owner and owner[param] != name:
                raise ConfigError(f"parameter {param!r} is also set in {owner[param]}; give each parameter one place",
                                  file=shown, line=_line(data, [name, param]), key=f"{name}.{param}")
            owner[param] = name


def _with_lines(src: Any, dst: dict[str, Any]) -> dict[str, Any]:
    """``dst`` as a LineDict knowing the lines of ``src``'s keys (when it has them)."""
    out = LineDict(dst)
    out.lines = dict(getattr(src, "lines", {}) or {})
    out.line, out.file = getattr(src, "line", None), getattr(src, "file", None)
    return out


def _line(data: Any, keys: list[Any]) -> int | None:
    """The line of ``keys`` in ``data`` (a tree read from a file), None when unknown (or no tree)."""
    return line_of(data, keys)


#: Linux refuses a single command-line argument of 128 KiB or more (MAX_ARG_STRLEN) with E2BIG.
MAX_ARGUMENT_BYTES = 131072

_NUL_MESSAGE = "contains a NUL character, which no command line, path or environment variable can hold"


def _refuse_nul(value: Any, path: str | None, root: Any, keys: list[Any]) -> None:
    """Refuse a NUL anywhere in a setting (``command:`` ...): it would reach ``exec`` and fail there."""
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and "\0" in k:
                raise ConfigError(f"the key {k[:40]!r} {_NUL_MESSAGE}", file=path, line=_line(root, keys + [k]),
                                  key=".".join(map(str, keys)), hint="remove it")
            _refuse_nul(v, path, root, keys + [k])
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _refuse_nul(item, path, root, keys + [i])
    elif isinstance(value, str) and "\0" in value:
        raise ConfigError(f"{value[:40]!r} {_NUL_MESSAGE}", file=path, line=_line(root, keys),
                          key=".".join(map(str, keys)), hint="remove it")


def _check_passable(value: Any, path: str | None, where: str, name: str = "", *,
                    lines: tuple[Any, list[Any]] = (None, [])) -> None:
    """Refuse parameter names and values that no command line can carry: an empty name, a NUL
    character (the end of a C string), or a ``name=value`` argument of 128 KiB or more. Caught
    here, before anything is written, they are one clear error (file:line and key) instead of a
    task that can never start. ``lines``: the file's tree and the keys leading to ``value``."""
    root, keys = lines
    if isinstance(value, dict):
        for k, v in value.items():
            line = _line(root, keys + [k])
            if isinstance(k, str) and not k.strip() and not isinstance(v, dict):  # (a dict: a paired group)
                raise ConfigError(f"empty parameter name {k!r}", file=path, line=line, key=where,
                                  hint="give the parameter a name: it becomes the argument name=value")
            if isinstance(k, str) and "\0" in k:
                raise ConfigError("a parameter name contains a NUL character, which cannot be passed to a command",
                                  file=path, line=line, key=where, hint="remove it")
            _check_passable(v, path, f"{where}.{k}", str(k), lines=(root, keys + [k]))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_passable(item, path, where, name, lines=(root, keys + [i]))
    elif isinstance(value, str):
        line = _line(root, keys)
        if "\0" in value:
            raise ConfigError(f"the value {value[:40]!r} contains a NUL character, which cannot be passed to a command",
                              file=path, line=line, key=where, hint="remove it")
        size = len(name.encode()) + 1 + len(value.encode())
        if size >= MAX_ARGUMENT_BYTES:
            raise ConfigError(f"a value of {size:,} bytes is too long for a command-line argument "
                              f"(at most {MAX_ARGUMENT_BYTES - 1:,})", file=path, line=line, key=where,
                              hint="pass a file name instead, and read the file in the script")


def param_location(spec: SweepSpec, name: str) -> tuple[str, int | None]:
    """(dotted key, line) of parameter ``name`` in the sweep file (``grid.lr``, ``paired[0].g.lr``)."""
    for section, content in spec.sections.items():
        if isinstance(content, dict) and name in content:
            return f"{section}.{name}", _line(spec.sections, [section, name])
        if isinstance(content, list):
            for i, item in enumerate(content):
                for group, params in (item.items() if isinstance(item, dict) else ()):
                    if isinstance(params, dict) and name in params:
                        return f"{section}[{i}].{group}.{name}", _line(spec.sections, [section, i, group, name])
    return name, None


def load_spec(path: Path, registry: Any) -> SweepSpec:
    """Load, validate and normalise a sweep file."""
    return spec_from_dict(load_sweep_file(path, registry), registry, path)


def _expanders(registry: Any) -> dict[str, Any]:
    out = {}
    for rec in registry.components(ExpanderRecord.kind).values():
        out[rec.section or rec.name] = rec.load()()
    return out


def count(spec: SweepSpec, registry: Any) -> int:
    """Number of parameter sets (product over sections), computed without expanding."""
    exp = _expanders(registry)
    return math.prod(exp[name].count(section) for name, section in spec.sections.items())


def expand(spec: SweepSpec, registry: Any) -> Iterator[dict[str, Any]]:
    """Yield every parameter set, lazily, sections combined by Cartesian product in file order."""
    exp = _expanders(registry)
    items = list(spec.sections.items())

    def rec(i: int, acc: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if i == len(items):
            yield dict(acc)
            return
        name, section = items[i]
        for params in exp[name].expand(section):
            merged = dict(acc)
            merged.update(params)
            yield from rec(i + 1, merged)

    return rec(0, {})


#: json.dumps with these options, made once: dumps() builds a new encoder for every call with
#: options (half the time of 100,000 task ids).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode


def canonical_json(params: Mapping[str, Any]) -> str:
    """The canonical text of a parameter set: sorted keys, no spaces, UTF-8."""
    return _CANONICAL(params)


def default_task_id(params: Mapping[str, Any]) -> str:
    """Hash of the canonical parameter set: equal parameters give the same id on every machine."""
    return hashlib.sha256(canonical_json(params).encode("utf-8")).hexdigest()[:16]


def make_task_id(params: Mapping[str, Any], registry: Any) -> str:
    """Ask ``hsm_make_task_id`` (first result wins), falling back to :func:`default_task_id`."""
    return task_id_maker(registry)(params)


def task_id_maker(registry: Any) -> Callable[[Mapping[str, Any]], str]:
    """:func:`make_task_id` for many parameter sets: whether a plugin implements
    ``hsm_make_task_id`` is asked once, not once per task."""
    hook = registry.hook.hsm_make_task_id
    if not hook.get_hookimpls():
        return default_task_id  # (the usual case: no hook call, a tenth of expanding 100,000 tasks)
    return lambda params: hook(params=params) or default_task_id(params)


def parameter_table(spec: SweepSpec, registry: Any = None) -> list[tuple[str, str]]:
    """(parameter, "N values") rows for ``--dry-run``, in file order.

    An expander with a ``describe(section)`` method gives its own rows (``random:`` shows each
    parameter's distribution); another section is one row ``(name)``."""
    if registry is None:
        from hsm_core.registry import get_registry

        registry = get_registry()
    expanders = _expanders(registry)
    rows: list[tuple[str, str]] = []
    for name, section in spec.sections.items():
        describe = getattr(expanders.get(name), "describe", None)
        described = describe(section) if describe is not None else None
        if described is not None:
            rows.extend(described)
        else:
            rows.append((f"({name})", "plugin section"))  # (not [..]: rich would read it as markup)
    return rows
