"""Checking a YAML tree against a schema: the most relevant problem as one line with file and line.

:func:`validate` runs JSON Schema (draft 2020-12) and turns the best error into a
:class:`~hsm_core.errors.ConfigError` that names the file, the line, the dotted key and what to
write instead (an unknown key comes with a "did you mean" when a valid key is close).
:func:`check_near_misses` catches typos in the sections plugins may extend, which the schema has to
leave open.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from hsm_core.config.layers import file_of
from hsm_core.config.lines import describe_value, display_path, key_path, line_of, one_line
from hsm_core.config.schema import known_keys, schema_at
from hsm_core.errors import ConfigError

__all__ = [
    "CLOSED_BEFORE_SCHEMA",
    "OPEN_LOCATIONS",
    "check_near_misses",
    "did_you_mean",
    "file_at",
    "validate",
]

_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "nothing",
}


def did_you_mean(word: Any, candidates: Sequence[Any], cutoff: float = 0.6) -> str | None:
    """The candidate closest to ``word`` (difflib, at least ``cutoff`` alike), or None."""
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
        guess = did_you_mean(bad, known)
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
            typo = did_you_mean(missing[0], [k for k in inst if isinstance(k, str)])
            if typo:
                return path + [typo], f"unknown key {typo!r}, did you mean {missing[0]!r}? ({missing[0]!r} is required)"
        return path, f"missing required key {names}"
    if v == "type":
        expected = error.validator_value
        expected = expected if isinstance(expected, list) else [expected]
        want = " or ".join(_TYPE_NAMES.get(t, t) for t in expected)
        return path, f"expected {want}, got {describe_value(inst)}"
    if v in ("enum", "const"):
        allowed = error.validator_value if v == "enum" else [error.validator_value]
        msg = f"must be one of: {', '.join(map(str, allowed))}; got {describe_value(inst)}"
        if v == "const":
            msg = f"must be {allowed[0]!r}; got {describe_value(inst)}"
        guess = did_you_mean(inst, allowed) if isinstance(inst, str) else None
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
        return path, f"must be at least {error.validator_value}, got {describe_value(inst)}"
    if v == "exclusiveMinimum":
        return path, f"must be greater than {error.validator_value}, got {describe_value(inst)}"
    if v == "maximum":
        return path, f"must be at most {error.validator_value}, got {describe_value(inst)}"
    if v == "exclusiveMaximum":
        return path, f"must be less than {error.validator_value}, got {describe_value(inst)}"
    if v == "pattern":
        return path, f"{describe_value(inst)} does not match the expected form {error.validator_value!r}"
    if v == "minLength" and error.validator_value == 1:
        return path, "must not be an empty string"
    return path, one_line(error.message, 200)


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
    raise ConfigError(message, file=file_at(data, path, file), line=line_of(data, path), key=key_path(path) or None)


def file_at(data: Any, path: Sequence[Any], file: str | Path | None) -> str | None:
    """The file to name for an error at ``path``: the layer the value came from when ``data``
    merges several files (:mod:`hsm_core.config.layers`), else ``file``."""
    found = file_of(data, path) if getattr(data, "files", None) is not None else None
    if found:
        return found
    return display_path(file) if file is not None else None


# Near-miss keys in open sections (plugins may add keys there, so the schema cannot reject them)

#: Sections plugins may add keys to (checked for near misses after the schema).
OPEN_LOCATIONS: tuple[tuple[str, ...], ...] = (
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
CLOSED_BEFORE_SCHEMA: tuple[tuple[str, ...], ...] = (("compute",),)


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


def check_near_misses(
    data: Any, schema: Mapping[str, Any], file: str | Path | None, locations: Sequence[tuple[str, ...]] = OPEN_LOCATIONS
) -> None:
    """Refuse a key of an open section (one plugins may add keys to, so the schema lets any key
    through) that is a near miss of a key the schema knows there: ``hpc.partiton``."""
    for loc in locations:
        for path, node in _nodes_at(data, loc):
            if not isinstance(node, dict):
                continue
            known = known_keys(schema_at(schema, path), schema)
            for key in node:
                if not isinstance(key, str) or key in known:
                    continue
                guess = did_you_mean(key, sorted(known), cutoff=0.8)
                if guess:
                    full = list(path) + [key]
                    raise ConfigError(
                        f"unknown key {key!r}, did you mean {guess!r}?",
                        file=file_at(data, full, file),
                        line=line_of(data, full),
                        key=key_path(full),
                    )
