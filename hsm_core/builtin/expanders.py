"""Built-in plugin: the ``grid`` and ``paired`` sweep sections.

Both read parameters the way a Hydra user writes them (:mod:`hsm_core.sweep_syntax`): a nested
mapping is a group of dotted parameters (``optimizer: {lr: [..]}`` is ``optimizer.lr``) and a string
written as a sweep (``0.1,0.01``, ``range(1,5)``, ``choice(a,b)``) is its list of values.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Iterator, Mapping

from hsm_core.plugin import ConfigError, Expander, ExpanderRecord, hookimpl
from hsm_core.sweep_syntax import SweepSyntaxError, flatten_parameters, value_axis

_QUOTING = ("to pass the text as one value, write it as a one-item list [\"...\"] "
            "or quote it for Hydra: \"'a,b'\"")


def _values(v: Any) -> Any:
    # A list is its items; a sweep string its values (a range stays lazy); a scalar one value.
    return value_axis(v)


def _axes(params: Mapping[str, Any], where: str) -> list[tuple[str, Any]]:
    """(dotted name, values) of every parameter of a mapping, nested mappings flattened.

    Raises ConfigError (key ``where.NAME``) for bad sweep syntax, an empty list or sweep, and a
    parameter given twice (``optimizer.lr`` and ``optimizer: {lr: ..}``)."""
    try:
        flat = flatten_parameters(params)
    except SweepSyntaxError as exc:
        raise ConfigError(str(exc), key=where) from None
    seen: set[str] = set()
    out = []
    for name, value, _ in flat:
        if name in seen:
            raise ConfigError("parameter given twice (as a dotted key and in a nested mapping); keep one",
                              key=f"{where}.{name}")
        seen.add(name)
        if isinstance(value, list) and not value:
            raise ConfigError("empty list of values (the sweep would have no task)", key=f"{where}.{name}")
        try:
            out.append((name, _values(value)))
        except SweepSyntaxError as exc:
            raise ConfigError(str(exc), key=f"{where}.{name}", hint=_QUOTING if exc.quotable else None) from None
    return out


class GridExpander(Expander):
    """``grid: {param: [values]}``: every combination, the last key varying fastest."""

    def validate(self, section: Any, where: str) -> None:
        if not isinstance(section, Mapping) or not section:
            raise ConfigError("'grid' must be a mapping of parameter: [values]", key=where)
        _axes(section, where)

    def count(self, section: Any) -> int:
        return math.prod(len(values) for _, values in _axes(section, "grid"))

    def expand(self, section: Any) -> Iterator[dict[str, Any]]:
        axes = _axes(section, "grid")
        keys = [name for name, _ in axes]
        for combo in itertools.product(*(values for _, values in axes)):
            yield dict(zip(keys, combo))

    def describe(self, section: Any) -> list[tuple[str, str]]:
        """(parameter, "N values") rows for ``--dry-run``."""
        return [(name, values.describe() if hasattr(values, "describe") else
                 f"{len(values)} value{'s' if len(values) != 1 else ''}") for name, values in _axes(section, "grid")]


class PairedExpander(Expander):
    """``paired: [{group: {a: [..], b: [..]}}]``: lists in a group are zipped; groups combine by product."""

    def _groups(self, section: Any) -> list[dict[str, Any]]:
        groups = []
        for item in section:
            for gname, params in item.items():
                groups.append(dict(_axes(params, f"paired.{gname}")))
        return groups

    def validate(self, section: Any, where: str) -> None:
        if isinstance(section, Mapping):  # tolerate a mapping of groups as well as the seed's list
            section = [{k: v} for k, v in section.items()]
        if not isinstance(section, list) or not section:
            raise ConfigError("'paired' must be a list of groups: - name: {param: [values]}", key=where)
        for item in section:
            if not isinstance(item, Mapping):
                raise ConfigError("each paired group must be a mapping 'name: {param: [values]}'", key=where)
            for gname, params in item.items():
                if not isinstance(params, Mapping) or not params:
                    raise ConfigError("a paired group maps parameters to lists", key=f"{where}.{gname}")
                lengths = {k: len(v) for k, v in _axes(params, f"{where}.{gname}")}
                if len(set(lengths.values())) > 1:
                    detail = ", ".join(f"{k}={n}" for k, n in lengths.items())
                    raise ConfigError(
                        f"lists in a paired group must have equal length (got {detail})", key=f"{where}.{gname}"
                    )

    def _norm(self, section: Any) -> list[Any]:
        return [{k: v} for k, v in section.items()] if isinstance(section, Mapping) else section

    def count(self, section: Any) -> int:
        return math.prod(len(next(iter(g.values()))) for g in self._groups(self._norm(section)))

    def expand(self, section: Any) -> Iterator[dict[str, Any]]:
        groups = self._groups(self._norm(section))
        zipped = [[dict(zip(g, vals)) for vals in zip(*g.values())] for g in groups]
        for combo in itertools.product(*zipped):
            merged: dict[str, Any] = {}
            for part in combo:
                merged.update(part)
            yield merged

    def describe(self, section: Any) -> list[tuple[str, str]]:
        """(parameter, "N values (paired: GROUP)") rows for ``--dry-run``."""
        rows = []
        for item in self._norm(section):
            for gname, params in item.items():
                for name, values in _axes(params, f"paired.{gname}"):
                    rows.append((name, f"{len(values)} values (paired: {gname})"))
        return rows


@hookimpl
def hsm_register_expanders() -> list[ExpanderRecord]:
    return [
        ExpanderRecord(
            "grid",
            "Cartesian product of parameter lists",
            GridExpander,
            section="grid",
            config_schema={"type": "object", "additionalProperties": True},
        ),
        ExpanderRecord(
            "paired",
            "Groups of lists zipped together, groups combined by product",
            PairedExpander,
            section="paired",
            config_schema={"type": ["array", "object"]},
        ),
    ]
