"""Recognising a Hydra app, and giving each of its tasks a Hydra run dir of its own.

A Hydra app writes its run dir (``.hydra/``, its log, and whatever the script saves there) to
``outputs/<date>/<time>`` by default: tasks that start in the same second share it and overwrite
each other's files. So for a Hydra app hsm adds one override to every task's command::

    hydra.run.dir=${oc.env:HSM_TASK_DIR}/hydra

Hydra resolves it where the task runs (``HSM_TASK_DIR`` is set by the task runner there, also on
an SSH host or a cluster node), and the path never passes through Hydra's override parser, so a
project path with spaces, commas or ``=`` is fine. hsm adds nothing when the user chose a run dir
themselves: a ``hydra.run.dir`` parameter, a ``hydra.run.dir=`` word in the command template, or
``hydra: run: dir:`` in the app's primary config file.

Which commands are Hydra apps: ``hydra: true|false`` in the sweep file, else ``command.hydra`` in
hsm_config.yaml, else detection: the training script (``paths.train_script``, the ``.py`` file or
``-m module`` of the command template) decorates a function with ``@hydra.main``. The script is
read, never imported. A script that merely takes ``key=value`` arguments is not a Hydra app, and
its command is left exactly as it was.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

RUN_DIR_KEY = "hydra.run.dir"
#: Relative to the task dir: where a Hydra app's run dir goes.
RUN_DIR_NAME = "hydra"
RUN_DIR_OVERRIDE = f"{RUN_DIR_KEY}=${{oc.env:HSM_TASK_DIR}}/{RUN_DIR_NAME}"
#: ``version_base`` / ``config_path`` not given in the decorator (Hydra's own defaults apply).
UNSPECIFIED = "<unspecified>"
#: An argument of the decorator that is no literal (``config_path=os.path.join(...)``).
UNSPECIFIED_VALUE = object()
_TEXT_HINT = re.compile(r"@\s*(?:hydra\s*\.\s*)?main\s*\(")
_MAX_SCRIPT_BYTES = 2_000_000


@dataclass(frozen=True)
class HydraApp:
    """A command hsm runs as a Hydra app, and what is known of its configs."""

    reason: str  #: why hsm takes the command for a Hydra app (shown by ``--dry-run``)
    script: Path | None = None  #: the file with ``@hydra.main``, when found
    config_path: str | None = UNSPECIFIED  #: the decorator's ``config_path`` (``pkg://`` or a dir)
    config_name: str | None = None  #: the decorator's ``config_name``
    version_base: str | None = UNSPECIFIED  #: the decorator's ``version_base``
    #: ``paths.config_dir`` of hsm_config.yaml (absolute): used when the decorator gives no literal path.
    fallback_config_dir: Path | None = None
    #: Where the user chose a run dir (then hsm adds no ``hydra.run.dir``): a file, or None.
    run_dir_set_in: str | None = None

    @property
    def config_dir(self) -> Path | None:
        """The directory of the app's configs (absolute), None when it is not a plain directory."""
        path = self.config_path
        if path == UNSPECIFIED:
            # Hydra: "." before version_base 1.2, no directory from 1.2 on.
            path = None if _base_at_least_1_2(self.version_base) else "."
        if path is None or path.startswith("pkg://") or self.script is None:
            return self.fallback_config_dir
        p = Path(path)
        if path.startswith("file://"):
            p = Path(path[len("file://"):])
        return (p if p.is_absolute() else self.script.parent / p).resolve()

    @property
    def config_module(self) -> str | None:
        """The package of a ``pkg://`` config path, else None."""
        if self.config_path and self.config_path != UNSPECIFIED and self.config_path.startswith("pkg://"):
            return self.config_path[len("pkg://"):].replace("/", ".")
        return None

    @property
    def primary_config(self) -> Path | None:
        """``<config dir>/<config_name>.yaml`` when both are known and the file exists."""
        directory, name = self.config_dir, self.config_name
        if directory is None or not name:
            return None
        for candidate in (directory / name, directory / f"{name}.yaml", directory / f"{name}.yml"):
            if candidate.is_file():
                return candidate
        return None

    def run_dir_args(self, params: Mapping[str, Any], template: Sequence[str] | None) -> list[str]:
        """``[RUN_DIR_OVERRIDE]``, or nothing when the user chose the run dir (see the module)."""
        if self.run_dir_set_in is not None:
            return []
        if any(_is_run_dir_key(str(k)) for k in params):
            return []
        if template and any(_is_run_dir_key(word.split("=", 1)[0]) for word in template if "=" in word):
            return []
        return [RUN_DIR_OVERRIDE]


