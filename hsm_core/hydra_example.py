"""The example sweep ``hsm config init`` writes for a Hydra app: made of the app's own config keys.

The generic example sweeps ``learning_rate`` and ``batch_size``; a Hydra app whose config has no
such keys would refuse every task of it. For a Hydra app the example's grid takes up to two
numeric keys of its composed config (hyperparameter-like names first) with values around their
defaults, and lists the other keys in a comment.
"""

from __future__ import annotations

from typing import Any, Sequence

#: Keys that are usually swept, most likely first (matched on the last part of a dotted key).
_LIKELY = ("lr", "learning_rate", "batch_size", "weight_decay", "dropout", "momentum", "seed", "epochs",
           "max_epochs", "hidden_dim", "hidden", "num_layers", "layers", "wd", "warmup_steps")
MAX_GRID_KEYS = 2
MAX_LISTED = 12


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _rank(key: str) -> int:
    last = key.rsplit(".", 1)[-1].lower()
    return _LIKELY.index(last) if last in _LIKELY else len(_LIKELY)


def _values(value: Any) -> list[Any]:
    """A few values around ``value`` (its default comes second where there are three)."""
    if isinstance(value, float):
        if value == 0.0:
            return [0.0, 0.1]
        return [float(f"{value / 10:.6g}"), value, float(f"{value * 10:.6g}")]
    if value == 0:
        return [0, 1]
    return [value, value * 2]


def render_sweep(leaves: Sequence[tuple[str, Any]], app_label: str, config_label: str) -> str | None:
    """The text of the example sweep from the app's config ``leaves`` ((dotted key, value)), or
    None when the config has no numeric key to sweep (the generic example is written then)."""
    from hsm_core.config.yaml_io import yaml_inline

    usable = [(k, v) for k, v in leaves if not str(k).startswith("hydra.")]
    numeric = sorted((kv for kv in usable if _numeric(kv[1])), key=lambda kv: _rank(kv[0]))
    if not numeric:
        return None
    chosen = numeric[:MAX_GRID_KEYS]
    grid = [(k, _values(v)) for k, v in chosen]
    total = 1
    for _, values in grid:
        total *= len(values)
    sizes = " x ".join(str(len(v)) for _, v in grid)
    others = [k for k, _ in usable if k not in dict(chosen)]
    lines = [
        f"# An example sweep for the Hydra app {app_label}, from the keys of its config ({config_label}):",
        f"# every combination of the grid values is one task ({sizes} = {total} tasks here).",
        "# Each value reaches the app as a Hydra override (key=value); keys the config lacks need a +.",
        "# Preview it (and check every key against the app's config):  hsm run --config sweeps/sweep_config.yaml --dry-run",
    ]
    if others:
        listed = ", ".join(others[:MAX_LISTED]) + (", ..." if len(others) > MAX_LISTED else "")
        lines.append(f"# Other keys of the config: {listed}")
    lines.append("grid:")
    for key, values in grid:
        lines.append(f"  {yaml_inline(key)}: [{', '.join(yaml_inline(v) for v in values)}]")
    lines += ["", "metadata:", '  description: "Example hyperparameter sweep"', "  tags: [example]", ""]
    return "\n".join(lines)


def hydra_example_sweep(root: Any, python: str, train_script: str | None, config_dir: str | None) -> str | None:
    """The example sweep for the project at ``root`` when its training script is a Hydra app whose
    config composes with ``python``; None otherwise."""
    from pathlib import Path

    from hsm_core.config.project_config import ProjectConfig
    from hsm_core.hydra_app import _shown, find_hydra_app
    from hsm_core.hydra_check import example_leaves

    if not train_script:
        return None
    project = ProjectConfig(root=Path(root), data={"paths": {"config_dir": config_dir}} if config_dir else {})
    app = find_hydra_app(project, {}, None, train_script)
    if app is None:
        return None
    leaves = example_leaves(python, app, Path(root))
    if not leaves:
        return None
    primary = app.primary_config
    config_label = _shown(primary, Path(root)) if primary is not None else str(app.config_name)
    return render_sweep(leaves, train_script, config_label)
