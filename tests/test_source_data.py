"""What sources keep in ``status.yaml`` (``source_data``) survives every rewrite of the status.

The contract suite (``test_source_data_survives_every_rewrite``) checks it through every source;
these tests check the writers a source does not drive: the runner keeping what a source wrote
*while* the task ran (at its end and when it is signalled), the bookkeeping of tasks whose
controller died, workers' closing of an attempt, and ``hsm complete`` of a failed sweep.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from hsm_core.state import closed_attempt, reconcile_status
from hsm_core.taskdir import (
    EXIT_MARKER,
    SOURCE_DATA,
    keep_source_data,
    read_status,
    source_data,
    with_source_data,
    write_status,
)
from hsm_core.taskstate import TaskState
from hsm_core.testing import make_sweep
from hsm_core.testing.project import Project, wait_for

EARLIER = {"job_id": "4711", "scheduler": {"partition": "gpu"}}


def _runner(task_dir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hsm_core.runner", "--source", "mine", str(task_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _seed(task_dir: Path) -> None:
    """A status as a source that ran an earlier attempt leaves it."""
    write_status(task_dir, {"state": TaskState.FAILED.value, "attempt": 1, "source": "earlier",
                            SOURCE_DATA: {"earlier": EARLIER}})


def _running(task_dir: Path) -> bool:
    status = read_status(task_dir) or {}
    return status.get("state") == TaskState.RUNNING.value and status.get("process") not in (None, "starting")


def test_with_source_data_merges_removes_and_leaves_other_sources_alone() -> None:
    status = {"state": "running", SOURCE_DATA: {"a": {"x": 1, "y": 2}, "b": {"z": 3}}}
    new = with_source_data(status, "a", {"x": 10, "y": None, "w": [1]})
    assert new[SOURCE_DATA] == {"a": {"x": 10, "w": [1]}, "b": {"z": 3}}
    assert status[SOURCE_DATA]["a"] == {"x": 1, "y": 2}  # a copy: the argument is not changed
    emptied = with_source_data(with_source_data(new, "a", {"x": None, "w": None}), "b", {"z": None})
    assert SOURCE_DATA not in emptied
    assert source_data(None, "a") == {} and source_data({SOURCE_DATA: "damaged"}, "a") == {}


def test_keep_source_data_needs_a_status_first(tmp_path: Path) -> None:
    assert keep_source_data(tmp_path, "mine", {"job": "1"}) is None
    assert not list(tmp_path.iterdir())  # nothing half-made
    write_status(tmp_path, {"state": "submitted"})
    keep_source_data(tmp_path, "mine", {"job": "1"})
    assert yaml.safe_load((tmp_path / "status.yaml").read_text())[SOURCE_DATA] == {"mine": {"job": "1"}}


def test_the_runner_keeps_what_sources_wrote_before_and_while_the_task_ran(tmp_path: Path) -> None:
    _, specs, _ = make_sweep(tmp_path / "project", [{"x": 1, "sleep": 1.5}], sweep_id="sweep_sd_end")
    task_dir = specs[0].task_dir
    _seed(task_dir)
    proc = _runner(task_dir)
    try:
        wait_for(lambda: _running(task_dir), timeout=30, what="the task running")
        assert source_data(read_status(task_dir), "earlier") == EARLIER  # the runner's start kept it
        keep_source_data(task_dir, "mine", {"job_id": "99"})  # as a source learns its job id late
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    final = read_status(task_dir) or {}
    assert final["state"] == TaskState.COMPLETED.value and final["attempt"] == 2
    assert final[SOURCE_DATA] == {"earlier": EARLIER, "mine": {"job_id": "99"}}


def test_a_signalled_runner_keeps_what_a_source_wrote_while_the_task_ran(tmp_path: Path) -> None:
    _, specs, _ = make_sweep(tmp_path / "project", [{"x": 1, "sleep": 60}], sweep_id="sweep_sd_sig")
    task_dir = specs[0].task_dir
    _seed(task_dir)
    proc = _runner(task_dir)
    try:
        wait_for(lambda: _running(task_dir), timeout=30, what="the task running")
        keep_source_data(task_dir, "mine", {"job_id": "99"})
        os.kill(proc.pid, signal.SIGTERM)  # a scheduler preempting the job
        proc.wait(timeout=60)
    finally:
        proc.kill()
    final = read_status(task_dir) or {}
    assert final["state"] == TaskState.PREEMPTED.value and final["signal_received"] == "SIGTERM"
    assert final[SOURCE_DATA] == {"earlier": EARLIER, "mine": {"job_id": "99"}}


def test_bookkeeping_after_a_controller_died_keeps_it(tmp_path: Path) -> None:
    ended, vanished = tmp_path / "ended", tmp_path / "vanished"
    for d in (ended, vanished):
        d.mkdir()
        write_status(d, {"state": "running", "runner": "local", "host": os.uname().nodename,
                         "process": "999999999:1", "start_epoch": time.time() - 5, SOURCE_DATA: {"mine": {"k": 1}}})
    (ended / EXIT_MARKER).write_text("0")  # its command ended while nobody watched
    assert reconcile_status(ended, read_status(ended))["state"] == TaskState.COMPLETED.value
    write_status(vanished, closed_attempt(read_status(vanished) or {}, TaskState.LOST, "its worker died"))
    for d in (ended, vanished):
        assert source_data(read_status(d), "mine") == {"k": 1}, d.name


def test_hsm_complete_of_a_failed_task_keeps_what_a_source_kept(project: Project) -> None:
    sweep_file = project.write_sweep({"grid": {"x": [1], "exit": [3]}})
    project.hsm("run", "--config", str(sweep_file), "--sources", "local")
    sweep = project.only_sweep()
    task_dir = sweep / "tasks" / "task_001"
    assert (read_status(task_dir) or {}).get("state") == TaskState.FAILED.value
    keep_source_data(task_dir, "mine", {"job_id": "7"})
    project.hsm("complete", sweep.name, "--retry-failed")
    status = read_status(task_dir) or {}
    assert status["attempt"] == 2 and status["state"] == TaskState.FAILED.value
    assert source_data(status, "mine") == {"job_id": "7"}
    assert [a["attempt"] for a in status["attempts"]] == [1, 2]


def test_an_array_job_source_keeps_it_from_submission_to_its_final_verdict(tmp_path: Path) -> None:
    """The array-job toolkit's ``submitted`` record, the array element's runner, and the final
    state the source writes for an element that vanished from the queue."""
    from test_batch_source import DictScheduler, _run_element

    _, specs, context = make_sweep(tmp_path / "p", [{"x": 1}, {"x": 2}], sweep_id="sweep_sd_array")
    src = DictScheduler("dict", {}, context)
    for spec in specs:
        _seed(spec.task_dir)
    src.launch(specs)
    for spec in specs:
        status = read_status(spec.task_dir) or {}
        assert status["state"] == TaskState.SUBMITTED.value and source_data(status, "earlier") == EARLIER
        keep_source_data(spec.task_dir, src.name, {"queue": "gpu"})
    _run_element(src, 0)  # the first element runs; the second vanishes from the queue unrun
    src.queue = {}
    for _ in range(3):
        src.watcher.query_soon()
        src.poll()
    done, vanished = (read_status(s.task_dir) or {} for s in specs)
    assert done["state"] == TaskState.COMPLETED.value and vanished["state"] == TaskState.LOST.value
    for status in (done, vanished):
        assert status[SOURCE_DATA] == {"earlier": EARLIER, "dict": {"queue": "gpu"}}, status
