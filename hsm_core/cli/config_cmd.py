"""``hsm config init|validate|schema|set|show`` and the v1 spelling ``hsm init``.

``init`` detects the project (name, training script, Python, conda env, scheduler, Hydra config
dir), shows what it found, optionally asks to confirm each value, and writes ``hsm_config.yaml``,
``sweeps/sweep_config.yaml``, ``sweeps/README.md`` and ``sweeps/outputs/``. It never replaces a
file that exists unless ``--force`` is given.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import click

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

    from hsm_core.plugins import get_registry
    from hsm_core.plugins import scheduler_names, scheduler_records

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


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


def _root(project_dir: Path | None) -> Path:
    from hsm_core.config.project_root import resolve_project_root

    return resolve_project_root(project_dir)


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _ask(text: str, default: Any, **kwargs: Any) -> Any:
    """click.prompt, but end of input on a non-terminal stdin means "take the default"."""
    try:
        return click.prompt(text, default=default, **kwargs)
    except click.Abort:
        if sys.stdin is not None and sys.stdin.isatty():
            raise
        return default


def _ask_interactively(info: ProjectInfo) -> ProjectInfo:
    info.name = str(_ask("Project name", info.name)).strip() or info.name
    script = str(_ask("Training script (empty for none)", info.train_script or "", show_default=True)).strip()
    info.train_script = script or None
    info.python = str(_ask("Python interpreter", info.python)).strip() or info.python
    choice = click.Choice([*info.hpc_choices, "auto"], case_sensitive=False)
    info.hpc_system = str(_ask("HPC system", info.hpc_system or "auto", type=choice)).lower()
    if info.hpc_system == "auto":
        info.hpc_system = None
    cdir = str(_ask("Hydra config directory (empty for none)", info.config_dir or "", show_default=True)).strip()
    info.config_dir = cdir or None
    style = click.Choice(["hydra", "argparse"], case_sensitive=False)
    info.args_style = str(_ask("Argument style", info.args_style, type=style)).lower()
    info.max_parallel_jobs = int(
        _ask("Parallel local jobs", info.max_parallel_jobs, type=click.IntRange(min=1))
    )
    return info


def _info_table(info: ProjectInfo) -> Any:
    from rich.table import Table

    table = Table(title="Detected Project Information")
    table.add_column("Component")
    table.add_column("Status")
    table.add_column("Path/Value", overflow="fold")
    table.add_row("Project Name", "✅ Detected", f"{info.name} (from {info.name_source})")
    if info.train_script:
        table.add_row("Training Script", "✅ Found", str(info.root / info.train_script))
    else:
        table.add_row("Training Script", "❌ Not found", "set paths.train_script in hsm_config.yaml")
    table.add_row("Python Interpreter", "✅ Found", info.python)
    table.add_row("Conda Environment", "✅ Active" if info.conda_env else "➖ None", info.conda_env or "-")
    if info.hpc_system:
        table.add_row("HPC System", "✅ Detected", info.hpc_system.upper())
    else:
        found = ", ".join(info.hpc_choices) or "no scheduler plugin installed"
        table.add_row("HPC System", "➖ None", f"none found here ({found}; local and SSH sources work)")
    if info.config_dir:
        table.add_row("Config Directory", "✅ Found", str(info.root / info.config_dir))
    else:
        table.add_row("Config Directory", "➖ None", "-")
    table.add_row("Argument Style", "✅ Chosen", info.args_style)
    return table


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


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------

_project_dir_option = click.option(
    "--project-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Project root (default: the nearest directory with hsm_config.yaml, else the current one).",
)


@click.command("init")
@click.option("--interactive", "-i", is_flag=True, help="Confirm or change each detected value.")
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
@click.option(
    "--project-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Project root to initialise (default: the current directory).",
)
def init_command(interactive: bool, force: bool, project_dir: Path | None) -> None:
    """Detect the project and write hsm_config.yaml and an example sweep.

    Creates hsm_config.yaml, sweeps/sweep_config.yaml, sweeps/README.md and sweeps/outputs/.
    Existing files are kept unless --force is given. `hsm init` is the v1 spelling.
    """
    from rich.panel import Panel

    from hsm_core.config.project_config import load_project_config
    from hsm_core.config.project_root import CONFIG_FILENAME, find_config_file, new_project_root
    from hsm_core.config.schema import build_schema
    from hsm_core.config.validation import validate
    from hsm_core.config.yaml_io import load_yaml_text
    from hsm_core.plugins import get_registry

    root = new_project_root(project_dir)
    if root.exists() and not root.is_dir():
        raise HsmError(f"{root} is not a directory")
    root.mkdir(parents=True, exist_ok=True)
    console = _console()
    console.print(Panel.fit("HPC Sweep Manager - Project Initialization"))
    console.print(f"Initializing project at: {root}\n", markup=False)
    console.print("Scanning project structure...")
    info = detect_project(root)
    console.print(_info_table(info))
    if interactive:
        info = _ask_interactively(info)

    config_path = find_config_file(root) or root / CONFIG_FILENAME
    config_text = render_project_config(info)
    # The template must always be valid: check it before anything is written.
    validate(load_yaml_text(config_text, CONFIG_FILENAME), build_schema(get_registry(), "project"), file=CONFIG_FILENAME)

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

    console.print()
    for path, text in files:
        rel = _rel(path, root)
        if path.exists() and not force:
            console.print(f"  kept     {rel} (exists; --force overwrites it)", markup=False)
            continue
        existed = path.exists()
        if existed and path.is_dir():
            raise HsmError(f"{path} is a directory; cannot write a file there")
        _write(path, text)
        console.print(f"  {'replaced' if existed else 'created '} {rel}", markup=False)
    if sweep_file == v1_sweep:
        console.print(f"  kept     {_rel(v1_sweep, root)} (v1 sweep file; no example written)", markup=False)
    out_dir = root / "sweeps" / "outputs"
    if out_dir.is_dir():
        console.print(f"  kept     {_rel(out_dir, root)}/", markup=False)
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        console.print(f"  created  {_rel(out_dir, root)}/", markup=False)
    try:  # a kept config with a problem is worth knowing about now
        load_project_config(root, get_registry())
    except HsmError as exc:
        console.print(f"  warning: {exc}", markup=False)

    sweep_rel = _rel(sweep_file, root)
    console.print("\nNext steps:")
    if root != Path.cwd().absolute():
        console.print(f"  cd {root}", markup=False)
    console.print(f"  1. Edit {sweep_rel} (the parameters to sweep)", markup=False)
    console.print(f"  2. Preview:  hsm run --config {sweep_rel} --dry-run", markup=False)
    console.print(f"  3. Run:      hsm run --config {sweep_rel} --sources local", markup=False)


@click.group("config")
def config_group() -> None:
    """Project configuration: create, check, show and change hsm_config.yaml."""


config_group.add_command(init_command, "init")


@config_group.command("validate")
@click.option(
    "--config",
    "configs",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A sweep file to check as well (repeatable).",
)
@click.option(
    "--check-sync",
    is_flag=True,
    help="Also check that each remote in distributed.remotes has the same project as here "
    "(needs hsm-plugin-ssh; exits 1 when a remote is out of sync).",
)
@_project_dir_option
@click.pass_context
def validate_command(ctx: click.Context, configs: tuple[Path, ...], check_sync: bool, project_dir: Path | None) -> None:
    """Check hsm_config.yaml (and sweep files); print OK or the first problem (exit 2)."""
    from hsm_core.config.project_config import load_project_config
    from hsm_core.config.sweep_file import load_sweep_file
    from hsm_core.plugins import get_registry
    from hsm_core.sweep import count, spec_from_dict

    registry = get_registry()
    root = _root(project_dir)
    cfg = load_project_config(root, registry)
    # What hsm run would refuse before creating a sweep is refused here too (sources, strategy,
    # command, programs, command-line length).
    from hsm_core.preflight import check_project, check_run, sources_setting, strategy_setting

    check_project(cfg, registry)
    for name, path in cfg.layers:
        if name != "project":
            click.echo(f"OK  {_rel(path, Path.cwd().absolute())} ({name} layer)")
    if cfg.path is not None:
        click.echo(f"OK  {_rel(cfg.path, Path.cwd().absolute())}")
    else:
        click.echo(f"no hsm_config.yaml in {root} (defaults apply; `hsm config init` creates one)")
    from hsm_core.config.lines import key_path
    from hsm_core.config.installed import unprovided_sources

    for path, message in unprovided_sources(cfg.data, registry):
        line = cfg.line_of(path)
        where = (cfg.file_of(path) or "") + (f":{line}" if line else "")
        click.echo(f"warning: {where + ': ' if where else ''}{key_path(path)}: {message}", err=True)
    for path in configs:
        data = load_sweep_file(path, registry)
        spec = spec_from_dict(data, registry, path)
        n = count(spec, registry)
        check_run(cfg, spec, _first_tasks(spec, registry), registry,
                  sources=sources_setting(None, cfg, spec), strategy=strategy_setting(None, cfg, spec))
        from hsm_core.hydra_check import hydra_preflight

        hydra_note = hydra_preflight(cfg, spec, _first_tasks(spec, registry))
        click.echo(f"OK  {path} ({n} task{'s' if n != 1 else ''})")
        if hydra_note:
            click.echo(f"    Hydra pre-flight: {hydra_note}")
    if check_sync:
        if not cfg.remotes:
            click.echo("no remotes configured (distributed.remotes is empty): nothing to check")
            return
        try:
            from hsm_plugin_ssh.sync_check import check_all  # type: ignore[import-not-found]
        except ModuleNotFoundError as exc:
            if exc.name in ("hsm_plugin_ssh", "hsm_plugin_ssh.sync_check"):
                from hsm_core.install_hints import install_hint

                raise HsmError("--check-sync needs hsm-plugin-ssh", hint=install_hint("hsm-plugin-ssh")) from None
            raise HsmError(f"hsm-plugin-ssh could not be loaded: {exc}") from None
        except ImportError as exc:
            raise HsmError(f"hsm-plugin-ssh could not be loaded: {exc}") from None
        if check_all(cfg) is False:
            ctx.exit(1)


def _first_tasks(spec: Any, registry: Any, limit: int = 1_000_000) -> Iterator[tuple[str, dict[str, Any]]]:
    """(task dir name, parameters) of the sweep's first ``limit`` combinations, lazily."""
    import itertools

    from hsm_core.state import task_dir_name
    from hsm_core.sweep import expand

    for i, params in enumerate(itertools.islice(expand(spec, registry), limit), 1):
        yield task_dir_name(i), params


