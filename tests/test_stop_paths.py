"""Every way a task is stopped, one deterministic case each (issue 12, items 2-7).

The task scripts behave like training scripts (tests/support/stop_observer.py): they trap SIGTERM to
save a checkpoint, ignore it, or leave daemon children, and keep their own log. Each test judges
hsm from that log - how often the script ran, whether two copies were alive at once, whether
anything outlived the command that should have stopped it - and then checks what hsm recorded
against it. tests/chaos/test_chaos_stops.py repeats the same stops at random moments.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from hsm_core.taskdir import EXIT_MARKER, PID_FILE, wrapper_script

# The observer lives with the chaos suite, which runs the same stops at random moments.

from chaos_support import kill_tree, output_of, read_state  # noqa: E402
from signal_at_syscall import signal_at_open  # noqa: E402
from stop_observer import (  # noqa: E402
    FAST_WORKERS,
    Hang,
    Observer,
    alive,
    signal_pid,
    start_ticks,
    wait_for,
    write_project,
    write_sweep,
)

#: Seconds a command may take beyond what it must wait for (start-up on a loaded 2-core machine).
SLACK = 10.0


def plan(x: int = 0, **kw: object) -> dict:
    """One task's parameters (see stop_observer.TASK_SCRIPT); unset ones take harmless defaults."""
    p = {"x": x, "run": 30, "resume": 0.3, "term": "default", "save": 0.5, "code": 0, "daemon": 0}
    p.update(kw)
    return p


def setup(tmp_path: Path, plans: list[dict], *, grace: float = 2.0, parallel: int = 2, name: str | None = None) -> tuple[Observer, Path]:
    obs = Observer(tmp_path / "p")
    write_project(obs.root, parallel=parallel, grace=grace)
    return obs, write_sweep(obs.root, plans, name=name)


def started(obs: Observer, n: int = 1, proc: subprocess.Popen | None = None) -> None:
    """Wait until ``n`` executions have started (their script wrote its start line)."""
    wait_for(lambda: len(obs.all_executions()) >= n or (proc is not None and proc.poll() is not None), 30,
             f"{n} task(s) to start")
    assert len(obs.all_executions()) >= n, output_of(proc) if proc is not None else ""


def the(obs: Observer, key: str = "t0") -> list:
    return obs.executions().get(key, [])


def sweep_dir_of(obs: Observer, sweep_id: str) -> Path:
    return obs.root / "sweeps" / "outputs" / sweep_id


def status_of(obs: Observer, sweep_dir: Path, key: str = "t0") -> dict:
    return read_state(obs.task_dirs(sweep_dir)[key]) or {}


def interrupt(obs: Observer, proc: subprocess.Popen, bound: float) -> float:
    proc.send_signal(signal.SIGINT)
    exited = obs.wait_exit(proc, bound, "after Ctrl-C")
    assert proc.returncode == 130 and "Traceback" not in output_of(proc), (proc.returncode, output_of(proc))
    return exited


# --------------------------------------------------------------------------------------------
# Ctrl-C (item 2)
# --------------------------------------------------------------------------------------------


def test_ctrl_c_waits_for_a_script_saving_its_checkpoint_and_records_its_exit_0_as_completed(tmp_path: Path) -> None:
    obs, cfg = setup(tmp_path, [plan(term="save0", save=1.0)], grace=4)
    with obs:
        proc = obs.start("run", "--config", str(cfg), "--sweep-id", "s")
        started(obs, 1, proc)
        time.sleep(0.3)
        asked = time.monotonic()
        exited = interrupt(obs, proc, 4 + SLACK)
        (ex,) = the(obs)
        # It saves for 1 s after SIGTERM, well inside the 4 s grace: hsm must wait for it.
        assert not alive(ex.pid, ex.ticks), \
            f"hsm run exited {exited - asked:.2f}s after Ctrl-C while the script still saved its checkpoint: {ex}"
        assert ex.term is not None and ex.code == 0, f"the script was killed before it finished its checkpoint: {ex}"
        assert ex.end <= exited, f"hsm run exited {exited - ex.end:.2f}s before the script ended"
        sweep = sweep_dir_of(obs, "s")
        obs.check_gone(exited, "after Ctrl-C")
        obs.check_states(sweep, "after Ctrl-C", allowed_stopped=("interrupted",))
        st = status_of(obs, sweep)
        assert st.get("state") == "completed" and st.get("exit_code") == 0, f"exited 0 in the grace, but reads {st}"
        obs.complete("s", sweep)
        obs.check_exactly_once(sweep, 1)
        assert len(the(obs)) == 1, "a completed task ran again"
        obs.assert_no_problems("Ctrl-C of a script saving then exiting 0")


