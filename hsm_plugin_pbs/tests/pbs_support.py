"""Helpers and fixtures for the PBS plugin's tests: the real local Slurm cluster and throw-away projects."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from hsm_core.testing.project import Project, wait_for  # noqa: F401 (re-exported for the tests)
from hsm_core.testing.project import assert_golden as _assert_golden
from hsm_core.testing.project import make_project as _make_project
from hsm_core.testing.services import ServiceUnavailable, SlurmCluster, require_service, start_slurm

GOLDEN = Path(__file__).parent / "golden"


def assert_golden(text: str, name: str) -> None:
    """Compare ``text`` with ``tests/golden/<name>``; ``HSM_UPDATE_GOLDEN=1`` rewrites the file."""
    _assert_golden(text, GOLDEN / name)


@pytest.fixture(scope="session")
def slurm_cluster() -> SlurmCluster:
    """The shared local Slurm cluster with default settings."""
    try:
        return start_slurm()
    except ServiceUnavailable as exc:
        require_service("slurm", str(exc))


@pytest.fixture
def slurm_env(slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> SlurmCluster:
    """SLURM_CONF set for this process (sources run sbatch/squeue through the local host)."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    return slurm_cluster


def make_project(root: Path, cluster: SlurmCluster, hpc: str = "") -> Project:
    """A project at ``root`` whose ``hsm`` runs see the local cluster (``SLURM_CONF``)."""
    return _make_project(root, name="pbstest", config_extra=hpc, env={"SLURM_CONF": str(cluster.conf)})


@pytest.fixture
def project(tmp_path: Path, slurm_cluster: SlurmCluster) -> Project:
    return make_project(tmp_path / "proj", slurm_cluster, "hpc:\n  system: slurm\n  default_walltime: \"00:10:00\"\n")


@pytest.fixture
def squeue(slurm_cluster: SlurmCluster) -> Iterator[Any]:
    def run(*args: str) -> str:
        return slurm_cluster.run(["squeue", "-h", *args], check=False).stdout
    yield run
