"""Metrics an evaluation writes into a task's ``metrics.json`` after the sweep kept them
(hsm_core.metrics_freshness): every way a script rewrites the file is seen, through the forked
check a big sweep uses and in-process alike, and ``hsm export`` shows the new values."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hsm_core import indexed_metrics, metrics_freshness
from hsm_core.monitor.export import read_metrics


def _kept_sweep(root: Path, n: int) -> Path:
    """A sweep dir whose ``n`` tasks' metrics were kept as a controller keeps them."""
    sweep = root / "sweep"
    for i in range(1, n + 1):
        d = sweep / "tasks" / f"task_{i:03d}"
        d.mkdir(parents=True)
        if i != 4:  # task 4 wrote no metrics when it ran
            (d / "metrics.json").write_text(json.dumps({"val_acc": i / 10}))
        stamp = indexed_metrics.file_stamp(str(d / "metrics.json"))
        indexed_metrics.remember(sweep, f"id{i}", 1, read_metrics(d), task_dir=d.name, stamp=stamp)
    return sweep


def _evaluate(sweep: Path) -> None:
    """What evaluation scripts do to tasks 1-4; task 5 and later are left alone."""
    tasks = sweep / "tasks"
    (tasks / "task_001" / "metrics.json").write_text(json.dumps({"val_acc": 0.1, "test_acc": 0.7}))  # in place
    tmp = tasks / "task_002" / "metrics.json.tmp"
    tmp.write_text(json.dumps({"val_acc": 0.2, "test_acc": 0.8}))
    os.replace(tmp, tasks / "task_002" / "metrics.json")  # an atomic replace
    (tasks / "task_003" / "metrics.json").unlink()
    (tasks / "task_004" / "metrics.json").write_text(json.dumps({"test_acc": 0.9}))  # a new file


@pytest.mark.parametrize("forked", [True, False])
def test_the_check_names_exactly_the_tasks_whose_file_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              forked: bool) -> None:
    sweep = _kept_sweep(tmp_path, 8)
    # (a big sweep forks the check; here a small one is made to, so the child's answer is judged)
    monkeypatch.setattr(metrics_freshness, "FORK_ABOVE_BYTES", 0 if forked else 1 << 40)
    assert metrics_freshness.Check(str(sweep)).result() == set()
    _evaluate(sweep)
    check = metrics_freshness.Check(str(sweep))
    assert (check._pid != 0) == forked
    assert check.result() == {"id1", "id2", "id3", "id4"}
    assert metrics_freshness.Check(str(sweep)).result() == {"id1", "id2", "id3", "id4"}  # (from the stamps' cache)


def test_lines_of_an_older_hsm_without_stamps_are_left_as_kept(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    (sweep / "tasks" / "task_001").mkdir(parents=True)
    indexed_metrics.remember(sweep, "id1", 1, {"val_acc": 0.1})
    (sweep / "tasks" / "task_001" / "metrics.json").write_text("{}")
    assert metrics_freshness.Check(str(sweep)).result() == set()


def test_hsm_export_of_a_big_sweep_shows_what_an_evaluation_added(tmp_path: Path) -> None:
    """Past the size where export forks the check (the real ``hsm export`` command)."""
    from hsm_core.state import SweepDir, TaskRecord, now_iso
    from hsm_core.testing.project import make_project

    project = make_project(tmp_path / "proj", script="pass\n")
    sweep = SweepDir(project.root / "sweeps" / "outputs" / "big")
    sweep.path.mkdir(parents=True)
    sweep.create_layout()
    records = []
    n = 12_000  # (a metrics file past metrics_freshness.FORK_ABOVE_BYTES)
    for i in range(1, n + 1):
        d = sweep.task_dir(i)
        d.mkdir()
        (d / "metrics.json").write_text(json.dumps({"val_acc": i / n, "note": "x" * 40}))
        rec = TaskRecord(i, f"{i:016x}", {"seed": i})
        rec.update_from_status({"state": "completed", "source": "local", "duration": 1, "exit_code": 0, "attempt": 1})
        indexed_metrics.remember(sweep.path, rec.task_id, 1, read_metrics(d), task_dir=d.name,
                                 stamp=indexed_metrics.file_stamp(str(d / "metrics.json")))
        records.append(rec)
    sweep.save_index(records, mapping=True)
    sweep.write_metadata({"sweep_id": "big", "created": now_iso(), "status": "completed", "sources": "local"})
    assert os.path.getsize(sweep.path / indexed_metrics.METRICS_INDEX) > metrics_freshness.FORK_ABOVE_BYTES
    (sweep.task_dir(7) / "metrics.json").write_text(json.dumps({"val_acc": 7 / n, "test_acc": 0.5}))
    rows = json.loads(project.hsm("export", "big", "--format", "json", check=True).stdout)
    assert len(rows) == n
    assert rows[6]["test_acc"] == 0.5 and rows[6]["task"] == "task_007"
    assert [r["test_acc"] for r in rows if r["task"] != "task_007"] == [None] * (n - 1)


def test_a_forked_check_that_never_answers_is_killed_and_made_in_process(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    sweep = _kept_sweep(tmp_path, 5)
    _evaluate(sweep)
    parent = os.getpid()
    real = metrics_freshness.changed

    def stuck_in_the_child(path: str) -> set[str]:
        if os.getpid() != parent:
            import time

            time.sleep(600)  # (a lock held at the fork, never released in the child)
        return real(path)

    monkeypatch.setattr(metrics_freshness, "FORK_ABOVE_BYTES", 0)
    monkeypatch.setattr(metrics_freshness, "CHILD_TIMEOUT", 0.5)
    monkeypatch.setattr(metrics_freshness, "changed", stuck_in_the_child)
    check = metrics_freshness.Check(str(sweep))
    child = check._pid
    assert child
    assert check.result() == {"id1", "id2", "id3", "id4"}
    with pytest.raises(ChildProcessError):
        os.waitpid(child, os.WNOHANG)  # killed and reaped: nothing of it is left
