"""Reading and writing hsm's YAML files: safe, with the line of every key, in YAML 1.2 numbers.

:func:`load_yaml` reads a file into :class:`~hsm_core.config.lines.LineDict` /
:class:`~hsm_core.config.lines.LineList` trees (the C parser when available), refusing duplicate
keys and alias bombs; every problem is one :class:`~hsm_core.errors.ConfigError` with file and
line. :func:`dump_yaml` and :func:`yaml_inline` write what it reads back unchanged;
:func:`parse_value` reads a command-line value (``hsm config set``).

Numbers follow YAML 1.2 rather than PyYAML's YAML 1.1: ``1e-3`` is a float (YAML 1.1 reads a
string) and ``12:00:00`` is a string (YAML 1.1 reads the base-60 integer 43200).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import yaml

from hsm_core.config.lines import LineDict, LineList, display_path, one_line, to_plain
from hsm_core.errors import ConfigError

__all__ = [
    "MAX_ALIAS_EXPANSION",
    "dump_yaml",
    "load_yaml",
    "load_yaml_text",
    "parse_value",
    "yaml_inline",
]

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
        # No anchor, no alias: a file without "&" cannot expand (the check walks every node: 0.16 s
        # of a sweep file of 100,000 values).
        if "&" in text:
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
            one_line(f"invalid YAML: {problem}"),
            file=file,
            line=mark.line + 1 if mark is not None else None,
        ) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1 if isinstance(exc.position, int) else None
        raise ConfigError(
            one_line(f"invalid YAML: character #x{exc.character:04x} is not allowed ({exc.reason})"),
            file=file,
            line=line,
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(one_line(f"invalid YAML: {exc}"), file=file) from None
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
    shown = display_path(path)
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
