"""The plugin's hooks as core calls them (registration, the schema) and the source's ``before_run``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hsm_core.plugin import ComputeSourceRecord, HsmError, RunStart, SourceContext, SourceUnavailable
from hsm_core.testing import before_run, fresh_registry

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


def _modules_of(tmp_path: Path, *args: str, **extra_env: str) -> list[str]:
    """The modules ``hsm ARGS`` imported (seen from outside: a sitecustomize records them at exit)."""
    (tmp_path / "sitecustomize.py").write_text(_RECORD_MODULES)
    out = tmp_path / "modules.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
           "HSM_TEST_MODULES": str(out), **extra_env}
    subprocess.run([sys.executable, "-m", "hsm_core", *args], capture_output=True, text=True, check=True, env=env, cwd=tmp_path)
    return json.loads(out.read_text())


def test_plugin_load_does_not_import_paramiko(tmp_path: Path) -> None:
    """Loading the plugin (``hsm plugins``) and building every command (``hsm --help``) leave paramiko out."""
    listed = _modules_of(tmp_path, "plugins")
    assert "hsm_plugin_ssh.plugin" in listed and "paramiko" not in listed
    # Every command built (no cached command index: hsm --help then loads each command as it did).
    helped = _modules_of(tmp_path, "--help", HSM_CACHE_DIR="off")
    assert "hsm_plugin_ssh.commands" in helped and "paramiko" not in helped


def test_before_run_stops_a_run_on_an_unreachable_only_source(tmp_path: Path) -> None:
    from hsm_plugin_ssh.source import SshSource

    entry = {"host": "127.0.0.1", "port": free_port(), "user": "nobody"}
    src = SshSource("down", entry, _context(tmp_path, {"down": entry}))
    # The source says "not reachable now" (SourceUnavailable); with no other source, core stops the run.
    with pytest.raises(SourceUnavailable, match="cannot reach down .*connection refused"):
        src.before_run(RunStart(verify_sync=True))
    with pytest.raises(HsmError, match="cannot reach down .*connection refused") as stopped:
        before_run([src])
    assert not isinstance(stopped.value, SourceUnavailable)


def test_before_run_warns_and_continues_with_other_sources(tmp_path: Path) -> None:
    from hsm_plugin_ssh.source import SshSource

    reg = fresh_registry(entry_points=True)
    LocalSource = reg.get(ComputeSourceRecord.kind, "local").load()
    entry = {"host": "127.0.0.1", "port": free_port(), "user": "nobody"}
    ctx = _context(tmp_path, {"down": entry})
    sources = [LocalSource("local", {}, ctx), SshSource("down", entry, ctx)]
    said: list[str] = []
    before_run(sources, registry=reg, warn=said.append)
    assert len(said) == 1 and said[0].startswith("Warning: cannot reach down")
    # Only local sources: nothing to do, nothing said.
    before_run(sources[:1], registry=reg, warn=said.append)
    assert len(said) == 1


def test_the_plugin_implements_no_deprecated_hook() -> None:
    """hsm test and the checks before a run are SshSource methods (plugin API 1.2), not hooks."""
    listing = subprocess.run([sys.executable, "-m", "hsm_core", "plugins", "--json"], capture_output=True, text=True, check=True)
    ssh = next(p for p in json.loads(listing.stdout)["plugins"] if p["name"] == "ssh")
    assert ssh["status"] == "loaded" and ssh["warnings"] == []
