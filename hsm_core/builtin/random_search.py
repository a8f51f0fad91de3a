"""Built-in plugin: the ``random:`` sweep section (random search).

::

    random:
      samples: 20                          # parameter sets drawn (required)
      seed: 0                              # the same seed gives the same sets everywhere (default 0)
      lr: tag(log, interval(1e-5, 1e-1))   # Hydra's syntax: log-uniform
      dropout: {uniform: [0.0, 0.5]}       # or a mapping naming the distribution
      width: {int: [32, 512], q: 32}       # q: a multiple of q (quantised)
      optimizer: [adam, sgd]               # a list (or a,b / choice(a,b)): one of these values

The section multiplies with ``grid:`` and ``paired:`` like any section: 20 samples x 6 grid
combinations are 120 tasks. Parameters are drawn from a counter-based stream (SHA-256 of seed,
draw number and parameter name), not from Python's ``random`` state, so the sets are the same in
every process, on every machine and in every Python version (hash randomisation plays no part),
and adding a parameter leaves the values of the others unchanged. Drawn floats keep 10
significant digits, which keeps task ids stable across math libraries. The sets are distinct:
a draw equal to an earlier one is drawn again; asking for more samples than a discrete space
holds is an error.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

from hsm_core.plugin import ConfigError, Expander, ExpanderRecord, hookimpl
from hsm_core.sweep_syntax import (
    ChoiceSweep,
    IntervalSweep,
    RangeSweep,
    SweepSyntaxError,
    sweep_of,
)

#: Keys of the section that are settings, not parameters (``params:`` holds parameters named so).
SETTINGS = ("samples", "seed", "params")
#: Distribution names of the mapping form, with the number of arguments each takes.
DISTRIBUTIONS = {
    "uniform": "[low, high]",
    "log_uniform": "[low, high] (both > 0)",
    "int": "[low, high] (both included)",
    "log_int": "[low, high] (both included, > 0)",
    "normal": "[mu, sigma]",
    "log_normal": "[mu, sigma] (of the logarithm)",
    "beta": "[a, b] (both > 0; values in [0, 1])",
    "choice": "[value, ...]",
}
_ALIASES = {"loguniform": "log_uniform", "randint": "int", "int_uniform": "int", "lognormal": "log_normal",
            "categorical": "choice"}
#: Significant digits a drawn float keeps (see the module's docstring).
DIGITS = 10
#: Draws tried for one distinct set before giving up (only reachable with a tiny discrete space).
MAX_REDRAWS = 10_000


# --------------------------------------------------------------------------------------------
# Distributions: pure functions of uniform numbers in [0, 1)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Distribution:
    """One parameter's distribution. ``kind`` is a key of :data:`DISTRIBUTIONS` or ``constant``."""

    kind: str
    args: tuple[Any, ...]
    q: float | int | None = None
    weights: tuple[float, ...] | None = None  #: choice: relative weight of each value


    def sample(self, uniform: Any) -> Any:
        """A value, from ``uniform()`` (called for each number in [0, 1) it needs)."""
        kind, a = self.kind, self.args
        if kind == "constant":
            return a[0]
        if kind == "choice" and self.weights is not None:
            point = uniform() * sum(self.weights)
            for value, weight in zip(a, self.weights):
                if point < weight:
                    return value
                point -= weight
            return next(v for v, w in zip(reversed(a), reversed(self.weights)) if w > 0)
        if kind == "choice":
            return a[min(int(uniform() * len(a)), len(a) - 1)]
        if kind == "uniform":
            x = a[0] + uniform() * (a[1] - a[0])
        elif kind == "log_uniform":
            x = math.exp(math.log(a[0]) + uniform() * (math.log(a[1]) - math.log(a[0])))
        elif kind == "int":
            return self._quantise(a[0] + min(int(uniform() * (a[1] - a[0] + 1)), a[1] - a[0]))
        elif kind == "log_int":
            x = math.exp(math.log(a[0]) + uniform() * (math.log(a[1] + 1) - math.log(a[0])))
            return self._quantise(min(max(int(x), a[0]), a[1]))
        elif kind in ("normal", "log_normal"):
            x = a[0] + a[1] * _standard_normal(uniform)
            if kind == "log_normal":
                x = math.exp(x)
        elif kind == "beta":
            g1, g2 = _gamma(a[0], uniform), _gamma(a[1], uniform)
            x = g1 / (g1 + g2) if g1 + g2 > 0 else 0.5
        else:  # pragma: no cover - parse_distribution admits no other kind
            raise ValueError(kind)
        return self._quantise(x)

    def _quantise(self, x: float | int) -> float | int:
        if self.q is not None:
            x = round(x / self.q) * self.q
            if isinstance(self.q, int) and self.kind in ("int", "log_int"):
                return int(x)
        return x if isinstance(x, int) else _clean(x)

    def size(self) -> int | None:
        """How many distinct values it can give, or None when they are (practically) unbounded."""
        if self.kind == "constant":
            return 1
        if self.kind == "choice":
            weights = self.weights or (1,) * len(self.args)
            return len({_canonical(v) for v, w in zip(self.args, weights) if w > 0})
        if self.q is not None and self.kind in ("uniform", "log_uniform", "int", "log_int"):
            return int(round(self.args[1] / self.q) - round(self.args[0] / self.q)) + 1
        if self.kind in ("int", "log_int"):
            return self.args[1] - self.args[0] + 1
        return None

    def describe(self) -> str:
        kind, a = self.kind, self.args
        if kind == "constant":
            return f"{a[0]!r}"
        if kind == "choice" and len(a) == 1:
            return f"{a[0]!r}"
        if kind == "choice" and self.weights is not None:
            return f"weighted choice of {len(a)}: " + ", ".join(
                f"{v} ({w / sum(self.weights):.0%})" for v, w in list(zip(a, self.weights))[:5]) + (", ..." if len(a) > 5 else "")
        if kind == "choice":
            return f"choice of {len(a)}: {', '.join(map(str, a[:5]))}{', ...' if len(a) > 5 else ''}"
        text = {"uniform": "uniform", "log_uniform": "log-uniform", "int": "integer", "log_int": "log-integer",
                "normal": "normal", "log_normal": "log-normal", "beta": "beta"}[kind]
        args = (f"mu={a[0]}, sigma={a[1]}" if kind in ("normal", "log_normal") else
                f"a={a[0]}, b={a[1]}" if kind == "beta" else f"[{a[0]}, {a[1]}]")
        return f"{text} {args}" + (f", step {self.q}" if self.q is not None else "")


