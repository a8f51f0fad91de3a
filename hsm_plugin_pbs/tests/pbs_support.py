"""Helpers and fixtures for the PBS plugin's tests: throw-away projects that see the
local Slurm cluster, and golden files (the cluster fixtures come from hsm_core.testing.slurm_fixtures)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hsm_core.testing.project import Project, wait_for  # noqa: F401 (re-exported for the tests)
from hsm_core.testing.project import assert_golden as _assert_golden
from hsm_core.testing.project import make_project as _make_project
from hsm_core.testing.services import SlurmCluster

GOLDEN = Path(__file__).parent / "golden"


def assert_golden(text: str, name: str) -> None:
    """Compare ``text`` with ``tests/golden/<name>``; ``HSM_UPDATE_GOLDEN=1`` rewrites the file."""
    _assert_golden(text, GOLDEN / name)


def make_project(root: Path, cluster: SlurmCluster, hpc: str = "") -> Project:
    """A project at ``root`` whose ``hsm`` runs see the local cluster (``SLURM_CONF``)."""
    return _make_project(root, name="pbstest", config_extra=hpc, env={"SLURM_CONF": str(cluster.conf)})


@pytest.fixture
def project(tmp_path: Path, slurm_cluster: SlurmCluster) -> Project:
    return make_project(tmp_path / "proj", slurm_cluster, "hpc:\n  system: slurm\n  default_walltime: \"00:10:00\"\n")


@pytest.fixture
def pbs_cluster(slurm_cluster: SlurmCluster) -> SlurmCluster:
    """The local Slurm cluster, seen through its Torque front-end (slurm-wlm-torque's qsub):
    missing, it fails under CI=true and skips elsewhere."""
    if shutil.which("qsub") is None:
        from hsm_core.testing.services import require_service

        require_service("pbs", "no qsub on PATH (slurm-wlm-torque is not installed)")
    return slurm_cluster