def test_ctrl_c_records_the_scripts_own_exit_code_and_no_second_copy_starts_next_to_it(tmp_path: Path) -> None:
    obs, cfg = setup(tmp_path, [plan(term="saveN", code=3, save=1.0)], grace=4)
    with obs:
        proc = obs.start("run", "--config", str(cfg), "--sweep-id", "s")
        started(obs, 1, proc)
        time.sleep(0.3)
        exited = interrupt(obs, proc, 4 + SLACK)
        sweep = sweep_dir_of(obs, "s")
        obs.check_gone(exited, "after Ctrl-C")
        st = status_of(obs, sweep)
        assert st.get("state") == "interrupted" and st.get("exit_code") == 3, \
            f"the script saved and exited 3; hsm recorded {st.get('state')} with exit_code {st.get('exit_code')}"
        # Straight away, as a user would: the new attempt must not start next to the saving one.
        obs.complete("s", sweep)
        obs.check_no_overlap("Ctrl-C then hsm complete")
        obs.check_exactly_once(sweep, 1)
        first, second = the(obs)
        assert first.code == 3 and second.code == 0
        assert [a["state"] for a in status_of(obs, sweep)["attempts"]] == ["interrupted", "completed"]
        obs.assert_no_problems("Ctrl-C of a script saving then exiting 3")


def test_ctrl_c_sigkills_a_script_that_ignores_sigterm_once_kill_grace_is_over(tmp_path: Path) -> None:
    obs, cfg = setup(tmp_path, [plan(term="ignore")], grace=1.5)
    with obs:
        proc = obs.start("run", "--config", str(cfg), "--sweep-id", "s")
        started(obs, 1, proc)
        time.sleep(0.3)
        asked = time.monotonic()
        exited = interrupt(obs, proc, 1.5 + SLACK)
        (ex,) = the(obs)
        assert ex.term is not None, "the script never got SIGTERM"
        assert not alive(ex.pid, ex.ticks), f"the script ignoring SIGTERM still runs after hsm run exited: {ex}"
        assert exited - asked >= 1.4, f"hsm run exited {exited - asked:.2f}s after Ctrl-C: it did not give the 1.5 s grace"
        sweep = sweep_dir_of(obs, "s")
        obs.check_gone(exited, "after Ctrl-C")
        obs.check_states(sweep, "after Ctrl-C", allowed_stopped=("interrupted",))
        obs.complete("s", sweep)
        obs.check_no_overlap("Ctrl-C then hsm complete")
        obs.check_exactly_once(sweep, 1)
        obs.assert_no_problems("Ctrl-C of a script ignoring SIGTERM")


def test_ctrl_c_of_hsm_complete_stops_the_tasks_it_adopted(tmp_path: Path) -> None:
    """Item 4: the tasks of a dead controller, watched by `hsm complete`, are stopped by its Ctrl-C
    like its own (README: Ctrl-C stops running tasks cleanly)."""
    obs, cfg = setup(tmp_path, [plan(0, term="save0", save=0.8), plan(1, term="saveN", code=143, save=0.8)], grace=4)
    with obs:
        proc = obs.start("run", "--config", str(cfg), "--sweep-id", "s")
        started(obs, 2, proc)
        proc.kill()  # the first controller dies; its tasks run on
        proc.wait()
        sweep = sweep_dir_of(obs, "s")
        again = obs.start("complete", "s")
        wait_for(lambda: "complete:" in (sweep / "logs" / "sweep.log").read_text() or again.poll() is not None, 30,
                 "hsm complete to adopt the tasks")
        time.sleep(0.5)
        exited = interrupt(obs, again, 4 + SLACK)
        obs.check_gone(exited, "after Ctrl-C of hsm complete")
        obs.check_states(sweep, "after Ctrl-C of hsm complete", allowed_stopped=("interrupted",))
        assert [ex.term is not None for ex in the(obs, "t0") + the(obs, "t1")] == [True, True], "the adopted tasks got no SIGTERM"
        obs.assert_no_problems("Ctrl-C of hsm complete watching adopted tasks")