def _standard_normal(uniform: Any) -> float:
    # Box-Muller from two uniforms (1 - u keeps the logarithm finite).
    return math.sqrt(-2.0 * math.log(1.0 - uniform())) * math.cos(2.0 * math.pi * uniform())


def _gamma(shape: float, uniform: Any) -> float:
    """A Gamma(shape, 1) draw (Marsaglia and Tsang's method), from the same uniform stream."""
    if shape < 1:
        return _gamma(shape + 1, uniform) * (1.0 - uniform()) ** (1.0 / shape)
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    for _ in range(1000):  # accepts about 98% of tries
        x = _standard_normal(uniform)
        v = (1.0 + c * x) ** 3
        if v > 0 and math.log(1.0 - uniform()) < 0.5 * x * x + d - d * v + d * math.log(v):
            return d * v
    return d  # pragma: no cover - the mode, after a thousand rejections in a row


def _clean(x: float) -> float:
    return float(f"{x:.{DIGITS}g}")


def _canonical(v: Any) -> str:
    import json

    return json.dumps(v, sort_keys=True, separators=(",", ":"), default=str)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def parse_distribution(value: Any) -> Distribution:
    """The :class:`Distribution` a ``random:`` parameter is written as. Raises ValueError (message)."""
    if isinstance(value, list):
        if not value:
            raise ValueError("an empty list has no value to choose")
        return Distribution("choice", tuple(value))
    if isinstance(value, str):
        try:
            sweep = sweep_of(value)
        except SweepSyntaxError as exc:
            raise ValueError(str(exc)) from None
        if sweep is None:
            return Distribution("constant", (value,))
        return _from_sweep(sweep, value)
    if isinstance(value, Mapping):
        return _from_mapping(value)
    return Distribution("constant", (value,))


