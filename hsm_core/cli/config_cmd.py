"""``hsm config init|validate|schema|set|show`` and the v1 spelling ``hsm init``.

``init`` shows what :mod:`hsm_core.project_init` detects of the project (name, training script,
Python, conda env, scheduler, Hydra config dir), optionally asks to confirm each value, and has it
write ``hsm_config.yaml``, ``sweeps/sweep_config.yaml``, ``sweeps/README.md`` and
``sweeps/outputs/``. It never replaces a file that exists unless ``--force`` is given.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterator, Mapping

import click

from hsm_core.plugin import HsmError

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


def _ask_interactively(info: Any) -> Any:
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


def _info_table(info: Any) -> Any:
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
    from hsm_core.config.project_root import new_project_root
    from hsm_core.registry import get_registry
    from hsm_core.project_init import detect_project, write_project_files

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

    shown = {
        "kept": "  kept     {rel} (exists; --force overwrites it)",
        "replaced": "  replaced {rel}",
        "created": "  created  {rel}",
        "kept v1 sweep": "  kept     {rel} (v1 sweep file; no example written)",
        "kept dir": "  kept     {rel}/",
        "created dir": "  created  {rel}/",
        "saved": "  saved    {rel} (the {original} it replaces)",
    }

    def report(action: str, path: Path) -> None:
        original = path.name.rsplit(".", 2)[0] if action == "saved" else ""  # name.<time>.bak -> name
        console.print(shown[action].format(rel=_rel(path, root), original=original), markup=False)

    console.print()
    sweep_file = write_project_files(root, info, force=force, registry=get_registry(), report=report)
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
    from hsm_core.registry import get_registry
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
    from hsm_core.config.installed import unprovided_sources
    from hsm_core.config.lines import key_path

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
        from hsm_core.hosts import check_remotes_in_sync

        if not check_remotes_in_sync(cfg, registry, click.echo):
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
    from hsm_core.registry import get_registry

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
    from hsm_core.config.editing import set_config_value
    from hsm_core.config.project_root import CONFIG_FILENAME, find_config_file
    from hsm_core.config.yaml_io import dump_yaml
    from hsm_core.secrecy import SECRET_KEY
    from hsm_core.registry import get_registry

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
    from hsm_core.registry import get_registry

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
    from hsm_core.config.layers import origins
    from hsm_core.config.lines import display_path

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
    from hsm_core.secrecy import SECRET_KEY

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
