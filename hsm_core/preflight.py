"""What is checked before a sweep directory exists: the sources, the strategy and the command.

``hsm run`` (and its ``--dry-run``), ``hsm complete``, ``hsm worker`` and ``hsm config validate``
call these checks before anything is written, so that a run that cannot work is refused with one
line naming the file, the line and the setting, and leaves nothing behind (no sweep directory that
would then count as "the latest"):

* every ``--sources`` entry names an installed compute source (``lcoal:2`` is refused, with a "did
  you mean"), a known cluster, and a scheduler whose client commands (``sbatch``) are on this
  machine's PATH when they run here;
* the dispatch strategy is installed;
* the command's placeholders name parameters; the program, interpreter and training script exist
  when tasks run on this machine;
* no task's command line exceeds what the operating system can start (``E2BIG``): one argument of
  128 KiB or more (Linux's MAX_ARG_STRLEN), or arguments plus environment beyond ARG_MAX.
"""

from __future__ import annotations

import itertools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from hsm_core.config.lines import display_path, line_of
from hsm_core.config.project_config import ProjectConfig
from hsm_core.plugin import ComponentNotFound, ComputeSourceRecord, ConfigError, HsmError, StrategyRecord
from hsm_core.prepare import CommandPlan, command_plan, format_value, placeholder_param
from hsm_core.sources import SourceRequest, missing_local_commands, parse_sources
from hsm_core.sweep import MAX_ARGUMENT_BYTES, SweepSpec, param_location

#: Linux refuses one argument (or one NAME=value of the environment) of this many bytes or more.
MAX_ARG_STRLEN = MAX_ARGUMENT_BYTES
#: Bytes kept free for what hsm adds to each task's exec: its shell wrapper, the HSM_* variables
#: and what plugins put in the environment, on top of this process's own environment.
EXEC_OVERHEAD = 8192
_POINTER = 8  # each argv/envp entry also costs a pointer
LONG_VALUE_HINT = "pass long values through a file: write the text to a file and give its path as the parameter"


@dataclass
class Origin:
    """Where a setting came from, for its errors: the command line (``--sources``) or a key of a
    file (``compute.default_sources`` at ``hsm_config.yaml:9``)."""

    label: str
    file: str | None = None
    line: int | None = None

    def error(self, message: str, hint: str | None = None) -> HsmError:
        """``message`` as this setting's error (file:line when it came from a file)."""
        if self.file:
            return ConfigError(message, file=self.file, line=self.line, hint=hint)
        return HsmError(message, hint=hint)


def _spec_origin(spec: SweepSpec, key: str) -> Origin:
    return Origin(key, display_path(spec.path) if spec.path else None, line_of(spec.settings, [key]))


def project_origin(project: ProjectConfig, dotted: str) -> Origin:
    """A key of hsm_config.yaml as an :class:`Origin` (``compute.default_sources``)."""
    return Origin(dotted, project.file_of(dotted), project.line_of(dotted))


def sources_setting(cli_value: str | None, project: ProjectConfig, spec: SweepSpec) -> tuple[str, Origin]:
    """The ``--sources`` of a new run and where it came from: the command line, else
    ``compute.default_sources`` of hsm_config.yaml, else the sweep file's ``sources:``, else local."""
    if cli_value:
        return cli_value, Origin("--sources")
    if project.get("compute.default_sources"):
        return str(project.get("compute.default_sources")), project_origin(project, "compute.default_sources")
    value = spec.settings.get("sources")
    if value:
        text = value if isinstance(value, str) else ",".join(str(v) for v in value)
        return text, _spec_origin(spec, "sources")
    return "local", Origin("--sources")


def strategy_setting(cli_value: str | None, project: ProjectConfig, spec: SweepSpec) -> tuple[str, Origin]:
    """The dispatch strategy of a new run and where it came from (as :func:`sources_setting`)."""
    if cli_value:
        return cli_value, Origin("--strategy")
    if project.get("compute.strategy"):
        return str(project.get("compute.strategy")), project_origin(project, "compute.strategy")
    if spec.settings.get("strategy"):
        return str(spec.settings["strategy"]), _spec_origin(spec, "strategy")
    return "round_robin", Origin("--strategy")


