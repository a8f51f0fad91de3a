"""Fixtures: one project with real W&B runs (built once per session), an sshd "remote"."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from wandb_project import WandbProject, build  # noqa: E402

from hsm_core.testing.services import ServiceUnavailable, LocalSshd, require_service, start_sshd  # noqa: E402

# The test kit's fixtures (hsm_registry, hsm_builtin_registry) are opt-in: hsm-core registers no
# pytest plugin of its own, so every test directory names it here.
pytest_plugins = ["hsm_core.testing.pytest_plugin"]

SSHD_NAME = "hsm-wandb-sync-tests"


@pytest.fixture(scope="session")
def wandb_project(tmp_path_factory: pytest.TempPathFactory) -> WandbProject:
    """The project of ``wandb_project.py`` (read-only for tests: copy it to change it)."""
    if importlib.util.find_spec("wandb") is None:
        pytest.skip("the wandb package is not installed (pip install -e 'hsm_plugin_wandb_sync[test]')")
    return build(tmp_path_factory.mktemp("wandb"))


@pytest.fixture(scope="session")
def ssh_host() -> Iterator[LocalSshd]:
    try:
        host = start_sshd(SSHD_NAME)
    except ServiceUnavailable as exc:
        require_service("sshd", str(exc))
    yield host
