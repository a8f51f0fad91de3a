"""The Slurm source passes the contract every compute source passes, on the real local Slurm."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hsm_core.plugin import SourceContext
from hsm_core.testing import ComputeSourceContract, ContractCase, fresh_registry
from hsm_core.testing.services import SlurmCluster
from hsm_core.testing.slurm_fixtures import cancel_sweep_jobs
from hsm_plugin_slurm.source import SlurmSource


@pytest.mark.slurm
class TestSlurmSource(ComputeSourceContract):
    timeout = 90.0

    @pytest.fixture(autouse=True)
    def _cluster(self, slurm_env: SlurmCluster) -> None:
        self.cluster = slurm_env

    def make_source(self, context: SourceContext, tmp_path: Path) -> SlurmSource:
        return SlurmSource("slurm", {"default_walltime": "00:10:00"}, context)

    def clean_up(self, case: ContractCase) -> None:
        cancel_sweep_jobs(self.cluster, case.sweep_id)


@pytest.mark.slurm
class TestSlurmSourcePythonRunner(TestSlurmSource):
    """The same contract with the Python task runner in every element (``runner:`` set): the
    shell fast path, which the class above runs by default, is held to the same checks."""

    def make_source(self, context: SourceContext, tmp_path: Path) -> SlurmSource:
        runner = f"{sys.executable} -m hsm_core.runner"
        return SlurmSource("slurm", {"default_walltime": "00:10:00", "runner": runner}, context)


def test_the_entry_point_registers_the_source() -> None:
    registry = fresh_registry(entry_points=True)
    record = registry.get("compute_source", "slurm")
    assert record.distribution == "hsm-plugin-slurm"
    assert record.load() is SlurmSource
    assert record.config_schema["properties"]["array_parallelism"]["minimum"] == 1
