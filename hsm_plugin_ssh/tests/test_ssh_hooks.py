"""The plugin's hooks as core calls them: registration, the schema, and ``hsm_before_run``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hsm_core.plugin import HsmError, SourceContext
from hsm_core.plugins import build_registry

from ssh_support import free_port


def _context(tmp_path: Path, remotes: dict) -> SourceContext:
    return SourceContext("s", tmp_path / "sweeps" / "outputs" / "s", tmp_path, {"distributed": {"remotes": remotes}})


def test_registration_and_schema() -> None:
    reg = build_registry()
    assert reg.get("compute_source", "ssh").factory == "hsm_plugin_ssh.source:SshSource"
    assert reg.get("host_provider", "ssh").factory == "hsm_plugin_ssh.host:ssh_host"
    out = subprocess.run([sys.executable, "-m", "hsm_core", "config", "schema"], capture_output=True, text=True, check=True)
    remote = json.loads(out.stdout)["$defs"]["remote"]
    keys = set(remote.get("properties", {}))  # the plugin's keys join the core ones (or come as allOf)
    for part in remote.get("allOf", []):
        keys |= set(part.get("properties", {}))
    assert {"lost_after", "known_hosts", "proxy_jump", "transfer"} <= keys


def test_plugin_load_does_not_import_paramiko() -> None:
    code = "import sys, hsm_core.plugins as p; p.build_registry(); import hsm_core.cli.main as m; m.build_cli(); print('paramiko' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_hsm_before_run_stops_a_run_on_an_unreachable_only_source(tmp_path: Path) -> None:
    from hsm_plugin_ssh.source import SshSource

    reg = build_registry()
    entry = {"host": "127.0.0.1", "port": free_port(), "user": "nobody"}
    src = SshSource("down", entry, _context(tmp_path, {"down": entry}))
    with pytest.raises(HsmError, match="cannot reach down .*connection refused"):
        reg.hook.hsm_before_run(sources=[src], project_config={}, options={"verify_sync": True, "project_root": str(tmp_path)})


def test_hsm_before_run_warns_and_continues_with_other_sources(tmp_path: Path, capsys) -> None:
    from hsm_core.builtin.local import LocalSource

    from hsm_plugin_ssh.source import SshSource

    reg = build_registry()
    entry = {"host": "127.0.0.1", "port": free_port(), "user": "nobody"}
    ctx = _context(tmp_path, {"down": entry})
    sources = [LocalSource("local", {}, ctx), SshSource("down", entry, ctx)]
    reg.hook.hsm_before_run(sources=sources, project_config={}, options={"verify_sync": True, "project_root": str(tmp_path)})
    assert "Warning: cannot reach down" in capsys.readouterr().err
    # Only local sources: nothing to do, nothing printed.
    reg.hook.hsm_before_run(sources=sources[:1], project_config={}, options={"verify_sync": True})
