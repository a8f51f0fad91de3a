"""Values read from YAML that remember where they came from, and how messages point at them.

:class:`LineDict` and :class:`LineList` are what :mod:`hsm_core.config.yaml_io` builds: a dict and
a list that also know their file and the line of each key or item, so a problem found at any later
time (schema validation, a check at run time) can name ``file:line: key``. :func:`line_of` and
:func:`key_path` turn a key path into that line and that dotted key; :func:`display_path`,
:func:`describe_value` and :func:`one_line` shape the rest of a one-line message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import yaml

__all__ = [
    "LineDict",
    "LineList",
    "describe_value",
    "display_path",
    "key_path",
    "line_of",
    "one_line",
    "to_plain",
]


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


def display_path(path: str | Path) -> str:
    """A path for messages, as the user would type it: relative to the cwd when below it."""
    p = Path(path)
    try:
        return str(p.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line (runs of white space become one space), cut to ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_value(value: Any) -> str:
    """A value as a message shows it: ``'abc'``, ``3 (an integer)``, ``a mapping``."""
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
