"""A Weights & Biases sweep file (what ``wandb sweep sweep.yaml`` reads), run by hsm unchanged.

``hsm run --config sweep.yaml`` on a file with wandb's top-level ``method:`` and ``parameters:``
translates it here into hsm's own form, then checks and runs it like any sweep file:

* ``method: grid`` -> a ``grid:`` section; ``method: random`` -> a ``random:`` section drawing
  ``run_cap`` parameter sets (seed 0); ``method: bayes`` -> a ``search:`` section (adaptive
  search) with strategy ``tpe`` (hsm-plugin-optuna), ``metric: {name, goal}`` and ``run_cap``
  trials; ``metric`` is refused for grid and random unless ``early_terminate`` needs it;
* ``early_terminate: {type: hyperband, min_iter | max_iter and s, eta}`` -> ``prune:`` with the
  ``asha`` pruner of hsm-plugin-optuna (see :func:`_early_terminate` for why ASHA);
* ``parameters``: ``values`` (+ ``probabilities``), ``value``, ``min``/``max`` (+ ``distribution``,
  ``q``, ``mu``/``sigma``, ``a``/``b``), nested ``parameters`` (dotted names ``optimizer.lr``);
* ``program`` and ``command`` with wandb's macros ``${env}``, ``${interpreter}``, ``${program}``,
  ``${args}``, ``${args_no_hyphens}``, ``${args_no_boolean_flags}``, ``${args_json}``; the default
  command is wandb's, ``${env} ${interpreter} ${program} ${args}``;
* ``name``, ``description``; ``project`` / ``entity`` reach the runs as ``WANDB_PROJECT`` /
  ``WANDB_ENTITY`` (what ``wandb agent`` does).

Every other key, distribution or macro is refused with one line naming the file, the line and the
key, and what hsm supports instead: nothing in the file is silently ignored.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import shlex
from typing import Any, Mapping

from hsm_core.config.lines import line_of
from hsm_core.plugin import ConfigError

__all__ = ["WANDB_ARG_STYLES", "is_wandb_sweep", "translate", "wandb_args"]

#: Top-level keys that mark a wandb sweep file (hsm's own files have neither).
MARKERS = ("method", "parameters")
#: What the supported keys do (the refusal of any other key lists them).
SUPPORTED_KEYS = ("method", "parameters", "program", "command", "run_cap", "name", "description", "project", "entity",
                  "early_terminate")
_REFUSED_KEYS = {
    "metric": "hsm does not rank runs by a metric in grid and random sweeps (method: bayes optimises it, and "
              "hsm status shows the best trial there); remove 'metric:'",
    "job": "hsm runs a program, not a W&B Launch job: give 'program:' (and 'command:')",
    "image_uri": "hsm runs a program, not a W&B Launch image: give 'program:' (and 'command:')",
    "controller": "hsm is its own controller: remove 'controller:'",
}
_DEFAULT_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]
#: wandb's macro -> hsm's command word (``{args:STYLE}``: the parameters, formatted as wandb does).
_MACROS = {
    "${env}": "/usr/bin/env",
    "${interpreter}": "{python}",
    "${args}": "{args:wandb}",
    "${args_no_hyphens}": "{args:wandb_no_hyphens}",
    "${args_no_boolean_flags}": "{args:wandb_no_boolean_flags}",
    "${args_json}": "{args:wandb_json}",
}
#: Argument styles of ``{args:STYLE}`` that format parameters as ``wandb agent`` does.
WANDB_ARG_STYLES = ("wandb", "wandb_no_hyphens", "wandb_no_boolean_flags", "wandb_json")


def is_wandb_sweep(data: Any) -> bool:
    """Whether a loaded sweep file is written in wandb's form (``method:`` or ``parameters:``)."""
    return isinstance(data, Mapping) and any(k in data for k in MARKERS)


def wandb_args(params: Mapping[str, Any], style: str) -> list[str]:
    """The arguments ``wandb agent`` passes for ``params`` (Python's ``str`` of each value)."""
    if style == "wandb_json":
        return [json.dumps(dict(params))]
    out: list[str] = []
    for key, value in params.items():
        if style == "wandb_no_hyphens":
            out.append(f"{key}={value}")
        elif style == "wandb_no_boolean_flags" and isinstance(value, bool):
            if value:
                out.append(f"--{key}")
        else:
            out.append(f"--{key}={value}")
    return out


# --------------------------------------------------------------------------------------------
# Translation
# --------------------------------------------------------------------------------------------


