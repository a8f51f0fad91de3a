"""The sweep's metric: ``metric: {name, goal}``, what "best" means for ``status``, ``export`` and the report.

One key for every kind of sweep, written as wandb writes it::

    metric: {name: val_loss, goal: minimize}     # or maximize; "metric: val_loss" means minimize
    grid:
      lr: [0.1, 0.01]

* in a grid, paired or random sweep it ranks the runs (``hsm status`` shows the best few,
  ``hsm export --top N`` and the report's best-runs table order by it);
* in an adaptive sweep it is also what the strategy optimises: a ``search:`` section without its
  own ``metric:`` takes the sweep's, and one that names a different metric is refused (a sweep
  has one notion of best);
* a wandb sweep file's ``metric:`` means the same (its ``method: bayes`` optimises it).

Readers of a sweep directory (:func:`declared_metric`) find it without the sweep file: from the
adaptive search's ``search/settings.json``, else from the ``sweep_config.yaml`` copy the sweep
keeps (the file as written, in hsm's or in wandb's form; ``hsm complete --config`` updates it).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from hsm_core.plugin import ConfigError

#: The spellings of a goal -> the goal.
GOALS = {"minimize": "minimize", "min": "minimize", "maximize": "maximize", "max": "maximize"}
SETTING = "metric"


@dataclass(frozen=True)
class SweepMetric:
    """A metric and whether lower (``minimize``) or higher (``maximize``) is better."""

    name: str
    goal: str = "minimize"

    @property
    def descending(self) -> bool:
        """True when the best value is the highest."""
        return self.goal == "maximize"

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "goal": self.goal}


def parse_metric(value: Any, key: str = SETTING, *, file: str | None = None, line: int | None = None) -> SweepMetric:
    """``metric:`` as written (a name, or ``{name, goal}``); a ConfigError names what is wrong."""
    if isinstance(value, str) and value:
        return SweepMetric(value)
    if not isinstance(value, Mapping) or not isinstance(value.get("name"), str) or not value.get("name"):
        raise ConfigError("metric must name a metric of the runs: metric: {name: loss, goal: minimize}",
                          file=file, line=line, key=key)
    unknown = [k for k in value if k not in ("name", "goal")]
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in metric (keys: name, goal)", file=file, line=line,
                          key=f"{key}.{unknown[0]}")
    goal = GOALS.get(str(value.get("goal", "minimize")).lower())
    if goal is None:
        raise ConfigError(f"metric goal must be minimize or maximize, not {value.get('goal')!r}", file=file,
                          line=line, key=f"{key}.goal")
    return SweepMetric(value["name"], goal)


def settle_sweep_metric(data: Any, file: str | None = None) -> SweepMetric | None:
    """Check a sweep file's top-level ``metric:`` and give it to a ``search:`` section that names
    none (changes ``data['search']`` in place). None when the file has no ``metric:``."""
    if SETTING not in data:
        return None
    from hsm_core.config.lines import line_of

    metric = parse_metric(data[SETTING], file=file, line=line_of(data, [SETTING]))
    search = data.get("search")
    if isinstance(search, dict):
        if SETTING not in search:
            search[SETTING] = metric.to_json()
        else:
            try:
                own = parse_metric(search[SETTING], "search.metric")
            except ConfigError:
                return metric  # the search section's own check says what is wrong with it
            if own != metric:
                raise ConfigError(f"search: optimises {own.name} ({own.goal}) but the sweep's metric is "
                                  f"{metric.name} ({metric.goal})", file=file, line=line_of(data, ["search", SETTING]),
                                  key="search.metric", hint="a sweep has one metric: remove one of the two")
    return metric


def declared_metric(sweep_path: Path) -> SweepMetric | None:
    """The metric a sweep directory was run with (see the module's docstring), or None."""
    sweep_path = Path(sweep_path)
    try:
        with open(sweep_path / "search" / "settings.json", encoding="utf-8") as fh:
            meta = json.load(fh)
        if isinstance(meta, dict) and isinstance(meta.get("metric"), str):
            return SweepMetric(meta["metric"], GOALS.get(str(meta.get("goal")), "minimize"))
    except (OSError, ValueError):
        pass
    try:
        text = (sweep_path / "sweep_config.yaml").read_text(encoding="utf-8")
    except OSError:
        return None
    if "metric" not in text:  # most sweeps: no YAML parse at all
        return None
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if not isinstance(data, Mapping) or SETTING not in data:
        return None
    try:
        return parse_metric(data[SETTING])
    except ConfigError:
        return None


def metric_number(value: Any) -> float | None:
    """A metric value as a finite float, or None (missing, text, NaN, infinite)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None
