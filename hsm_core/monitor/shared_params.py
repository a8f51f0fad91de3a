"""Which parameter values the failures of a category share ("all 6 OOMs: model.name=large").

A value every failed task of a category has, and not every task of the sweep has, points at the
cause: ``batch_size=128`` shared by all out-of-memory failures says what to change. A value the
whole sweep has in common explains nothing and is left out. When every task with the shared values
failed that way, the values explain the failures completely, and the line says so.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from hsm_core.state import TaskRecord


def flat_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested parameters as ``{"model.name": "large"}`` (keys already dotted stay as they are)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flat_params(value, name + "."))
        else:
            out[name] = value
    return out


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


@dataclass
class SharedValues:
    """What the failures of one category have in common."""

    category: str
    count: int
    values: dict[str, Any]  #: parameter -> the value all of them have
    complete: bool  #: every task of the sweep with these values failed this way

    def describe(self, title: str) -> str:
        """``all 6 out of memory failures (out_of_memory): model.name=large, batch_size=128``."""
        head = f"all {self.count} {title.lower()} failures ({self.category})"
        if not self.values:
            return f"{head}: no parameter value in common"
        text = ", ".join(f"{k}={_shown(v)}" for k, v in self.values.items())
        tail = "; every task with these values failed this way" if self.complete else ""
        return f"{head}: {text}{tail}"


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def shared_by_category(failed: Iterable[tuple[str, TaskRecord]], every: Iterable[TaskRecord]) -> list[SharedValues]:
    """For each category with two failures or more (``failed``: ``(category, record)`` pairs): the
    parameter values all its failures share that not every task of the sweep (``every``) has."""
    by_cat: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for category, rec in failed:
        by_cat[category].append(flat_params(rec.params))
    all_params = [flat_params(r.params) for r in every]
    constant = _common(all_params)
    out = []
    for category, plist in by_cat.items():
        if len(plist) < 2:
            continue  # one task "shares" all its values with itself: that says nothing
        values = {k: v for k, v in _common(plist).items() if k not in constant}
        with_values = sum(1 for p in all_params if all(k in p and _same(p[k], v) for k, v in values.items()))
        out.append(SharedValues(category, len(plist), values, bool(values) and with_values == len(plist)))
    return sorted(out, key=lambda s: -s.count)


def _common(plist: list[dict[str, Any]]) -> dict[str, Any]:
    """The keys and values every mapping of ``plist`` has, in the order of the first."""
    if not plist:
        return {}
    first = plist[0]
    return {k: v for k, v in first.items() if all(k in p and _same(p[k], v) for p in plist[1:])}