class _Where:
    """Errors at a key's line of the file."""

    def __init__(self, data: Any, file: str) -> None:
        self.data, self.file = data, file

    def line(self, keys: list[Any]) -> int | None:
        return line_of(self.data, keys)

    def error(self, message: str, keys: list[Any], hint: str | None = None) -> ConfigError:
        return ConfigError(message, file=self.file, line=self.line(keys),
                           key=".".join(str(k) for k in keys) or None, hint=hint)


def translate(data: Mapping[str, Any], file: str) -> dict[str, Any]:
    """hsm's form of a wandb sweep file: ``grid:``/``random:``, ``command:``, ``name``,
    ``description``. Raises :class:`ConfigError` (file, line, key) for what hsm cannot honour."""
    where = _Where(data, file)
    method = data.get("method")
    for key in data:
        if key == "metric" and (method == "bayes" or "early_terminate" in data):
            continue  # what bayes optimises, what early termination compares
        if key in _REFUSED_KEYS:
            raise where.error(f"not supported: {_REFUSED_KEYS[key]}", [key])
        if key in ("grid", "paired", "random", "sweep", "metadata", "args_style", "sources", "strategy"):
            raise where.error(f"'{key}' is hsm's own form, this file is in wandb's (method:, parameters:): "
                              "write the sweep in one form", [key])
        if key not in SUPPORTED_KEYS:
            near = difflib.get_close_matches(str(key), [*SUPPORTED_KEYS, *_REFUSED_KEYS], n=1)
            guess = f"did you mean {near[0]!r}? " if near else ""
            raise where.error(f"unknown key of a wandb sweep file ({guess}hsm supports: {', '.join(SUPPORTED_KEYS)})",
                              [key])
    if method not in ("grid", "random", "bayes"):
        raise where.error(f"method must be grid, random or bayes, not {method!r}", ["method"])
    params = data.get("parameters")
    if not isinstance(params, Mapping) or not params:
        raise where.error("'parameters' must map each parameter to its values (values: [..], min/max, ...)",
                          ["parameters"])
    flat = _flatten(params, ["parameters"], where)
    out: dict[str, Any] = {}
    for key in ("name", "description"):
        if key in data:
            if not isinstance(data[key], str):
                raise where.error(f"{key} must be text", [key])
            out[key] = data[key]
    run_cap = data.get("run_cap")
    if run_cap is not None and (isinstance(run_cap, bool) or not isinstance(run_cap, int) or run_cap < 1):
        raise where.error(f"run_cap must be a whole number of at least 1, not {run_cap!r}", ["run_cap"])
    if method == "grid":
        grid = {name: _grid_values(spec, keys, where) for name, spec, keys in flat}
        total = math.prod(len(v) for v in grid.values())
        if run_cap is not None and run_cap < total:
            raise where.error(f"run_cap {run_cap} is below the {total} combinations of the grid: hsm runs a grid "
                              "whole; raise run_cap or remove values", ["run_cap"])
        out["grid"] = grid
    elif method == "bayes":
        out["search"] = _bayes(data, run_cap, flat, where)
    else:
        if run_cap is None:
            raise where.error("random needs run_cap: N, the number of runs (hsm draws N parameter sets "
                              "from seed 0; a wandb agent would draw until stopped)", ["method"])
        out["random"] = {"samples": run_cap, "seed": 0,
                         "params": {name: _distribution(spec, keys, where) for name, spec, keys in flat}}
    if "early_terminate" in data:
        out["prune"] = _early_terminate(data, where)
    out["command"] = _command(data, where)
    return out


_EARLY_TERMINATE_KEYS = ("type", "min_iter", "max_iter", "s", "eta", "strict")


