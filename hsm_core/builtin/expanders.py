"""Built-in plugin: the ``grid`` and ``paired`` sweep sections."""

from __future__ import annotations

import itertools
import math
from typing import Any, Iterator, Mapping

from hsm_core.plugin import ConfigError, Expander, ExpanderRecord, hookimpl


def _values(v: Any) -> list[Any]:
    # A scalar in a grid is one value; lists are the usual case.
    return list(v) if isinstance(v, list) else [v]


class GridExpander(Expander):
    """``grid: {param: [values]}``: every combination, the last key varying fastest."""

    def validate(self, section: Any, where: str) -> None:
        if not isinstance(section, Mapping) or not section:
            raise ConfigError("'grid' must be a mapping of parameter: [values]", key=where)
        for key, values in section.items():
            if isinstance(values, list) and not values:
                raise ConfigError("empty list of values (the sweep would have no task)", key=f"{where}.{key}")
            if isinstance(values, Mapping):
                raise ConfigError("value must be a list (or one scalar), not a mapping", key=f"{where}.{key}")

    def count(self, section: Any) -> int:
        return math.prod(len(_values(v)) for v in section.values())

    def expand(self, section: Any) -> Iterator[dict[str, Any]]:
        keys = list(section)
        for combo in itertools.product(*(_values(section[k]) for k in keys)):
            yield dict(zip(keys, combo))


class PairedExpander(Expander):
    """``paired: [{group: {a: [..], b: [..]}}]``: lists in a group are zipped; groups combine by product."""

    def _groups(self, section: Any) -> list[dict[str, list[Any]]]:
        groups = []
        for item in section:
            for params in item.values():
                groups.append({k: _values(v) for k, v in params.items()})
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
                lengths = {k: len(_values(v)) for k, v in params.items()}
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
