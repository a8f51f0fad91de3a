"""Installed-looking plugin distributions for tests: a dist-info with an ``hsm`` entry point and
its module in a throw-away site directory, found by hsm as a pip-installed plugin's would be."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from hsm_core.plugin import PLUGIN_API_VERSION

CURRENT_API = f"{PLUGIN_API_VERSION[0]}.{PLUGIN_API_VERSION[1]}"


def make_dist(site: Path, dist: str, ep_name: str, module: str, code: str, *, api: str | None = CURRENT_API) -> None:
    """A minimal installed distribution (dist-info + module) exposing one ``hsm`` entry point.

    The module declares plugin API ``api`` as shipped plugins do (None: declares nothing)."""
    declaration = f"HSM_PLUGIN_API = {api!r}\n" if api is not None else ""
    (site / f"{module}.py").write_text(declaration + textwrap.dedent(code))
    info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[hsm]\n{ep_name} = {module}\n")


def plugin_env(site: Path, **extra: str) -> dict[str, str]:
    """The environment of an ``hsm`` command that finds the plugins of ``site`` (and ``extra``)."""
    env = {"PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.update(extra)
    return env
