"""ArrayJobSource's own logic with a scheduler made of plain commands: the queue is a dict the test
controls, jobs "run" by calling the real task runner. Covers what a healthy Slurm never shows:
failed status queries, the query backoff, elements that vanish, submissions without a job id."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Sequence

import pytest

import hsm_core.plugin.arrayjob.watcher as watcher
from hsm_core.plugin.arrayjob.manifest import element_ids, read_manifest
from hsm_core import runner
from hsm_core.plugin import ArrayJob, ArrayJobSource, JobInfo, QueryFailed, QueueState
from hsm_core.plugin import HsmError, TaskState
from hsm_core.testing import make_sweep, read_task_status


class DictScheduler(ArrayJobSource):
    """Submits with ``echo``; the queue is ``self.queue``; ``fail_queries`` makes queries fail."""

    scheduler_name = "Dict"

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.queue: dict[str, JobInfo] = {}
        self.fail_queries = 0
        self.queries = 0
        self.submit_output = "77"

    def render_script(self, job: ArrayJob) -> str:
        return f"#!/bin/sh\n# {job.size} tasks\n"

    def submit_argv(self, script_name: str, job: ArrayJob) -> list[str]:
        return [sys.executable, "-c", f"print({self.submit_output!r})"]

    def parse_job_id(self, stdout: str) -> str:
        if not stdout.strip().isdigit():
            raise ValueError(stdout)
        return stdout.strip()

    def element_keys(self, job_id: str, index: int) -> list[str]:
        return [f"{job_id}_{index}"]

    def query(self, ids: Sequence[str]) -> dict[str, JobInfo]:
        self.queries += 1
        if self.fail_queries:
            self.fail_queries -= 1
            raise QueryFailed("controller not answering")
        return dict(self.queue)

    def cancel_argv(self, ids: Sequence[str]) -> list[str]:
        return ["true"]


def _setup(tmp_path: Path, n: int = 2, **options):
    sweep, specs, ctx = make_sweep(tmp_path / "p", [{"x": i} for i in range(n)])
    src = DictScheduler("dict", options, ctx)
    return sweep, specs, src


def _run_element(src: DictScheduler, index: int) -> None:
    """What the job script does for array element ``index``."""
    lst = next(src.job_dir.glob("*.list"))
    assert runner.main(["--list", str(lst), "--index", str(index), "--source", src.name]) in (0, 1)


def test_launch_writes_list_script_and_submitted_statuses(tmp_path: Path) -> None:
    _, specs, src = _setup(tmp_path, 3)
    src.launch(specs)
    assert (src.job_dir / "dict_001.sh").read_text().startswith("#!/bin/sh")
    assert (src.job_dir / "dict_001.list").read_text().split() == [f"../../tasks/task_00{i}" for i in (1, 2, 3)]
    for i, spec in enumerate(specs):
        st = read_task_status(spec)
        # Written before the submission: the element's id is in the manifest, the runner adds its own.
        assert st["state"] == "submitted" and st["array_index"] == i and st["job_script"] == "dict_001.sh"
    assert read_manifest(src.job_dir)["77"].task_ids == [s.task_id for s in specs]
    assert element_ids(src.job_dir, src.element_keys) == {s.task_id: f"77_{i}" for i, s in enumerate(specs)}


def test_no_job_id_no_submitted_status(tmp_path: Path) -> None:
    _, specs, src = _setup(tmp_path)
    src.submit_output = "queued, maybe"
    with pytest.raises(HsmError, match="printed no job id"):
        src.launch(specs)
    assert all(read_task_status(s).get("state") != "submitted" for s in specs)


def test_query_backoff_is_0_2_4_8_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, specs, src = _setup(tmp_path, poll_interval_max=10)
    now = [1000.0]
    monkeypatch.setattr(watcher.time, "monotonic", lambda: now[0])
    src.launch(specs)
    src.queue = {f"77_{i}": JobInfo(QueueState.PENDING, "PENDING") for i in range(2)}
    asked_at = []
    for _ in range(400):  # 40 s in steps of 0.1 s
        before = src.queries
        src.poll()
        if src.queries > before:
            asked_at.append(round(now[0] - 1000.0, 1))
        now[0] += 0.1
    gaps = [round(b - a) for a, b in zip(asked_at, asked_at[1:])]
    assert asked_at[0] == 0.0
    assert gaps[:5] == [2, 4, 8, 10, 10]  # capped by poll_interval_max


def test_a_failed_query_is_tolerated_and_files_still_tell(tmp_path: Path) -> None:
    _, specs, src = _setup(tmp_path, 1)
    src.launch(specs)
    src.fail_queries = 100
    _run_element(src, 0)
    updates = src.poll()
    assert [(u.task_id, u.state) for u in updates] == [(specs[0].task_id, TaskState.COMPLETED)]
    assert "status query failed" in (specs[0].sweep_dir / "logs" / "sources" / "dict.log").read_text()
    assert src.health().healthy is True


def test_an_element_that_vanishes_mid_run_is_lost_after_a_second_look(tmp_path: Path) -> None:
    _, specs, src = _setup(tmp_path, 1)
    src.launch(specs)
    status = read_task_status(specs[0])
    status["state"] = "running"  # the runner started, then its node went away
    from hsm_core.state import write_status

    write_status(specs[0].task_dir, status)
    src.queue = {}
    src.watcher.query_soon()
    assert src.poll() == []  # gone from the queue: look once more before deciding
    src.watcher.query_soon()
    assert [u.state for u in src.poll()] == [TaskState.LOST]
    written = read_task_status(specs[0])
    assert written["state"] == "lost" and "without a final status" in written["message"]


def test_a_cancelled_element_is_reported_soon_after_it_leaves_a_queue_polled_at_its_slowest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cancel Slurm finishes only at KillWait (30 s; the element was being launched): by then
    the queries come every ``poll_interval_max``. The look that confirms the job has gone comes
    2 s after the first, not another full interval later."""
    _, specs, src = _setup(tmp_path, 1, poll_interval_max=30)
    now = [1000.0]
    monkeypatch.setattr(watcher.time, "monotonic", lambda: now[0])
    src.launch(specs)
    src.queue = {"77_0": JobInfo(QueueState.COMPLETING, "COMPLETING")}
    src.cancel([specs[0].task_id])
    reported = None
    for _ in range(1200):  # 120 s in steps of 0.1 s
        if now[0] - 1000.0 >= 31.0:
            src.queue = {}  # Slurm ended the job at KillWait
        if any(u.state is TaskState.CANCELLED for u in src.poll()):
            reported = now[0] - 1000.0
            break
        now[0] += 0.1
    # Queries at 0, 2, 6, 14, 30, 60 s: the first that finds it gone is at 60 s; confirmed at 62 s
    # (before: at 90 s, the next step of the backoff).
    assert reported is not None and reported <= 63.0, reported


