"""pytest fixtures for scheduler plugins tested against the real local Slurm cluster.

Import the ones a test suite needs into its ``conftest.py``::

    from hsm_core.testing.slurm_fixtures import slurm_cluster, slurm_env, squeue  # noqa: F401

The cluster is started (or reused) through :func:`hsm_core.testing.services.start_slurm`; without
Slurm the tests that use it are skipped, or fail under ``CI=true``.
"""

from __future__ import annotations

from typing import Callable, Iterator

import pytest

from hsm_core.testing.services import ServiceUnavailable, SlurmCluster, require_service, start_slurm


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


@pytest.fixture
def squeue(slurm_cluster: SlurmCluster) -> Iterator[Callable[..., str]]:
    """``squeue("-j", "123")``: the local cluster's ``squeue -h`` output with these arguments."""

    def run(*args: str) -> str:
        return slurm_cluster.run(["squeue", "-h", *args], check=False).stdout

    yield run


def cancel_sweep_jobs(cluster: SlurmCluster, sweep_id: str) -> list[str]:
    """``scancel`` every job of the local cluster named after ``sweep_id`` (hsm names a sweep's
    jobs ``hsm_<sweep_id>_NNN``): a contract test's ``clean_up`` after a source that failed to
    stop its jobs. Returns the job ids cancelled."""
    out = cluster.run(["squeue", "-h", "-o", "%A %j"], check=False).stdout
    ids = [parts[0] for parts in (line.split() for line in out.splitlines())
           if len(parts) == 2 and sweep_id in parts[1]]
    if ids:
        cluster.run(["scancel", *ids], check=False)
    return ids
