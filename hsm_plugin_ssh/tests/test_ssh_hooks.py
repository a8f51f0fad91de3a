"""The plugin's hooks as core calls them: registration, the schema, and ``hsm_before_run``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hsm_core.plugin import ComputeSourceRecord, HsmError, SourceContext
from hsm_core.testing import fresh_registry

from ssh_support import free_port


def _context(tmp_path: Path, remotes: dict) -> SourceContext:
    return SourceContext("s", tmp_path / "sweeps" / "outputs" / "s", tmp_path, {"distributed": {"remotes": remotes}})


def test_registration_and_schema() -> None:
    reg = fresh_registry(entry_points=True)
    assert reg.get("compute_source", "ssh").factory == "hsm_plugin_ssh.source:SshSource"
    assert reg.get("host_provider", "ssh").factory == "hsm_plugin_ssh.host:ssh_host"
    out = subprocess.run([sys.executable, "-m", "hsm_core", "config", "schema"], capture_output=True, text=True, check=True)
    remote = json.loads(out.stdout)["$defs"]["remote"]
    keys = set(remote.get("properties", {}))  # the plugin's keys join the core ones (or come as allOf)
    for part in remote.get("allOf", []):
        keys |= set(part.get("properties", {}))
    assert {"lost_after", "known_hosts", "proxy_jump", "transfer"} <= keys


#: Put on PYTHONPATH, it records which modules an ``hsm`` command imported, as it exits.
_RECORD_MODULES = """
import atexit, json, os, sys

def _record():
    with open(os.environ["HSM_TEST_MODULES"], "w") as fh:
        json.dump(sorted(sys.modules), fh)

atexit.register(_record)
"""


def _modules_of(tmp_path: Path, *args: str) -> list[str]:
    """The modules ``hsm ARGS`` imported (seen from outside: a sitecustomize records them at exit)."""
    (tmp_path / "sitecustomize.py").write_text(_RECORD_MODULES)
    out = tmp_path / "modules.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
           "HSM_TEST_MODULES": str(out)}
    subprocess.run([sys.executable, "-m", "hsm_core", *args], capture_output=True, text=True, check=True, env=env, cwd=tmp_path)
    return json.loads(out.read_text())


def test_plugin_load_does_not_import_paramiko(tmp_path: Path) -> None:
    """Loading the plugin (``hsm plugins``) and building every command (``hsm --help``) leave paramiko out."""
    listed = _modules_of(tmp_path, "plugins")
    assert "hsm_plugin_ssh.plugin" in listed and "paramiko" not in listed
    helped = _modules_of(tmp_path, "--help")
    assert "hsm_plugin_ssh.commands" in helped and "paramiko" not in helped


def test_hsm_before_run_stops_a_run_on_an_unreachable_only_source(tmp_path: Path) -> None:
    from hsm_plugin_ssh.source import SshSource

    reg = fresh_registry(entry_points=True)
    entry = {"host": "127.0.0.1", "port": free_port(), "user": "nobody"}
    src = SshSource("down", entry, _context(tmp_path, {"down": entry}))
    with pytest.raises(HsmError, match="cannot reach down .*connection refused"):
        reg.hook.hsm_before_run(sources=[src], project_config={}, options={"verify_sync": True, "project_root": str(tmp_path)})


def test_hsm_before_run_warns_and_continues_with_other_sources(tmp_path: Path, capsys) -> None:
    from hsm_plugin_ssh.source import SshSource

    reg = fresh_registry(entry_points=True)
    LocalSource = reg.get(ComputeSourceRecord.kind, "local").load()
    entry = {"host": "127.0.0.1", "port": free_port(), "user": "nobody"}
    ctx = _context(tmp_path, {"down": entry})
    sources = [LocalSource("local", {}, ctx), SshSource("down", entry, ctx)]
    reg.hook.hsm_before_run(sources=sources, project_config={}, options={"verify_sync": True, "project_root": str(tmp_path)})
    assert "Warning: cannot reach down" in capsys.readouterr().err
    # Only local sources: nothing to do, nothing printed.
    reg.hook.hsm_before_run(sources=sources[:1], project_config={}, options={"verify_sync": True})
