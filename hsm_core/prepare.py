"""Turning a sweep spec into task directories: parameters, command line, environment.

Every parameter value reaches the script as one argv element (``key=value`` Hydra overrides by
default, ``--key value`` with ``args_style: argparse``); a ``command:`` template is split into words
*before* values are substituted, so a value is data and never shell code.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from hsm_core.config.project_config import ProjectConfig
from hsm_core.hydra_app import HydraApp, find_hydra_app, hydra_override_value
from hsm_core.plugin import ConfigError, HsmError, TaskSpec
from hsm_core.state import SweepDir, TaskRecord
from hsm_core.task_manifest import materialize as make_task_dir
from hsm_core.taskdir import write_command, write_params_once

_PLACEHOLDER = re.compile(r"\{([^{}\s]+)\}")


def format_value(value: Any) -> str:
    """A parameter value as the text of one command-line argument."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def override_args(params: Mapping[str, Any], style: str, *, hydra_app: bool = False) -> list[str]:
    """``key=value`` (hydra) or ``--key value`` (argparse) arguments, one argv element each.

    For a Hydra app (``hydra_app``) a value Hydra would not read back as one value (``a,b`` is a
    sweep to Hydra, ``a b!`` an error) is quoted for Hydra's override grammar."""
    if style == "argparse":
        out: list[str] = []
        for k, v in params.items():
            text = format_value(v)
            # A value that looks like an option ("-rf", "--help", "-1e-3") would be read as one by
            # argparse: the "--key=value" form keeps it the value of --key.
            out += [f"--{k}={text}"] if text.startswith("-") else [f"--{k}", text]
        return out
    if style.startswith("wandb"):
        from hsm_core.wandb_sweep import WANDB_ARG_STYLES, wandb_args

        if style in WANDB_ARG_STYLES:
            return wandb_args(params, style)
    if style not in ("hydra", ""):
        raise ConfigError(f"unknown argument style {style!r} (hydra, argparse, {', '.join(_wandb_styles())})",
                          key="command")
    if hydra_app:
        return [f"{k}={hydra_override_value(format_value(v))}" for k, v in params.items()]
    return [f"{k}={format_value(v)}" for k, v in params.items()]


def _wandb_styles() -> tuple[str, ...]:
    from hsm_core.wandb_sweep import WANDB_ARG_STYLES

    return WANDB_ARG_STYLES


def _args_word(word: str) -> str | None:
    """The argument style of a word that inserts every parameter: ``{args}`` (the plan's style,
    "") or ``{args:STYLE}`` (wandb's forms, from a wandb sweep file); None for another word."""
    if word == "{args}":
        return ""
    if word.startswith("{args:") and word.endswith("}"):
        return word[len("{args:"):-1]
    return None


@dataclass
class CommandPlan:
    """How to build each task's argv."""

    template: list[str] | None  # words of a command template, placeholders unresolved
    python: str
    script: str | None
    args_style: str
    cwd: Path
    #: Set when the command runs a Hydra app: each task gets its own run dir (hsm_core.hydra_app).
    hydra: HydraApp | None = None

    def argv(self, params: Mapping[str, Any]) -> tuple[list[str], bool]:
        """The argv for ``params`` and whether argv[0] is the configured Python interpreter."""
        args = override_args(params, self.args_style, hydra_app=self.hydra is not None)
        extra = self.hydra.run_dir_args(params, self.template) if self.hydra is not None else []
        if self.template is None:
            if not self.script:
                raise HsmError(
                    "no command to run",
                    hint="set paths.train_script in hsm_config.yaml, or 'command:' in the sweep file",
                )
            return [self.python, self.script, *args, *extra], True
        out: list[str] = []
        for word in self.template:
            style = _args_word(word)
            if style is not None:
                out.extend(override_args(params, style) if style else args)
                out.extend(extra)  # once, with the first {args}
                extra = []
                continue
            out.append(_PLACEHOLDER.sub(lambda m: self._fill(m.group(1), params), word))
        out.extend(extra)  # a template without {args}: at the end, where Hydra reads overrides
        return out, bool(self.template) and self.template[0] == "{python}"

    def _fill(self, name: str, params: Mapping[str, Any]) -> str:
        if name == "python":
            return self.python
        if name == "script":
            if not self.script:
                raise HsmError("the command uses {script} but paths.train_script is not set")
            return self.script
        param = placeholder_param(name, params)
        if param is not None:
            return format_value(params[param])
        raise ConfigError(f"unknown placeholder {{{name}}} in command (parameters: {', '.join(map(str, params))})",
                          key="command")

    def placeholders(self) -> list[str]:
        """The ``{name}`` placeholders of the template (``python``, ``script``, ``param.lr`` ...)."""
        return [m.group(1) for word in self.template or () for m in _PLACEHOLDER.finditer(word)
                if _args_word(word) is None]