def _is_run_dir_key(key: str) -> bool:
    return key.lstrip("+~") == RUN_DIR_KEY


def _base_at_least_1_2(version_base: str | None) -> bool:
    if version_base is None:
        return True  # None: the Hydra version installed, at least 1.2 for it to be accepted
    if version_base == UNSPECIFIED:
        return False
    try:
        major, minor = (int(x) for x in str(version_base).split(".")[:2])
    except ValueError:
        return True
    return (major, minor) >= (1, 2)


def hydra_setting(project: Any, settings: Mapping[str, Any]) -> tuple[bool | None, str | None]:
    """The user's ``hydra:`` choice (sweep file first, then ``command.hydra``) and where it is set."""
    if isinstance(settings.get("hydra"), bool):
        return settings["hydra"], "hydra in the sweep file"
    value = project.get("command.hydra")
    if isinstance(value, bool):
        return value, "command.hydra in hsm_config.yaml"
    return None, None


def script_of(template: Sequence[str] | None, script: str | None, root: Path) -> Path | None:
    """The Python file a command runs: ``{script}`` or the first ``*.py`` word of the template,
    or the file of ``-m package.module`` under the project root (or ``src/``)."""
    if template is None:
        return (root / script) if script else None
    words = list(template)
    for i, word in enumerate(words):
        if "{script}" in word and script:
            return root / script
        if word.endswith(".py") and "{" not in word:
            p = Path(word)
            return p if p.is_absolute() else root / p
        if word == "-m" and i + 1 < len(words):
            rel = Path(*words[i + 1].split("."))
            for base in (root, root / "src"):
                for candidate in (base / rel.with_suffix(".py"), base / rel / "__main__.py"):
                    if candidate.is_file():
                        return candidate
            return None
    return None