@config_group.command("schema")
@click.option(
    "--which",
    type=click.Choice(["project", "sweep"]),
    default="project",
    show_default=True,
    help="project: hsm_config.yaml; sweep: sweep files.",
)
def schema_command(which: str) -> None:
    """Print the JSON Schema of hsm_config.yaml or of sweep files, with installed plugins' options."""
    from hsm_core.config.schema import build_schema
    from hsm_core.plugins import get_registry

    click.echo(json.dumps(build_schema(get_registry(), which), indent=2))  # type: ignore[arg-type]


@config_group.command("set")
@click.argument("key")
@click.argument("value")
@_project_dir_option
def set_command(key: str, value: str, project_dir: Path | None) -> None:
    """Set KEY (dotted, e.g. compute.health_check_interval) to VALUE (read as YAML: 300, true, [0, 1]).

    The result is validated before anything is written; the file is replaced atomically and its
    comments are kept when the change is a single line.
    """
    from hsm_core.config.editing import SECRET_KEY, set_config_value
    from hsm_core.config.project_root import CONFIG_FILENAME, find_config_file
    from hsm_core.config.yaml_io import dump_yaml
    from hsm_core.plugins import get_registry

    root = _root(project_dir)
    path = find_config_file(root) or root / CONFIG_FILENAME
    parsed = set_config_value(path, key, value, get_registry())
    # A secret is not echoed: terminal output ends up in CI logs and screen shares.
    shown = f"{key}: (hidden)" if SECRET_KEY.search(key) else dump_yaml({key: parsed}).strip()
    click.echo(f"{shown}  (in {_rel(path, Path.cwd().absolute())})")


