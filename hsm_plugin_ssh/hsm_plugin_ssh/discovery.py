"""Auto-discovery on a remote: the project directory, its hsm_config.yaml, Python and hsm-core.

* project: ``project_dir:`` of the remote; else the same path relative to ``$HOME`` as here; else
  the same absolute path. The first that exists is used.
* Python: ``python_interpreter:`` of the remote; else ``paths.python_interpreter`` of the remote
  project's own ``hsm_config.yaml``; else ``python3``.
* hsm-core: its task runner (:data:`~hsm_core.plugin.RUNNER_MODULE`) must import there (tasks run
  under it), through the same plugin API this plugin uses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

from hsm_core.plugin import CORE_VERSION, HsmError

from hsm_plugin_ssh.host import SshHost

CONFIG_LOCATIONS = ("hsm_config.yaml", "sweeps/hsm_config.yaml")
_PROBE = (
    "import importlib, os, sys\n"
    "try:\n"
    "    from hsm_core.plugin import CORE_VERSION, RUNNER_MODULE\n"
    "    importlib.import_module(RUNNER_MODULE)\n"
    "except Exception as exc:\n"
    "    print('NOHSM ' + type(exc).__name__ + ': ' + str(exc)); sys.exit(0)\n"
    "print('HSM ' + CORE_VERSION + ' ' + sys.executable + ' ' + str(os.cpu_count() or 1))\n"
)


def candidate_dirs(local_root: Path, local_home: Path | None, remote_home: str, configured: str | None) -> list[str]:
    """Remote project directories to try, in order (absolute POSIX paths, no duplicates)."""
    out: list[str] = []

    def add(p: str) -> None:
        if p not in out:
            out.append(p)

    if configured:
        text = str(configured)
        if text == "~" or text.startswith("~/"):
            text = remote_home + text[1:]
        p = PurePosixPath(text)
        add(str(p if p.is_absolute() else PurePosixPath(remote_home) / p))
        return out
    root = Path(local_root).absolute()
    if local_home is not None:
        try:
            rel = root.relative_to(Path(local_home).absolute())
        except ValueError:
            rel = None
        if rel is not None:
            add(str(PurePosixPath(remote_home, *rel.parts)))
    add(root.as_posix())
    return out


@dataclass
class RemoteProject:
    """What discovery found on a remote."""

    name: str
    project_dir: str  #: the remote project root (the first candidate when none exists)
    exists: bool
    candidates: list[str] = field(default_factory=list)
    config_path: str | None = None  #: the remote project's hsm_config.yaml, if any
    python: str = "python3"
    python_from: str = "default"  #: "configured", "remote hsm_config.yaml" or "default"
    python_path: str | None = None  #: sys.executable of that Python, when it runs
    hsm_version: str | None = None  #: hsm-core version there (None: not importable)
    cpus: int | None = None
    python_ok: bool = False  #: the interpreter runs there (whether or not hsm-core imports)
    problems: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        """True when tasks can run there."""
        return not self.problems

    def raise_if_not_ready(self) -> None:
        """The first problem as an :class:`HsmError` with its fix."""
        if self.problems:
            raise HsmError(self.problems[0], hint=self.hints[0] if self.hints else None)


def find_project(host: SshHost, options: Mapping[str, Any], local_root: Path) -> tuple[str, bool, list[str]]:
    """(remote project dir, whether it exists, the candidates tried)."""
    home = host.home()
    local_home = Path(os.path.expanduser("~")) if os.path.expanduser("~") != "~" else None
    cands = candidate_dirs(local_root, local_home, home, options.get("project_dir"))
    for c in cands:
        if host.exists(c) == "dir":
            return c, True, cands
    return cands[0], False, cands


def remote_config(host: SshHost, project_dir: str) -> tuple[str | None, dict[str, Any]]:
    """The remote project's hsm_config.yaml (path, parsed content); (None, {}) when there is none."""
    import yaml

    for rel in CONFIG_LOCATIONS:
        path = f"{project_dir.rstrip('/')}/{rel}"
        text = host.read_text(path)
        if text is None:
            continue
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            data = None
        return path, data if isinstance(data, dict) else {}
    return None, {}


def choose_python(options: Mapping[str, Any], config: Mapping[str, Any], project_dir: str) -> tuple[str, str]:
    """(interpreter, where it came from); a relative path is taken from the remote project."""
    if options.get("python_interpreter"):
        value, source = str(options["python_interpreter"]), "configured"
    else:
        value = str(((config.get("paths") or {}).get("python_interpreter")) or "")
        source = "remote hsm_config.yaml" if value else "default"
        value = value or "python3"
    if "/" in value and not value.startswith(("/", "~")):
        value = str(PurePosixPath(project_dir) / value)
    return value, source


def discover(host: SshHost, options: Mapping[str, Any], local_root: Path) -> RemoteProject:
    """Look at the remote (a few SFTP calls and one command) and report what is there."""
    project_dir, exists, cands = find_project(host, options, local_root)
    rp = RemoteProject(host.name, project_dir, exists, cands)
    config: dict[str, Any] = {}
    if exists:
        rp.config_path, config = remote_config(host, project_dir)
    else:
        tried = ", ".join(cands)
        rp.problems.append(f"the project is not on {host.name} (looked in {tried})")
        rp.hints.append(f"copy it there with: hsm remote sync {host.name}"
                        + ("" if options.get("project_dir") else f", or set project_dir for {host.name}"))
    rp.python, rp.python_from = choose_python(options, config, project_dir)
    python = rp.python
    if python.startswith("~/"):
        python = host.home() + python[1:]
        rp.python = python
    res = host.run([python, "-c", _PROBE], cwd=project_dir if exists else None, timeout=120)
    line = (res.stdout.strip().splitlines() or [""])[-1]
    rp.python_ok = res.returncode == 0 and line.startswith(("HSM ", "NOHSM"))
    if res.returncode == 0 and line.startswith("HSM "):
        parts = line.split(" ")
        rp.hsm_version = parts[1]
        rp.python_path = " ".join(parts[2:-1])
        rp.cpus = int(parts[-1]) if parts[-1].isdigit() else None
    elif res.returncode == 0 and line.startswith("NOHSM") and "cannot import name" in line and "'hsm_core.plugin'" in line:
        # hsm-core is there, but older than the plugin API this plugin was written for.
        rp.problems.append(f"hsm-core on {host.name} is too old for this hsm ({python}: {line[6:]})")
        rp.hints.append(f"install hsm-core {CORE_VERSION} there, as here ({python} -m pip install ./ in a checkout"
                        f" of hsm's repository), or set python_interpreter for {host.name}")
    elif res.returncode == 0 and line.startswith("NOHSM"):
        rp.problems.append(f"hsm is not installed on {host.name} ({python} cannot import hsm_core: {line[6:]})")
        # hsm-core is on no package index: name what installs it (a checkout of hsm), not a bare name.
        rp.hints.append(f"install hsm-core there ({python} -m pip install ./ in a checkout of hsm's repository),"
                        f" or set python_interpreter for {host.name}")
    elif res.returncode == 127 or "not found" in res.stderr.lower() or "no such file" in res.stderr.lower():
        rp.problems.append(f"Python {python} ({rp.python_from}) was not found on {host.name}")
        rp.hints.append(f"set python_interpreter for {host.name} (hsm remote add {host.name} --python PATH)")
    else:
        said = (res.stderr.strip() or res.stdout.strip())[-300:]
        rp.problems.append(f"{python} failed on {host.name} (exit {res.returncode}): {said}")
        rp.hints.append(f"check the interpreter on {host.name}, or set python_interpreter")
    return rp
