"""Torque through Slurm's qsub front-end, the way issue 16 found it: every element of an array
wrote the same ``<script>.o<id>`` (the last one won), and directives written for Slurm ended up in
PBS scripts, which qsub refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from hsm_core.plugin import ConfigError
from hsm_core.testing import make_sweep
from hsm_core.testing.project import make_project as make_plain_project
from hsm_plugin_pbs.source import PbsSource, TorqueSource
from pbs_support import make_project



@pytest.mark.slurm
def test_each_torque_element_writes_its_own_log_and_records_its_own_job_id(tmp_path: Path, pbs_cluster) -> None:
    hpc = ('hpc:\n  system: torque\n  default_walltime: "00:10:00"\n'
           '  setup_commands: ["echo element $HSM_ARRAY_INDEX of array $HSM_ARRAY_ID"]\n')
    project = make_project(tmp_path / "proj", pbs_cluster, hpc)
    cfg = project.write_sweep({"grid": {"x": [1, 2, 3]}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", "torque")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sweep = project.only_sweep()
    statuses = project.statuses(sweep)
    assert {s["state"] for s in statuses.values()} == {"completed"}
    logs = sorted((sweep / "logs" / "jobs").glob(f"hsm_{sweep.name}_001_*.out"))
    assert len(logs) == 3, logs
    array_id = logs[0].name.split("_")[-2]
    for i, log in enumerate(logs):
        assert log.name == f"hsm_{sweep.name}_001_{array_id}_{i}.out"
        assert log.read_text().split("\n")[0] == f"element {i} of array {array_id}"  # its own, nobody else's
    # Each task names its own element, not the array.
    assert len({s["job_id"] for s in statuses.values()}) == 3


def _context(tmp_path: Path):
    _, specs, ctx = make_sweep(tmp_path / "p", [{"x": 1}])
    (tmp_path / "p" / "hsm_config.yaml").write_text("hpc: {}\n")
    return ctx


@pytest.mark.parametrize("entry", ["--signal=B:USR1@30", "#SBATCH --exclusive"])
def test_a_slurm_directive_is_refused_for_pbs_naming_the_file_and_key(tmp_path: Path, entry: str) -> None:
    ctx = _context(tmp_path)
    for cls in (PbsSource, TorqueSource):
        with pytest.raises(ConfigError) as err:
            cls("pbs", {"extra_directives": ["-m n", entry]}, ctx)
        message = str(err.value)
        assert "hsm_config.yaml" in message and "hpc.extra_directives[1]" in message and "\n" not in message


def test_scoped_directives_reach_only_their_scheduler(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    options = {"extra_directives": ["-r n"], "slurm": {"extra_directives": ["--signal=B:USR1@30"]},
               "pbs": {"extra_directives": ["-m n"]}}
    assert TorqueSource("torque", options, ctx).extra_directives == ("-r n", "-m n")


def test_hsm_run_refuses_slurm_directives_for_torque_with_one_line(tmp_path: Path) -> None:
    project = make_plain_project(tmp_path / "proj", config_extra='hpc:\n  system: torque\n  extra_directives: ["--signal=B:USR1@30"]\n')
    cfg = project.write_sweep({"grid": {"x": [1]}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", "torque")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = proc.stderr.strip()
    assert len(line.splitlines()) <= 2 and "hsm_config.yaml" in line and "hpc.extra_directives[0]" in line, line
    assert "Traceback" not in proc.stderr
    assert project.sweep_ids() == []  # nothing was created, nothing submitted
