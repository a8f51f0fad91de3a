"""The flow of a sweep on a batch scheduler, without a scheduler (issue 16): the throttle lanes
that keep ``array_parallelism`` for a whole sweep, the warning signal before the walltime as each
scheduler renders it, ``tasks_per_element`` scaling the walltime, and ``--after`` input that is
refused before anything runs. The real thing runs in the Slurm and PBS plugins' test_*_flow.py."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from hsm_core.errors import ConfigError
from hsm_core.plugin.arrayjob.resources import Resources
from hsm_core.plugin.arrayjob.throttle import plan_lanes
from hsm_core.plugin.arrayjob.warning import element_resources, timer_lines, warning_seconds
from hsm_core.testing.project import make_project
from hsm_core.testing.timeline import Interval, max_overlap


def _peak(elements: list[int], limit: int) -> int:
    """The most elements that can run at once under the plan: every chunk of a lane runs alone,
    the lanes side by side, so the worst moment is every lane running its widest chunk."""
    slots = plan_lanes(elements, limit)
    lanes: dict[int, int] = {}
    for i, slot in enumerate(slots):
        head = i
        while slots[head].after_chunk is not None:
            head = slots[head].after_chunk
        width = min(slot.parallelism, elements[i])
        lanes[head] = max(lanes.get(head, 0), width)
    return sum(lanes.values())


@pytest.mark.parametrize(("chunks", "size", "limit"), list(itertools.product([1, 2, 5, 12], [1, 2, 3, 1001], [1, 2, 3, 5, 24])))
def test_lanes_never_let_more_than_the_limit_run_and_use_it_when_they_can(chunks: int, size: int, limit: int) -> None:
    elements = [size] * chunks
    # Never more than the limit, and not stingier: the limit, or every element when there are fewer.
    assert _peak(elements, limit) == min(limit, size * chunks)
    slots = plan_lanes(elements, limit)
    # A chunk waits only for an earlier one; heads wait for what ran before the submission.
    assert all(s.after_chunk is None or s.after_chunk < i for i, s in enumerate(slots))
    assert [s.head for s in slots] == [s.after_chunk is None for s in slots]


def test_the_two_chunks_of_1200_tasks_run_one_after_the_other() -> None:
    first, second = plan_lanes([1001, 199], 2)
    assert (first.parallelism, first.after_chunk) == (2, None)
    assert (second.parallelism, second.after_chunk) == (2, 0)
    assert [s.parallelism for s in plan_lanes([3, 3], None)] == [None, None]


def test_max_overlap_counts_what_ran_at_once() -> None:
    spans = [Interval((0, 2, "a")), Interval((1, 3, "b")), Interval((2, 4, "c")), Interval((2.5, 3.5, "d"))]
    assert max_overlap(spans) == 3  # b, c, d at 2.5; a ended at 2 as c started


def test_warning_defaults_to_60_seconds_and_gives_way_to_a_short_walltime() -> None:
    assert warning_seconds({}, None) == 60
    assert warning_seconds({}, 3600) == 60
    assert warning_seconds({}, 120) is None  # a 2-minute task would be warned halfway
    assert warning_seconds({"signal_before_walltime": "off"}, 3600) is None
    assert warning_seconds({"signal_before_walltime": False}, 3600) is None
    assert warning_seconds({"signal_before_walltime": 0}, 3600) is None
    assert warning_seconds({"signal_before_walltime": 300}, 3600) == 300
    assert warning_seconds({"signal_before_walltime": "5m"}, 3600) == 300
    with pytest.raises(ConfigError, match="signal_before_walltime is 60 s but the walltime is 00:01:00"):
        warning_seconds({"signal_before_walltime": 60}, 60)
    with pytest.raises(ConfigError, match="seconds or off"):
        warning_seconds({"signal_before_walltime": -5}, 60)


def test_pbs_warning_is_a_time_the_script_gives_the_runner() -> None:
    from hsm_core import jobenv
    from hsm_core.plugin.arrayjob import warning

    assert warning.WARNING_AT == jobenv.WARNING_AT  # what the script exports is what the runner reads
    lines = timer_lines(60, 3600)
    assert lines[-1] == "export HSM_WARNING_AT=$(( ${EPOCHSECONDS:-$(date +%s)} + 3540 ))"
    assert timer_lines(None, 3600) == [] and timer_lines(60, None) == []


def test_the_runner_warns_the_task_at_hsm_warning_at_and_starts_no_further_packed_task(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys
    import time

    import yaml

    from hsm_core.testing.helpers import make_sweep
    from hsm_core.testing.timeline import TIMED_SCRIPT

    _, specs, _ = make_sweep(tmp_path / "p", [{"sleep": 60}, {"sleep": 0.1}], script=TIMED_SCRIPT)
    listing = tmp_path / "element.list"
    listing.write_text("".join(f"{s.task_dir}\n" for s in specs))
    env = {**os.environ, "HSM_WARNING_AT": str(int(time.time()) + 2)}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "hsm_core.runner", "--list", str(listing), "--index", "0", "--count", "2",
                           "--source", "pbs"], env=env, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - started < 30, "warned long before the 60 s of work"
    assert proc.returncode == 128 + 10, proc.stderr
    first = yaml.safe_load((specs[0].task_dir / "status.yaml").read_text())
    assert first["state"] == "preempted" and first["signal_received"] == "SIGUSR1"
    assert "HSM_T SAVED SIGUSR1" in (specs[0].task_dir / "stdout.log").read_text()
    assert (specs[0].task_dir / "checkpoint.txt").exists()
    # The element's second task waits for the next attempt: it never started.
    assert not (specs[1].task_dir / "stdout.log").exists() or "HSM_T START" not in (specs[1].task_dir / "stdout.log").read_text()


def test_packed_elements_ask_for_k_times_the_walltime() -> None:
    r = Resources(walltime=600, cpus=2)
    assert element_resources(r, 4) == Resources(walltime=2400, cpus=2)
    assert element_resources(r, 1) is r
    assert element_resources(Resources(cpus=2), 4) == Resources(cpus=2)


def _dry_run_script(tmp_path: Path, hpc: str, sources: str, prefix: str) -> list[str]:
    import json

    project = make_project(tmp_path / "proj", config_extra=hpc)
    cfg = project.write_sweep({"grid": {"x": [1, 2, 3, 4]}})
    proc = project.hsm("run", "--config", str(cfg), "--dry-run", "--json", "--sources", sources)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    script = json.loads(proc.stdout)["job_scripts"][0]["chunks"][0]["script"]
    return [ln for ln in script.splitlines() if ln.startswith(prefix) or "HSM_WARNING_AT" in ln]


def test_slurm_scripts_get_the_warning_and_packed_walltime(tmp_path: Path) -> None:
    hpc = 'hpc:\n  system: slurm\n  max_array_size: 10\n  walltime: "00:30:00"\n  tasks_per_element: 2\n'
    lines = _dry_run_script(tmp_path, hpc, "slurm", "#SBATCH")
    assert "#SBATCH --time=01:00:00" in lines  # two tasks of 30 minutes one after the other
    assert "#SBATCH --signal=B:USR1@60" in lines
    # No timer of its own: HSM_WARNING_AT only passes on a warning Slurm sent before the exec.
    assert [ln for ln in lines if "HSM_WARNING_AT" in ln] == ["trap 'export HSM_WARNING_AT=${EPOCHSECONDS:-0}' USR1"]


@pytest.mark.parametrize("system", ["pbs", "torque"])
def test_pbs_scripts_get_a_timer_and_no_slurm_directive(tmp_path: Path, system: str) -> None:
    hpc = f'hpc:\n  system: {system}\n  max_array_size: 10\n  walltime: "01:00:00"\n  signal_before_walltime: 120\n'
    lines = _dry_run_script(tmp_path, hpc, system, "#")
    assert "export HSM_WARNING_AT=$(( ${EPOCHSECONDS:-$(date +%s)} + 3480 ))" in lines
    assert not any("--signal" in ln or "SBATCH" in ln for ln in lines)


def test_pbs_dependencies_per_flavour() -> None:
    from hsm_plugin_pbs.source import depend_args

    assert depend_args(("12", "13"), "torque") == ["-W", "depend=afterany:12:13"]  # Slurm's qsub front-end
    assert depend_args(("12[].srv",), "torque") == ["-W", "depend=afteranyarray:12[].srv"]
    assert depend_args(("12[].srv",), "pbs") == ["-W", "depend=afterany:12[].srv"]
    assert depend_args((), "pbs") == []


def test_after_on_a_local_run_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    cfg = project.write_sweep({"grid": {"x": [1]}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", "local", "--after", "sweep_x")
    assert proc.returncode == 2
    assert "only jobs of a batch scheduler can wait for other jobs" in proc.stderr and "Traceback" not in proc.stderr
    assert project.sweep_ids() == []


QSTAT = """
host:
                                                                         Req'd  Req'd   Elap