def _literal(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return UNSPECIFIED_VALUE



def _decorator_args(call: ast.Call) -> dict[str, Any]:
    """The literal arguments of ``hydra.main(...)`` (positional: config_path, config_name, version_base)."""
    out: dict[str, Any] = {}
    for name, arg in zip(("config_path", "config_name", "version_base"), call.args):
        out[name] = _literal(arg)
    for kw in call.keywords:
        if kw.arg:
            out[kw.arg] = _literal(kw.value)
    return out


def find_main_decorator(text: str) -> dict[str, Any] | None:
    """The literal arguments of the ``@hydra.main(...)`` decorator in Python source ``text``
    (``{}`` when it has none), or None when the source decorates nothing with it."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return {} if _TEXT_HINT.search(text) and "hydra" in text else None
    main_names = {"hydra.main"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "hydra":
            for alias in node.names:
                if alias.name == "main":
                    main_names.add(alias.asname or "main")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "hydra" and alias.asname:
                    main_names.add(f"{alias.asname}.main")
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for deco in node.decorator_list:
            call = deco if isinstance(deco, ast.Call) else None
            target = call.func if call is not None else deco
            if _dotted(target) in main_names:
                return _decorator_args(call) if call is not None else {}
    return None


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _read(path: Path) -> str | None:
    try:
        with open(path, "rb") as fh:
            return fh.read(_MAX_SCRIPT_BYTES).decode("utf-8", "replace")
    except OSError:
        return None


def _run_dir_in_config(app: HydraApp) -> str | None:
    """The primary config file when it sets ``hydra: run: dir:`` (read as YAML, not composed)."""
    path = app.primary_config
    if path is None:
        return None
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    hydra = data.get("hydra") if isinstance(data, dict) else None
    run = hydra.get("run") if isinstance(hydra, dict) else None
    if isinstance(run, dict) and run.get("dir"):
        return str(path)
    return None


def find_hydra_app(
    project: Any, settings: Mapping[str, Any], template: Sequence[str] | None, script: str | None
) -> HydraApp | None:
    """The Hydra app a sweep's command runs, or None when it is not one (see the module).

    ``template``: the words of the command template (None without one); ``script``: the
    training script relative to the project root (``paths.train_script``)."""
    choice, where = hydra_setting(project, settings)
    if choice is False:
        return None
    root = Path(project.root)
    path = script_of(template, script, root)
    text = _read(path) if path is not None else None
    found = find_main_decorator(text) if text is not None else None
    if found is None and choice is None:
        return None
    reason = f"{where}" if choice else f"{_shown(path, root)} uses @hydra.main"
    args = found or {}

    def text_arg(name: str, default: Any) -> Any:
        value = args.get(name, default)
        if value is UNSPECIFIED_VALUE:
            return default
        return value if value is None or isinstance(value, str) else str(value)

    app = HydraApp(
        reason=reason,
        script=path if found is not None else None,
        config_path=text_arg("config_path", UNSPECIFIED),
        config_name=text_arg("config_name", None),
        version_base=text_arg("version_base", UNSPECIFIED),
        fallback_config_dir=project.config_dir,
    )
    set_in = _run_dir_in_config(app)
    return _replace(app, run_dir_set_in=_shown(Path(set_in), root)) if set_in else app


def describe(app: HydraApp) -> str:
    """One line for ``--dry-run``: why the command is a Hydra app and where its run dirs go."""
    if app.run_dir_set_in is not None:
        where = f"as set in {app.run_dir_set_in} (hydra.run.dir): make it unique per task, e.g. ${{oc.env:HSM_TASK_DIR}}/hydra"
    else:
        where = f"each task's own tasks/task_NNN/{RUN_DIR_NAME} (unless a parameter or the command sets hydra.run.dir)"
    return f"{app.reason}; Hydra run dir: {where}"


def _replace(app: HydraApp, **changes: Any) -> HydraApp:
    from dataclasses import replace

    return replace(app, **changes)


def _shown(path: Path | None, root: Path) -> str:
    if path is None:
        return "?"
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def hydra_override_value(text: str) -> str:
    """``text`` (a parameter value as hsm passes it) as the value of a Hydra override that Hydra
    reads back as exactly one value: unchanged when Hydra parses it as one element (``0.1``,
    ``adam``, ``[1,2]``: what the user wrote keeps Hydra's meaning), else quoted as a string
    (``a,b`` would be a sweep, ``a b!`` a syntax error, for Hydra in a single run)."""
    from hsm_core.sweep_syntax import ChoiceSweep, IntervalSweep, RangeSweep, SweepSyntaxError, parse_override_value

    try:
        parsed = parse_override_value(text)
    except SweepSyntaxError:
        parsed = ChoiceSweep([])  # not one element: quote it below
    if not isinstance(parsed, (ChoiceSweep, RangeSweep, IntervalSweep)):
        return text
    quote = "'" if "'" not in text or '"' in text else '"'
    # Hydra's escapes in a quoted string: \<quote>, and backslashes doubled before a quote or the end.
    body = re.sub(r"(\\*)(" + quote + r"|$)", lambda m: m.group(1) * 2 + ("\\" + m.group(2) if m.group(2) else ""), text)
    return quote + body + quote