def _early_terminate(data: Mapping[str, Any], where: _Where) -> dict[str, Any]:
    """``early_terminate: {type: hyperband, ...}`` as hsm's ``prune:`` setting.

    wandb's hyperband stopping compares a run, at each of its brackets (iterations ``min_iter *
    eta**k``, or ``max_iter / eta**k`` for k = 1..s), with every run that reached that bracket, and
    stops it unless it is in the best ``1/eta`` of them: that is asynchronous successive halving
    over one schedule of brackets, Optuna's ``SuccessiveHalvingPruner`` (hsm's ``asha``) with
    ``min_resource`` = the first bracket and ``reduction_factor`` = ``eta``. (Optuna's
    ``HyperbandPruner`` would run several such schedules side by side, which wandb does not.)
    A run's iteration is the ``step=`` of its reports."""
    et = data["early_terminate"]
    if not isinstance(et, Mapping):
        raise where.error("early_terminate must be a mapping: {type: hyperband, min_iter: 3}", ["early_terminate"])
    for key in et:
        if key not in _EARLY_TERMINATE_KEYS:
            raise where.error(f"unknown key of early_terminate (wandb's hyperband has: {', '.join(_EARLY_TERMINATE_KEYS)})",
                              ["early_terminate", key])
    if et.get("type") != "hyperband":
        raise where.error(f"early_terminate type must be hyperband (wandb's only one), not {et.get('type')!r}",
                          ["early_terminate", "type"])
    if et.get("strict"):
        raise where.error("not supported: strict: true (wandb's stricter hyperband variant); remove it, or write "
                          "hsm's prune: {pruner: hyperband, options: {...}} in an hsm sweep file", ["early_terminate", "strict"])
    metric = data.get("metric")
    if not isinstance(metric, Mapping) or not isinstance(metric.get("name"), str) or not metric.get("name"):
        raise where.error("early_terminate compares runs by a metric: add metric: {name: loss, goal: minimize}",
                          ["early_terminate"])
    goal = metric.get("goal", "minimize")
    if goal not in ("minimize", "maximize"):
        raise where.error(f"metric goal must be minimize or maximize, not {goal!r}", ["metric", "goal"])

    def whole(key: str, least: int) -> int:
        value = et.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise where.error(f"{key} must be a whole number of at least {least}, not {value!r}", ["early_terminate", key])
        return value

    eta = whole("eta", 2) if "eta" in et else 3
    if "min_iter" in et and "max_iter" in et:
        raise where.error("give min_iter or max_iter (with s), not both", ["early_terminate", "max_iter"])
    if "min_iter" in et:
        first = whole("min_iter", 1)
    elif "max_iter" in et:
        if "s" not in et:
            raise where.error("max_iter needs s, the number of brackets (wandb's rule)", ["early_terminate", "max_iter"])
        top, brackets = whole("max_iter", 1), whole("s", 1)
        first = top / eta**brackets
        if first < 1 or first != int(first):
            raise where.error(f"max_iter {top} / eta**s = {first:g} is not a whole number of iterations: the first "
                              "bracket must be one", ["early_terminate", "max_iter"],
                              hint=f"e.g. max_iter: {eta ** brackets * max(1, round(first))} with s: {brackets}")
        first = int(first)
    else:
        raise where.error("early_terminate needs min_iter (the first bracket) or max_iter and s", ["early_terminate"])
    return {"pruner": "asha", "metric": metric["name"], "goal": goal,
            "options": {"min_resource": first, "reduction_factor": eta}}


def _bayes(data: Mapping[str, Any], run_cap: int | None, flat: list[tuple[str, Mapping[str, Any], list[Any]]],
           where: _Where) -> dict[str, Any]:
    """``method: bayes`` as hsm's ``search:`` section: Optuna's TPE (hsm-plugin-optuna) asked for
    ``run_cap`` trials, optimising ``metric``."""
    metric = data.get("metric")
    if not isinstance(metric, Mapping) or not isinstance(metric.get("name"), str) or not metric.get("name"):
        raise where.error("bayes needs the metric to optimise: metric: {name: loss, goal: minimize}", ["metric"])
    for key in metric:
        if key not in ("name", "goal"):
            raise where.error(f"not supported: metric.{key} (hsm runs the run_cap trials; remove it)", ["metric", key])
    goal = metric.get("goal", "minimize")
    if goal not in ("minimize", "maximize"):
        raise where.error(f"metric goal must be minimize or maximize, not {goal!r}", ["metric", "goal"])
    if run_cap is None:
        raise where.error("bayes needs run_cap: N, the number of trials (a wandb agent would search until "
                          "stopped)", ["method"])
    return {"strategy": "tpe", "metric": {"name": metric["name"], "goal": goal}, "trials": run_cap, "seed": 0,
            "params": {name: _distribution(spec, keys, where) for name, spec, keys in flat}}


def _flatten(params: Mapping[str, Any], keys: list[Any], where: _Where,
             prefix: str = "") -> list[tuple[str, Mapping[str, Any], list[Any]]]:
    out = []
    for name, spec in params.items():
        here = keys + [name]
        if not isinstance(spec, Mapping):
            raise where.error("a parameter is a mapping (values: [..], value: x, min/max, distribution ...)", here)
        if "parameters" in spec:
            if set(spec) != {"parameters"} or not isinstance(spec["parameters"], Mapping) or not spec["parameters"]:
                raise where.error("nested 'parameters' stand alone under a parameter's name", here)
            out.extend(_flatten(spec["parameters"], here + ["parameters"], where, f"{prefix}{name}."))
        else:
            out.append((f"{prefix}{name}", spec, here))
    return out