def check_sources(text: str, origin: Origin, project: ProjectConfig, registry: Any) -> list[SourceRequest]:
    """Parse ``text`` as ``--sources`` and check that every source can be used from here."""
    try:
        requests = parse_sources(text, project.data, registry, where=origin.label)
    except HsmError as exc:
        raise origin.error(exc.message, exc.hint) from None
    for req in requests:
        try:
            rec = registry.get(ComputeSourceRecord.kind, req.kind)
        except ComponentNotFound as exc:
            raise origin.error(f"{origin.label} entry {req.spelled!r}: {exc.message}") from None
        missing = missing_local_commands(req, rec)
        if missing:
            raise origin.error(
                f"{origin.label} entry {req.spelled!r}: the {req.kind} source runs {missing[0]} on this machine, "
                f"but {missing[0]} is not on PATH",
                hint=f"install the {req.kind} client commands here, submit through a login node "
                "(hpc.clusters.NAME.host in hsm_config.yaml), or run with --sources local",
            )
    return requests


def check_strategy(name: str, origin: Origin, registry: Any) -> None:
    """Refuse a dispatch strategy no installed plugin provides."""
    try:
        registry.get(StrategyRecord.kind, name)
    except ComponentNotFound as exc:
        raise origin.error(f"{origin.label}: {exc.message}") from None


def _template_origin(project: ProjectConfig, spec: SweepSpec) -> Origin:
    if spec.settings.get("command"):
        return _spec_origin(spec, "command")
    return project_origin(project, "command.template")


def check_command(
    project: ProjectConfig,
    spec: SweepSpec,
    tasks: Iterable[tuple[str, Mapping[str, Any]]],
    *,
    runs_here: bool = True,
) -> CommandPlan:
    """Check the command of every task (``(label, params)``, e.g. ``("task_001", {...})``) and
    return its :class:`CommandPlan`. ``runs_here``: some task runs on this machine, so the
    program, interpreter and training script must exist here."""
    origin = _template_origin(project, spec)
    try:
        cmd = command_plan(project, spec.settings)
    except ConfigError as exc:  # a template shlex cannot split
        raise origin.error(f"{origin.label}: {exc.message.removeprefix('command: ')}") from None
    remaining = iter(tasks)
    first_task = next(remaining, None)
    if first_task is None:
        return cmd
    first = first_task[1]
    for name in cmd.placeholders():
        if name in ("python", "script") or placeholder_param(name, first) is not None:
            continue
        raise origin.error(
            f"{origin.label}: unknown placeholder {{{name}}} (parameters: {', '.join(map(str, first)) or 'none'})",
            hint="use {param.NAME} (or {NAME}) for a parameter, {python}, {script} or {args}",
        )
    cmd.argv(first)  # no command at all, {script} without a train_script: their own clear errors
    check_command_lines(cmd, spec, itertools.chain([first_task], remaining), origin=origin)
    if runs_here:
        check_programs(cmd, first, project, origin)
    return cmd


def command_line_limit() -> int:
    """ARG_MAX: the bytes of arguments plus environment this system lets a program start with."""
    try:
        value = int(os.sysconf("SC_ARG_MAX"))
    except (ValueError, OSError, AttributeError):
        value = -1
    return value if value > 0 else 2 * 1024 * 1024


def _entry_bytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape")) + 1 + _POINTER


def _longest_param(params: Mapping[str, Any], inside: str | None = None) -> str | None:
    """The parameter with the longest value (within the argument ``inside`` when given)."""
    best, size = None, -1
    for key, value in params.items():
        text = format_value(value)
        if inside is not None and text not in inside:
            continue
        if len(text) > size:
            best, size = str(key), len(text)
    return best


def _too_long(spec: SweepSpec, param: str | None, origin: Origin, message: str) -> HsmError:
    if param is None:
        return origin.error(f"{origin.label}: {message}", hint=LONG_VALUE_HINT)
    key, line = param_location(spec, param)
    return ConfigError(message, file=display_path(spec.path) if spec.path else None, line=line, key=key, hint=LONG_VALUE_HINT)


