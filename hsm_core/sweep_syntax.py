"""Hydra's sweeper syntax in sweep files, and nested mappings flattened to dotted keys.

What a Hydra user writes after ``key=`` on a ``--multirun`` command line means the same in a
sweep file: ``lr: 0.001,0.01,0.1`` is three values, ``layers: range(2,8,2)`` is 2, 4, 6,
``opt: choice(adam,sgd)`` two, ``lr: tag(log, interval(1e-5, 1e-1))`` a log-uniform interval (for
``random:``). The rules follow Hydra's override grammar (docs: "Basic/Extended Override syntax"):

* elements: a quoted string ``'a,b'`` / ``"a,b"`` (one value, quotes removed), ``[lists]``,
  ``{dicts: 1}``, ``${interpolations}`` (kept as text), and unquoted text typed as Hydra types it
  (``10`` int, ``1e-3`` float, ``true`` bool, ``null`` None, ``01`` the text "01"); ``\\,`` and the
  other escapes of ``\\()[]{}:=, `` give the character itself;
* sweeps: ``a,b,c``; ``choice(a,b,c)``; ``range(start, stop, step=1)`` (Python's range, floats
  allowed: ``start + i*step`` while below ``stop``, computed in decimal as Hydra does);
  ``interval(low, high)``; ``tag(tag, ..., sweep)``; ``sort(..., reverse=true)``; casts
  ``int()``, ``float()``, ``str()``, ``bool()`` of values and sweeps.

A string that holds no sweep is left exactly as written (``"10"`` stays the text "10"): only a
sweep changes meaning, so existing sweep files keep their task ids unless they held a sweep.
Items of a YAML list are values as they are, never parsed: ``path: ["a,b"]`` is one value.
"""

from __future__ import annotations

import decimal
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

__all__ = [
    "ChoiceSweep",
    "IntervalSweep",
    "RangeSweep",
    "SweepSyntaxError",
    "flatten_parameters",
    "looks_like_sweep",
    "parse_override_value",
    "sweep_of",
]


class SweepSyntaxError(ValueError):
    """A value that is meant as a sweep but is not valid sweeper syntax (the message says why).

    ``quotable``: the text may have been meant as one value (then say how to write that)."""

    def __init__(self, message: str, quotable: bool = True) -> None:
        super().__init__(message)
        self.quotable = quotable


@dataclass(frozen=True)
class ChoiceSweep:
    """``a,b,c`` or ``choice(a,b,c)``: these values, in this order."""

    values: tuple[Any, ...]
    tags: frozenset[str] = field(default_factory=frozenset)

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.values)

    def describe(self) -> str:
        return f"{len(self.values)} value{'s' if len(self.values) != 1 else ''}"


@dataclass(frozen=True)
class RangeSweep:
    """``range(start, stop, step)``: Python's range, also with floats (Hydra's semantics).

    Values are not held: ``len`` is computed, iteration is lazy (``range(0, 10**9)`` costs nothing)."""

    start: int | float
    stop: int | float
    step: int | float = 1
    tags: frozenset[str] = field(default_factory=frozenset)

    def _is_int(self) -> bool:
        return all(isinstance(v, int) and not isinstance(v, bool) for v in (self.start, self.stop, self.step))

    def __len__(self) -> int:
        if self._is_int():
            return len(range(self.start, self.stop, self.step))  # type: ignore[arg-type]
        start, stop, step = (decimal.Decimal(v) for v in (self.start, self.stop, self.step))
        n = (stop - start) / step
        return max(0, int(n.to_integral_value(rounding=decimal.ROUND_CEILING)))

    def __iter__(self) -> Iterator[int | float]:
        if self._is_int():
            yield from range(self.start, self.stop, self.step)  # type: ignore[arg-type]
            return
        # Hydra computes float ranges in decimal from the floats' exact values, so that
        # range(0,10,3.3) ends in 9.9, not 9.899999999999999.
        start, step = decimal.Decimal(self.start), decimal.Decimal(self.step)
        for i in range(len(self)):
            yield float(start + step * i)

    def describe(self) -> str:
        return f"{len(self)} values (range({_show(self.start)}, {_show(self.stop)}, {_show(self.step)}))"


@dataclass(frozen=True)
class IntervalSweep:
    """``interval(low, high)``: every number with low <= x < high (only for sampling: ``random:``).

    ``integer``: written ``int(interval(...))``; ``tags``: ``log`` samples on a log scale."""

    low: float
    high: float
    integer: bool = False
    tags: frozenset[str] = field(default_factory=frozenset)

    def describe(self) -> str:
        kind = "log " if "log" in self.tags else ""
        return f"{kind}{'int ' if self.integer else ''}interval({_show(self.low)}, {_show(self.high)})"