def _from_sweep(sweep: Any, text: str) -> Distribution:
    unknown = sorted(set(sweep.tags) - {"log"})
    if unknown:
        raise ValueError(f"unknown tag {unknown[0]!r} in {text.strip()!r} (random: knows the tag 'log')")
    log = "log" in sweep.tags
    if isinstance(sweep, IntervalSweep):
        if sweep.integer:
            low, high = math.ceil(sweep.low), math.floor(sweep.high)
            return _checked("log_int" if log else "int", (low, high), None)
        return _checked("log_uniform" if log else "uniform", (sweep.low, sweep.high), None)
    if log:
        raise ValueError(f"{text.strip()!r}: the tag 'log' applies to interval(), not to a list of values")
    values = tuple(sweep) if isinstance(sweep, (ChoiceSweep, RangeSweep)) else ()
    if isinstance(sweep, RangeSweep) and len(sweep) > 1_000_000:
        raise ValueError(f"{text.strip()!r} has {len(sweep):,} values; for so many use int(interval(low, high))")
    if not values:
        raise ValueError(f"{text.strip()!r} has no value")
    return Distribution("choice", values)


def _from_mapping(spec: Mapping[str, Any]) -> Distribution:
    names = [k for k in spec if k not in _OPTIONS]
    extra = [k for k in names if _ALIASES.get(k, k) not in DISTRIBUTIONS]
    if extra or len(names) != 1:
        known = ", ".join(DISTRIBUTIONS)
        raise ValueError(f"expected one distribution ({known}) and optionally q (or, for choice, weights), "
                         f"got {', '.join(map(str, spec)) or 'nothing'}")
    kind = _ALIASES.get(names[0], names[0])
    args = spec[names[0]]
    q = spec.get("q")
    if "q" in spec and not (_number(q) and q > 0):
        raise ValueError(f"q must be a number above 0 (the step values are multiples of), not {q!r}")
    if "weights" in spec and kind != "choice":
        raise ValueError(f"weights apply to choice, not to {kind}")
    if kind == "choice":
        if q is not None:
            raise ValueError("q does not apply to choice")
        if not isinstance(args, list) or not args:
            raise ValueError("choice takes a non-empty list of values")
        return Distribution("choice", tuple(args), weights=_weights(spec.get("weights"), len(args)))
    if not isinstance(args, list) or len(args) != 2:
        raise ValueError(f"{kind} takes {DISTRIBUTIONS[kind]}, not {args!r}")
    return _checked(kind, tuple(args), q)


_OPTIONS = ("q", "weights")


def _weights(weights: Any, n: int) -> tuple[float, ...] | None:
    """Relative weights of a choice's values (None: each as likely)."""
    if weights is None:
        return None
    if not isinstance(weights, list) or len(weights) != n or not all(_number(w) and w >= 0 for w in weights):
        raise ValueError(f"weights must be {n} numbers of at least 0, one per value, not {weights!r}")
    if not sum(weights) > 0:
        raise ValueError("weights must not all be 0")
    return tuple(float(w) for w in weights)