# --------------------------------------------------------------------------------------------
# hsm cancel (item 2)
# --------------------------------------------------------------------------------------------


def test_hsm_cancel_next_to_a_live_hsm_run_waits_for_each_group_then_sigkills_it(tmp_path: Path) -> None:
    obs, cfg = setup(tmp_path, [plan(0, term="save0", save=0.8), plan(1, term="ignore", daemon=120)], grace=2)
    with obs:
        proc = obs.start("run", "--config", str(cfg), "--sweep-id", "s")
        started(obs, 2, proc)
        wait_for(lambda: the(obs, "t1") and the(obs, "t1")[0].children, 10, "the daemon children")
        time.sleep(0.3)
        cancel = obs.run("cancel", "s", bound=2 + SLACK, why="from a second terminal")
        assert cancel.returncode == 0 and "Traceback" not in output_of(cancel), output_of(cancel)
        sweep = sweep_dir_of(obs, "s")
        obs.check_gone(cancel.exited_at, "after hsm cancel returned")  # type: ignore[attr-defined]
        (saver,) = the(obs, "t0")
        assert not alive(saver.pid, saver.ticks), f"hsm cancel returned while the script still saved: {saver}"
        assert saver.code == 0, f"the script saving its checkpoint (0.8 s of a 2 s grace) was killed: {saver}"
        obs.check_states(sweep, "after hsm cancel", allowed_stopped=("cancelled",))
        assert status_of(obs, sweep, "t0").get("state") == "completed"
        assert status_of(obs, sweep, "t1").get("state") == "cancelled"
        exited = obs.wait_exit(proc, 30, "hsm run after hsm cancel")
        obs.check_gone(exited, "after hsm run exited")
        obs.check_states(sweep, "after hsm run exited", allowed_stopped=("cancelled",))
        obs.assert_no_problems("hsm cancel next to hsm run")


def test_hsm_cancel_of_tasks_whose_controller_died_sigkills_them_after_the_grace(tmp_path: Path) -> None:
    obs, cfg = setup(tmp_path, [plan(0, term="ignore"), plan(1, term="saveN", code=2, save=1.0)], grace=2)
    with obs:
        proc = obs.start("run", "--config", str(cfg), "--sweep-id", "s")
        started(obs, 2, proc)
        proc.kill()
        proc.wait()
        asked = time.monotonic()
        cancel = obs.run("cancel", "s", bound=2 + SLACK, why="of orphaned tasks")
        assert cancel.returncode == 0 and "Traceback" not in output_of(cancel), output_of(cancel)
        sweep = sweep_dir_of(obs, "s")
        obs.check_gone(cancel.exited_at, "after hsm cancel returned")  # type: ignore[attr-defined]
        obs.check_states(sweep, "after hsm cancel", allowed_stopped=("cancelled",))
        obs.assert_no_problems("hsm cancel of orphaned tasks")
        assert cancel.exited_at - asked >= 1.9, (f"hsm cancel was done {cancel.exited_at - asked:.2f}s after it started: "
                                                 "the script ignoring SIGTERM cannot have had its 2 s grace")
        obs.complete("s", sweep)
        obs.check_no_overlap("cancel then hsm complete")
        obs.check_exactly_once(sweep, 2)
        obs.assert_no_problems("hsm cancel of orphaned tasks")


# --------------------------------------------------------------------------------------------
# A finished command's exit code survives its wrapper (item 3)
# --------------------------------------------------------------------------------------------