def placeholder_param(name: str, params: Mapping[str, Any]) -> str | None:
    """The parameter a command placeholder inserts: ``{lr}`` or ``{param.lr}`` (the documented
    spelling, also for dotted names: ``{param.optimizer.lr}``); None when it names none."""
    if name in params:
        return name
    if name.startswith("param.") and name[len("param."):] in params:
        return name[len("param."):]
    return None


def command_plan(project: ProjectConfig, settings: Mapping[str, Any]) -> CommandPlan:
    """Build the plan from the sweep's settings and the project config (sweep wins)."""
    cmd_cfg = project.data.get("command") or {}
    template_text = settings.get("command") or cmd_cfg.get("template")
    style = settings.get("args_style") or cmd_cfg.get("args_style") or "hydra"
    script = project.train_script
    script_arg = None
    if script is not None:
        try:
            script_arg = str(Path(script).resolve().relative_to(project.root.resolve()))
        except ValueError:
            script_arg = str(script)
    template = None
    if template_text:
        try:
            template = shlex.split(str(template_text))
        except ValueError as exc:
            raise ConfigError(f"cannot split command template: {exc}", key="command") from exc
    hydra = find_hydra_app(project, settings, template, script_arg)
    return CommandPlan(template, project.python_interpreter, script_arg, style, project.root, hydra)


def write_task(
    sweep: SweepDir,
    record: TaskRecord,
    plan: CommandPlan,
    env: Mapping[str, str],
) -> TaskSpec:
    """Create (or refresh) the task dir: ``params.yaml`` and ``command.json``. Never touches results."""
    d = sweep.task_dir(record.index)
    command = task_command(sweep, record, plan, env)
    # A task's dir is made when it first starts: whole, under a temporary name, then renamed, so
    # that nobody ever sees it half made (hsm_core.task_manifest).
    if not make_task_dir(d, {"task_id": record.task_id, "index": record.index, "params": record.params}, command):
        write_params_once(d, record.task_id, record.index, record.params)
        write_command(d, command)
    return task_spec(sweep, record)


def task_command(sweep: SweepDir, record: TaskRecord, plan: CommandPlan, env: Mapping[str, str]) -> dict[str, Any]:
    """The task's ``command.json`` document."""
    argv, python_arg0 = plan.argv(record.params)
    return {
        "sweep_id": sweep.sweep_id,
        "task_id": record.task_id,
        "index": record.index,
        "argv": argv,
        "python_arg0": python_arg0,
        "cwd": str(plan.cwd),
        "env": dict(env),
    }


def prepare_unmade(
    sweep: SweepDir, record: TaskRecord, plan: CommandPlan, registry: Any, settings: Mapping[str, Any],
    spec: TaskSpec | None = None, *, new_sweep: bool = False, env: Mapping[str, str] | None = None,
) -> TaskSpec:
    """Like :func:`prepare_task` for a task an array element makes the dir of when it starts
    (hsm_core.plugin.arrayjob.unmade): nothing is written; the spec carries what the dir is made
    from. A task whose dir exists already (run before) is refreshed as :func:`prepare_task` does;
    ``new_sweep``: the sweep was made by this run, so no task has a dir yet (none is looked for);
    ``env``: the plugins' environment of the task, when the caller asked for a block of tasks at
    once (:func:`task_envs`)."""
    from hsm_core.plugin.arrayjob.unmade import UnmadeTaskSpec

    spec = spec or task_spec(sweep, record)  # (``spec``: the engine's, already made)
    if not new_sweep and spec.task_dir.is_dir():
        return prepare_task(sweep, record, plan, registry, settings)
    command = task_command(sweep, record, plan, task_env(registry, spec, settings) if env is None else env)
    made_from = {"params": {"task_id": record.task_id, "index": record.index, "params": record.params}, "command": command}
    return UnmadeTaskSpec(spec.task_id, spec.index, spec.params, spec.task_dir, spec.sweep_id, spec.sweep_dir, made_from)


def task_spec(sweep: SweepDir, record: TaskRecord) -> TaskSpec:
    """The spec of a task (its dir need not exist yet)."""
    base = _resolved(os.path.abspath(sweep.path))  # (absolute first: the cache must not outlive a chdir)
    return TaskSpec(record.task_id, record.index, record.params, base / sweep.tasks_dir.name / sweep.task_dir(record.index).name,
                    sweep.sweep_id, base)


@functools.lru_cache(maxsize=64)
def _resolved(path: str) -> Path:
    # Once per sweep: two resolve() calls per task were a quarter of preparing 10,000 array-job tasks.
    return Path(path).resolve()


def task_env(registry: Any, spec: TaskSpec, sweep_settings: Mapping[str, Any]) -> dict[str, str]:
    """Merge the extra environment every plugin gives the task (see :func:`task_envs`)."""
    return task_envs(registry, [spec], sweep_settings)[0]


