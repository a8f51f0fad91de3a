"""`hsm export` and `hsm status` read the sweep's index and metrics from their by-column caches
(issue 19: 100,000 tasks within 1 s) and still print exactly what the task dirs say: the same bytes
before and after the index is rebuilt from the task dirs, a task that ended after the index was
written shows what it wrote, and a cache of another index (or a damaged one) is never used."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hsm_project import Project
from hsm_core.index_columns import COLUMNS_FILE
from hsm_core.metrics_columns import COLUMNS_FILE as METRICS_COLUMNS
from hsm_core.monitor.export import build_table, to_csv, to_json
from hsm_core.monitor.best import order_table
from hsm_core.monitor.export_columns import csv_export, csv_text, export_columns, json_export, json_text, ordered
from hsm_core.state import INDEX_FILE, SweepDir, TaskRecord
from hsm_core.taskdir import write_status
from hsm_core.testing.project import make_project

#: Logs each run to the task's own runs.log, then writes metrics that say which run it was.
SCRIPT = r'''
import json, os, sys
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
d = os.environ["HSM_TASK_DIR"]
with open(os.path.join(d, "runs.log"), "a") as fh:
    fh.write("run\n")
runs = len(open(os.path.join(d, "runs.log")).read().split())
x = int(args["x"])
if x == 4:
    sys.exit(3)  # fails, writes no metrics
metrics = {"loss": 1.0 / (x + runs), "run": runs, "val": {"acc": x / 10, "tag": f"<{x}>"}}
if x == 2:
    metrics["note"] = "a, \"quoted\" value"
json.dump(metrics, open(os.path.join(d, "metrics.json"), "w"))
'''

VARIANTS = (("--format", "csv"), ("--format", "json"), ("--sort", "loss"), ("--sort", "loss", "--desc", "--top", "2"),
            ("--top", "2"))


@pytest.fixture()
def ran(tmp_path: Path) -> tuple[Project, Path]:
    project = make_project(tmp_path / "proj", script=SCRIPT)
    cfg = project.write_sweep({"command": "{python} train.py {args}", "grid": {"x": [1, 2, 3, 4, 5], "lr": [0.1]},
                               "metric": {"name": "loss", "goal": "minimize"}})
    assert project.hsm("run", "--config", str(cfg), "--sweep-id", "c").returncode == 1  # task x=4 fails
    return project, project.outputs / "c"


def exports(project: Project) -> dict[tuple[str, ...], str]:
    out = {}
    for args in VARIANTS:
        proc = project.hsm("export", "c", *args)
        assert proc.returncode == 0, proc.stderr
        out[args] = proc.stdout
    return out


def test_export_is_the_same_bytes_from_the_caches_from_the_index_and_from_the_task_dirs(ran: tuple[Project, Path]) -> None:
    project, sweep = ran
    first = exports(project)  # (the first reader makes the metrics cache)
    assert (sweep / COLUMNS_FILE).is_file() and (sweep / METRICS_COLUMNS).is_file()
    rows = list(csv.DictReader(io.StringIO(first[("--format", "csv")])))
    # What each task wrote itself is what export prints.
    for row in rows:
        d = sweep / "tasks" / row["task"]
        status = yaml.safe_load((d / "status.yaml").read_text())
        assert (row["status"], row["exit_code"]) == (status["state"], str(status["exit_code"]))
        if (d / "metrics.json").exists():
            written = json.loads((d / "metrics.json").read_text())
            assert (float(row["loss"]), row["val.tag"], row["note"]) == (written["loss"], written["val"]["tag"],
                                                                          written.get("note", ""))
        else:
            assert row["x"] == "4" and row["status"] == "failed" and row["loss"] == ""
    assert exports(project) == first  # from the caches
    (sweep / COLUMNS_FILE).write_text('{"format":1,"gen":null,"of":[1,2,3],"n":1}')  # another index's
    (sweep / METRICS_COLUMNS).write_bytes(b"\x00damaged")
    assert exports(project) == first
    for name in (INDEX_FILE, COLUMNS_FILE, "task_metrics.jsonl", METRICS_COLUMNS):
        (sweep / name).unlink()  # the index rebuilt from the task dirs, every metric read from its task's file
    assert exports(project) == first
    status = json.loads(project.hsm("status", "c", "--json", check=True).stdout)
    assert (status["total"], status["counts"]["completed"], status["counts"]["failed"]) == (5, 4, 1), status


def test_a_task_that_ends_after_the_index_was_written_shows_what_it_wrote(ran: tuple[Project, Path]) -> None:
    project, sweep = ran
    # Task 3 handed out again (hsm complete, a requeue): its status says submitted (as a source
    # writes it before submission) and the controller saved its index so, before the task ended.
    s = SweepDir(sweep)
    records = s.load_index()
    rec = next(r for r in records.values() if r.params["x"] == 3)
    d = sweep / "tasks" / rec.name
    write_status(d, {"task_id": rec.task_id, "index": rec.index, "state": "submitted", "source": "local", "attempt": 1})
    rec.state, rec.exit_code, rec.duration = "submitted", None, None
    s.save_index(records.values())
    before = list(csv.DictReader(io.StringIO(project.hsm("export", "c", check=True).stdout)))
    assert [r["status"] for r in before if r["x"] == "3"] == ["submitted"]
    # The task runs again in a process of its own (as an array element would) and ends.
    done = subprocess.run([sys.executable, "-m", "hsm_core.runner", str(d), "--force", "--source", "local"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (d / "runs.log").read_text().split() == ["run", "run"]  # its own log: it ran twice
    written = json.loads((d / "metrics.json").read_text())
    status = yaml.safe_load((d / "status.yaml").read_text())
    assert written["run"] == 2 and status["state"] == "completed"
    after = {r["x"]: r for r in csv.DictReader(io.StringIO(project.hsm("export", "c", check=True).stdout))}
    assert after["3"]["status"] == "completed" and after["3"]["exit_code"] == "0"
    assert (float(after["3"]["loss"]), after["3"]["run"]) == (written["loss"], "2")  # its second run's, not the first's
    assert after["1"]["run"] == "1"
    js = {r["x"]: r for r in json.loads(project.hsm("export", "c", "--format", "json", check=True).stdout)}
    assert js[3]["loss"] == written["loss"] and js[3]["status"] == "completed"


def _synthetic(tmp_path: Path) -> SweepDir:
    sweep = SweepDir(tmp_path / "synthetic")
    sweep.path.mkdir(parents=True)
    sweep.create_layout()
    cases = [
        ({"status": "a", "lr": 0.1}, "completed", {"lr": 5, "val": {"loss": 0.25, "acc": 0.5}, "curve": [1, 2]}),
        ({"status": "b", "lr": 0.2, "extra": True}, "completed", {"val": {"loss": float("nan")}, "new": "x,y"}),
        ({"status": "c", "lr": 3}, "failed", "{not json"),
        ({"status": None, "lr": "0.4\n"}, "pending", {"ignored": 1}),
        ({"lr": 1e-05}, "completed", {"big": 10 ** 30, "neg": -0.0, "none": None, "flag": False, "inf": float("inf"),
                                        "nested": {"a": [1.5, {"b": []}], "": "\u00e9\n"}}),
        ({"lr": 0.5}, "completed", {"nested": [], "val": {"loss": 0.125}}),
    ]
    records = []
    for i, (params, state, metrics) in enumerate(cases, 1):
        rec = TaskRecord(i, f"id{i}", params, state=state, source="local", duration=[1.5, 2, None][i % 3],
                         exit_code=[0, None, 1][i % 3])
        d = sweep.task_dir(i)
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(metrics if isinstance(metrics, str) else json.dumps(metrics))
        records.append(rec)
    sweep.save_index(records)
    return sweep


def test_the_column_export_is_byte_for_byte_the_row_export(tmp_path: Path) -> None:
    sweep = _synthetic(tmp_path)
    records = sweep.load_index().values()
    expected = to_csv(build_table(sweep, records))
    assert csv_export(sweep, records) == expected
    assert "param.status" in expected.splitlines()[0] and '"x,y"' in expected
    assert json_export(sweep, records) == to_json(build_table(sweep, records))
    from hsm_core.monitor.scheduler_link import add_link_columns

    links = {"id1": {"job": "7_0", "state": "COMPLETED", "%s": 1}, "id3": {"job": "7_2", "new": "clash"}}
    table = build_table(sweep, records)
    add_link_columns(table, links)
    assert csv_export(sweep, records, links=links) == to_csv(table)
    assert json_export(sweep, records, links=links) == to_json(table)
    assert csv_export(sweep, []) == to_csv(build_table(sweep, []))
    assert json_export(sweep, []) == to_json(build_table(sweep, []))


ORDERS = ({"sort": "lr"}, {"sort": "lr", "desc": True}, {"sort": "val.loss", "top": 3},
          {"sort": "val.loss", "desc": True, "top": 2}, {"sort": "new"}, {"sort": "status", "desc": True},
          {"sort": "param.status"}, {"sort": "note", "top": 1}, {"top": 4}, {"top": 100})


def test_sorted_and_top_exports_by_columns_are_byte_for_byte_the_row_export(tmp_path: Path) -> None:
    """--sort/--desc/--top on the columns (issue 19: they built the row table) give the row
    table's bytes: numbers, then text, then missing values, ties in task order, in either
    direction; cells and names csv must quote (comma, quote, CR, LF) are quoted as csv does; and
    metrics kept beside the index count only for the attempt they were kept for."""
    from hsm_core import indexed_metrics

    sweep = _synthetic(tmp_path)
    (sweep.path / "sweep_config.yaml").write_text("metric: {name: val.loss, goal: maximize}\n")
    records = list(sweep.load_index().values())
    records[0].params["note"] = 'a "b", c'
    records[2].params["note"] = "line\r\nbreak"
    records[4].params["note"] = "plain"
    indexed_metrics.remember(sweep.path, "id6", 0, {"val.loss": 0.5, "kept,name": "x\ny"})  # its attempt
    indexed_metrics.remember(sweep.path, "id5", 3, {"val.loss": 99.0})  # another attempt: its file counts
    for args in ORDERS:
        table = order_table(build_table(sweep, records), sweep, sort=args.get("sort"), desc=args.get("desc", False),
                            top=args.get("top"))
        columns = ordered(export_columns(sweep, records), sweep, sort=args.get("sort"), desc=args.get("desc", False),
                          top=args.get("top"))
        assert csv_text(columns) == to_csv(table), args
        assert json_text(columns) == to_json(table), args
    text = csv_text(ordered(export_columns(sweep, records), sweep, sort="val.loss", desc=True, top=None))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["task"] for r in rows][:2] == ["task_006", "task_001"]  # 0.5 (kept), 0.25; NaN and text after
    assert rows[0]["kept,name"] == "x\ny" and ',"kept,name"' in text.splitlines()[0]
    assert any(r["note"] == "line\r\nbreak" for r in rows)
    assert len(list(csv.DictReader(io.StringIO(csv_text(
        ordered(export_columns(sweep, records), sweep, sort=None, desc=False, top=2)))))) == 2


def test_the_index_columns_are_used_only_for_the_index_they_were_made_from(tmp_path: Path) -> None:
    sweep = _synthetic(tmp_path)
    loaded = sweep.load_index()
    assert [r.to_json() for r in loaded.values()] == [
        TaskRecord.from_json(d).to_json() for d in json.loads((sweep.path / INDEX_FILE).read_text())["tasks"]]
    # An index edited by hand (or by an older hsm) since: the edit is what is read, not the columns.
    data = json.loads((sweep.path / INDEX_FILE).read_text())
    data["tasks"][0]["state"] = "lost"
    (sweep.path / INDEX_FILE).write_text(json.dumps(data))
    assert sweep.load_index()["id1"].state == "lost"
    # A column that does not check (a bool where a number goes) is ignored, never trusted.
    cols = json.loads((sweep.path / COLUMNS_FILE).read_text())
    cols["exit_code"][1] = True
    (sweep.path / COLUMNS_FILE).write_text(json.dumps(cols, separators=(",", ":")))
    assert sweep.load_index()["id2"].exit_code == 1 and sweep.load_index()["id1"].state == "lost"


def test_export_turns_the_cycle_collector_back_on_for_an_in_process_caller(tmp_path: Path) -> None:
    """hsm status/export read 100,000 records without the cycle collector (hsm_core.bulk_read);
    a test or Python API caller running the command in its own process gets it back as it was."""
    import gc

    from click.testing import CliRunner

    from hsm_core.bulk_read import without_cycle_collection
    from hsm_core.cli.export_cmd import export_command

    sweep = _synthetic(tmp_path)
    assert gc.isenabled()
    result = CliRunner().invoke(export_command, ["synthetic", "--project-dir", str(tmp_path)])
    assert gc.isenabled(), result.output
    with without_cycle_collection():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with without_cycle_collection():
            pass
        assert not gc.isenabled()  # off before: left off
    finally:
        gc.enable()
    assert sweep.path.is_dir()


def test_columns_of_few_distinct_values_print_as_the_row_export(tmp_path: Path) -> None:
    """A column with few distinct values (a grid's parameters, exit codes) is turned into text
    once per value: the same bytes, with 0.0 beside -0.0, NaN, None, 1 beside 1.0 and True."""
    from hsm_core import indexed_metrics

    sweep = SweepDir(tmp_path / "many")
    sweep.path.mkdir(parents=True)
    sweep.create_layout()
    records = []
    for i in range(1, 201):
        params = {"lr": [0.1, 0.01, 1e-05][i % 3], "zero": [0.0, -0.0][i % 2], "opt": ["adam", "sgd", None][i % 3],
                  "mixed": [1, 1.0, True][i % 3], "w": [2, 3][i % 2]}
        rec = TaskRecord(i, f"id{i:03d}", params, state=["completed", "failed"][i % 7 == 0], source="local",
                         duration=[10, 20, None][i % 3], exit_code=[0, None][i % 2], attempt=1)
        metrics = {"acc": [0.5, 0.25, float("nan"), None][i % 4], "epoch": [1, 2, None][i % 3],
                   "inf": [float("inf"), 1.5][i % 2], "tag": ["a,b", 'q"x', "plain"][i % 3]}
        if i % 5:
            indexed_metrics.remember(sweep.path, rec.task_id, 1, metrics)
        else:
            d = sweep.task_dir(i)
            d.mkdir(parents=True)
            (d / "metrics.json").write_text(json.dumps(metrics))
        records.append(rec)
    sweep.save_index(records)
    records = list(sweep.load_index().values())
    assert csv_export(sweep, records) == to_csv(build_table(sweep, records))
    assert json_export(sweep, records) == to_json(build_table(sweep, records))
    assert ",-0.0," in csv_export(sweep, records) and ",0.0," in csv_export(sweep, records)