def check_command_lines(
    cmd: CommandPlan,
    spec: SweepSpec,
    tasks: Iterable[tuple[str, Mapping[str, Any]]],
    *,
    origin: Origin | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Refuse a task whose command the OS could not start (``E2BIG``): an argument of
    :data:`MAX_ARG_STRLEN` bytes or more, or arguments plus environment (``env``, default this
    process's) beyond :func:`command_line_limit`. The error names the task, the parameter (file,
    line, key), the limit and what to do. Such a task used to fail at launch, every time."""
    limit = command_line_limit()
    environment = os.environ if env is None else env
    base = sum(_entry_bytes(f"{k}={v}") for k, v in environment.items()) + EXEC_OVERHEAD
    template_origin = origin or Origin("command")
    # Without parameter placeholders a task's argv is a fixed part plus, for each {args}, one or
    # two arguments per parameter: their sizes are computed once per distinct value, and a bound
    # from the grid's longest values usually settles every task at once (100,000 in ~10 ms).
    sizes = _ArgSizes(cmd) if all(p in ("python", "script") for p in cmd.placeholders()) else None
    if any(str(word).startswith("{args:") for word in cmd.template or ()):
        sizes = None  # wandb's argument forms ({args:wandb} ...): measured task by task
    repeat = 1 if cmd.template is None else sum(word == "{args}" for word in cmd.template)
    fixed = sum(_entry_bytes(a) for a in cmd.argv({})[0]) if sizes is not None else 0
    if sizes is not None:
        bound = _largest_from_sections(spec, sizes)
        if bound is not None and base + fixed + repeat * bound[0] <= limit and bound[1] < MAX_ARG_STRLEN:
            return  # even the longest value of every parameter together fits
    for label, params in tasks:
        if sizes is not None:
            total, widest = base + fixed, 0
            for key, value in params.items():
                size, arg_max = sizes.of(key, value)
                total += repeat * size
                widest = max(widest, arg_max)
            if total <= limit and widest < MAX_ARG_STRLEN:
                continue
        argv, _ = cmd.argv(params)
        total = base
        for arg in argv:
            size = _entry_bytes(arg) - _POINTER
            if size >= MAX_ARG_STRLEN:
                param = _longest_param(params, inside=arg)
                raise _too_long(spec, param, template_origin,
                                f"one argument of the command of {label} would be {size:,} bytes, more than the "
                                f"system allows for one argument ({MAX_ARG_STRLEN - 1:,} bytes: MAX_ARG_STRLEN)")
            total += size + _POINTER
        if total > limit:
            param = _longest_param(params)
            longest = len(format_value(params[param]).encode("utf-8", "surrogateescape")) if param is not None else 0
            raise _too_long(spec, param, template_origin,
                            f"the command line of {label} would be {total:,} bytes with its environment, more than "
                            f"the system allows ({limit:,} bytes: ARG_MAX); this parameter's value is {longest:,} bytes")


def _largest_from_sections(spec: SweepSpec, sizes: "_ArgSizes") -> tuple[int, int] | None:
    """(bytes, largest argument) of the longest value of every parameter together: a bound on
    every task's arguments, from the grid and paired lists alone. None when a section is a
    plugin's, whose values only its expansion knows."""
    from hsm_core.sweep_syntax import looks_like_sweep

    total = widest = 0
    for name, section in spec.sections.items():
        if name == "grid" and isinstance(section, Mapping):
            lists = list(section.items())
        elif name == "paired" and isinstance(section, list):
            lists = [(k, v) for item in section for group in item.values() for k, v in group.items()]
        else:
            return None
        for key, values in lists:
            if isinstance(values, str) and looks_like_sweep(values):
                return None  # a,b / range(..): only the expansion knows its values' texts
            values = values if isinstance(values, list) else [values]
            if len(values) > 2 and set(map(type, values)) == {int}:
                # Whole numbers (no bool): the longest text is the smallest's or the largest's; a
                # grid of 100,000 of them was 100,000 argument renderings (0.3 s of a worker's start).
                values = [min(values), max(values)]
            measured = [sizes.of(key, v) for v in values]
            total += max(m[0] for m in measured)
            widest = max(widest, max(m[1] for m in measured))
    return total, widest


class _ArgSizes:
    """Bytes the arguments of one parameter value take in argv, memoised per (name, value object):
    the tasks of a sweep share their values (a grid of 100 x 100 x 10 has 210 of them)."""

    def __init__(self, cmd: CommandPlan) -> None:
        self._style = cmd.args_style
        self._memo: dict[tuple[Any, int], tuple[int, int]] = {}
        self._keep: list[Any] = []  # keeps every value alive, so that its id stays its own

    def of(self, key: Any, value: Any) -> tuple[int, int]:
        """(bytes in argv with pointers, bytes of the largest argument) of ``key=value``."""
        memo_key = (key, id(value))
        found = self._memo.get(memo_key)
        if found is None:
            from hsm_core.prepare import override_args

            args = override_args({key: value}, self._style)
            found = (sum(_entry_bytes(a) for a in args), max(_entry_bytes(a) - _POINTER for a in args))
            self._memo[memo_key] = found
            self._keep.append(value)
        return found


def _program_found(program: str, cwd: Path) -> bool:
    if "/" in program:
        path = Path(program) if os.path.isabs(program) else cwd / program
        return path.is_file() and os.access(path, os.X_OK)
    return shutil.which(program) is not None


def check_programs(cmd: CommandPlan, params: Mapping[str, Any], project: ProjectConfig, origin: Origin) -> None:
    """The program a task starts, the Python interpreter and the training script must exist here
    (else every task would fail with "No such file or directory", one after the other)."""
    argv, python_arg0 = cmd.argv(params)
    words = cmd.template if cmd.template is not None else ["{python}", "{script}"]
    if any("{python}" in w for w in words):
        _check_interpreter(project, cmd.python)
    if not python_arg0 and argv and not _program_found(argv[0], cmd.cwd):
        raise origin.error(f"{origin.label}: the program {argv[0]!r} is not found (not on PATH, not in the project)",
                           hint="fix the command template")
    if any("{script}" in w for w in words):
        _check_script(project)


def _check_interpreter(project: ProjectConfig, python: str) -> None:
    if _program_found(python, project.root):
        return
    if project.get("paths.python_interpreter"):
        raise project.error(f"the Python interpreter {python} is not found (or not executable)",
                            key="paths.python_interpreter", hint="fix the path, or remove it to use the Python running hsm")
    raise HsmError(f"the Python interpreter {python} is not found")


def _check_script(project: ProjectConfig) -> None:
    script = project.train_script
    if script is not None and not script.is_file():
        raise project.error(f"the training script {script} does not exist", key="paths.train_script",
                            hint="fix paths.train_script (a relative path starts at the project root)")


def check_project(project: ProjectConfig, registry: Any) -> None:
    """What ``hsm config validate`` checks of hsm_config.yaml alone: its default sources and
    strategy, and (when tasks would run on this machine) its interpreter and training script."""
    if project.get("compute.strategy"):
        check_strategy(str(project.get("compute.strategy")), project_origin(project, "compute.strategy"), registry)
    text = project.get("compute.default_sources")
    requests = check_sources(str(text), project_origin(project, "compute.default_sources"), project, registry) if text else []
    if not text or runs_here(requests, registry):
        if project.get("paths.python_interpreter"):
            _check_interpreter(project, project.python_interpreter)
        _check_script(project)


def runs_here(requests: Iterable[SourceRequest], registry: Any) -> bool:
    """True when some source runs tasks on this machine's file system: ``local``, or a scheduler
    submitting from here (its tasks run on nodes that share this file system)."""
    for req in requests:
        if req.kind == "local":
            return True
        rec = registry.get(ComputeSourceRecord.kind, req.kind)
        host = req.options.get("host")
        if getattr(rec, "local_commands", ()) and (not host or str(host) in ("local", "localhost")):
            return True
    return False


def check_run(
    project: ProjectConfig,
    spec: SweepSpec,
    tasks: Iterable[tuple[str, Mapping[str, Any]]],
    registry: Any,
    *,
    sources: tuple[str, Origin],
    strategy: tuple[str, Origin],
) -> list[SourceRequest]:
    """Everything a run of ``tasks`` needs, checked before anything is written (see the module)."""
    requests = check_sources(*sources, project, registry)
    check_strategy(*strategy, registry)
    check_command(project, spec, tasks, runs_here=runs_here(requests, registry))
    return requests
