"""The ``Project`` of hsm's own tests: :mod:`hsm_core.testing.project`, under the name tests import.

A module of its own, not conftest.py: pytest runs these tests together with every plugin's tests,
and each of those directories has a conftest.py, so ``from conftest import`` would find the wrong one.
"""

from __future__ import annotations

from pathlib import Path

from hsm_core.testing.project import Project, wait_for
from hsm_core.testing.project import make_project as _make_project

__all__ = ["Project", "make_project", "wait_for"]


def make_project(tmp_path: Path) -> Project:
    """The standard test project at ``tmp_path/proj`` (local source with 2 slots)."""
    return _make_project(tmp_path / "proj")
