"""Pre-flight for Hydra apps: compose the app's config with the sweep's overrides before running.

``hsm run --dry-run``, ``hsm complete --dry-run`` and ``hsm config validate`` compose the app's
config (Hydra's compose API) once per distinct set of override keys the sweep gives its tasks,
with the values of the first task that has that set, and once more for every other value of a
config group (``model: [small, large]``: ``model=large`` too). A key the config lacks (``learning_rate``
for an app whose config says ``lr``) is reported with the file and line of the sweep file and a
"did you mean", exit code 2, before any task fails on it.

The compose runs in a subprocess of the project's interpreter (``paths.python_interpreter``): the
one that runs the tasks, with the Hydra version and config search path plugins they see; hsm
itself needs no Hydra. When that interpreter has no hydra-core, or the config cannot be composed
without running the app (structured configs registered in its code), the check is skipped and
the dry run says why: it never refuses a sweep it cannot judge.
"""

from __future__ import annotations

import difflib
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from hsm_core.hydra_app import HydraApp
from hsm_core.plugin import ConfigError

#: Distinct override-key sets composed at most (a plugin's expansion may vary the keys per task).
MAX_KEY_SETS = 20
#: Tasks looked at for their key sets (a grid has one; this bounds a 10^6-task sweep's cost).
MAX_TASKS_SCANNED = 100_000
#: Values of one config-group key composed at most.
MAX_VALUES_PER_KEY = 50
COMPOSE_TIMEOUT = 120.0

# Runs in the project's interpreter: reads a request (JSON) on stdin, writes one JSON line.
_COMPOSE_SCRIPT = r'''
import json, sys, warnings
warnings.simplefilter("ignore")
req = json.load(sys.stdin)
def out(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.exit(0)
try:
    from hydra import compose, initialize_config_dir, initialize_config_module
    from omegaconf import OmegaConf
except Exception as exc:
    out(unavailable="hydra-core is not importable (%s: %s)" % (type(exc).__name__, exc))
kw = {} if req["version_base"] == "<unspecified>" else {"version_base": req["version_base"]}
def first_line(exc):
    lines = [l for l in str(exc).splitlines() if l.strip()]
    if not lines:
        return type(exc).__name__
    head = lines[0].strip()
    for i, line in enumerate(lines):
        if line.startswith("Available options in"):
            options = []
            for opt in lines[i + 1:]:
                if not opt[:1].isspace():
                    break
                options.append(opt.strip())
            head += " (available: %s)" % ", ".join(options)
            break
    return head
def keys(node, prefix=""):
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            name = prefix + str(k)
            found.append(name)
            found += keys(v, name + ".")
    return found
try:
    if req["config_module"]:
        ctx = initialize_config_module(config_module=req["config_module"], **kw)
    else:
        ctx = initialize_config_dir(config_dir=req["config_dir"], **kw)
    with ctx:
        try:
            base = compose(config_name=req["config_name"])
        except Exception as exc:
            out(base_error=first_line(exc))
        plain = OmegaConf.to_container(base, resolve=False)
        leaves = []
        def walk(node, prefix=""):
            for k, v in node.items():
                if isinstance(v, dict) and v:
                    walk(v, prefix + str(k) + ".")
                else:
                    leaves.append([prefix + str(k), v if isinstance(v, (int, float, str, bool)) or v is None else None])
        walk(plain)
        results = []
        for overrides in req["sets"]:
            try:
                compose(config_name=req["config_name"], overrides=overrides)
                results.append(None)
                continue
            except Exception as exc:
                whole = first_line(exc)
            bad = None
            for one in overrides:
                try:
                    compose(config_name=req["config_name"], overrides=[one])
                except Exception as exc:
                    bad = [one, first_line(exc)]
                    break
            results.append(bad or [None, whole])
        # Other values of a config group (model=large where the set had model=small): composed
        # only for keys whose node in the config is a mapping, as a group's choice makes it.
        refused = None
        from omegaconf import DictConfig
        for index, name, override in req.get("variants") or []:
            if refused is not None or results[index] is not None:
                continue
            if not isinstance(OmegaConf.select(base, name, default=None), DictConfig):
                continue
            others = [o for o in req["sets"][index] if o.split("=", 1)[0] != name]
            try:
                compose(config_name=req["config_name"], overrides=others + [override])
            except Exception as exc:
                refused = [override, first_line(exc)]
        out(keys=keys(plain), leaves=leaves, results=results, refused=refused)
except SystemExit:
    raise
except Exception as exc:
    out(base_error=first_line(exc))
'''