@config_group.command("show")
@_project_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of YAML.")
def show_command(project_dir: Path | None, as_json: bool) -> None:
    """Print the effective project configuration (the file plus defaults)."""
    from hsm_core.config.project_config import load_project_config
    from hsm_core.config.yaml_io import dump_yaml
    from hsm_core.plugins import get_registry

    cfg = load_project_config(_root(project_dir), get_registry())
    data = _hide_secrets(cfg.data)
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    where = str(cfg.path) if cfg.path else f"no hsm_config.yaml in {cfg.root}: defaults only"
    click.echo(f"# {where}")
    for name, path in cfg.layers:
        click.echo(f"# layer {name}: {path}")
    if not cfg.layers:
        click.echo(dump_yaml(data), nl=False)
        return
    from hsm_core.config.lines import display_path
    from hsm_core.config.layers import origins

    names = {display_path(path): name for name, path in cfg.layers}
    click.echo("# each value says the layer it comes from (lowest first: site, user, HSM_CONFIG, project)")
    click.echo("\n".join(_annotated(data, origins(cfg.raw, names))))


def _annotated(data: Any, where: Mapping[tuple[Any, ...], str], prefix: tuple[Any, ...] = (), indent: str = "") -> list[str]:
    """``data`` as block YAML, each value followed by ``# <layer>`` (``default`` when no file set it)."""
    from hsm_core.config.yaml_io import yaml_inline

    lines = []
    for key, value in data.items():
        path = prefix + (key,)
        if isinstance(value, dict) and value:
            lines.append(f"{indent}{yaml_inline(key)}:")
            lines += _annotated(value, where, path, indent + "  ")
        else:
            lines.append(f"{indent}{yaml_inline(key)}: {yaml_inline(value)}  # {where.get(path, 'default')}")
    return lines


def _hide_secrets(value: Any, key: str = "") -> Any:
    """A copy of a config tree with the values of secret-looking keys (``WANDB_API_KEY``,
    ``password``, ``token`` ...) replaced by ``(hidden)``: what is shown ends up in CI logs."""
    from hsm_core.config.editing import SECRET_KEY

    if key and SECRET_KEY.search(key) and value not in (None, ""):
        return "(hidden)"
    if isinstance(value, dict):
        return {k: _hide_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_hide_secrets(v, key) for v in value]
    return value


def register(cli: click.Group) -> None:
    """Add ``hsm config ...`` and the v1 alias ``hsm init`` to ``cli``."""
    cli.add_command(config_group, "config")
    if "init" not in cli.commands:
        cli.add_command(init_command, "init")