def test_a_script_that_exited_0_under_a_stopped_wrapper_stays_completed_after_ctrl_c(tmp_path: Path) -> None:
    """The wrapper is SIGSTOPped, its script then exits 0 (nobody can reap it), Ctrl-C: the group
    is killed after the grace, and the script's 0 must not be lost with the wrapper."""
    obs, cfg = setup(tmp_path, [plan(run=0.6)], grace=1.0)
    with obs:
        proc = obs.start("run", "--config", str(cfg), "--sweep-id", "s")
        started(obs, 1, proc)
        (ex,) = the(obs)
        assert signal_pid(ex.parent, ex.parent_ticks, signal.SIGSTOP), "the wrapper is gone already"
        wait_for(lambda: the(obs)[0].end is not None, 10, "the script to end")
        exited = interrupt(obs, proc, 1.0 + SLACK)
        sweep = sweep_dir_of(obs, "s")
        obs.check_gone(exited, "after Ctrl-C")
        signal_pid(ex.parent, ex.parent_ticks, signal.SIGCONT)
        obs.check_states(sweep, "after Ctrl-C", allowed_stopped=("interrupted",))
        obs.complete("s", sweep)
        obs.check_exactly_once(sweep, 1)
        obs.assert_no_problems("a stopped wrapper whose script exited 0")


def test_a_suspended_worker_whose_claim_was_taken_over_after_its_script_exited_0_loses_nothing(tmp_path: Path) -> None:
    """The worker and its wrapper are suspended after the script exited 0 (before the wrapper
    recorded it); another worker takes the stale claim over; the first wakes up, finds its claim
    gone and stops its copy. The run that ended with 0 is the result: it never runs again."""
    obs, cfg = setup(tmp_path, [plan(run=0.6)], name="susp")
    with obs:
        sweep = sweep_dir_of(obs, "susp")
        w1 = obs.start("worker", "--sweep", str(cfg), env=FAST_WORKERS)
        started(obs, 1, w1)
        (ex,) = the(obs)
        assert signal_pid(ex.parent, ex.parent_ticks, signal.SIGSTOP), "the wrapper is gone already"
        wait_for(lambda: the(obs)[0].end is not None, 10, "the script to end")
        os.kill(w1.pid, signal.SIGSTOP)
        w2 = obs.start("worker", "--sweep", str(cfg), env=FAST_WORKERS)
        try:
            wait_for(lambda: claimed_by(sweep, w2.pid), 20, "the second worker to take the stale claim over")
        finally:
            os.kill(w1.pid, signal.SIGCONT)  # its heartbeat finds the claim gone and stops its copy
        time.sleep(1.0)
        signal_pid(ex.parent, ex.parent_ticks, signal.SIGCONT)
        for w in (w1, w2):
            obs.wait_exit(w, 30, "a worker")
        final = obs.run("worker", "--sweep", str(cfg), bound=30, why="a last worker", env=FAST_WORKERS)
        obs.check_gone(final.exited_at, "after every worker exited")  # type: ignore[attr-defined]
        obs.check_no_overlap("claim taken over")
        obs.check_exactly_once(sweep, 1)
        obs.assert_no_problems("a suspended worker's finished script")


def claimed_by(sweep: Path, pid: int) -> bool:
    """True when a claim lock of ``sweep`` names the worker ``pid``."""
    import json

    for lock in (sweep / ".locks").glob("*.lock") if (sweep / ".locks").is_dir() else []:
        try:
            if json.loads(lock.read_text()).get("pid") == pid:
                return True
        except (OSError, ValueError):
            continue
    return False


# --------------------------------------------------------------------------------------------
# Workers: claim loss, SIGTERM, takeover next to daemon children (items 2, 6)
# --------------------------------------------------------------------------------------------


def test_a_worker_losing_its_claim_never_kills_its_copy_without_the_grace(tmp_path: Path) -> None:
    """Item 2 names every stop, a worker losing its claim included: the worker is frozen past the
    stale timeout while its script runs on; another worker on this machine takes the claim over and
    waits for that copy. Woken, the first worker finds its claim gone. Either it stops its copy the
    way every stop does (SIGTERM, the grace, then SIGKILL: the script saves and exits 0) or it lets
    it finish (the new owner records the end): either way the script's exit 0 is the task's
    result, and it is not run again. Killing it without the grace would throw its work away."""
    obs, cfg = setup(tmp_path, [plan(term="save0", save=1.0, run=6.0)], name="loss")
    with obs:
        sweep = sweep_dir_of(obs, "loss")
        w1 = obs.start("worker", "--sweep", str(cfg), env=FAST_WORKERS)
        started(obs, 1, w1)
        os.kill(w1.pid, signal.SIGSTOP)  # its script runs on
        w2 = obs.start("worker", "--sweep", str(cfg), env=FAST_WORKERS)
        try:
            wait_for(lambda: claimed_by(sweep, w2.pid), 20, "the second worker to take the stale claim over")
        finally:
            os.kill(w1.pid, signal.SIGCONT)
        obs.wait_exit(w1, 6.0 + SLACK, "the worker that lost its claim")
        exited = obs.wait_exit(w2, 6.0 + SLACK, "the worker that took the claim over")
        obs.check_gone(exited, "after both workers exited")
        obs.check_no_overlap("claim loss")
        ex = the(obs)[0]  # the copy of the worker that lost its claim
        assert ex.code == 0, f"the worker that lost its claim killed its copy without the grace (its work is lost): {ex}"
        obs.check_exactly_once(sweep, 1)
        obs.assert_no_problems("a worker losing its claim")


