"""The project's configuration: ``hsm_config.yaml`` over the lower layers, validated, as one object.

:func:`load_project_config` reads the layers of :mod:`hsm_core.config.layers` and the project's own
file (v2 location: the project root; v1 location: ``sweeps/hsm_config.yaml``, see
:mod:`hsm_core.config.project_root`), checks the merged tree against the project schema with the
installed plugins' fragments, and returns a :class:`ProjectConfig`: plain data with defaults
applied, the line of every key for later errors, and the paths it names made absolute.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from hsm_core.config.layers import PROJECT, file_of, layer_files, merge
from hsm_core.config.lines import LineDict, describe_value, display_path, key_path, line_of, to_plain
from hsm_core.config.project_root import find_config_file
from hsm_core.config.yaml_io import load_yaml
from hsm_core.errors import ConfigError

# (The schema checks, and the plugin registry they need, are imported when a file is checked:
# most commands skip them while the files are unchanged, config.checked_cache.)

DEFAULT_OUTPUT_DIR = "sweeps/outputs"

__all__ = ["DEFAULT_OUTPUT_DIR", "ProjectConfig", "load_project_config"]


def _get(data: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


@dataclass
class ProjectConfig:
    """The project's validated ``hsm_config.yaml`` (or defaults when there is none).

    ``data`` is plain dicts and lists with defaults applied (``paths.output_dir``); ``raw`` keeps
    the :class:`LineDict` tree for line numbers (see :meth:`error`).
    """

    root: Path
    path: Path | None = None
    data: dict[str, Any] = field(default_factory=dict)
    raw: Any = field(default=None, repr=False, compare=False)
    #: ``(layer, file)`` of every file read, lowest first (``project`` is ``path``; see
    #: :mod:`hsm_core.config.layers`).
    layers: list[tuple[str, Path]] = field(default_factory=list)

    def get(self, dotted: str, default: Any = None) -> Any:
        """The value at a dotted key (``compute.local.max_parallel_jobs``), or ``default``."""
        return _get(self.data, dotted, default)

    def line_of(self, key: str | Sequence[Any]) -> int | None:
        """The line of a key in the config file: dotted (``hpc.clusters.a``) or a sequence of
        names (for names holding dots: ``["distributed", "remotes", "gpu.lab"]``); None if unknown."""
        if self.raw is None:
            return None
        return line_of(self.raw, key.split(".") if isinstance(key, str) else list(key))

    def file_of(self, key: str | Sequence[Any] | None = None) -> str | None:
        """The file (as shown in messages) holding ``key``: the project's ``hsm_config.yaml``, or
        the lower layer the value came from; the project file when ``key`` is None or unknown."""
        if key is not None and self.raw is not None:
            found = file_of(self.raw, key.split(".") if isinstance(key, str) else list(key))
            if found:
                return found
        return display_path(self.path) if self.path else getattr(self.raw, "file", None)

    def error(
        self, message: str, *, key: str | Sequence[Any] | None = None, hint: str | None = None
    ) -> ConfigError:
        """A ConfigError pointing at ``key`` in this file (for checks made after loading)."""
        return ConfigError(
            message,
            file=self.file_of(key),
            line=self.line_of(key) if key else None,
            key=(key if isinstance(key, str) else key_path(key)) if key else None,
            hint=hint,
        )

    def _path(self, value: str) -> Path:
        p = Path(os.path.expandvars(value)).expanduser()
        return p if p.is_absolute() else self.root / p

    @property
    def name(self) -> str:
        """``project.name``, or the project directory's name."""
        return str(self.get("project.name") or self.root.name)

    @property
    def python_interpreter(self) -> str:
        """``paths.python_interpreter`` (a relative path is taken from the project root; a bare
        name such as ``python3`` is looked up on PATH), default: the Python running hsm."""
        value = self.get("paths.python_interpreter")
        if not value:
            return sys.executable
        value = str(value)
        if os.sep in value or "/" in value or value.startswith("~"):
            return str(self._path(value))
        return value

    @property
    def train_script(self) -> Path | None:
        """``paths.train_script`` as an absolute path (relative ones are under the root), or None."""
        value = self.get("paths.train_script")
        return self._path(str(value)) if value else None

    @property
    def config_dir(self) -> Path | None:
        """``paths.config_dir`` as an absolute path, or None."""
        value = self.get("paths.config_dir")
        return self._path(str(value)) if value else None

    @property
    def output_dir(self) -> Path:
        """Where sweep directories go (absolute); default ``<root>/sweeps/outputs``."""
        return self._path(str(self.get("paths.output_dir") or DEFAULT_OUTPUT_DIR))

    @property
    def args_style(self) -> str:
        """``hydra`` (``key=value``, the default) or ``argparse`` (``--key value``)."""
        return str(self.get("command.args_style") or "hydra")

    @property
    def command_template(self) -> str | None:
        """``command.template`` (tokens ``{python} {script} {args}``), or None."""
        return self.get("command.template")

    @property
    def remotes(self) -> dict[str, dict[str, Any]]:
        """``distributed.remotes`` by name (empty when none)."""
        return dict(self.get("distributed.remotes") or {})

    @property
    def clusters(self) -> dict[str, dict[str, Any]]:
        """``hpc.clusters`` by name (empty when none)."""
        return dict(self.get("hpc.clusters") or {})


