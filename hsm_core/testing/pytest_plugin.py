"""pytest plugin (entry point ``pytest11``): fixtures for hsm and plugin tests."""

from __future__ import annotations

from typing import Iterator

import pytest

from hsm_core.plugins import PluginRegistry, get_registry, set_registry


@pytest.fixture
def hsm_registry() -> Iterator[PluginRegistry]:
    """A fresh registry (built-ins + installed plugins) installed as the process-wide one."""
    from hsm_core.plugins import build_registry

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
    from hsm_core.plugins import build_registry

    old = get_registry.__globals__["_REGISTRY"]
    reg = build_registry(entry_points=False)
    set_registry(reg)
    try:
        yield reg
    finally:
        set_registry(old)
