"""Sweep files (``sweeps/sweep_config.yaml``, v1 ``sweeps/sweep.yaml``): loaded, validated against
the sweep schema with the installed expanders' sections, and normalised to the v2 form.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from hsm_core.config.lines import LineDict, LineList, describe_value, display_path, line_of
from hsm_core.config.schema import CORE_SECTIONS, build_schema, resolve_registry
from hsm_core.config.validation import validate
from hsm_core.config.yaml_io import load_yaml
from hsm_core.errors import ConfigError

__all__ = ["load_sweep_file"]


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


def _normalise_grid(grid: Any, file: str = "") -> Any:
    if not isinstance(grid, dict):
        return grid
    from hsm_core.sweep_forms import flatten_section
    from hsm_core.sweep_syntax import looks_like_sweep

    grid = flatten_section(grid, file, "grid")
    out = _copy_lines(grid, LineDict())
    for key, value in grid.items():
        line = grid.lines.get(key) if isinstance(grid, LineDict) else None
        # A scalar is one value; a string written as a sweep stays a string (its values).
        if not isinstance(value, list) and not (isinstance(value, str) and looks_like_sweep(value)):
            wrapped = LineList([value])
            wrapped.line, wrapped.file = line, getattr(grid, "file", None)
            wrapped.lines = [line] if line else []
            value = wrapped
        out[key] = value
        if line:
            out.lines[key] = line
    return out


def _normalise_paired(paired: Any, file: str = "") -> Any:
    # The mapping-of-groups form becomes the seed's list form: one item per group; nested
    # mappings in a group become dotted parameters.
    from hsm_core.sweep_forms import flatten_section

    if isinstance(paired, list):
        for i, item in enumerate(paired):
            if isinstance(item, dict):
                for name in list(item):
                    item[name] = flatten_section(item[name], file, f"paired[{i}].{name}")
    if not isinstance(paired, dict):
        return paired
    out = _copy_lines(paired, LineList())
    for name, group in paired.items():
        item = _copy_lines(paired, LineDict())
        item[name] = flatten_section(group, file, f"paired.{name}")
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
        out["grid"] = _normalise_grid(out["grid"], file)
    if "paired" in out:
        out["paired"] = _normalise_paired(out["paired"], file)
    return out


def _paired_groups(data: LineDict) -> Iterator[tuple[int, Any, dict]]:
    """``(i, name, group)`` of each well-formed group of the sweep's ``paired:`` list."""
    paired = data.get("paired")
    if not isinstance(paired, list):
        return
    for i, item in enumerate(paired):
        if isinstance(item, dict):
            for name, group in item.items():
                if isinstance(group, dict):
                    yield i, name, group


def _check_paired(data: LineDict, file: str) -> None:
    for i, name, group in _paired_groups(data):
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
    for i, name, group in _paired_groups(data):
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
    shown = display_path(path)
    data = load_yaml(path)
    if isinstance(data, dict) and not data:
        raise ConfigError(
            "sweep file is empty",
            file=shown,
            hint="add a 'grid:' section, e.g. grid: {learning_rate: [0.001, 0.01]}",
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a mapping with a 'grid:' section at the top level, got {describe_value(data)}",
            file=shown,
            line=getattr(data, "line", 1),
        )
    registry = resolve_registry(registry)
    from hsm_core.sweep_forms import from_wandb_form, is_wandb_sweep

    if is_wandb_sweep(data):  # wandb's form (method:, parameters:): hsm's form, lines kept
        data = from_wandb_form(data, shown)
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
