"""The PBS and Torque sources pass the compute-source contract through Slurm's qsub/qstat/qdel
front-ends (slurm-wlm-torque) on the real local cluster."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from hsm_core.plugin import SourceContext
from hsm_core.testing import ComputeSourceContract, ContractCase, fresh_registry
from hsm_core.testing.services import SlurmCluster
from hsm_core.testing.slurm_fixtures import cancel_sweep_jobs
from hsm_plugin_pbs.source import PbsSource, TorqueSource


@pytest.fixture
def pbs_env(slurm_env):
    if shutil.which("qsub") is None:
        from hsm_core.testing.services import require_service

        require_service("pbs", "no qsub on PATH (slurm-wlm-torque is not installed)")
    return slurm_env


class PbsContract(ComputeSourceContract):
    """Shared set-up: the local cluster behind slurm-wlm-torque's qsub/qstat/qdel."""

    timeout = 90.0

    @pytest.fixture(autouse=True)
    def _cluster(self, pbs_env: SlurmCluster) -> None:
        self.cluster = pbs_env

    def clean_up(self, case: ContractCase) -> None:
        cancel_sweep_jobs(self.cluster, case.sweep_id)


@pytest.mark.slurm
class TestPbsSource(PbsContract):
    def make_source(self, context: SourceContext, tmp_path: Path) -> PbsSource:
        return PbsSource("pbs", {"system": "pbs", "default_walltime": "00:10:00"}, context)


@pytest.mark.slurm
class TestTorqueSource(PbsContract):
    def make_source(self, context: SourceContext, tmp_path: Path) -> TorqueSource:
        return TorqueSource("torque", {"default_resources": "nodes=1:ppn=1"}, context)


@pytest.mark.slurm
class TestTorqueSourcePythonRunner(PbsContract):
    """Torque's contract with the Python task runner in every element (``runner:`` set): the
    shell fast path, which the classes above run by default, is held to the same checks."""

    def make_source(self, context: SourceContext, tmp_path: Path) -> TorqueSource:
        runner = f"{sys.executable} -m hsm_core.runner"
        return TorqueSource("torque", {"default_resources": "nodes=1:ppn=1", "runner": runner}, context)


def test_the_entry_point_registers_both_flavours() -> None:
    registry = fresh_registry(entry_points=True)
    pbs = registry.get("compute_source", "pbs")
    torque = registry.get("compute_source", "torque")
    assert pbs.distribution == torque.distribution == "hsm-plugin-pbs"
    assert pbs.load() is PbsSource and torque.load() is TorqueSource


def test_flavour_comes_from_system(tmp_path: Path) -> None:
    from hsm_core.testing import make_sweep

    _, _, ctx = make_sweep(tmp_path, [{"x": 1}])
    assert PbsSource("pbs", {"system": "torque"}, ctx).flavour == "torque"
    assert PbsSource("pbs", {}, ctx).flavour == "pbs"
    assert TorqueSource("torque", {"system": "pbs"}, ctx).flavour == "torque"
