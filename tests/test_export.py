"""`hsm export SWEEP_ID --format csv|json`: one row per task, as a user loads it into pandas."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest

from hsm_project import Project
from hsm_core.monitor.export import build_table, to_csv, to_json
from hsm_core.state import SweepDir, TaskRecord
from monitor_sweeps import outcome_project, run_outcome_sweep

COLUMNS = ["task", "id", "mode", "lr", "opt", "status", "source", "duration", "exit_code", "loss", "acc.top1", "acc.top5"]


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Path]:
    project = outcome_project(tmp_path_factory.mktemp("export") / "proj")
    return project, run_outcome_sweep(project)


def _expected_loss(lr: float, opt: str) -> float:
    return round(1.0 / (lr * 100) + (0.5 if opt != "adam" else 0.0), 4)


def test_csv_has_one_row_per_task_with_params_status_and_metrics(done: tuple[Project, Path]) -> None:
    project, sweep = done
    proc = project.hsm("export", sweep.name, "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert list(rows[0].keys()) == COLUMNS
    assert [r["task"] for r in rows] == [f"task_{i:03d}" for i in range(1, 17)]
    assert len({r["id"] for r in rows}) == 16
    by_mode: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_mode.setdefault(r["mode"], []).append(r)
        assert r["source"] == "local" and float(r["duration"]) > 0
    for r in by_mode["ok"]:
        assert r["status"] == "completed" and r["exit_code"] == "0"
        assert float(r["loss"]) == _expected_loss(float(r["lr"]), r["opt"])
        assert float(r["acc.top5"]) == 0.99
    for mode, code in (("oom", "1"), ("value", "1"), ("kill", "137")):
        for r in by_mode[mode]:
            assert r["status"] == "failed" and r["exit_code"] == code
            assert r["loss"] == "" and r["acc.top1"] == ""  # failed tasks wrote no metrics
    assert {r["opt"] for r in rows} == {"adam", "<i>sgd</i>"}  # values as given, not mangled


def test_json_rows_keep_types(done: tuple[Project, Path]) -> None:
    project, sweep = done
    rows = json.loads(project.hsm("export", sweep.name, "--format", "json", check=True).stdout)
    assert len(rows) == 16 and list(rows[0]) == COLUMNS
    ok = [r for r in rows if r["mode"] == "ok"]
    assert all(isinstance(r["lr"], float) and isinstance(r["loss"], float) and r["exit_code"] == 0 for r in ok)
    assert all(r["loss"] is None and isinstance(r["exit_code"], int) for r in rows if r["mode"] != "ok")


def test_output_file_and_a_missing_directory(done: tuple[Project, Path], tmp_path: Path) -> None:
    project, sweep = done
    target = tmp_path / "results.csv"
    proc = project.hsm("export", sweep.name, "--output", str(target), check=True)
    assert proc.stdout == "" and "Wrote" in proc.stderr and "16 task rows" in proc.stderr
    assert target.read_text().splitlines()[0] == ",".join(COLUMNS)
    missing = project.hsm("export", sweep.name, "--output", str(tmp_path / "no" / "such" / "dir.csv"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr


def test_unknown_sweep_and_bad_format(done: tuple[Project, Path]) -> None:
    project, _ = done
    proc = project.hsm("export", "sweep_19990101_000000")
    assert proc.returncode == 2 and "unknown sweep id" in proc.stderr and "Traceback" not in proc.stderr
    assert project.hsm("export", "x", "--format", "xml").returncode == 2


def _synthetic(tmp_path: Path, tasks: list[tuple[dict, str, object]]) -> SweepDir:
    """A sweep dir with (params, state, metrics.json content) per task; no process is run."""
    sweep = SweepDir(tmp_path / "sweeps" / "outputs" / "synthetic")
    sweep.path.mkdir(parents=True)
    sweep.create_layout()
    sweep.write_metadata({"sweep_id": "synthetic", "status": "completed"})
    records = []
    for i, (params, state, metrics) in enumerate(tasks, 1):
        rec = TaskRecord(i, f"id{i}", params, state=state, source="local", duration=1.5, exit_code=0)
        d = sweep.task_dir(i)
        d.mkdir(parents=True)
        if metrics is not None:
            (d / "metrics.json").write_text(metrics if isinstance(metrics, str) else json.dumps(metrics))
        records.append(rec)
    sweep.save_index(records)
    return sweep


def test_clashing_names_nested_metrics_and_bad_values(tmp_path: Path) -> None:
    sweep = _synthetic(
        tmp_path,
        [
            ({"status": "a", "lr": 0.1}, "completed", {"lr": 5, "val": {"loss": 0.25, "acc": 0.5}, "curve": [1, 2]}),
            ({"status": "b", "lr": 0.2, "extra": True}, "completed", {"val": {"loss": float("nan")}, "new": "x"}),
            ({"status": "c", "lr": 0.3}, "completed", "{not json"),
            ({"status": "d", "lr": 0.4}, "pending", {"ignored": 1}),
        ],
    )
    table = build_table(sweep, sweep.load_index().values())
    assert table.columns == ["task", "id", "param.status", "lr", "extra", "status", "source", "duration", "exit_code",
                             "metric.lr", "val.loss", "val.acc", "curve", "new"]
    text = to_csv(table)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["param.status"] == "a" and rows[0]["status"] == "completed" and rows[0]["metric.lr"] == "5"
    assert rows[0]["curve"] == "[1, 2]" and rows[1]["extra"] == "true" and rows[0]["extra"] == ""
    assert rows[2]["val.loss"] == "" and rows[3]["status"] == "pending"
    data = json.loads(to_json(table))  # NaN is not JSON: it becomes null
    assert data[1]["val.loss"] is None and data[0]["curve"] == [1, 2] and data[1]["extra"] is True
    assert math.isnan(float(rows[1]["val.loss"]))


def test_metrics_written_to_the_output_dir_are_exported_too(project: Project) -> None:
    """A script that puts every output in $HSM_OUTPUT_DIR, metrics.json included: its metrics
    still reach hsm export, as when it writes them to $HSM_TASK_DIR."""
    (project.root / "to_output.py").write_text(
        "import json, os, sys\n"
        "x = int(sys.argv[1].split('=')[1])\n"
        "json.dump({'loss': x / 10}, open(os.path.join(os.environ['HSM_OUTPUT_DIR'], 'metrics.json'), 'w'))\n")
    cfg = project.write_sweep({"command": "{python} to_output.py {args}", "grid": {"x": [1, 2]}})
    assert project.hsm("run", "--config", str(cfg), "--sweep-id", "outdir").returncode == 0
    rows = list(csv.DictReader(io.StringIO(project.hsm("export", "outdir", "--format", "csv").stdout)))
    assert sorted(float(r["loss"]) for r in rows) == [0.1, 0.2]