def test_a_sigtermed_worker_records_the_scripts_exit_0_in_the_grace_as_completed(tmp_path: Path) -> None:
    """docs/workers.md: a task that exits 0 is completed and never runs again - also when it
    exits 0 after the worker forwarded a preemption signal."""
    obs, cfg = setup(tmp_path, [plan(term="save0", save=1.0)], name="pre")
    with obs:
        sweep = sweep_dir_of(obs, "pre")
        w1 = obs.start("worker", "--sweep", str(cfg), env=FAST_WORKERS)
        started(obs, 1, w1)
        time.sleep(0.3)
        w1.send_signal(signal.SIGTERM)
        exited = obs.wait_exit(w1, 1.0 + SLACK, "a worker after SIGTERM")
        assert w1.returncode == 143, output_of(w1)
        obs.check_gone(exited, "after the worker exited")
        obs.check_states(sweep, "after SIGTERM of the worker", allowed_stopped=("preempted",))
        final = obs.run("worker", "--sweep", str(cfg), bound=30, why="a second worker", env=FAST_WORKERS)
        obs.check_gone(final.exited_at, "after the second worker")  # type: ignore[attr-defined]
        obs.check_exactly_once(sweep, 1)
        obs.assert_no_problems("SIGTERM of a worker whose script exits 0")


def test_a_worker_taking_over_waits_for_the_script_but_not_for_its_daemon_children(tmp_path: Path) -> None:
    """Item 6: the first worker is SIGKILLed while its script runs; the script starts a `sleep` and
    a multiprocessing child that outlive it by minutes. The next worker waits for the script (no
    second copy) and is done as soon as its exit code is recorded, not when the children end."""
    obs, cfg = setup(tmp_path, [plan(run=2.0, daemon=120)], name="dmn")
    with obs:
        sweep = sweep_dir_of(obs, "dmn")
        w1 = obs.start("worker", "--sweep", str(cfg), env=FAST_WORKERS)
        started(obs, 1, w1)
        wait_for(lambda: len(the(obs)[0].children) == 2, 10, "the daemon children")
        w1.kill()
        w1.wait()
        w2 = obs.start("worker", "--sweep", str(cfg), env=FAST_WORKERS)
        exited = obs.wait_exit(w2, 2.0 + SLACK, "the worker that took the task over")
        assert w2.returncode == 0, output_of(w2)
        (ex,) = the(obs)
        assert ex.end is not None and ex.end <= exited, f"the taker was done before the script ended: {ex}"
        obs.check_no_overlap("takeover")
        obs.check_exactly_once(sweep, 1)
        obs.assert_no_problems("takeover next to daemon children")


def test_a_recorded_exit_code_ends_a_takeovers_wait_for_daemon_children(tmp_path: Path) -> None:
    """Item 6: the script already ended (exit code on disk) when its dead worker's claim is taken
    over; only its daemon children run on. The taker records the result at once."""
    obs, cfg = setup(tmp_path, [plan(run=0.5, daemon=120)], name="dmn2")
    with obs:
        sweep = sweep_dir_of(obs, "dmn2")
        w1 = obs.start("worker", "--sweep", str(cfg), env=FAST_WORKERS)
        started(obs, 1, w1)
        w1.kill()
        w1.wait()
        wait_for(lambda: the(obs)[0].end is not None, 10, "the script to end")
        time.sleep(0.2)  # its wrapper records the exit code
        w2 = obs.run("worker", "--sweep", str(cfg), bound=SLACK, why="the worker taking the task over", env=FAST_WORKERS)
        assert w2.returncode == 0, output_of(w2)
        obs.check_exactly_once(sweep, 1)
        obs.assert_no_problems("takeover of a finished task with daemon children")


