"""sacct's usage lines -> elapsed, peak memory, CPU efficiency and nodes of each array element.

This machine's cluster keeps no accounting (AccountingStorageType=accounting_storage/none), so the
parsing is tested on output in sacct's real ``-n -P --format=JobID,ElapsedRaw,CPUTimeRAW,TotalCPU,
MaxRSS,NodeList`` form (one line per element's allocation, one per step), and the command itself
through a ``sacct`` on PATH that prints it; the real cluster's refusal is in
test_slurm_task_link.py (nothing said, nothing fails).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hsm_core.plugin import QueryFailed, SourceContext
from hsm_plugin_slurm.accounting import parse_cpu_time, parse_rss, parse_sacct_usage
from hsm_plugin_slurm.source import SlurmSource

# Two elements that ran (one with an srun step), one that was cancelled while pending.
SACCT = """\
4242_0|125|250|01:02.500||node[01-02]
4242_0.batch|125|250|01:02.400|145792K|node01
4242_0.extern|125|250|00:00.001|992K|node[01-02]
4242_1|3725|3725|1-00:00:00||node03
4242_1.batch|3725|3725|00:10.000|2.5G|node03
4242_1.0|3720|3720|59:59.000|1048576K|node03
4242_[2-3]|0|0|00:00:00||None assigned
"""


def test_usage_per_element_from_its_allocation_and_steps() -> None:
    usage = parse_sacct_usage(SACCT)
    assert usage["4242_0"] == {"elapsed": 125, "cpu_efficiency": 0.25, "nodes": "node[01-02]", "max_rss": 145792 * 1024}
    # The peak is the largest step's; efficiency never above 1 (sacct rounds TotalCPU).
    assert usage["4242_1"]["max_rss"] == int(2.5 * 1024**3)
    assert usage["4242_1"]["cpu_efficiency"] == 1.0 and usage["4242_1"]["elapsed"] == 3725
    # A pending element that never ran: no usage, no node.
    assert usage.get("4242_[2-3]", {}).get("nodes") is None and "cpu_efficiency" not in usage.get("4242_[2-3]", {})


@pytest.mark.parametrize("text,seconds", [("01:02.500", 62.5), ("1:02:03", 3723.0), ("2-01:00:00", 176400.0),
                                          ("00:00:00", 0.0), ("", None), ("INVALID", None)])
def test_cpu_time_forms(text: str, seconds: float | None) -> None:
    assert parse_cpu_time(text) == seconds


@pytest.mark.parametrize("text,n", [("145792K", 145792 * 1024), ("12M", 12 * 1024**2), ("0", 0), ("", None), ("3.5G", int(3.5 * 1024**3))])
def test_rss_forms(text: str, n: int | None) -> None:
    assert parse_rss(text) == n


def _fake_sacct(tmp_path: Path, body: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "sacct"
    tool.write_text("#!/bin/sh\n" + body)
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return bindir / "args"


def _source(tmp_path: Path) -> SlurmSource:
    ctx = SourceContext(sweep_id="s", sweep_dir=tmp_path / "sweep", project_root=tmp_path, project_config={})
    return SlurmSource("slurm", {}, ctx)


def test_job_accounting_asks_sacct_once_per_array_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = _fake_sacct(tmp_path, f'echo "$@" > "{tmp_path}/bin/args"\ncat <<"EOF" | tr "|" "\\037"\n{SACCT}EOF\n', monkeypatch)
    usage = _source(tmp_path).job_accounting(["4242", "4243"])
    assert usage["4242_0"]["max_rss"] == 145792 * 1024
    assert "-j 4242,4243" in args.read_text() and "--format JobID,ElapsedRaw,CPUTimeRAW,TotalCPU,MaxRSS,NodeList" in args.read_text()


def test_no_accounting_is_a_query_failure_the_views_keep_quiet_about(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_sacct(tmp_path, 'echo "Slurm accounting storage is disabled" >&2\nexit 1\n', monkeypatch)
    with pytest.raises(QueryFailed, match="accounting storage is disabled"):
        _source(tmp_path).job_accounting(["4242"])


def test_describe_tasks_names_each_element_and_adds_its_usage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from hsm_core.plugin import SubmittedChunk, TaskSpec

    _fake_sacct(tmp_path, f'cat <<"EOF" | tr "|" "\\037"\n{SACCT}EOF\n', monkeypatch)
    src = _source(tmp_path)
    specs = [TaskSpec(f"t{i}", i + 1, {}, tmp_path / "sweep" / "tasks" / f"task_00{i + 1}", "s", tmp_path / "sweep") for i in range(3)]
    src.job_dir.mkdir(parents=True)
    chunk = SubmittedChunk("4242", "n", "slurm_001.sh", "slurm_001.list", ["t0", "t1", "t2"])
    (src.job_dir / "jobs.jsonl").write_text(json.dumps({**chunk.to_json(), "source": "slurm"}) + "\n")  # as submitted
    links = src.describe_tasks(specs)
    assert links["t0"] == {"scheduler_id": "4242_0", "elapsed": 125, "cpu_efficiency": 0.25, "nodes": "node[01-02]",
                           "max_rss": 145792 * 1024}
    assert links["t2"] == {"scheduler_id": "4242_2"}  # sacct said nothing about it
