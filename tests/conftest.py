"""Shared fixtures for hsm's own tests.

Test support code lives apart from the tests, in tests/support/ (tests/README.md maps each
module to its tests); it is importable by name from every test (``from hsm_project import ...``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))

from hsm_project import Project, make_project  # noqa: E402

# The test kit's fixtures (hsm_registry, hsm_builtin_registry) are opt-in: hsm-core registers no
# pytest plugin of its own, so every test directory names it here.
pytest_plugins = ["hsm_core.testing.pytest_plugin"]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A throw-away project; ``project.hsm(...)`` runs the real ``hsm`` in it."""
    return make_project(tmp_path)