def task_envs(registry: Any, specs: Sequence[TaskSpec], sweep_settings: Mapping[str, Any]) -> list[dict[str, str]]:
    """The extra environment of each task of ``specs``, merged over the plugins: one
    ``hsm_task_env_batch`` call per plugin that implements it (API 1.5), and ``hsm_task_env`` per
    task for the others (a plugin implementing both is asked the batch only). The per-task
    answers are merged first, then the batch ones; later plugins win on equal keys."""
    envs: list[dict[str, str]] = [{} for _ in specs]
    batch_hook = getattr(registry.hook, "hsm_task_env_batch", None)
    batch_plugins = [impl.plugin for impl in batch_hook.get_hookimpls()] if batch_hook is not None else []
    per_task = registry.hook.hsm_task_env
    if batch_plugins:
        per_task = _per_task_caller(getattr(registry, "pm", registry), batch_plugins)
    if per_task.get_hookimpls():
        for env, spec in zip(envs, specs):
            for part in per_task(task=spec, sweep_config=sweep_settings):
                _merge(env, part)
    if batch_plugins:
        for answer in batch_hook(tasks=list(specs), sweep_config=sweep_settings):
            if answer is None:
                continue
            if len(answer) != len(specs):
                raise HsmError(f"a plugin's hsm_task_env_batch gave {len(answer)} environments for {len(specs)} tasks",
                               hint="report it to the plugin's authors (hsm plugins lists them)")
            for env, part in zip(envs, answer):
                _merge(env, part)
    return envs


class EnvBlocks:
    """The plugins' environment of the tasks of a big submission, asked for in blocks of
    :attr:`BLOCK` tasks in queue order (one ``hsm_task_env_batch`` call per block, not one hook
    call per task): :meth:`env` of a task not asked for yet asks for it and the tasks after it."""

    BLOCK = 1000

    def __init__(self, records: Sequence[Any], make_spec: Any, registry: Any, settings: Mapping[str, Any]) -> None:
        self._records = records  # (TaskRecord, in launch order)
        self._make_spec = make_spec
        self._registry = registry
        self._settings = settings
        self._position: dict[str, int] | None = None
        self._envs: dict[str, dict[str, str]] = {}
        self._specs: dict[str, TaskSpec] = {}  # made for a block, not taken by the queue yet

    def spec(self, record: Any) -> TaskSpec:
        """The spec of ``record``'s task: the one made when its block was asked for, else a new
        one (the engine's queue makes its specs here, so a block's specs are made once)."""
        spec = self._specs.pop(record.task_id, None)
        return spec if spec is not None else self._make_spec(record)

    def env(self, spec: TaskSpec) -> dict[str, str]:
        """The environment of ``spec``'s task (each task's asked for once; a task handed back and
        prepared again is asked for again)."""
        env = self._envs.pop(spec.task_id, None)
        if env is not None:
            return env
        if self._position is None:
            self._position = {r.task_id: i for i, r in enumerate(self._records)}
        at = self._position.get(spec.task_id)
        if at is None:  # (not one of the records: a task added later)
            return task_env(self._registry, spec, self._settings)
        later = [self._make_spec(r) for r in self._records[at + 1:at + self.BLOCK]]
        self._specs = {s.task_id: s for s in later}
        block = [spec, *later]
        self._envs = dict(zip((s.task_id for s in block), task_envs(self._registry, block, self._settings)))
        return self._envs.pop(spec.task_id)


#: (manager, plugins answering in batches) -> ``hsm_task_env`` of the other plugins: made once
#: (making one per task tripled the cost of a task's environment). It follows the manager's
#: plugins as they come and go; only the plugins it leaves out are fixed.
_PER_TASK_CALLERS: dict[tuple[int, ...], tuple[Any, Any]] = {}


def _per_task_caller(manager: Any, batch_plugins: list[Any]) -> Any:
    key = (id(manager), *map(id, batch_plugins))
    hit = _PER_TASK_CALLERS.get(key)
    if hit is None or hit[0] is not manager:
        if len(_PER_TASK_CALLERS) > 16:
            _PER_TASK_CALLERS.clear()
        hit = _PER_TASK_CALLERS[key] = (manager, manager.subset_hook_caller("hsm_task_env", remove_plugins=batch_plugins))
    return hit[1]


def _merge(env: dict[str, str], part: Mapping[str, Any] | None) -> None:
    if part:
        env.update({str(k): str(v) for k, v in part.items()})


def prepare_task(
    sweep: SweepDir, record: TaskRecord, plan: CommandPlan, registry: Any, settings: Mapping[str, Any]
) -> TaskSpec:
    """Write one task dir (with plugin env) and return its spec."""
    # The plugins' env first, from the spec alone, so that each file is written once.
    env = task_env(registry, task_spec(sweep, record), settings)
    return write_task(sweep, record, plan, env)


def materialize(
    sweep: SweepDir,
    records: Iterable[TaskRecord],
    plan: CommandPlan,
    registry: Any,
    settings: Mapping[str, Any],
) -> list[TaskSpec]:
    """Write task dirs for ``records`` and return their specs (plugin env included)."""
    return [prepare_task(sweep, rec, plan, registry, settings) for rec in records]
