"""A scheduler named in ``--sources`` is used whatever ``hpc.system`` says.

``hsm config init`` on a machine with Slurm and its Torque front-end (or a site that ships
``hpc.system: slurm``) writes ``hpc.system: slurm``, which says what ``--sources hpc`` means. A user
of the PBS plugin then types ``--sources pbs``: that names the scheduler itself, and runs with PBS
job scripts, as ``--sources torque`` does, instead of stopping on ``system 'slurm' is not PBS``.
The job scripts are the real PBS plugin's (``--dry-run``); the client commands are stand-ins.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_batch_clients import project_with_fake_clients


@pytest.mark.parametrize(("source", "array_line"), [("pbs", "#PBS -J 0-1"), ("torque", "#PBS -t 0-1")])
def test_a_pbs_source_named_on_the_command_line_runs_next_to_hpc_system_slurm(tmp_path: Path, source: str, array_line: str) -> None:
    project = project_with_fake_clients(tmp_path, hpc="  system: slurm\n")
    cfg = project.write_sweep({"grid": {"lr": [0.1, 0.2]}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", source, "--walltime", "00:10:00", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert array_line in proc.stdout.splitlines()
    assert "#PBS -l walltime=00:10:00" in proc.stdout.splitlines()
    assert not (tmp_path / "SUBMITTED").exists() and project.sweep_ids() == []