_DISTRIBUTION_KEYS = {
    "constant": {"value"}, "categorical": {"values"}, "categorical_w_probabilities": {"values", "probabilities"},
    "int_uniform": {"min", "max"}, "uniform": {"min", "max"},
    "q_uniform": {"min", "max", "q"}, "log_uniform": {"min", "max"}, "log_uniform_values": {"min", "max"},
    "q_log_uniform": {"min", "max", "q"}, "q_log_uniform_values": {"min", "max", "q"},
    "inv_log_uniform": {"min", "max"}, "inv_log_uniform_values": {"min", "max"},
    "normal": {"mu", "sigma"}, "q_normal": {"mu", "sigma", "q"}, "log_normal": {"mu", "sigma"},
    "q_log_normal": {"mu", "sigma", "q"}, "beta": {"a", "b"}, "q_beta": {"a", "b", "q"},
}
_DEFAULTS = {"mu": 0.0, "sigma": 1.0, "a": 1.0, "b": 1.0, "q": 1.0}
_REQUIRED = {"value", "values", "min", "max", "probabilities"}


def _kind(spec: Mapping[str, Any], keys: list[Any], where: _Where) -> str:
    """wandb's distribution of a parameter, as wandb infers it when ``distribution`` is not given."""
    kind = spec.get("distribution")
    if kind is None and "probabilities" in spec:
        kind = "categorical_w_probabilities"
    if kind is None:
        if "values" in spec:
            kind = "categorical"
        elif "value" in spec:
            kind = "constant"
        elif "min" in spec and "max" in spec:
            both_int = all(isinstance(spec[k], int) and not isinstance(spec[k], bool) for k in ("min", "max"))
            kind = "int_uniform" if both_int else "uniform"
        else:
            raise where.error("give values: [..], value: x, or min and max", keys)
    if kind not in _DISTRIBUTION_KEYS:
        near = difflib.get_close_matches(str(kind), list(_DISTRIBUTION_KEYS), n=1)
        guess = f", did you mean {near[0]!r}?" if near else ""
        raise where.error(f"unknown distribution {kind!r}{guess} (wandb's: {', '.join(_DISTRIBUTION_KEYS)})",
                          keys + ["distribution"])
    allowed = _DISTRIBUTION_KEYS[kind] | {"distribution"}
    for key in spec:
        if key not in allowed:
            raise where.error(f"'{key}' does not apply to distribution {kind} (it takes {', '.join(sorted(allowed))})",
                              keys + [key])
    for key in _DISTRIBUTION_KEYS[kind] & _REQUIRED:
        if key not in spec:
            raise where.error(f"distribution {kind} needs '{key}'", keys)
    for key in _DISTRIBUTION_KEYS[kind] - {"value", "values", "probabilities"}:
        value = spec.get(key, _DEFAULTS.get(key))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise where.error(f"'{key}' must be a number, not {value!r}", keys + [key])
    if kind.startswith("categorical") and (not isinstance(spec["values"], list) or not spec["values"]):
        raise where.error("values must be a non-empty list", keys + ["values"])
    if kind == "categorical_w_probabilities":
        probabilities = spec["probabilities"]
        if (not isinstance(probabilities, list) or len(probabilities) != len(spec["values"])
                or not all(isinstance(p, (int, float)) and not isinstance(p, bool) and p >= 0 for p in probabilities)
                or not sum(probabilities) > 0):
            raise where.error(f"probabilities must be {len(spec['values'])} numbers of at least 0, one per value",
                              keys + ["probabilities"])
    return kind


def _grid_values(spec: Mapping[str, Any], keys: list[Any], where: _Where) -> list[Any]:
    kind = _kind(spec, keys, where)
    if kind == "categorical":
        return list(spec["values"])
    if kind == "categorical_w_probabilities":
        raise where.error("method: grid runs every value; probabilities apply to method: random",
                          keys + ["probabilities"])
    if kind == "constant":
        return [spec["value"]]
    if kind == "int_uniform":
        low, high = spec["min"], spec["max"]
        if not isinstance(low, int) or not isinstance(high, int) or high < low:
            raise where.error("int_uniform needs whole numbers min <= max", keys)
        if high - low >= 1_000_000:
            raise where.error(f"min/max give {high - low + 1:,} grid values; list fewer", keys)
        return list(range(low, high + 1))
    raise where.error(f"method: grid takes values, value or integer min/max, not the {kind} distribution "
                      "(use method: random to sample it)", keys)