# --------------------------------------------------------------------------------------------
# Half-started attempts and pid reuse (items 5, 7)
# --------------------------------------------------------------------------------------------


def node_lost(obs: Observer, cfg: Path, sweep_id: str, n: int = 1) -> tuple[Path, str]:
    """Run the sweep until ``n`` tasks run, then SIGKILL the controller and every task process at
    once. Returns the sweep dir and the dead controller's identity (pid:start ticks)."""
    proc = obs.start("run", "--config", str(cfg), "--sweep-id", sweep_id)
    started(obs, n, proc)
    # A pid is reused long after its first process started (the pid space wraps first): the
    # strangers the tests start next must not look like the wrapper's twin by their start time.
    time.sleep(0.3)
    controller = f"{proc.pid}:{start_ticks(proc.pid)}"
    kill_tree(proc.pid)
    proc.wait()
    obs.kill_tasks()
    wait_for(lambda: not obs.running(), 10, "the task processes to die")
    sweep = sweep_dir_of(obs, sweep_id)
    assert status_of(obs, sweep).get("state") == "running"
    return sweep, controller


def rewrite_status(task_dir: Path, **changes: object) -> None:
    status = read_state(task_dir) or {}
    status.update(changes)
    (task_dir / "status.yaml").write_text(yaml.safe_dump(status, sort_keys=False))


def a_stranger(obs: Observer, *, own_session: bool = True) -> subprocess.Popen:
    """An unrelated live process (it will be given a task's old pid)."""
    p = subprocess.Popen(["sleep", "300"], start_new_session=own_session)
    obs.strangers.append(p)
    return p


def complete_next_to(obs: Observer, stranger: subprocess.Popen, ticks: str | None, why: str) -> subprocess.Popen:
    """``hsm complete s`` (bounded); a hang says whether the unrelated process survived it."""
    try:
        proc = obs.run("complete", "s", bound=SLACK, why=why)
    except Hang as exc:
        fate = "is still alive" if alive(stranger.pid, ticks) else "was KILLED by hsm"
        raise Hang(f"{exc}\nthe unrelated process {stranger.pid} {fate}") from None
    assert alive(stranger.pid, ticks), "hsm killed the unrelated process that got the wrapper's pid"
    return proc


def test_an_adopted_task_whose_status_says_starting_reaches_a_verdict(tmp_path: Path) -> None:
    """Item 5: the status says `process: starting`, written by a controller that is alive while
    `hsm complete` plans, then dies without having started the command. hsm complete must not wait
    forever: the command never ran, so it runs it (once)."""
    obs, cfg = setup(tmp_path, [plan(run=5.0, resume=0.3)])
    with obs:
        sweep, _ = node_lost(obs, cfg, "s")
        d = obs.task_dirs(sweep)["t0"]
        starter = a_stranger(obs, own_session=False)  # stands in for the controller starting it
        rewrite_status(d, process="starting", starter=f"{starter.pid}:{start_ticks(starter.pid)}", start_epoch=round(time.time(), 3))
        (d / ".hsm_pid").unlink(missing_ok=True)  # its wrapper was not started yet
        proc = obs.start("complete", "s")
        wait_for(lambda: "complete:" in (sweep / "logs" / "sweep.log").read_text() or proc.poll() is not None, 30,
                 "hsm complete to plan")
        time.sleep(0.5)
        starter.kill()  # that controller dies before starting anything
        starter.wait()
        exited = obs.wait_exit(proc, 10 + SLACK, "hsm complete adopting a task that was being started")
        assert proc.returncode in (0, 1) and "Traceback" not in output_of(proc), output_of(proc)
        obs.check_gone(exited, "after hsm complete")
        obs.check_states(sweep, "after hsm complete", allowed_stopped=("interrupted", "lost"))
        # The verdict is what item 5 asks for; whether that same hsm complete then runs the task is
        # not specified, so the next one may (a user runs hsm complete until it says completed).
        obs.complete("s", sweep)
        obs.check_no_overlap("starting")
        obs.check_exactly_once(sweep, 1)
        obs.assert_no_problems("an adopted `process: starting`")


