"""The richer half of the resource vocabulary (part of the array-job toolkit of :mod:`hsm_core.plugin`):
exclusive nodes, constraints, reservations, mail notifications, typed GPUs, GPUs per task and
memory per CPU, read and checked here, rendered by each scheduler plugin its own way.

A scheduler that cannot express one of them says so (its source's ``cannot_express``) and the run
stops with one line naming the key: a request is never silently dropped. The options are read
into :class:`~hsm_core.plugin.Resources` by :func:`~hsm_core.plugin.resources_from_options`.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from hsm_core.errors import ConfigError

__all__ = ["MAIL_TYPES", "parse_gpus", "parse_mail_type", "check_constraint", "parse_bool"]

#: Mail events every scheduler plugin maps to its own words (or says it cannot).
MAIL_TYPES = ("begin", "end", "fail", "all", "none", "requeue", "time_limit")

_GPUS = re.compile(r"^(?:(?P<type>[A-Za-z0-9_.+-]+):)?(?P<n>\d+)$")
# A node feature expression: names joined by & | , with optional [ ] ( ) and *N counts.
_CONSTRAINT = re.compile(r"^[A-Za-z0-9_.:+@=%/\-&|,!()\[\]*]+$")


def parse_gpus(value: Any, *, key: str = "gpus") -> tuple[int, str | None]:
    """``2`` -> (2, None); ``"a100:2"`` -> (2, "a100"). ConfigError naming ``key`` otherwise."""
    if isinstance(value, bool):
        raise ConfigError(f"expected a number of GPUs or TYPE:N, got {value!r}", key=key, hint="e.g. gpus: 2 or gpus: a100:2")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"must be at least 0, got {value!r}", key=key)
        return value, None
    m = _GPUS.match(str(value).strip())
    if not m:
        raise ConfigError(f"expected a number of GPUs or TYPE:N, got {value!r}", key=key, hint="e.g. gpus: 2 or gpus: a100:2")
    n, kind = int(m.group("n")), m.group("type")
    if kind and n < 1:
        raise ConfigError(f"a GPU type needs at least one GPU, got {value!r}", key=key)
    return n, kind


def parse_mail_type(value: Any, *, key: str = "mail_type") -> tuple[str, ...]:
    """``end`` / ``"begin,end"`` / ``[begin, fail]`` -> ("begin", "end") ...; unknown: ConfigError."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    out: list[str] = []
    for item in items:
        word = str(item).strip().lower()
        if not word:
            continue
        if word not in MAIL_TYPES:
            raise ConfigError(f"unknown mail type {item!r}", key=key, hint="use " + ", ".join(MAIL_TYPES))
        out.append(word)
    if not out:
        raise ConfigError("no mail type given", key=key, hint="use " + ", ".join(MAIL_TYPES))
    return tuple(dict.fromkeys(out))


def check_constraint(value: Any, *, key: str = "constraint") -> str:
    """A node feature expression (``a100``, ``a100&ib``, ``v100|a100``) safe in a directive."""
    text = str(value).strip()
    if not text or not _CONSTRAINT.match(text):
        raise ConfigError(f"{text!r} cannot be used as a constraint in a job script", key=key,
                          hint="node features joined by & (and) or | (or), e.g. a100&ib; no spaces, quotes or #")
    return text


def parse_bool(value: Any, *, key: str) -> bool:
    """true/false (YAML booleans, or yes/no/1/0 strings)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise ConfigError(f"expected true or false, got {value!r}", key=key)