Sweep = "ChoiceSweep | RangeSweep | IntervalSweep"


def _show(v: Any) -> str:
    return repr(v) if isinstance(v, str) else str(v)


# --------------------------------------------------------------------------------------------
# Recognising a sweep
# --------------------------------------------------------------------------------------------

_SWEEP_FUNCTIONS = ("choice", "range", "interval", "tag", "sort", "shuffle", "glob")
_CASTS = ("int", "float", "str", "bool")
_FUNCTION_START = re.compile(r"^\s*(?:(?:%s)\s*\(\s*)*(%s)\s*\(" % ("|".join(_CASTS), "|".join(_SWEEP_FUNCTIONS)))


def _top_level_comma(text: str) -> bool:
    """Whether ``text`` has a comma outside quotes, brackets and ``${...}``, not escaped."""
    depth, quote, i = 0, "", 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"" and (i == 0 or not text[:i].strip() or text[:i].rstrip()[-1] in ",([{="):
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth = max(0, depth - 1)
        elif c == "," and depth == 0:
            return True
        i += 1
    return False


def looks_like_sweep(text: str) -> bool:
    """Whether the string ``text`` is written as a sweep (a top-level comma or a sweep function).

    Cheap and forgiving: it decides whether :func:`sweep_of` parses the text at all, so that text
    such as a path with brackets or a sentence without a comma is never touched."""
    return isinstance(text, str) and (bool(_FUNCTION_START.match(text)) or _top_level_comma(text))


def sweep_of(text: Any) -> Any:
    """The sweep a sweep-file string holds (:class:`ChoiceSweep`, :class:`RangeSweep`,
    :class:`IntervalSweep`), or None when ``text`` is a plain value (keep it as written).

    Raises :class:`SweepSyntaxError` when ``text`` is written as a sweep but is not valid syntax."""
    if not looks_like_sweep(text):
        return None
    value = parse_override_value(text)
    return value if isinstance(value, (ChoiceSweep, RangeSweep, IntervalSweep)) else None


# --------------------------------------------------------------------------------------------
# The parser (a small recursive descent over Hydra's override-value grammar)
# --------------------------------------------------------------------------------------------

_ESCAPABLE = set("\\()[]{}:=, \t")
#: Characters Hydra's lexer takes in an unquoted value (letters are ASCII only, as in Hydra).
_UNQUOTED = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-/\\+.$%*@?|: \t")
_SPECIAL = set("()[]{},:=")
_INT = re.compile(r"^[+-]?(?:0|[1-9](?:_?[0-9])*)$")
_DIGITS = r"[0-9](?:_?[0-9])*"
# A float has a dot or an exponent (``01`` and ``10`` are not floats), or is inf / nan.
_FLOAT = re.compile(
    rf"^[+-]?(?:(?:(?:{_DIGITS})?\.{_DIGITS}|{_DIGITS}\.)(?:[eE][+-]?{_DIGITS})?|{_DIGITS}[eE][+-]?{_DIGITS}|inf|nan)$",
    re.IGNORECASE,
)
_ID = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$\-+%@?|]*$")