def _apply_defaults(data: dict[str, Any]) -> dict[str, Any]:
    paths = data.get("paths")
    if not isinstance(paths, dict):
        paths = data["paths"] = {}
    paths.setdefault("output_dir", DEFAULT_OUTPUT_DIR)
    return data


def _check_project(raw: Any, schema: Mapping[str, Any], file: Path | None, registry: Any = None) -> None:
    from hsm_core.config.installed import check_systems
    from hsm_core.config.validation import CLOSED_BEFORE_SCHEMA, check_near_misses, validate

    _check_mapping(raw, file)
    check_near_misses(raw, schema, file, CLOSED_BEFORE_SCHEMA)
    validate(raw, schema, file=file)
    check_near_misses(raw, schema, file)
    _refuse_nul(raw, file)
    if registry is not None:
        check_systems(raw, registry, file)


def _check_mapping(raw: Any, file: Path | None) -> None:
    if not isinstance(raw, dict):
        raise ConfigError(
            f"expected a mapping of settings at the top level, got {describe_value(raw)}",
            file=display_path(file) if file is not None else getattr(raw, "file", None),
            line=getattr(raw, "line", 1),
        )


def _refuse_nul(data: Any, file: Path | str | None, path: tuple[Any, ...] = ()) -> None:
    """Refuse a NUL character anywhere in the file: every string of it may end up in a command
    line, a path or an environment variable, none of which can hold one (exec fails with
    "embedded null byte" once tasks start)."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for k, v in items:
        full = path + (k,)
        here = (getattr(data, "files", None) or {}).get(k) if isinstance(data, dict) else None
        if isinstance(k, str) and "\0" in k or isinstance(v, str) and "\0" in v:
            text = k if isinstance(k, str) and "\0" in k else v
            raise ConfigError(
                f"{describe_value(text)} contains a NUL character, which no command line, path or environment variable can hold",
                file=here or (display_path(file) if file is not None else None), line=line_of(data, [k]), key=key_path(full),
                hint="remove it",
            )
        _refuse_nul(v, here or file, full)


def load_project_config(project_root: Path, registry: Any = None, *, validate: bool = True) -> ProjectConfig:
    """Load and validate the project's configuration: the layers of :mod:`hsm_core.config.layers`
    (site, user, ``HSM_CONFIG``) merged key by key under the project's ``hsm_config.yaml``. No
    file at all means defaults.

    ``registry`` supplies plugin schema fragments (None: the process-wide registry). An error names
    the file and line of the layer the offending value came from. ``validate=False`` skips the
    schema checks (for :mod:`hsm_core.config.checked_cache`, which knows these files passed them).
    """
    root = Path(project_root).expanduser().absolute()
    path = find_config_file(root)
    layers: list[tuple[str, Path]] = []
    raw: Any = LineDict()
    for name, layer_path in layer_files():
        data = load_yaml(layer_path)
        _check_mapping(data, layer_path)
        raw = merge(raw, data) if raw else data
        layers.append((name, layer_path))
    if path is not None:
        data = load_yaml(path)
        _check_mapping(data, path)
        raw = merge(raw, data) if layers else data
        layers.append((PROJECT, path))
    if layers and validate:
        from hsm_core.config.schema import build_schema, resolve_registry

        registry = resolve_registry(registry)
        _check_project(raw, build_schema(registry, "project"), path or layers[-1][1], registry)
    data = _apply_defaults(to_plain(raw))
    return ProjectConfig(root=root, path=path, data=data, raw=raw, layers=layers)