def _checked(kind: str, args: tuple[Any, ...], q: Any) -> Distribution:
    if not all(_number(a) for a in args):
        raise ValueError(f"{kind} takes numbers {DISTRIBUTIONS[kind]}, not {list(args)!r}")
    low, high = args
    if kind in ("normal", "log_normal"):
        if not high > 0:
            raise ValueError(f"{kind}: sigma must be above 0, not {high!r}")
        return Distribution(kind, args, q)
    if kind == "beta":
        if not (low > 0 and high > 0):
            raise ValueError(f"beta: a and b must be above 0, not {list(args)!r}")
        return Distribution(kind, args, q)
    if kind in ("int", "log_int"):
        if low != int(low) or high != int(high):
            raise ValueError(f"{kind} takes whole numbers {DISTRIBUTIONS[kind]}, not {list(args)!r}")
        args = low, high = int(low), int(high)
        if high < low:
            raise ValueError(f"{kind} [{low}, {high}]: low must not be above high")
    elif not low < high:
        raise ValueError(f"{kind} [{low}, {high}]: low must be below high")
    if kind in ("log_uniform", "log_int") and not low > 0:
        raise ValueError(f"{kind} [{low}, {high}]: a logarithmic scale needs low above 0")
    return Distribution(kind, args, q)


# --------------------------------------------------------------------------------------------
# The section
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RandomSection:
    """A parsed ``random:`` section."""

    samples: int
    seed: int
    params: tuple[tuple[str, Distribution], ...]

    def space_size(self) -> int | None:
        """Distinct parameter sets the section can give (None: unbounded)."""
        total = 1
        for _, dist in self.params:
            size = dist.size()
            if size is None:
                return None
            total *= size
        return total


def _uniforms(seed: int, draw: int, name: str) -> Any:
    """``next()``-style source of uniform numbers in [0, 1) for one parameter of one draw."""
    counter = 0

    def uniform() -> float:
        nonlocal counter
        digest = hashlib.sha256(f"{seed}\0{draw}\0{name}\0{counter}".encode("utf-8")).digest()
        counter += 1
        return (int.from_bytes(digest[:8], "big") >> 11) / float(1 << 53)

    return uniform


def _line_of(section: Any, keys: Sequence[Any]) -> int | None:
    node, line = section, getattr(section, "line", None)
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            break
        line = getattr(node, "lines", {}).get(key, line)
        node = node[key]
    return line


_WHERE = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<key>[^:]+)$")


def _error(message: str, where: str, section: Any, keys: Sequence[Any], hint: str | None = None) -> ConfigError:
    """A ConfigError at the line of ``keys`` in the section when the file's lines are known."""
    dotted = ".".join(str(k) for k in keys)
    m = _WHERE.match(where)
    line = _line_of(section, keys)
    if m and line:
        return ConfigError(message, file=m["file"], line=line, key=f"{m['key']}.{dotted}" if dotted else m["key"],
                           hint=hint)
    return ConfigError(message, key=f"{where}.{dotted}" if dotted else where, hint=hint)


