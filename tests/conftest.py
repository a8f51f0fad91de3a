"""Shared fixtures for hsm's own tests (the helpers live in hsm_project.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hsm_project import Project, make_project

# The test kit's fixtures (hsm_registry, hsm_builtin_registry) are opt-in: hsm-core registers no
# pytest plugin of its own, so every test directory names it here.
pytest_plugins = ["hsm_core.testing.pytest_plugin"]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A throw-away project; ``project.hsm(...)`` runs the real ``hsm`` in it."""
    return make_project(tmp_path)