Job id               Username Queue    Name                 SessID   NDS   TSK Memory Time Use S Time
-------------------- -------- -------- -------------------- ------ ----- ----- ------ ----- - -----
101                  root     debug    hsm_a_001            --         1     1   100M 00:05 C 00:00
102[].srv            root     debug    hsm_a_002            --         1     1   100M 00:05 R 00:00
102[3].srv           root     debug    hsm_a_002            --         1     1   100M 00:05 R 00:00
103                  root     debug    hsm_b_001            --         1     1   100M 00:05 Q 00:00
"""


def test_hsm_queue_on_pbs_leaves_out_ended_jobs_and_other_sweeps() -> None:
    from hsm_plugin_pbs.source import filter_qstat_rows

    def ids(text: str) -> list[str]:
        return [ln.split()[0] for ln in text.splitlines() if ln[:1].isdigit()]

    assert ids(filter_qstat_rows(QSTAT)) == ["102[].srv", "102[3].srv", "103"]
    assert ids(filter_qstat_rows(QSTAT, ["102[].srv"])) == ["102[].srv", "102[3].srv"]
    assert ids(filter_qstat_rows(QSTAT, ["101", "103"], ended=True)) == ["101", "103"]
    assert filter_qstat_rows(QSTAT, ["101"]) == ""  # ended: nothing live, not even the header
    assert "Job id" in filter_qstat_rows(QSTAT, ["103"])


def test_launch_chains_lanes_and_a_later_launch_waits_for_the_live_array_jobs(tmp_path: Path) -> None:
    """The submission plumbing with a scheduler made of plain commands (the real thing is in the
    plugins' test_*_flow.py): which ids each array job is submitted to wait for."""
    from hsm_core.testing.helpers import make_sweep
    from hsm_core.testing.recording_scheduler import RecordingArrayJobSource

    _, specs, ctx = make_sweep(tmp_path / "p", [{"x": i} for i in range(9)])
    src = RecordingArrayJobSource("rec", {"max_array_size": 2, "array_parallelism": 3}, ctx)

    def submitted() -> list[tuple[str, int | None, tuple[str, ...]]]:
        return [(job_id, job.parallelism, job.after) for job_id, job in src.handed]

    src.launch(specs[:7])
    # 4 array jobs of 2, 2, 2, 1 in two lanes (%2 and %1); each waits for the one before it in its lane.
    assert submitted() == [("100", 2, ()), ("101", 1, ()), ("102", 2, ("100",)), ("103", 1, ("101",))]
    src.launch(specs[7:])
    # A later submission (a retry, the next batch) waits for every array job still followed.
    assert submitted()[4] == ("104", 3, ("100", "101", "102", "103"))


def test_monitor_does_not_count_a_task_its_scheduler_may_requeue_as_done(tmp_path: Path) -> None:
    """A requeued element pending again with nobody watching reads preempted (what its runner
    wrote) until a verdict: hsm monitor must not say 2/2 100% and finished meanwhile."""
    from hsm_core.monitor.snapshot import RecordCache, take_snapshot
    from hsm_core.plugin.taskfiles import write_status
    from hsm_core.testing.helpers import make_sweep

    sweep, specs, _ = make_sweep(tmp_path / "p", [{"x": 1}, {"x": 2}])
    sweep.update_metadata(status="submitted")
    base = {"source": "slurm", "runner": "batch", "attempt": 1}
    write_status(specs[0].task_dir, {**base, "task_id": specs[0].task_id, "state": "completed", "exit_code": 0})
    warned = {**base, "task_id": specs[1].task_id, "state": "preempted", "exit_code": 138, "job_id": "41_1",
              "signal_received": "SIGUSR1"}
    write_status(specs[1].task_dir, warned)
    snap = take_snapshot(sweep, cache=RecordCache(sweep))
    assert (snap.done, snap.progress_text, snap.finished) == (1, "1/2 (50.0%)", False)
    # The scheduler's verdict is in (hsm complete asked): now it is over.
    write_status(specs[1].task_dir, {**warned, "scheduler_state": "FAILED"})
    snap = take_snapshot(sweep, cache=RecordCache(sweep))
    assert (snap.done, snap.progress_text, snap.finished) == (2, "2/2 (100.0%)", True)


def test_after_and_queue_refuse_a_sweep_they_cannot_use_in_one_line(tmp_path: Path) -> None:
    """Checked before any scheduler is asked: a sweep id that does not exist, and a sweep that ran
    no jobs on this scheduler (here: a local one)."""
    project = make_project(tmp_path / "proj", config_extra="hpc:\n  system: slurm\n")
    cfg = project.write_sweep({"grid": {"x": [1]}})
    project.hsm("run", "--config", str(cfg), "--sources", "local", "--sweep-id", "ran_here", check=True)
    cases = {
        ("run", "--config", str(cfg), "--sources", "slurm", "--after", "nosuch"): "--after nosuch: no sweep nosuch in",
        ("run", "--config", str(cfg), "--sources", "slurm", "--after", "ran_here"): "sweep ran_here has no Slurm jobs to wait for",
        ("queue", "nosuch"): "unknown sweep id 'nosuch'",
        ("queue", "ran_here"): "sweep ran_here has no Slurm jobs",
    }
    for args, said in cases.items():
        proc = project.hsm(*args)
        assert proc.returncode == 2 and said in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
    assert project.sweep_ids() == ["ran_here"]  # a refused run leaves no sweep directory behind


def test_a_task_that_does_not_handle_the_warning_is_not_killed_by_it(tmp_path: Path) -> None:
    """SIGUSR1's default action ends a process: a script with no handler for it must not die a
    minute before its walltime because hsm warns by default. It runs on and completes."""
    import os
    import subprocess
    import sys
    import time

    import yaml

    from hsm_core.testing.helpers import make_sweep

    plain = "import sys, time\ntime.sleep(3)\nprint('done')\n"
    _, specs, _ = make_sweep(tmp_path / "p", [{"x": 1}], script=plain)
    listing = tmp_path / "element.list"
    listing.write_text(f"{specs[0].task_dir}\n")
    env = {**os.environ, "HSM_WARNING_AT": str(int(time.time()))}  # warned at once
    proc = subprocess.run([sys.executable, "-m", "hsm_core.runner", "--list", str(listing), "--index", "0", "--source", "pbs"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    status = yaml.safe_load((specs[0].task_dir / "status.yaml").read_text())
    assert status["state"] == "completed" and "signal_received" not in status


def test_queue_on_a_machine_that_is_no_submit_host_is_one_line(tmp_path: Path) -> None:
    """squeue without a reachable controller prints several errors: hsm queue says the last, once."""
    import os

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    squeue = bin_dir / "squeue"
    squeue.write_text("#!/bin/sh\necho 'squeue: error: resolve_ctls_from_dns_srv: res_nsearch error' >&2\n"
                      "echo 'squeue: error: fetch_config: DNS SRV lookup failed' >&2\n"
                      "echo 'squeue: error: _establish_config_source: failed to fetch config' >&2\nexit 1\n")
    squeue.chmod(0o755)
    path = f"{bin_dir}:{os.environ['PATH']}"
    project = make_project(tmp_path / "proj", env={"PATH": path}, config_extra="hpc:\n  system: slurm\n")
    proc = project.hsm("queue")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "failed to fetch config" in proc.stderr and "hsm test hpc" in proc.stderr