def test_an_element_whose_runner_died_mid_run_is_lost_though_polls_come_between_queries(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner recorded ``running`` and died without a final record (its node went away, or it
    was SIGKILLed): the job leaves the queue. Polls read the task files every 0.1 s and the
    scheduler on its backoff; the polls in between must not undo the first look's count, or the
    task stays ``running`` for ever."""
    from hsm_core.state import write_status

    _, specs, src = _setup(tmp_path, 1, poll_interval_max=30)
    now = [1000.0]
    monkeypatch.setattr(watcher.time, "monotonic", lambda: now[0])
    src.launch(specs)
    status = read_task_status(specs[0])
    status["state"] = "running"
    write_status(specs[0].task_dir, status)
    src.queue = {"77_0": JobInfo(QueueState.RUNNING, "RUNNING")}
    reported = None
    for _ in range(1200):  # 120 s in steps of 0.1 s
        if now[0] - 1000.0 >= 20.0:
            src.queue = {}
        updates = src.poll()
        if any(u.state is TaskState.LOST for u in updates):
            reported = now[0] - 1000.0
            break
        now[0] += 0.1
    # Queries at 0, 2, 6, 14, 30 s: gone at 30 s, confirmed 2 s later.
    assert reported is not None and reported <= 33.0, reported
    assert read_task_status(specs[0])["state"] == "lost"


def test_timeout_reported_by_the_scheduler_wins_over_the_runner_s_preempted(tmp_path: Path) -> None:
    _, specs, src = _setup(tmp_path, 1)
    src.launch(specs)
    st = read_task_status(specs[0])
    st.update(state="preempted", signal_received="SIGTERM", exit_code=-15)
    from hsm_core.state import write_status

    write_status(specs[0].task_dir, st)
    src.queue = {"77_0": JobInfo(QueueState.TIMEOUT, "TIMEOUT")}
    for _ in range(2):
        src.watcher.query_soon()
        updates = src.poll()
    assert [u.state for u in updates] == [TaskState.TIMEOUT]
    written = read_task_status(specs[0])
    assert written["state"] == "timeout" and written["scheduler_state"] == "TIMEOUT"
    assert written["exit_code"] == -15  # what the runner saw is kept


def test_packed_elements_run_their_tasks_in_turn(tmp_path: Path) -> None:
    _, specs, src = _setup(tmp_path, 5, tasks_per_element=2)
    src.launch(specs)
    assert [read_task_status(s)["array_index"] for s in specs] == [0, 0, 1, 1, 2]
    assert list(element_ids(src.job_dir, src.element_keys).values()) == ["77_0", "77_0", "77_1", "77_1", "77_2"]
    src.queue = {"77_0": JobInfo(QueueState.RUNNING, "RUNNING"), "77_1": JobInfo(QueueState.PENDING, "PENDING"),
                 "77_2": JobInfo(QueueState.PENDING, "PENDING")}
    lst = next(src.job_dir.glob("*.list"))
    assert runner.main(["--list", str(lst), "--index", "1", "--count", "2", "--source", "dict"]) == 0
    assert [read_task_status(s)["state"] for s in specs] == ["submitted", "submitted", "completed", "completed", "submitted"]
    updates = {u.task_id: u.state for u in src.poll()}
    assert updates[specs[2].task_id] == TaskState.COMPLETED and updates[specs[3].task_id] == TaskState.COMPLETED
    # Waiting for its turn in a running element is not "running".
    assert updates.get(specs[0].task_id, TaskState.SUBMITTED) == TaskState.SUBMITTED


class StartsAtOnce(DictScheduler):
    """A scheduler whose jobs start before its submission command returns: the command runs every
    element's task runner itself, then prints the job id."""

    def submit_argv(self, script_name: str, job: ArrayJob) -> list[str]:
        lst = self.job_dir / script_name.replace(".sh", ".list")
        code = ("import sys; from hsm_core import runner\n"
                f"for i in range({job.size}): runner.main(['--list', {str(lst)!r}, '--index', str(i), '--source', 'dict'])\n"
                "print(77)")
        return [sys.executable, "-c", code]


def test_submitted_is_written_before_the_job_can_start(tmp_path: Path) -> None:
    sweep, specs, ctx = make_sweep(tmp_path / "p", [{"x": i} for i in range(3)])
    src = StartsAtOnce("dict", {}, ctx)
    src.launch(specs)
    # The runner's word stands: hsm's 'submitted' never lands on a task that already ran.
    assert [read_task_status(s)["state"] for s in specs] == ["completed"] * 3
    assert {u.state for u in src.poll()} == {TaskState.COMPLETED}


def _preempted_by_signal(spec) -> None:
    from hsm_core.state import write_status

    st = read_task_status(spec)
    st.update(state="preempted", signal_received="SIGTERM", exit_code=-15, job_id="77_0",
              end_time="2026-01-01T10:00:00+00:00", attempts=[{"attempt": 1, "state": "preempted"}])
    write_status(spec.task_dir, st)


@pytest.mark.parametrize("queue, state, written", [
    ({"77_0": JobInfo(QueueState.TIMEOUT, "TIMEOUT")}, TaskState.TIMEOUT, "timeout"),
    ({"77_0": JobInfo(QueueState.CANCELLED, "CANCELLED by 0")}, TaskState.CANCELLED, "cancelled"),
    ({"77_0": JobInfo(QueueState.PENDING, "PENDING")}, TaskState.SUBMITTED, "submitted"),  # requeued
    ({}, TaskState.PREEMPTED, "preempted"),  # the queue forgot it, no accounting: nobody can tell
])
def test_settle_asks_the_scheduler_how_an_unwatched_signal_ended(tmp_path: Path, queue, state, written) -> None:
    _, specs, src = _setup(tmp_path, 1)
    src.launch(specs)
    _preempted_by_signal(specs[0])
    later = DictScheduler("dict", {}, src.context)  # hsm complete, after the controller is gone
    later.queue = queue
    assert later.settle(specs) == {specs[0].task_id: state}
    st = read_task_status(specs[0])
    assert st["state"] == written
    if written in ("timeout", "cancelled"):
        assert st["attempts"][-1]["state"] == written  # the history says it too
        assert st["end_time"] == "2026-01-01T10:00:00+00:00"  # when it ended, not when hsm noticed
    assert bool(st.get("unconfirmed")) == (not queue)


def test_task_files_are_checked_as_often_as_stays_cheap_unless_configured(tmp_path: Path) -> None:
    from hsm_core.plugin.arrayjob.poll_pace import BUDGET, FASTEST, SLOWEST, PollPace

    _, specs, src = _setup(tmp_path, 3)
    src.launch(specs)
    src.poll()
    # A few task files cost well under a millisecond to check: the fastest pace, so that the end
    # of the last task is seen within FASTEST seconds (a fixed 1 s before).
    assert src.poll_interval == FASTEST < SLOWEST
    pace = PollPace(None)
    assert pace.after_check(0.25 * SLOWEST * BUDGET) == pytest.approx(max(FASTEST, 0.25 * SLOWEST))
    assert pace.after_check(10.0) == SLOWEST  # slow checks (a huge sweep): never slower than before
    _, specs, src = _setup(tmp_path / "configured", 3, poll_interval=3)
    src.launch(specs)
    src.poll()
    assert src.poll_interval == 3.0


def test_a_busy_machine_does_not_slow_the_checks_of_task_files(tmp_path: Path, monkeypatch) -> None:
    """The pace follows the checks' CPU, not their wall time: with the array's elements busy on
    every core a cheap check waits for a core, and pacing by that wait saw the last task end up to
    a second late."""
    from hsm_core.plugin.arrayjob import watcher
    from hsm_core.plugin.arrayjob.poll_pace import FASTEST

    _, specs, src = _setup(tmp_path, 3)
    src.launch(specs)
    real = watcher.status_path

    def descheduled(task_dir):  # what waiting for a core looks like from the check: time, no work
        time.sleep(0.01)
        return real(task_dir)

    monkeypatch.setattr(watcher, "status_path", descheduled)
    src.poll()
    assert src.poll_interval == FASTEST
