"""sacct's usage in hsm status --tasks and hsm export, on a real Slurm cluster WITH accounting
(MariaDB + slurmdbd: :mod:`hsm_core.testing.slurm_accounting`, next to the shared cluster, which
has none)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hsm_core.testing.services import ServiceUnavailable, require_service
from hsm_core.testing.slurm_accounting import NODE, accounting_cluster
from slurm_support import make_project, wait_for

pytestmark = pytest.mark.slurm

#: A training step that holds 80 MiB (pages touched, so they count) and keeps one CPU busy.
BUSY = """
import time
block = bytearray(80 * 1024 * 1024)
for i in range(0, len(block), 4096):
    block[i] = 1
start = time.time()
while time.time() - start < 2.0:
    pass
print("done")
"""


@pytest.fixture
def acct_cluster(tmp_path: Path):
    try:
        manager = accounting_cluster(tmp_path / "acct")
        cluster = manager.__enter__()
    except ServiceUnavailable as exc:
        require_service("slurm", f"no Slurm cluster with accounting: {exc}")
    try:
        yield cluster
    finally:
        manager.__exit__(None, None, None)


def test_usage_from_sacct_in_status_and_export(tmp_path: Path, acct_cluster) -> None:
    project = make_project(tmp_path / "proj", acct_cluster, 'hpc:\n  system: slurm\n  default_walltime: "00:10:00"\n')
    (project.root / "train.py").write_text(BUSY)
    cfg = project.write_sweep({"grid": {"x": [1, 2]}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", "slurm")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sweep = project.only_sweep()
    job = json.loads((sweep / "scripts" / "job_scripts" / "jobs.jsonl").read_text().splitlines()[0])["job_id"]

    def exported():
        rows = json.loads(project.hsm("export", sweep.name, "--format", "json", check=True).stdout)
        return rows if all(r.get("max_rss") for r in rows) else None

    # slurmdbd stores a job's record a moment after it ended.
    rows = wait_for(exported, 30, interval=1, what="sacct usage in the export")
    for i, row in enumerate(rows):
        assert row["scheduler_id"] == f"{job}_{i}"
        assert row["elapsed"] >= 2 and row["nodes"] == NODE
        assert 80 * 1024**2 <= row["max_rss"] < 1024**3
        assert 0.3 <= row["cpu_efficiency"] <= 1.0  # one busy CPU of the one allotted, minus start-up
    tasks = json.loads(project.hsm("status", sweep.name, "--tasks", "--json", check=True).stdout)["tasks"]
    assert [t["max_rss"] for t in tasks] == [r["max_rss"] for r in rows]
    table = project.hsm("status", sweep.name, "--tasks", check=True).stdout
    assert "Max RSS" in table and "CPU eff." in table and NODE in table