@dataclass
class _Unquoted:
    """Pieces of unquoted text; ``escaped`` when a backslash escape made it (always a string)."""

    text: str
    escaped: bool = False


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    # -- helpers ---------------------------------------------------------------------------------
    def error(self, message: str) -> SweepSyntaxError:
        return SweepSyntaxError(f"{message} at character {self.pos + 1} of {self.text!r}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_ws(self) -> None:
        while self.peek() in (" ", "\t") and self.peek():
            self.pos += 1

    def expect(self, char: str) -> None:
        self.skip_ws()
        if self.peek() != char:
            found = repr(self.peek()) if self.peek() else "the end"
            raise self.error(f"expected {char!r}, found {found}")
        self.pos += 1

    # -- grammar ---------------------------------------------------------------------------------
    def value(self) -> Any:
        first = self.element()
        self.skip_ws()
        if self.peek() != ",":
            return first
        items = [first]
        while self.peek() == ",":
            self.pos += 1
            items.append(self.element())
            self.skip_ws()
        if any(isinstance(i, (ChoiceSweep, RangeSweep, IntervalSweep)) for i in items):
            raise self.error("a sweep cannot be one value of a comma-separated list")
        return ChoiceSweep(tuple(items))

    def element(self) -> Any:
        self.skip_ws()
        c = self.peek()
        if c in ("'", '"'):
            out: Any = self.quoted()
        elif c == "[":
            out = self.list_()
        elif c == "{":
            out = self.dict_()
        else:
            start = self.pos
            name = self.unquoted()
            self.skip_ws()
            if self.peek() == "(" and not name.escaped and _ID.match(name.text.strip()):
                out = self.function(name.text.strip())
            else:
                if not name.text.strip() and not name.escaped:
                    self.pos = start
                    found = repr(self.peek()) if self.peek() else "the end"
                    raise self.error(f"expected a value, found {found}")
                out = _primitive(name)
        self.skip_ws()
        return out

    def quoted(self) -> str:
        quote = self.peek()
        self.pos += 1
        out: list[str] = []
        while True:
            if self.pos >= len(self.text):
                raise self.error(f"unterminated quoted string (add the closing {quote})")
            c = self.text[self.pos]
            if c == "\\":
                run = len(self.text[self.pos:]) - len(self.text[self.pos:].lstrip("\\"))
                after = self.text[self.pos + run] if self.pos + run < len(self.text) else ""
                if after == quote:  # backslashes before a quote are doubled; an odd one escapes it
                    out.append("\\" * (run // 2))
                    self.pos += run
                    if run % 2:
                        out.append(quote)
                        self.pos += 1
                    continue
                out.append("\\" * run)
                self.pos += run
                continue
            self.pos += 1
            if c == quote:
                return "".join(out)
            out.append(c)

    def unquoted(self) -> _Unquoted:
        out: list[str] = []
        escaped = False
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c == "\\" and self.pos + 1 < len(self.text) and self.text[self.pos + 1] in _ESCAPABLE:
                nxt = self.text[self.pos + 1]
                out.append("\t" if nxt == "t" else nxt)
                escaped = True
                self.pos += 2
            elif c == "$" and self.text.startswith("${", self.pos):
                out.append(self.interpolation())
            elif c in _SPECIAL or c in ("'", '"'):
                if c == ":" and not self._in_dict_key:
                    out.append(c)  # a colon is text outside a dict key (12:00:00, http://)
                    self.pos += 1
                    continue
                break
            elif c in _UNQUOTED:
                out.append(c)
                self.pos += 1
            else:
                raise self.error(f"{c!r} cannot appear unquoted in Hydra's syntax (quote the value: 'text')")
        text = "".join(out)
        # Leading and trailing whitespace is not part of an unquoted value (Hydra strips it).
        return _Unquoted(text.strip(" \t") if not escaped else text.lstrip(" \t"), escaped)

    _in_dict_key = False

    def interpolation(self) -> str:
        start, depth = self.pos, 0
        while self.pos < len(self.text):
            c = self.text[self.pos]
            self.pos += 1
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    return self.text[start:self.pos]
        raise self.error("unterminated interpolation '${' (add the closing '}')")

    def list_(self) -> list[Any]:
        self.pos += 1
        items: list[Any] = []
        self.skip_ws()
        if self.peek() == "]":
            self.pos += 1
            return items
        while True:
            item = self.element()
            if isinstance(item, (ChoiceSweep, RangeSweep, IntervalSweep)):
                raise self.error("a list cannot hold a sweep")
            items.append(item)
            self.skip_ws()
            if self.peek() == ",":
                self.pos += 1
                continue
            self.expect("]")
            return items

    def dict_(self) -> dict[str, Any]:
        self.pos += 1
        out: dict[str, Any] = {}
        self.skip_ws()
        if self.peek() == "}":
            self.pos += 1
            return out
        while True:
            self._in_dict_key = True
            try:
                key = self.unquoted()
            finally:
                self._in_dict_key = False
            if not key.text.strip():
                raise self.error("expected a key in a {dict}")
            self.expect(":")
            item = self.element()
            if isinstance(item, (ChoiceSweep, RangeSweep, IntervalSweep)):
                raise self.error("a dict cannot hold a sweep")
            out[key.text.strip()] = item
            self.skip_ws()
            if self.peek() == ",":
                self.pos += 1
                continue
            self.expect("}")
            return out

    def function(self, name: str) -> Any:
        self.expect("(")
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        self.skip_ws()
        if self.peek() == ")":
            self.pos += 1
        else:
            while True:
                self.skip_ws()
                m = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=").match(self.text, self.pos)
                if m:
                    self.pos = m.end()
                    kwargs[m.group(1)] = self.element()
                else:
                    if kwargs:
                        raise self.error(f"{name}(): a positional argument follows a named one")
                    args.append(self.element())
                self.skip_ws()
                if self.peek() == ",":
                    self.pos += 1
                    continue
                self.expect(")")
                break
        try:
            return _call(name, args, kwargs)
        except SweepSyntaxError as exc:
            raise SweepSyntaxError(f"{exc} in {self.text!r}") from None


def _primitive(piece: _Unquoted) -> Any:
    text = piece.text
    if piece.escaped:
        return text
    low = text.lower()
    if low == "null":
        return None
    if low in ("true", "false"):
        return low == "true"
    if _INT.match(text):
        return int(text.replace("_", ""))
    if _FLOAT.match(text):
        return float(text.replace("_", ""))
    return text


def _number(value: Any, what: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SweepSyntaxError(f"{what} must be a number, not {value!r}")
    return value


def _arguments(name: str, args: list[Any], kwargs: dict[str, Any], names: tuple[str, ...],
               required: int) -> list[Any]:
    out = list(args)
    if len(out) > len(names):
        raise SweepSyntaxError(f"{name}() takes at most {len(names)} arguments ({', '.join(names)})")
    for key, value in kwargs.items():
        if key not in names:
            raise SweepSyntaxError(f"{name}() has no argument {key!r} (arguments: {', '.join(names)})")
        index = names.index(key)
        while len(out) <= index:
            out.append(_MISSING)
        if out[index] is not _MISSING:
            raise SweepSyntaxError(f"{name}() got {key!r} twice")
        out[index] = value
    if len(out) < required or any(v is _MISSING for v in out[:required]):
        raise SweepSyntaxError(f"{name}() needs {', '.join(names[:required])}")
    return out


_MISSING = object()


def _call(name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    if name == "choice":
        if kwargs:
            raise SweepSyntaxError(f"choice() has no argument {next(iter(kwargs))!r}")
        if not args:
            raise SweepSyntaxError("choice() needs at least one value")
        if any(isinstance(a, (ChoiceSweep, RangeSweep, IntervalSweep)) for a in args):
            raise SweepSyntaxError("choice() takes values, not sweeps")
        return ChoiceSweep(tuple(args))
    if name == "range":
        values = _arguments(name, args, kwargs, ("start", "stop", "step"), 1)
        if len(values) == 1:
            values = [0, values[0]]
        start, stop = _number(values[0], "range start"), _number(values[1], "range stop")
        step = _number(values[2], "range step") if len(values) > 2 and values[2] is not _MISSING else 1
        if step == 0:
            raise SweepSyntaxError("range() step must not be zero")
        return RangeSweep(start, stop, step)
    if name == "interval":
        low, high = _arguments(name, args, kwargs, ("start", "end"), 2)
        low, high = float(_number(low, "interval start")), float(_number(high, "interval end"))
        if not low < high:
            raise SweepSyntaxError(f"interval({low}, {high}): the start must be below the end")
        return IntervalSweep(low, high)
    if name == "tag":
        sweep = kwargs.pop("sweep", None)
        if kwargs:
            raise SweepSyntaxError(f"tag() has no argument {next(iter(kwargs))!r}")
        if sweep is None and args and isinstance(args[-1], (ChoiceSweep, RangeSweep, IntervalSweep)):
            sweep = args.pop()
        if not isinstance(sweep, (ChoiceSweep, RangeSweep, IntervalSweep)):
            raise SweepSyntaxError("tag() needs a sweep as its last argument, e.g. tag(log, interval(1e-5, 1e-1))")
        if not all(isinstance(t, str) for t in args):
            raise SweepSyntaxError("tag() takes names (log, ...) before the sweep")
        return _with_tags(sweep, frozenset(args))
    if name == "sort":
        reverse = kwargs.pop("reverse", False)
        target = kwargs.pop("sweep", None) or kwargs.pop("list", None)
        if kwargs or not isinstance(reverse, bool):
            raise SweepSyntaxError("sort() takes values or one sweep, and reverse=true|false")
        if target is None:
            target = args[0] if len(args) == 1 else ChoiceSweep(tuple(args))
        if isinstance(target, IntervalSweep):
            raise SweepSyntaxError("sort() cannot sort an interval")
        if isinstance(target, (ChoiceSweep, RangeSweep)):
            return ChoiceSweep(tuple(sorted(target, reverse=reverse)), target.tags)
        return sorted(target, reverse=reverse) if isinstance(target, list) else target
    if name in _CASTS:
        if len(args) > 1 and not kwargs:  # str(1,2,3): a cast of the sweep 1,2,3
            return _cast(name, ChoiceSweep(tuple(args)))
        (value,) = _arguments(name, args, kwargs, ("value",), 1)
        return _cast(name, value)
    if name in ("shuffle", "glob"):
        why = ("a shuffled order is different in every run; for a random subset use a random: section"
               if name == "shuffle" else "hsm does not know the options of your Hydra config groups: list them")
        raise SweepSyntaxError(f"{name}() is not supported in sweep files ({why})")
    raise SweepSyntaxError(
        f"unknown function {name}() (sweep files know choice, range, interval, tag, sort, int, float, str, bool)"
    )


def _with_tags(sweep: Any, tags: frozenset[str]) -> Any:
    if isinstance(sweep, ChoiceSweep):
        return ChoiceSweep(sweep.values, sweep.tags | tags)
    if isinstance(sweep, RangeSweep):
        return RangeSweep(sweep.start, sweep.stop, sweep.step, sweep.tags | tags)
    return IntervalSweep(sweep.low, sweep.high, sweep.integer, sweep.tags | tags)


def _cast(kind: str, value: Any) -> Any:
    """Hydra's casts: of a value, recursively of lists and dict values, and of sweeps."""
    if isinstance(value, ChoiceSweep):
        return ChoiceSweep(tuple(_cast(kind, v) for v in value.values), value.tags)
    if isinstance(value, RangeSweep):
        if kind not in ("int", "float"):
            raise SweepSyntaxError(f"{kind}() cannot cast a range")
        conv = int if kind == "int" else float
        return RangeSweep(conv(value.start), conv(value.stop), conv(value.step), value.tags)
    if isinstance(value, IntervalSweep):
        if kind == "int":
            return IntervalSweep(value.low, value.high, True, value.tags)
        if kind == "float":
            return IntervalSweep(value.low, value.high, False, value.tags)
        raise SweepSyntaxError(f"{kind}() cannot cast an interval")
    if isinstance(value, list):
        return [_cast(kind, v) for v in value]
    if isinstance(value, dict):
        return {k: _cast(kind, v) for k, v in value.items()}
    try:
        if kind == "str":
            return "true" if value is True else "false" if value is False else str(value)
        if kind == "bool":
            if isinstance(value, str):
                if value.lower() in ("true", "false"):
                    return value.lower() == "true"
                raise ValueError(value)
            return bool(value)
        if kind == "int":
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(value)
            return int(value) if not isinstance(value, str) else int(value.replace("_", ""))
        return float(value)
    except (TypeError, ValueError):
        raise SweepSyntaxError(f"cannot cast {value!r} to {kind}") from None


def parse_override_value(text: str) -> Any:
    """Parse ``text`` as the value of a Hydra override (what follows ``key=``): an element
    (str, int, float, bool, None, list, dict) or a sweep. Raises :class:`SweepSyntaxError`."""
    parser = _Parser(text)
    value = parser.value()
    parser.skip_ws()
    if parser.pos != len(text):
        raise parser.error(f"unexpected {parser.peek()!r}")
    return value


# --------------------------------------------------------------------------------------------
# Nested mappings
# --------------------------------------------------------------------------------------------


def flatten_parameters(mapping: Mapping[Any, Any], prefix: str = "") -> list[tuple[str, Any, list[Any]]]:
    """``{optimizer: {lr: [..], wd: 0}}`` -> ``[("optimizer.lr", [..], [optimizer, lr]), ...]``.

    A nested mapping is a group of parameters, as in a Hydra config; the third item is the path
    of keys in the file (for its line). A mapping meant as ONE value is written as a one-item list
    (``optimizer: [{lr: 0.1}]``). An empty nested mapping raises :class:`SweepSyntaxError`."""
    out: list[tuple[str, Any, list[Any]]] = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            if not value:
                raise SweepSyntaxError(f"{name}: an empty mapping holds no parameter")
            out.extend((n, v, [key, *path]) for n, v, path in flatten_parameters(value, f"{name}."))
        else:
            out.append((name, value, [key]))
    return out


def value_axis(value: Any) -> Any:
    """The values one parameter of ``grid:`` or ``paired:`` takes, as a sized iterable.

    A list is its items as they are; a string written as a sweep (:func:`sweep_of`) is the
    sweep's values (a range stays lazy); anything else is one value. An ``interval()`` has no
    list of values: :class:`SweepSyntaxError` says to sample it under ``random:``."""
    if isinstance(value, list):
        return value
    sweep = sweep_of(value) if isinstance(value, str) else None
    if sweep is None:
        return [value]
    if isinstance(sweep, IntervalSweep):
        raise SweepSyntaxError(
            f"{value.strip()!r} is a continuous interval: it has no list of values to try; "
            "sample it in a 'random:' section, or list values (a,b,c or range(start,stop,step))",
            quotable=False,
        )
    if len(sweep) == 0:
        raise SweepSyntaxError(f"{value.strip()!r} has no value (the sweep would have no task)", quotable=False)
    return sweep
