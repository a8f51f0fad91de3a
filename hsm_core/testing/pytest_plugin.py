"""pytest plugin: fixtures for hsm and plugin tests.

Opt-in: ``pytest_plugins = ["hsm_core.testing.pytest_plugin"]`` in a test directory's
``conftest.py`` (hsm-core declares no ``pytest11`` entry point, so that merely installing it changes
no other project's pytest sessions).
"""

from __future__ import annotations

from typing import Iterator

import pytest

from hsm_core.registry import PluginRegistry, get_registry, set_registry


def pytest_configure(config: pytest.Config) -> None:
    """sshd instances of this session live apart from other sessions' (see services.isolate_sshd)."""
    from hsm_core.testing import services

    services.isolate_sshd()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop the services this session started (sshd instances; Slurm and munge only if a test
    session started them and no other one still uses them)."""
    from hsm_core.testing import services

    stopped = services.stop_started_services()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if stopped and reporter is not None:
        reporter.write_line(f"hsm: stopped the test services this session started: {', '.join(stopped)}")


@pytest.fixture
def hsm_registry() -> Iterator[PluginRegistry]:
    """A fresh registry (built-ins + installed plugins) installed as the process-wide one."""
    from hsm_core.registry import build_registry

    old = get_registry.__globals__["_REGISTRY"]
    reg = build_registry()
    set_registry(reg)
    try:
        yield reg
    finally:
        set_registry(old)


@pytest.fixture
def hsm_builtin_registry() -> Iterator[PluginRegistry]:
    """A registry with the built-in plugins only (no entry points)."""
    from hsm_core.registry import build_registry

    old = get_registry.__globals__["_REGISTRY"]
    reg = build_registry(entry_points=False)
    set_registry(reg)
    try:
        yield reg
    finally:
        set_registry(old)


@pytest.fixture(autouse=True)
def _hsm_own_config_layers_only(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the tester's own configuration layers out of every test: the user layer
    (``$XDG_CONFIG_HOME/hsm/hsm_config.yaml``, ``~/.config/hsm``) points at an empty directory
    and ``HSM_CONFIG`` is unset (see :mod:`hsm_core.config.layers`); a test sets them to try them."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.getbasetemp() / "xdg-config-home-of-the-tests"))
    monkeypatch.delenv("HSM_CONFIG", raising=False)
    # hsm's caches (plugin entry points, the command index) start empty in every test: what a
    # test sees never depends on which test ran before it (a test of the caches sets its own).
    monkeypatch.setenv("HSM_CACHE_DIR", str(tmp_path_factory.mktemp("hsm-cache")))
