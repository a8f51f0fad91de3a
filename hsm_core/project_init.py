"""``hsm config init``: what is detected of a project, and the files written for it.

:func:`detect_project` looks at a directory and the environment (name, training script, Python,
conda env, the batch scheduler an installed plugin detects here, Hydra config dir) and writes
nothing; :func:`render_project_config` is the commented ``hsm_config.yaml`` for what was found;
:func:`write_project_files` writes it with an example sweep, ``sweeps/README.md`` and
``sweeps/outputs/``, never replacing a file that exists unless asked to.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from hsm_core.plugin import HsmError

#: Training-script locations tried in this order (relative to the project root).
SCRIPT_CANDIDATES: tuple[str, ...] = (
    "train.py",
    "main.py",
    "scripts/train.py",
    "src/train.py",
    "run.py",
    "training.py",
    "scripts/main.py",
    "src/main.py",
)
#: Hydra config directories tried in this order.
CONFIG_DIR_CANDIDATES: tuple[str, ...] = ("configs", "conf", "config")


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------


@dataclass
class ProjectInfo:
    """What ``hsm config init`` found (or was told) about a project."""

    root: Path
    name: str
    name_source: str  # "pyproject.toml", "setup.cfg" or "directory name"
    train_script: str | None  # relative to root when inside it
    python: str
    conda_env: str | None
    hpc_system: str | None  # the batch scheduler detected here (an installed plugin's), or None
    config_dir: str | None
    args_style: str  # "hydra" or "argparse"
    max_parallel_jobs: int = 4
    #: Names ``hpc.system`` may take: the installed batch schedulers (and their aliases).
    hpc_choices: list[str] = field(default_factory=list)


def _pyproject_name(root: Path) -> str | None:
    path = root / "pyproject.toml"
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        import tomllib  # Python 3.11+

        data = tomllib.loads(text)
        name = (data.get("project") or {}).get("name") or ((data.get("tool") or {}).get("poetry") or {}).get("name")
        return str(name) if name else None
    except ImportError:  # Python 3.10: the [project] table's name line is enough
        m = re.search(r"^\[(?:project|tool\.poetry)\]\s*$(.*?)^\[", text + "\n[", re.M | re.S)
        if m:
            n = re.search(r"""^name\s*=\s*["']([^"']+)["']""", m.group(1), re.M)
            return n.group(1) if n else None
        return None
    except Exception:  # a broken pyproject.toml is not our problem here
        return None


def _setup_cfg_name(root: Path) -> str | None:
    path = root / "setup.cfg"
    if not path.is_file():
        return None
    import configparser

    cp = configparser.ConfigParser()
    try:
        cp.read(path, encoding="utf-8")
        return cp.get("metadata", "name", fallback=None) or None
    except (configparser.Error, UnicodeDecodeError):
        return None


def _find_script(root: Path) -> str | None:
    for rel in SCRIPT_CANDIDATES:
        if (root / rel).is_file():
            return rel
    for pattern in ("src/*/train.py", "*/train.py"):
        found = sorted(p for p in root.glob(pattern) if p.is_file())
        if found:
            return found[0].relative_to(root).as_posix()
    return None


def _find_config_dir(root: Path) -> str | None:
    for rel in CONFIG_DIR_CANDIDATES:
        d = root / rel
        if d.is_dir() and (any(d.glob("*.yaml")) or any(d.glob("*.yml"))):
            return rel
    return None


def _args_style(root: Path, script: str | None, config_dir: str | None) -> str:
    if script:
        try:
            text = (root / script).read_text(encoding="utf-8", errors="replace")[:200_000]
        except OSError:
            text = ""
        if "hydra" in text:
            return "hydra"
        if "argparse" in text or "import click" in text:
            return "argparse"
    return "hydra"


def detect_project(root: Path, environ: Mapping[str, str] | None = None, registry: Any = None) -> ProjectInfo:
    """Look at ``root`` and the environment; nothing is written. The batch scheduler is the first
    installed one whose plugin detects it here (``registry``: default the process-wide one)."""
    env = os.environ if environ is None else environ
    root = Path(root).absolute()
    name, source = _pyproject_name(root), "pyproject.toml"
    if not name:
        name, source = _setup_cfg_name(root), "setup.cfg"
    if not name:
        name, source = root.name or "project", "directory name"

    python = sys.executable
    conda_env = None
    prefix = env.get("CONDA_PREFIX")
    if prefix:
        conda_env = env.get("CONDA_DEFAULT_ENV") or Path(prefix).name
        cand = Path(prefix) / "bin" / "python"
        if cand.exists():
            python = str(cand)
    elif env.get("VIRTUAL_ENV"):
        cand = Path(env["VIRTUAL_ENV"]) / "bin" / "python"
        if cand.exists():
            python = str(cand)

    from hsm_core.registry import get_registry
    from hsm_core.registry import scheduler_names, scheduler_records

    registry = registry if registry is not None else get_registry()
    hpc = None
    for rec in scheduler_records(registry).values():
        try:
            if rec.detected():  # a plugin's detect keeps schedulers apart (a native one over a wrapper)
                hpc = rec.name
                break
        except HsmError:
            continue

    script = _find_script(root)
    config_dir = _find_config_dir(root)
    return ProjectInfo(
        root=root,
        name=name,
        name_source=source,
        train_script=script,
        python=python,
        conda_env=conda_env,
        hpc_system=hpc,
        hpc_choices=scheduler_names(registry),
        config_dir=config_dir,
        args_style=_args_style(root, script, config_dir),
    )


# --------------------------------------------------------------------------------------------
# What init writes
# --------------------------------------------------------------------------------------------


def _q(value: str) -> str:
    from hsm_core.config.yaml_io import yaml_inline

    return yaml_inline(str(value))


def render_project_config(info: ProjectInfo) -> str:
    """The text of a new ``hsm_config.yaml`` (with comments) for ``info``."""
    out = [
        "# hsm project configuration, written by `hsm config init`.",
        "# `hsm config schema` lists every key; `hsm config validate` checks this file.",
        "",
        "project:",
        f"  name: {_q(info.name)}",
        "",
        "paths:",
        f"  python_interpreter: {_q(info.python)}",
    ]
    if info.train_script:
        out.append(f"  train_script: {_q(info.train_script)}  # relative to the project root")
    else:
        out.append("  # train_script: train.py  # no training script found: set it here")
    if info.config_dir:
        out.append(f"  config_dir: {_q(info.config_dir)}  # Hydra configs")
    out += [
        "  output_dir: sweeps/outputs",
        "",
        "command:",
        f"  args_style: {info.args_style}  # hydra: key=value, argparse: --key value",
        '  # template: "{python} {script} {args}"',
        "  # hydra: true  # a Hydra app: each task gets its own Hydra run dir (default: detected from @hydra.main)",
        "",
        "hpc:",
        f"  system: {info.hpc_system or 'auto'}  # {', '.join([*info.hpc_choices, 'auto'])} (auto: detected when used)",
        '  default_walltime: "04:00:00"',
        '  # default_resources: "cpus=4,mem=16G,gpus=1"',
        "  # default_queue: gpu",
        "  # setup_commands: [\"module load cuda\"]",
        "  # clusters:            # named clusters for --sources hpc:NAME",
        "  #   mycluster:",
        f"  #     system: {info.hpc_system or (info.hpc_choices or ['auto'])[0]}",
        "  #     host: login.example.org",
        "",
        "compute:",
        "  health_check_interval: 300       # seconds between source health checks",
        "  result_collection_interval: 60   # seconds between result collections",
        "  max_consecutive_failures: 3      # infrastructure failures before a source is disabled",
        "  fail_fast: 3                     # stop starting tasks when the first 3 to finish all failed alike (0: off)",
        "  local:",
        f"    max_parallel_jobs: {int(info.max_parallel_jobs)}",
        "    # gpus: [0, 1]                 # one CUDA_VISIBLE_DEVICES slot per running task",
        "",
        "# distributed:",
        "#   remotes:                       # SSH hosts for --sources ssh:NAME",
        "#     gpu-server:",
        "#       host: gpu.example.org",
        "#       ssh_key: ~/.ssh/id_ed25519",
        "#       max_parallel_jobs: 4",
        "",
    ]
    return "\n".join(out)


SWEEP_TEMPLATE = """\
# An example sweep: every combination of the grid values is one task (3 x 2 = 6 tasks here).
# Preview it:  hsm run --config sweeps/sweep_config.yaml --dry-run
grid:
  learning_rate: [0.001, 0.01, 0.1]
  batch_size: [32, 64]
  # seed: 42                      # a single value is passed to every task