def _is_distribution(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(
        k in _OPTIONS or _ALIASES.get(k, k) in DISTRIBUTIONS for k in value)


def _parameters(section: Mapping[str, Any], where: str) -> list[tuple[str, Any, list[Any]]]:
    """(dotted name, written value, keys in the file) of every parameter; nested mappings that
    are not a distribution are groups (``optimizer: {lr: ...}`` is ``optimizer.lr``)."""
    out: list[tuple[str, Any, list[Any]]] = []

    def walk(node: Mapping[str, Any], prefix: str, keys: list[Any]) -> None:
        for key, value in node.items():
            if isinstance(value, Mapping) and not _is_distribution(value):
                if not value:
                    raise _error("an empty mapping holds no parameter", where, section, keys + [key])
                for inner in value:  # a misspelt distribution would silently become a parameter
                    near = difflib.get_close_matches(str(inner), [*DISTRIBUTIONS, *_ALIASES], n=1, cutoff=0.75)
                    if near and len(value) <= 2:
                        raise _error(f"unknown distribution {inner!r}, did you mean {near[0]!r}? "
                                     f"(distributions: {', '.join(DISTRIBUTIONS)})", where, section, keys + [key, inner])
                walk(value, f"{prefix}{key}.", keys + [key])
            else:
                out.append((f"{prefix}{key}", value, keys + [key]))

    walk({k: v for k, v in section.items() if k not in SETTINGS}, "", [])
    params = section.get("params")
    if params is not None:
        if not isinstance(params, Mapping):
            raise _error("'params' holds parameters (a mapping), for names such as 'seed' or 'samples'",
                         where, section, ["params"])
        walk(params, "", ["params"])
    return out


def parse_section(section: Any, where: str = "random") -> RandomSection:
    """Validate a ``random:`` section and return it parsed; ConfigError names the key and line."""
    if not isinstance(section, Mapping):
        raise ConfigError("'random' must be a mapping: samples, seed and parameter: distribution", key=where)
    samples = section.get("samples")
    if "samples" not in section:
        raise _error("'samples' is missing: how many parameter sets to draw", where, section, [],
                     hint="e.g. samples: 20")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise _error(f"samples must be a whole number of at least 1, not {samples!r}", where, section, ["samples"])
    seed = section.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise _error(f"seed must be a whole number, not {seed!r}", where, section, ["seed"])
    params: list[tuple[str, Distribution]] = []
    seen: set[str] = set()
    for name, value, keys in _parameters(section, where):
        if not name.strip():
            raise _error(f"empty parameter name {name!r}", where, section, keys)
        if name in seen:
            raise _error("parameter given twice; keep one", where, section, keys)
        seen.add(name)
        try:
            params.append((name, parse_distribution(value)))
        except ValueError as exc:
            raise _error(str(exc), where, section, keys) from None
    if not params:
        raise _error("no parameter to sample: add one, e.g. lr: tag(log, interval(1e-5, 1e-1))", where, section, [])
    parsed = RandomSection(samples, seed, tuple(params))
    size = parsed.space_size()
    if size is not None and samples > size:
        raise _error(f"samples {samples} is more than the {size} distinct parameter sets these values give",
                     where, section, ["samples"], hint="lower samples, or list every set with grid:")
    return parsed


def draw(section: RandomSection) -> Iterator[dict[str, Any]]:
    """The section's ``samples`` distinct parameter sets, in draw order (lazily)."""
    seen: set[bytes] = set()
    draw_number = 0
    for _ in range(section.samples):
        for _attempt in range(MAX_REDRAWS):
            params = {name: dist.sample(_uniforms(section.seed, draw_number, name)) for name, dist in section.params}
            draw_number += 1
            # (a short digest, not the text: a million samples keep their memory small)
            key = hashlib.blake2b(_canonical(params).encode("utf-8"), digest_size=12).digest()
            if key not in seen:
                seen.add(key)
                break
        else:  # pragma: no cover - parse_section refuses spaces smaller than samples
            raise ConfigError(f"random: found no new parameter set in {MAX_REDRAWS} draws; lower samples")
        yield params


class RandomExpander(Expander):
    """``random: {samples, seed, param: distribution}``: ``samples`` sets drawn from the seed."""

    def validate(self, section: Any, where: str) -> None:
        parse_section(section, where)

    def count(self, section: Any) -> int:
        return int(section["samples"])

    def expand(self, section: Any) -> Iterator[dict[str, Any]]:
        return draw(parse_section(section))

    def describe(self, section: Any) -> list[tuple[str, str]]:
        """(parameter, distribution) rows for ``--dry-run``."""
        parsed = parse_section(section)
        rows = [("(random)", f"{parsed.samples} samples drawn, seed {parsed.seed}")]
        return rows + [(name, dist.describe()) for name, dist in parsed.params]


@hookimpl
def hsm_register_expanders() -> list[ExpanderRecord]:
    return [
        ExpanderRecord(
            "random",
            "Random search: samples drawn from distributions, reproducible from the seed",
            RandomExpander,
            section="random",
            config_schema={"type": "object", "description": "samples, seed, and parameter: distribution"},
        )
    ]