def test_a_pid_file_naming_a_pid_now_used_by_another_process_is_not_adopted(tmp_path: Path) -> None:
    """Item 7: the controller died while starting the task (`process: starting`); the wrapper it
    started is dead too and its pid now belongs to an unrelated process. hsm complete must not
    adopt that process (and wait for it forever): it runs the task once, leaving the process alone."""
    obs, cfg = setup(tmp_path, [plan(run=5.0, resume=0.3)])
    with obs:
        sweep, controller = node_lost(obs, cfg, "s")
        d = obs.task_dirs(sweep)["t0"]
        stranger = a_stranger(obs)
        ticks = start_ticks(stranger.pid)
        text = (d / ".hsm_pid").read_text()
        old = int(re.match(r"\s*(\d+)", text).group(1))
        (d / ".hsm_pid").write_text(re.sub(rf"(?<!\d){old}(?!\d)", str(stranger.pid), text))
        rewrite_status(d, process="starting", starter=controller)
        proc = complete_next_to(obs, stranger, ticks, "a pid file naming another process")
        assert proc.returncode == 0, output_of(proc)
        obs.check_gone(proc.exited_at, "after hsm complete")  # type: ignore[attr-defined]
        obs.check_exactly_once(sweep, 1)
        obs.assert_no_problems("a reused pid in .hsm_pid")


def test_a_status_naming_a_reused_pid_is_neither_waited_for_nor_killed(tmp_path: Path) -> None:
    """Item 7: the wrapper's pid (recorded as `process: PID:TICKS`) now belongs to an unrelated
    session leader - a group with that id is alive, but it is not the task's. hsm complete must
    neither wait for it nor kill it: it runs the task once."""
    obs, cfg = setup(tmp_path, [plan(run=5.0, resume=0.3)])
    with obs:
        sweep, _ = node_lost(obs, cfg, "s")
        d = obs.task_dirs(sweep)["t0"]
        stranger = a_stranger(obs)
        ticks = start_ticks(stranger.pid)
        recorded = str(status_of(obs, sweep)["process"])
        rewrite_status(d, process=f"{stranger.pid}:{recorded.split(':', 1)[1]}")
        proc = complete_next_to(obs, stranger, ticks, "a status naming a reused pid")
        assert proc.returncode == 0, output_of(proc)
        obs.check_gone(proc.exited_at, "after hsm complete")  # type: ignore[attr-defined]
        obs.check_exactly_once(sweep, 1)
        obs.assert_no_problems("a reused pid in status.yaml")


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT", "SIGUSR2"])
def test_a_stop_signal_that_reaches_the_wrapper_before_its_command_keeps_the_command_from_starting(
        tmp_path: Path, signame: str) -> None:
    """A stop signal (SIGTERM, SIGINT, or SIGUSR2, which the runners also pass on as a stop) to
    the task's ``/bin/sh`` wrapper after it set its traps and before it started the
    command (a scheduler signals the processes it found; the command, forked a moment later, gets
    nothing): the wrapper used to swallow it and start the command, which then ran on after its
    job was cancelled. Now the command never starts and the wrapper records the exit code it
    would have died with. strace sends the signal as the wrapper opens its pid file."""
    ran = tmp_path / "ran"
    argv = [*signal_at_open(tmp_path / PID_FILE, signame),
            "/bin/sh", "-c", wrapper_script(75), "hsm-task", "/bin/sh", "-c", f"echo ran > {ran}"]
    rc = subprocess.run(argv, env=dict(os.environ, HSM_TASK_DIR=str(tmp_path)), timeout=60).returncode
    assert not ran.exists(), "the command started after its wrapper was told to stop"
    code = str(128 + signal.Signals[signame])
    assert rc == int(code)
    pid, word, recorded = (tmp_path / PID_FILE).read_text().split()
    assert pid.isdigit() and (word, recorded) == ("exit", code)
    assert (tmp_path / EXIT_MARKER).read_text() == code
