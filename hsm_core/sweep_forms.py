"""Sweep-file forms that the loader (:func:`hsm_core.config.load_sweep_file`) brings to hsm's own.

* A nested mapping in ``grid:`` or a ``paired:`` group is a group of dotted parameters
  (:func:`flatten_section`), checked for Hydra's sweep syntax where the line of each is known.
* A wandb sweep file (``method:``, ``parameters:``) becomes hsm's form (:func:`from_wandb_form`,
  the translation itself is :mod:`hsm_core.wandb_sweep`), its keys still pointing at the file.
"""

from __future__ import annotations

from typing import Any, Mapping

from hsm_core.plugin import ConfigError
from hsm_core.sweep_syntax import SweepSyntaxError, flatten_parameters, value_axis
from hsm_core.wandb_sweep import is_wandb_sweep, translate

__all__ = ["flatten_section", "from_wandb_form", "is_wandb_sweep"]

_ONE_VALUE_HINT = 'to pass the text as one value, write it as a one-item list ["..."]'


def flatten_section(params: Any, file: str, where: str) -> Any:
    """``params`` (a grid, or one paired group) with nested mappings flattened to dotted keys
    (``optimizer: {lr: ..}`` -> ``optimizer.lr``), each keeping its line. A string written as a
    sweep (``0.1,0.01``, ``range(1,5)``) is checked here, so that its error names its line; a
    parameter given both ways is refused. ``where`` is the section's key (``grid``)."""
    from hsm_core.config.lines import LineDict, line_of

    if not isinstance(params, dict):
        return params
    out = LineDict()
    out.line, out.file = getattr(params, "line", None), getattr(params, "file", None)
    try:
        flat = flatten_parameters(params)
    except SweepSyntaxError as exc:
        raise ConfigError(str(exc), file=file, line=getattr(params, "line", None), key=where) from None
    for name, value, path in flat:
        line = line_of(params, path)
        if name in out:
            raise ConfigError("parameter given twice (as a dotted key and in a nested mapping); keep one",
                              file=file, line=line, key=f"{where}.{name}")
        if isinstance(value, str):
            try:
                value_axis(value)
            except SweepSyntaxError as exc:
                raise ConfigError(str(exc), file=file, line=line, key=f"{where}.{name}",
                                  hint=_ONE_VALUE_HINT if exc.quotable else None) from None
        out[name] = value
        if line:
            out.lines[name] = line
    return out


def from_wandb_form(original: Any, file: str) -> Any:
    """hsm's form of a wandb sweep file (a :class:`~hsm_core.config.LineDict`), whose keys point
    at the original's lines: a section at the line of ``parameters:``, ``samples`` at ``run_cap``.
    Raises :class:`ConfigError` (file, line, key) for what hsm cannot honour."""
    from hsm_core.config.lines import LineDict

    translated = translate(original, file)

    def like_original(content: Mapping[str, Any]) -> Any:
        out = LineDict(content)
        out.line, out.file = getattr(original, "line", None), getattr(original, "file", None)
        return out

    lines = dict(getattr(original, "lines", {}) or {})
    params_line = lines.get("parameters", getattr(original, "line", None))
    out = like_original({})
    for key, value in translated.items():
        if isinstance(value, dict) and key in ("grid", "random"):
            section = like_original(value)
            section.lines = {k: params_line for k in value}
            if key == "random":
                section.lines["samples"] = lines.get("run_cap", params_line)
            value = section
        out[key] = value
        default = params_line if key in ("grid", "random") else lines.get("command", getattr(original, "line", None))
        out.lines[key] = lines.get(key, default)
    return out