@dataclass
class ComposeResult:
    """What composing the app's config told: why it could not be checked, or its keys and, per
    override set, None (fine) or ``[override, Hydra's message]``."""

    skipped: str | None = None
    keys: list[str] = field(default_factory=list)
    leaves: list[tuple[str, Any]] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)
    #: ``[override, Hydra's message]`` of another value of a config group that Hydra refused.
    refused: list[str] | None = None


def compose(python: str, app: HydraApp, override_sets: list[list[str]], cwd: Path,
            variants: Sequence[tuple[int, str, str]] = ()) -> ComposeResult:
    """Compose ``app``'s config with each list of ``override_sets`` in the interpreter ``python``;
    ``variants`` (set index, key, override): other values of a key, composed when the key is a
    config group."""
    module = app.config_module
    directory = app.config_dir
    if not app.config_name:
        return ComposeResult(skipped="the app names no primary config (config_name) hsm can read from its script")
    if module is None and (directory is None or not directory.is_dir()):
        return ComposeResult(skipped="the app's config directory is not known (set paths.config_dir in hsm_config.yaml)")
    request = {
        "config_module": module,
        "config_dir": str(directory) if directory is not None else None,
        "config_name": app.config_name,
        "version_base": app.version_base if app.version_base is not None else None,
        "sets": override_sets,
        "variants": [list(v) for v in variants],
    }
    try:
        proc = subprocess.run([python, "-c", _COMPOSE_SCRIPT], input=json.dumps(request), capture_output=True,
                              text=True, cwd=str(cwd), timeout=COMPOSE_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return ComposeResult(skipped=f"{python} could not compose the config ({exc})")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return ComposeResult(skipped=f"{python} could not compose the config ({tail})")
    data = json.loads(lines[-1])
    if data.get("unavailable"):
        return ComposeResult(skipped=f"{data['unavailable']} with {python}")
    if data.get("base_error"):
        return ComposeResult(skipped=f"the app's config does not compose without running the app: {data['base_error']}")
    return ComposeResult(keys=list(data.get("keys") or []), leaves=[tuple(x) for x in data.get("leaves") or []],
                         results=list(data.get("results") or []), refused=data.get("refused"))


def override_key_sets(tasks: Iterable[tuple[str, Mapping[str, Any]]]) -> tuple[list[Mapping[str, Any]], list[tuple[int, str, str]]]:
    """The parameters of the first task of each distinct set of keys (at most :data:`MAX_KEY_SETS`),
    and the other text values of their keys as ``(set index, key, override)`` (at most
    :data:`MAX_VALUES_PER_KEY` per key): a config group's choices, when the key is one."""
    from hsm_core.prepare import override_args

    seen: dict[frozenset[str], int] = {}
    firsts: list[Mapping[str, Any]] = []
    variants: dict[tuple[int, str], dict[str, None]] = {}
    for i, (_, params) in enumerate(tasks):
        if i >= MAX_TASKS_SCANNED:
            break
        keys = frozenset(map(str, params))
        if keys not in seen:
            if len(seen) >= MAX_KEY_SETS:
                continue
            seen[keys] = len(firsts)
            firsts.append(params)
        index = seen[keys]
        for key, value in params.items():
            if not isinstance(value, str) or str(key).startswith(("+", "~")) or value == firsts[index][key]:
                continue
            found = variants.setdefault((index, str(key)), {})
            if len(found) < MAX_VALUES_PER_KEY:
                found[override_args({key: value}, "hydra")[0]] = None
    return firsts, [(index, key, override) for (index, key), found in variants.items() for override in found]


def _config_shown(app: HydraApp, root: Path) -> str:
    from hsm_core.hydra_app import _shown

    primary = app.primary_config
    if primary is not None:
        return _shown(primary, root)
    return f"{app.config_name} in {app.config_module or app.config_dir}"


def check_hydra_overrides(project: Any, spec: Any, app: HydraApp, tasks: Iterable[tuple[str, Mapping[str, Any]]]) -> str:
    """Compose ``app``'s config with every distinct set of override keys of ``tasks``; raise a
    :class:`ConfigError` (file, line, key of the sweep file) for the first one Hydra refuses.
    Returns one line for the dry run: what was checked, or why it was skipped."""
    from hsm_core.config.lines import display_path
    from hsm_core.prepare import override_args
    from hsm_core.sweep import param_location

    params_sets, variants = override_key_sets(tasks)
    if not params_sets:
        return "no tasks: nothing to check"
    sets = [override_args(params, "hydra") for params in params_sets]
    result = compose(project.python_interpreter, app, sets, project.root, variants)
    if result.skipped:
        return f"not checked: {result.skipped}"
    config = _config_shown(app, project.root)
    outcomes = list(zip(params_sets, result.results))
    if result.refused and not any(outcome for _, outcome in outcomes):
        name = result.refused[0].split("=", 1)[0]
        outcomes = [(next(p for p in params_sets if name in p), result.refused)]
    for params, outcome in outcomes:
        if not outcome:
            continue
        override, message = outcome
        name = _param_of(override, params)
        key, line = param_location(spec, name) if name is not None else ("", None)
        file = display_path(spec.path) if spec.path else None
        bare = (name or "").lstrip("+~")
        if name is not None and not name.startswith("+") and bare not in result.keys:
            raise _missing(bare, result.keys, config, file, line, key)
        raise ConfigError(f"Hydra refuses {override!r} for the app's config ({config}): {message}",
                          file=file, line=line, key=key or None,
                          hint="fix the value or the key in the sweep file: every task with it would fail")
    n = len(sets)
    return f"checked: every override key exists in {config} ({n} key set{'s' if n != 1 else ''} composed)"


def _missing(key: str, known: list[str], config: str, file: str | None, line: int | None, where: str) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if not close:  # "learning_rate" for "optimizer.lr": compare the last parts
        last = {k.rsplit(".", 1)[-1]: k for k in known}
        tail = difflib.get_close_matches(key.rsplit(".", 1)[-1], list(last), n=1, cutoff=0.5)
        close = [last[tail[0]]] if tail else []
        if not close:
            abbreviations = {k for k in known if _initials(key) == k.rsplit(".", 1)[-1]}
            close = sorted(abbreviations)[:1]
    suggestion = f"did you mean {close[0]}? " if close else ""
    return ConfigError(
        f"the Hydra app's config ({config}) has no key {key!r}",
        file=file, line=line, key=where or None,
        hint=f"{suggestion}fix the parameter name in the sweep file, or write +{key} to add a key the config lacks",
    )


def _initials(key: str) -> str:
    """``learning_rate`` -> ``lr``: the usual short name of a long key."""
    parts = [p for p in key.rsplit(".", 1)[-1].split("_") if p]
    return "".join(p[0] for p in parts) if len(parts) > 1 else ""


def _param_of(override: str | None, params: Mapping[str, Any]) -> str | None:
    """The parameter an override argument (``lr=0.1``) came from."""
    if not override:
        return None
    name = override.split("=", 1)[0]
    return name if name in params else next((str(k) for k in params if str(k) == name), None)


def example_leaves(python: str, app: HydraApp, cwd: Path) -> list[tuple[str, Any]] | None:
    """The app's config as (dotted key, value) leaves, composed without overrides; None when it
    cannot be composed here (``hsm config init`` then writes its generic example)."""
    result = compose(python, app, [], cwd)
    return None if result.skipped else result.leaves


def hydra_preflight(project: Any, spec: Any, tasks: Iterable[tuple[str, Mapping[str, Any]]]) -> str | None:
    """The Hydra pre-flight of a sweep (see the module): None when its command is no Hydra app,
    else one line saying what was checked; a key the app's config lacks raises ConfigError."""
    from hsm_core.prepare import command_plan

    app = command_plan(project, spec.settings).hydra
    if app is None:
        return None
    return check_hydra_overrides(project, spec, app, tasks)