def _distribution(spec: Mapping[str, Any], keys: list[Any], where: _Where) -> Any:
    """hsm's ``random:`` form of one wandb parameter."""
    kind = _kind(spec, keys, where)
    get = lambda key: spec.get(key, _DEFAULTS.get(key))  # noqa: E731 - a local shorthand
    q = {"q": get("q")} if kind.startswith("q_") else {}
    base = kind[2:] if kind.startswith("q_") else kind
    try:
        if base == "constant":
            return [spec["value"]]  # a one-item list: the value as written, never parsed
        if base == "categorical":
            return list(spec["values"])
        if base == "categorical_w_probabilities":
            return {"choice": list(spec["values"]), "weights": list(spec["probabilities"])}
        if base == "int_uniform":
            return {"int": [spec["min"], spec["max"]]}
        if base == "uniform":
            return {"uniform": [spec["min"], spec["max"]], **q}
        if base == "log_uniform":  # wandb: min and max are natural logarithms
            return {"log_uniform": [math.exp(spec["min"]), math.exp(spec["max"])], **q}
        if base in ("log_uniform_values", "inv_log_uniform_values"):
            # (1/X log-uniform on [1/max, 1/min] is X log-uniform on [min, max])
            return {"log_uniform": [spec["min"], spec["max"]], **q}
        if base == "inv_log_uniform":  # X = exp(-U(min, max))
            return {"log_uniform": [math.exp(-spec["max"]), math.exp(-spec["min"])]}
        if base in ("normal", "log_normal", "beta"):
            first, second = ("a", "b") if base == "beta" else ("mu", "sigma")
            return {base: [get(first), get(second)], **q}
    except OverflowError:
        raise where.error("min/max are too large for exp()", keys) from None
    raise where.error(f"distribution {kind} is not supported", keys)  # pragma: no cover - _kind checked it


def _command(data: Mapping[str, Any], where: _Where) -> str:
    """hsm's command template for wandb's ``command`` list (or its default)."""
    command = data.get("command", _DEFAULT_COMMAND)
    if isinstance(command, str):
        raise where.error("command is a list of words, as wandb reads it (- ${env}, - ${interpreter}, ...)", ["command"])
    if not isinstance(command, list) or not command:
        raise where.error("command must be a non-empty list of words", ["command"])
    program = data.get("program")
    if "command" not in data and not isinstance(program, str):
        raise where.error("'program' is missing: the script each run starts (or give 'command:')", [])
    words: list[str] = []
    for i, word in enumerate(command):
        if not isinstance(word, (str, int, float)) or isinstance(word, bool):
            raise where.error(f"a command word must be text, not {word!r}", ["command", i])
        word = str(word)
        if word in _MACROS:
            words.append(_MACROS[word])
        elif word == "${program}":
            if not isinstance(program, str) or not program:
                raise where.error("the command uses ${program} but 'program:' is not set", ["command", i])
            words.append(_literal(program, where, ["program"]))
        elif "${" in word:
            raise where.error(f"unsupported macro in {word!r} (hsm supports: {', '.join(['${program}', *_MACROS])}; "
                              "${args_json_file} and ${envvar:NAME} are not supported yet)", ["command", i])
        else:
            words.append(_literal(word, where, ["command", i]))
    if "program" in data and "${program}" not in [str(w) for w in command]:
        raise where.error("'program' is set but the command does not use ${program}; remove one", ["program"])
    env = [f"WANDB_{k.upper()}={data[k]}" for k in ("project", "entity") if k in data]
    for k in ("project", "entity"):
        if k in data and (not isinstance(data[k], str) or not data[k]):
            raise where.error(f"{k} must be text", [k])
    if env:  # what wandb agent does for its runs: they log to the sweep's project and entity
        if words and words[0] == "/usr/bin/env":
            words = words[:1] + [shlex.quote(e) for e in env] + words[1:]
        else:
            words = ["/usr/bin/env", *(shlex.quote(e) for e in env), *words]
    return " ".join(words)


_BRACES = re.compile(r"\{[^{}\s]+\}")


def _literal(word: str, where: _Where, keys: list[Any]) -> str:
    # hsm's templates read {name} as a placeholder: a literal word may not hold one.
    if _BRACES.search(word):
        raise where.error(f"{word!r} holds {{...}}, which hsm's command templates read as a placeholder", keys)
    return shlex.quote(word)
