"""Per-task commands of any sweep: ``--tasks`` selections, ``hsm logs TASK [-f]``, ``hsm cancel
--tasks`` from a second terminal while ``hsm run`` watches, and ``hsm hold`` where no scheduler
holds anything. The schedulers' side (``scontrol hold 123_5``, ``qhold``) is in the Slurm and PBS
plugins' test_*_task_link.py, on the real cluster."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest
import yaml

from hsm_core.errors import HsmError
from hsm_core.monitor.follow import print_logs
from hsm_core.state import TaskRecord
from hsm_core.task_control import select_tasks
from hsm_core.taskdir import stderr_path, stdout_path, write_status
from hsm_project import Project, wait_for


def _records(n: int) -> list[TaskRecord]:
    return [TaskRecord(index=i, task_id=f"id{i}", params={}) for i in range(1, n + 1)]


def test_a_selection_names_numbers_ranges_dirs_and_ids() -> None:
    recs = _records(9)
    assert [r.index for r in select_tasks("3,5-7", recs)] == [3, 5, 6, 7]
    assert [r.index for r in select_tasks(" task_002 , id9,2 ", recs)] == [2, 9]


@pytest.mark.parametrize("text,said", [("3,12", "no task '12'"), ("5-12", "no task 10"), ("7-5", "backwards"),
                                       ("task_x", "no task 'task_x'"), (",", "names no task")])
def test_a_selection_naming_no_task_is_one_clear_error(text: str, said: str) -> None:
    with pytest.raises(HsmError, match=said) as err:
        select_tasks(text, _records(9))
    assert err.value.exit_code == 2 and "\n" not in str(err.value)


def test_follow_prints_each_byte_once_until_the_task_ends(tmp_path: Path) -> None:
    task = tmp_path / "task_001"
    task.mkdir()
    write_status(task, {"state": "submitted"})  # queued: no output yet, waited for

    def the_task() -> None:
        time.sleep(0.2)
        write_status(task, {"state": "running"})
        with open(stdout_path(task), "a") as out, open(stderr_path(task), "a") as err:
            for i in range(20):
                out.write(f"line {i}\n")
                out.flush()
                if i == 10:
                    err.write("warning\n")
                    err.flush()
                time.sleep(0.02)
        write_status(task, {"state": "completed"})

    out, err = io.BytesIO(), io.BytesIO()
    worker = threading.Thread(target=the_task)
    worker.start()
    state = print_logs(task, out, err, follow=True, interval=0.01)
    worker.join()
    assert state == "completed"
    assert out.getvalue().decode().splitlines() == [f"line {i}" for i in range(20)]
    assert err.getvalue() == b"warning\n"


def test_follow_waits_for_the_next_attempt_of_a_preempted_task(tmp_path: Path) -> None:
    task = tmp_path / "task_001"
    task.mkdir()
    stdout_path(task).write_text("attempt 1\n")
    write_status(task, {"state": "preempted"})
    clock = iter(range(1000))

    def sleep(_: float) -> None:
        if next(clock) == 3:  # the scheduler requeued it: the next attempt runs and completes
            with open(stdout_path(task), "a") as fh:
                fh.write("attempt 2\n")
            write_status(task, {"state": "completed"})

    out = io.BytesIO()
    assert print_logs(task, out, io.BytesIO(), follow=True, requeue_grace=10, sleep=sleep, clock=lambda: 0.0) == "completed"
    assert out.getvalue() == b"attempt 1\nattempt 2\n"
    # Nobody requeues it: following stops once the grace is over.
    write_status(task, {"state": "preempted"})
    ticks = iter(range(1000))
    assert print_logs(task, io.BytesIO(), io.BytesIO(), follow=True, requeue_grace=5, sleep=lambda _: None,
                      clock=lambda: float(next(ticks))) == "preempted"


def test_hsm_logs_prints_a_tasks_output_and_names_a_missing_one(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [1, 2]}})
    project.hsm("run", "--config", str(cfg), "--sources", "local", check=True)
    proc = project.hsm("logs", "2", check=True)
    assert 'ARGV ["x=2"]' in proc.stdout and "METRIC loss=0.5" in proc.stdout
    assert proc.stderr.strip() == "error output"
    proc = project.hsm("logs", "7")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no task '7'" in proc.stderr
    proc = project.hsm("logs", "1-2")
    assert proc.returncode == 2 and "one task" in proc.stderr


def test_hsm_cancel_tasks_stops_only_the_selected_task_while_hsm_run_watches(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [1, 2], "sleep": [30]}})
    run = project.popen("run", "--config", str(cfg), "--sources", "local")
    try:
        sweep = wait_for(lambda: project.outputs.is_dir() and next(iter(project.outputs.iterdir()), None), 30, what="sweep")
        wait_for(lambda: [s.get("state") for s in project.statuses(sweep).values()] == ["running", "running"], 30,
                 what="both tasks running")
        out = project.hsm("cancel", sweep.name, "--tasks", "2", check=True).stdout
        assert "1 cancelled" in out
        statuses = project.statuses(sweep)
        assert statuses["task_002"]["state"] == "cancelled" and statuses["task_001"]["state"] == "running"
        meta = yaml.safe_load((sweep / "sweep_metadata.yaml").read_text())
        assert meta["status"] != "cancelled"
    finally:
        project.hsm("cancel", "--wait", "20")
        run.wait(timeout=60)


def test_hold_of_a_task_no_scheduler_queues_says_so(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [1, 2], "sleep": [30]}})
    run = project.popen("run", "--config", str(cfg), "--sources", "local")
    try:
        sweep = wait_for(lambda: project.outputs.is_dir() and next(iter(project.outputs.iterdir()), None), 30, what="sweep")
        wait_for(lambda: "running" in [s.get("state") for s in project.statuses(sweep).values()], 30, what="a task running")
        proc = project.hsm("hold", sweep.name, "--tasks", "1")
        assert proc.returncode == 2 and "cannot hold single tasks" in proc.stderr and proc.stderr.count("\n") == 1
    finally:
        project.hsm("cancel", "--wait", "20")
        run.wait(timeout=60)


def test_export_puts_what_a_source_says_after_exit_code_and_never_hides_a_parameter(project: Project) -> None:
    from hsm_core.monitor.export import export_text
    from hsm_core.state import SweepDir

    cfg = project.write_sweep({"grid": {"nodes": [1, 2]}})
    project.hsm("run", "--config", str(cfg), "--sources", "local", check=True)
    sweep = SweepDir(project.only_sweep())
    records = list(sweep.records().values())
    links = {records[0].task_id: {"scheduler_id": "4711_0", "nodes": "n01", "max_rss": 1024}}
    head, first, second = export_text(sweep, records, "csv", links=links).splitlines()[:3]
    columns = head.split(",")
    assert columns[columns.index("exit_code") + 1:columns.index("exit_code") + 4] == ["scheduler_id", "max_rss", "scheduler.nodes"]
    assert columns[columns.index("nodes")] == "nodes"  # the parameter keeps its name
    assert first.split(",")[columns.index("scheduler.nodes")] == "n01"
    assert second.split(",")[columns.index("scheduler_id")] == ""  # a task its source said nothing about