# Paired parameters change together: the i-th values of each list form one set,
# and each group is combined with the grid (here it would double the task count).
# paired:
#   - model_and_data:
#       model.name: [cnn, transformer]
#       data.augmentation: [basic, advanced]

metadata:
  description: "Example hyperparameter sweep"
  tags: [example]
"""

README_TEMPLATE = """\
# Sweeps

This directory holds hsm sweep files and their results.

- `sweep_config.yaml`: an example sweep; edit its `grid:` (and `paired:`) parameters.
- `outputs/`: one directory per sweep (`sweep_YYYYMMDD_HHMMSS/`) with each task's parameters,
  status, logs and metrics.

## Usage

```bash
hsm run --config sweeps/sweep_config.yaml --count-only   # how many tasks
hsm run --config sweeps/sweep_config.yaml --dry-run      # what would run
hsm run --config sweeps/sweep_config.yaml --sources local
hsm status --all                                        # every sweep
hsm complete <sweep_id> --sources local                 # run what is missing
```

Project settings (Python interpreter, training script, clusters, remotes) live in
`hsm_config.yaml` at the project root; `hsm config validate` checks them and any sweep file
(`--config sweeps/sweep_config.yaml`).
"""


def _write(path: Path, text: str) -> None:
    from hsm_core.atomic import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    mode = None
    if not path.exists():
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    else:
        mode = path.stat().st_mode & 0o7777
    atomic_write_text(path, text, mode=mode)


def _keep_copy(path: Path) -> Path:
    """Copy ``path`` to ``<name>.<time>.bak`` beside it (a free name) and return the copy."""
    import shutil
    import time

    stamp = time.strftime("%Y%m%dT%H%M%S")
    copy = path.with_name(f"{path.name}.{stamp}.bak")
    n = 1
    while copy.exists():
        n += 1
        copy = path.with_name(f"{path.name}.{stamp}-{n}.bak")
    shutil.copy2(path, copy)
    return copy


def write_project_files(root: Path, info: ProjectInfo, *, force: bool, registry: Any,
                        report: Callable[[str, Path], None] = lambda action, path: None) -> Path:
    """Write ``hsm_config.yaml`` (checked against the schema first), the example sweep,
    ``sweeps/README.md`` and ``sweeps/outputs/`` under ``root``; returns the sweep file the project
    uses. A file that exists is kept unless ``force``. ``report(action, path)`` is called for each:
    ``created``, ``replaced``, ``kept``, ``kept v1 sweep``, ``kept dir``, ``created dir``, and ``saved``
    (with the copy's path) for a file ``force`` replaces, kept beside it first."""
    from hsm_core.config.project_root import CONFIG_FILENAME, find_config_file
    from hsm_core.config.schema import build_schema
    from hsm_core.config.validation import validate
    from hsm_core.config.yaml_io import load_yaml_text

    config_path = find_config_file(root) or root / CONFIG_FILENAME
    config_text = render_project_config(info)
    # The template must always be valid: check it before anything is written.
    validate(load_yaml_text(config_text, CONFIG_FILENAME), build_schema(registry, "project"), file=CONFIG_FILENAME)

    sweeps = root / "sweeps"
    files: list[tuple[Path, str]] = [(config_path, config_text)]
    v1_sweep = sweeps / "sweep.yaml"
    if v1_sweep.exists() and not (sweeps / "sweep_config.yaml").exists():
        sweep_file = v1_sweep  # a v1 project: its sweep file stays the one `hsm run` finds
    else:
        sweep_file = sweeps / "sweep_config.yaml"
        from hsm_core.hydra_example import hydra_example_sweep

        # A Hydra app gets an example made of its own config keys (the generic one may name keys it lacks).
        example = hydra_example_sweep(root, info.python, info.train_script, info.config_dir)
        files.append((sweep_file, example or SWEEP_TEMPLATE))
    files.append((sweeps / "README.md", README_TEMPLATE))

    for path, text in files:
        if path.exists() and not force:
            report("kept", path)
            continue
        existed = path.exists()
        if existed and path.is_dir():
            raise HsmError(f"{path} is a directory; cannot write a file there")
        if existed and path.read_bytes() != text.encode("utf-8"):
            report("saved", _keep_copy(path))  # --force never loses a hand-edited file
        _write(path, text)
        report("replaced" if existed else "created", path)
    if sweep_file == v1_sweep:
        report("kept v1 sweep", v1_sweep)
    out_dir = root / "sweeps" / "outputs"
    if out_dir.is_dir():
        report("kept dir", out_dir)
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        report("created dir", out_dir)
    return sweep_file
