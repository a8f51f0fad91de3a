"""Changing ``hsm_config.yaml`` from the command line (``hsm config set``, a plugin's
``set_project_setting``): validated before anything is written, one line changed when possible so
the file keeps its comments, written atomically.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterator, Sequence

from hsm_core.atomic import atomic_write_text
from hsm_core.config.installed import check_systems
from hsm_core.config.lines import LineDict, describe_value, display_path, key_path, line_of, to_plain
from hsm_core.config.schema import build_schema, resolve_registry
from hsm_core.config.validation import CLOSED_BEFORE_SCHEMA, check_near_misses, validate
from hsm_core.config.yaml_io import dump_yaml, load_yaml, load_yaml_text, parse_value, yaml_inline
from hsm_core.errors import ConfigError
from hsm_core.secrecy import SECRET_KEY

__all__ = ["SECRET_KEY", "set_config_value"]


def _set_nested(data: dict[str, Any], keys: Sequence[str], value: Any, dotted: str) -> None:
    node = data
    for i, k in enumerate(keys[:-1]):
        child = node.get(k)
        if child is None:
            child = node[k] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"{key_path(keys[: i + 1])!r} is {describe_value(child)}, not a mapping")
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
    path = Path(os.path.realpath(Path(path).expanduser()))
    shown = display_path(path)
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
    registry = resolve_registry(registry)
    schema = build_schema(registry, "project")
    check_near_misses(new_data, schema, path, CLOSED_BEFORE_SCHEMA)
    validate(new_data, schema, file=path)
    check_near_misses(new_data, schema, path)
    check_systems(new_data, registry, path)

    new_text = None
    try:
        candidate = _edit_text(text, data, keys, value)
        if candidate is not None and to_plain(load_yaml_text(candidate, shown)) == new_data:
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
    if SECRET_KEY.search(dotted_key):
        mode &= ~0o077  # the file now holds a password, token or API key: for its owner only
    atomic_write_text(path, new_text, mode=mode)
    return value
