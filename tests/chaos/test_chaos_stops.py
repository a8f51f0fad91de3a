"""Chaos for the stop paths (issue 12, items 2-7), judged from the task scripts' own logs.

The tasks behave like training scripts (tests/support/stop_observer.py): they trap SIGTERM to save
a checkpoint and exit 0 or non-zero, ignore it, leave daemon children behind, or end within 30 ms.
They are stopped the ways users and operators stop them - Ctrl-C of ``hsm run`` / ``hsm complete``
(also of one that adopted the tasks of a dead controller), ``hsm cancel`` from a second terminal,
a stopped ``/bin/sh`` wrapper, a worker frozen past its stale timeout (claim lost), SIGTERMed or
SIGKILLed next to its task's daemon children - and pids hsm recorded are handed to unrelated
processes. Every round checks, from the logs only:

* each task ran to a successful end exactly once over every controller of the round;
* no two executions of one task were alive at once;
* after a controller exits, nothing it ran is still running (script, wrapper, daemon children of a
  stopped task), nor ends later;
* what hsm recorded agrees with the log (an exit 0 in the grace reads ``completed``, a script that
  ignored SIGTERM is gone and reads ``interrupted``/``cancelled``, a non-zero exit is recorded as
  the script's own exit code);
* nothing hangs: every command has a bound, and one that overstays it fails the round (``hang``).

Seeded and replayable like the rest of the chaos suite (HSM_CHAOS_SEED, HSM_CHAOS_ROUNDS).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from chaos_support import Chaos, chaos, output_of, read_state  # noqa: F401 - chaos is a fixture
from stop_observer import (
    FAST_WORKERS,
    Observer,
    alive,
    expected_end,
    parent_of,
    random_plans,
    signal_pid,
    sleep_until,
    start_ticks,
    wait_for,
    write_project,
    write_sweep,
)

#: Seconds a controller may take beyond kill_grace and the longest checkpoint save to exit after a
#: stop (process start-up and bookkeeping on a loaded 2-core machine). Over it, the round fails.
SLACK = 12.0


def _moment(rng, obs: Observer, plans: list[dict]) -> float:
    """When to strike (``time.monotonic()``): half the time a random moment soon, half the time
    within 30 ms of the expected end of a running task (the race of item 3)."""
    running = obs.running()
    if running and rng.random() < 0.5:
        ex = rng.choice(running)
        return expected_end(ex, plans, obs.executions()[ex.key]) + rng.uniform(-0.03, 0.03)
    return time.monotonic() + rng.uniform(0.0, 1.2)


def _sweep_log_lines(sweep_dir: Path, word: str) -> int:
    try:
        return sum(1 for line in (sweep_dir / "logs" / "sweep.log").read_text().splitlines() if f" {word}:" in line)
    except OSError:
        return 0


def _interrupt(obs: Observer, proc: subprocess.Popen, bound: float, what: str) -> float:
    """Ctrl-C ``proc`` (SIGINT, as the terminal sends it); returns when it was seen gone."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        if obs.chaos is not None:
            obs.chaos.count(f"Ctrl-C of {proc.args_text.split()[1]}")  # type: ignore[attr-defined]
        exited = obs.wait_exit(proc, bound, f"after Ctrl-C ({what})")
        # 130 (or killed by the SIGINT itself, which a shell reports as 130 too: a Ctrl-C in the
        # last instant of the exit); 0 or 1 if it had just finished by itself. Never a traceback.
        if proc.returncode not in (130, -signal.SIGINT, 0, 1) or "Traceback" in output_of(proc):
            obs.problem("crash", f"{what}: exit {proc.returncode} after Ctrl-C:\n{output_of(proc)[-1500:]}")
        return exited
    return time.monotonic()


def test_ctrl_c_of_hsm_run_and_of_hsm_complete_watching_adopted_tasks(chaos: Chaos, tmp_path: Path) -> None:
    """Ctrl-C of ``hsm run`` at a random moment (or near a task's end); in some rounds the first
    controller is SIGKILLed and the ``hsm complete`` that adopted its tasks is the one interrupted
    (item 4). hsm must wait for each task's whole process group up to kill_grace, SIGKILL the
    rest, and record the script's own ending; then ``hsm complete`` finishes exactly once."""
    for r in range(chaos.rounds):
        with chaos.round(r) as rng, Observer(tmp_path / f"r{r}", chaos) as obs:
            grace = round(rng.uniform(1.0, 2.5), 2)
            write_project(obs.root, parallel=rng.choice([2, 3]), grace=grace)
            n = rng.randint(3, 5)
            plans = random_plans(rng, n)
            cfg = write_sweep(obs.root, plans)
            sweep_id = f"i{r}"
            sweep_dir = obs.root / "sweeps" / "outputs" / sweep_id
            proc = obs.start("run", "--config", str(cfg), "--sweep-id", sweep_id)
            wait_for(lambda: obs.all_executions() or proc.poll() is not None, 30, "a first task to start")
            what = "hsm run"
            if rng.random() < 0.4:
                time.sleep(rng.uniform(0.0, 0.8))
                proc.kill()
                proc.wait()
                chaos.count("controllers SIGKILLed, tasks adopted by hsm complete")
                proc = obs.start("complete", sweep_id)
                wait_for(lambda: _sweep_log_lines(sweep_dir, "complete") or proc.poll() is not None, 30,
                         "hsm complete to start watching")
                what = "hsm complete with adopted tasks"
            sleep_until(_moment(rng, obs, plans))
            exited = _interrupt(obs, proc, grace + 2.0 + SLACK, what)
            obs.check_gone(exited, f"after Ctrl-C of {what}")
            obs.check_grace(plans, grace, f"Ctrl-C of {what}")
            obs.check_states(sweep_dir, f"after Ctrl-C of {what}", allowed_stopped=("interrupted",))
            obs.complete(sweep_id, sweep_dir)
            obs.check_no_overlap(f"round {r + 1}")
            obs.check_exactly_once(sweep_dir, n)
            obs.assert_no_problems(f"round {r + 1} ({what})")
            chaos.count("tasks", n)


def test_ctrl_c_racing_the_end_of_very_short_tasks(chaos: Chaos, tmp_path: Path) -> None:
    """Many 0-30 ms tasks, Ctrl-C 2-3 times at random moments (the controller is always in the
    middle of starting or reaping one): a script that exited 0 is recorded completed and never
    runs again (item 3), one that was killed is run again once."""
    for r in range(chaos.rounds):
        with chaos.round(r) as rng, Observer(tmp_path / f"r{r}", chaos) as obs:
            write_project(obs.root, parallel=rng.choice([3, 4]), grace=1.0)
            n = rng.randint(12, 16)
            plans = random_plans(rng, n, "e")
            cfg = write_sweep(obs.root, plans)
            sweep_id = f"s{r}"
            sweep_dir = obs.root / "sweeps" / "outputs" / sweep_id
            proc = obs.start("run", "--config", str(cfg), "--sweep-id", sweep_id)
            for i in range(rng.randint(2, 3)):
                # Once it works (not while Python still imports hsm: that is no stop path).
                wait_for(lambda: _sweep_log_lines(sweep_dir, "start") + _sweep_log_lines(sweep_dir, "complete") > i
                         or proc.poll() is not None, 30, "the controller to start")
                time.sleep(rng.uniform(0.0, 0.6))
                exited = _interrupt(obs, proc, 1.0 + SLACK, f"interrupt {i + 1}")
                obs.check_gone(exited, f"after Ctrl-C {i + 1}")
                obs.check_grace(plans, 1.0, f"Ctrl-C {i + 1}")
                obs.check_states(sweep_dir, f"after Ctrl-C {i + 1}", allowed_stopped=("interrupted",))
                proc = obs.start("complete", sweep_id)
            exited = obs.wait_exit(proc, 60, "hsm complete, not interrupted")
            obs.check_gone(exited, "after the last hsm complete")
            obs.complete(sweep_id, sweep_dir)
            obs.check_no_overlap(f"round {r + 1}")
            obs.check_exactly_once(sweep_dir, n)
            obs.assert_no_problems(f"round {r + 1}")
            chaos.count("tasks", n)


def test_hsm_cancel_from_a_second_terminal(chaos: Chaos, tmp_path: Path) -> None:
    """``hsm cancel SWEEP`` while ``hsm run`` runs, or after it was SIGKILLed (its tasks running on
    unwatched): cancel returns once every task process is gone (SIGKILL after kill_grace for a
    script ignoring SIGTERM), a script that exited 0 in the grace reads completed, the others
    cancelled; ``hsm complete --retry-failed`` then finishes the sweep exactly once."""
    for r in range(chaos.rounds):
        with chaos.round(r) as rng, Observer(tmp_path / f"r{r}", chaos) as obs:
            grace = round(rng.uniform(1.0, 2.0), 2)
            parallel = rng.choice([2, 3])
            write_project(obs.root, parallel=parallel, grace=grace)
            n = rng.randint(3, 4)
            plans = random_plans(rng, n, "abcd")
            cfg = write_sweep(obs.root, plans)
            sweep_id = f"c{r}"
            sweep_dir = obs.root / "sweeps" / "outputs" / sweep_id
            proc = obs.start("run", "--config", str(cfg), "--sweep-id", sweep_id)
            wait_for(lambda: len(obs.all_executions()) >= min(n, parallel) or proc.poll() is not None, 30,
                     "the first tasks to start")
            orphans = rng.random() < 0.4
            if orphans:
                proc.kill()
                proc.wait()
                chaos.count("cancels of an orphaned sweep (controller SIGKILLed)")
            else:
                chaos.count("cancels next to a live hsm run")
            sleep_until(_moment(rng, obs, plans))
            asked = time.monotonic()
            cancel = obs.run("cancel", sweep_id, bound=grace + 2.0 + SLACK, why="cancel from a second terminal")
            if cancel.returncode != 0 or "Traceback" in output_of(cancel):
                obs.problem("crash", f"hsm cancel exited {cancel.returncode}:\n{output_of(cancel)[-1500:]}")
            obs.check_gone(cancel.exited_at, "after hsm cancel returned", before=asked)  # type: ignore[attr-defined]
            obs.check_grace(plans, grace, "hsm cancel")
            obs.check_states(sweep_dir, "after hsm cancel", allowed_stopped=("cancelled",), before=asked)
            if not orphans:
                exited = obs.wait_exit(proc, 60, "hsm run after its tasks were cancelled")
                obs.check_gone(exited, "after hsm run exited")
            obs.complete(sweep_id, sweep_dir)
            obs.check_no_overlap(f"round {r + 1}")
            obs.check_exactly_once(sweep_dir, n)
            obs.assert_no_problems(f"round {r + 1} ({'orphaned' if orphans else 'live hsm run'})")
            chaos.count("tasks", n)


def test_stopped_wrappers(chaos: Chaos, tmp_path: Path) -> None:
    """The ``/bin/sh`` wrapper of 1-2 running tasks is SIGSTOPped (at a random moment or just before
    its script ends, which then cannot be reaped); then it is continued, or the controller is
    interrupted, or the sweep cancelled, while it is stopped. A script that exited 0 is completed
    whatever happened to its wrapper (item 3); nothing is left behind."""
    for r in range(chaos.rounds):
        with chaos.round(r) as rng, Observer(tmp_path / f"r{r}", chaos) as obs:
            grace = round(rng.uniform(1.0, 2.0), 2)
            write_project(obs.root, parallel=rng.choice([2, 3]), grace=grace)
            n = rng.randint(3, 5)
            plans = random_plans(rng, n, "abde", run=(0.8, 2.5))
            cfg = write_sweep(obs.root, plans)
            sweep_id = f"w{r}"
            sweep_dir = obs.root / "sweeps" / "outputs" / sweep_id
            proc = obs.start("run", "--config", str(cfg), "--sweep-id", sweep_id)
            frozen = []
            for _ in range(rng.randint(1, 2)):
                try:  # (the second one only if another task runs next to the stopped one)
                    live = wait_for(lambda: [ex for ex in obs.running() if ex not in frozen] or proc.poll() is not None,
                                    30 if not frozen else 3, "a running task")
                except AssertionError:
                    if not frozen:
                        raise
                    break
                if live is True:
                    break
                ex = rng.choice(live)
                if rng.random() < 0.5:  # just before its script ends: the end cannot be reaped
                    sleep_until(expected_end(ex, plans, obs.executions()[ex.key]) - rng.uniform(0.0, 0.05))
                if signal_pid(ex.parent, ex.parent_ticks, signal.SIGSTOP):
                    frozen.append(ex)
                    chaos.count("wrappers stopped")
            action = rng.choice(["continue", "ctrl-c", "cancel"])
            chaos.count(f"then: {action}")
            time.sleep(rng.uniform(0.1, 1.0))
            if action == "continue":
                for ex in frozen:
                    signal_pid(ex.parent, ex.parent_ticks, signal.SIGCONT)
                exited = obs.wait_exit(proc, 60, "hsm run after its stopped wrappers were continued")
            elif action == "ctrl-c":
                exited = _interrupt(obs, proc, grace + 2.0 + SLACK, "hsm run with stopped wrappers")
                obs.check_states(sweep_dir, "after Ctrl-C with stopped wrappers", allowed_stopped=("interrupted",))
            else:
                asked = time.monotonic()
                cancel = obs.run("cancel", sweep_id, bound=grace + 2.0 + SLACK, why="cancel with stopped wrappers")
                obs.check_gone(cancel.exited_at, "after hsm cancel with stopped wrappers", before=asked)  # type: ignore[attr-defined]
                obs.check_states(sweep_dir, "after hsm cancel with stopped wrappers", allowed_stopped=("cancelled",), before=asked)
                exited = obs.wait_exit(proc, 60, "hsm run after hsm cancel")
            obs.check_gone(exited, f"after hsm run exited ({action})")
            obs.check_grace(plans, grace, f"stopped wrappers, then {action}")
            for ex in frozen:  # if one survived (a leftover, counted above), let the round go on
                signal_pid(ex.parent, ex.parent_ticks, signal.SIGCONT)
            obs.complete(sweep_id, sweep_dir)
            obs.check_no_overlap(f"round {r + 1}")
            obs.check_exactly_once(sweep_dir, n)
            obs.assert_no_problems(f"round {r + 1} ({action})")
            chaos.count("tasks", n)


# --------------------------------------------------------------------------------------------
# Workers
# --------------------------------------------------------------------------------------------


def _holders(obs: Observer, sweep_dir: Path, workers: list[subprocess.Popen]) -> dict[int, Path]:
    """pid of each live worker of ours holding a claim -> the task dir it claimed."""
    mine = {w.pid for w in workers if w.poll() is None}
    out = {}
    for lock in (sweep_dir / ".locks").glob("*.lock") if (sweep_dir / ".locks").is_dir() else []:
        try:
            holder = json.loads(lock.read_text())
        except (OSError, ValueError):
            continue
        run_id = lock.name[: -len(".lock")]
        dirs = [d for d in (sweep_dir / "tasks").glob(f"{run_id}*")] if (sweep_dir / "tasks").is_dir() else []
        if holder.get("pid") in mine and dirs:
            out[holder["pid"]] = dirs[0]
    return out


def _tree(pid: int) -> list[int]:
    from chaos_support import descendants

    return [pid, *descendants(pid)]


def test_workers_losing_their_claim_sigtermed_or_killed_next_to_daemon_children(chaos: Chaos, tmp_path: Path) -> None:
    """Two workers share a sweep; once or twice a worker that holds a claim is (a) frozen with SIGSTOP -
    alone or with its task - for longer than the stale timeout, so another worker takes the claim
    over, then continued (item 2: it must stop its copy, and the taker must not start a second copy
    next to it; item 3: a script that had ended keeps its result); (b) SIGTERMed like a preempted
    job; or (c) SIGKILLed alone, its task (maybe one with daemon children) running on - the taker
    waits for the task's own processes, not for its daemon children (item 6). Fresh workers join."""
    for r in range(chaos.rounds):
        with chaos.round(r) as rng, Observer(tmp_path / f"r{r}", chaos) as obs:
            write_project(obs.root)
            n = rng.randint(4, 5)
            plans = random_plans(rng, n, "abcde", run=(0.8, 2.5))
            group = f"g{r}"
            cfg = write_sweep(obs.root, plans, name=group)
            sweep_dir = obs.root / "sweeps" / "outputs" / group
            workers = [obs.start("worker", "--sweep", str(cfg), env=FAST_WORKERS) for _ in range(2)]
            def key_of(task_dir: Path) -> str | None:
                return next((k for k, d in obs.task_dirs(sweep_dir).items() if d == task_dir), None)

            def daemon_holders() -> dict[int, Path]:
                return {p: d for p, d in _holders(obs, sweep_dir, workers).items()
                        if key_of(d) and plans[int(key_of(d)[1:])]["daemon"]}

            for i in range(rng.randint(1, 2)):
                # Half the rounds begin with the takeover of item 6: the worker of the task with
                # daemon children is SIGKILLed (if that task comes up within a few seconds).
                takeover = i == 0 and any(p["daemon"] for p in plans) and rng.random() < 0.5
                try:
                    held = wait_for(daemon_holders, 5, "the task with daemon children") if takeover else None
                except AssertionError:
                    held = None
                takeover = bool(held)
                held = held or wait_for(lambda: _holders(obs, sweep_dir, workers) or all(w.poll() is not None for w in workers),
                                        30, "a worker holding a claim")
                if held is True:
                    break
                pid, task_dir = rng.choice(sorted(held.items()))
                key = key_of(task_dir)
                plan = plans[int(key[1:])] if key else None
                try:
                    live = wait_for(lambda: [e for e in obs.executions().get(key, []) if e.end is None and alive(e.pid, e.ticks)],
                                    5, "its task to start") if key else []
                except AssertionError:
                    live = []  # ended already (or never started): strike anyway
                if live and plan and rng.random() < 0.5:
                    sleep_until(expected_end(live[-1], plans, obs.executions()[key]) - rng.uniform(-0.02, 0.05))
                worker = next(w for w in workers if w.pid == pid)
                if worker.poll() is not None:
                    continue  # it finished the sweep meanwhile
                action = "sigkill" if takeover else rng.choice(["freeze", "freeze with its task", "sigterm", "sigkill"])
                if action == "sigterm" and plan and plan["term"] == "ignore":
                    action = "freeze"  # a worker's grace for a script ignoring SIGTERM is not the point here
                chaos.count(f"workers: {action}")
                if action.startswith("freeze"):
                    victims = _tree(pid) if action.endswith("task") else [pid]
                    for p in victims:
                        try:
                            os.kill(p, signal.SIGSTOP)
                        except ProcessLookupError:
                            pass
                    workers.append(obs.start("worker", "--sweep", str(cfg), env=FAST_WORKERS))
                    time.sleep(2.0 + rng.uniform(0.6, 2.0))  # past HSM_WORKER_STALE_TIMEOUT
                    for p in victims:
                        try:
                            os.kill(p, signal.SIGCONT)
                        except ProcessLookupError:
                            pass
                elif action == "sigterm":
                    # The script of key this very worker runs (its wrapper is the worker's child):
                    # the worker may also be waiting for another worker's copy, which is not its own.
                    own = [e for e in obs.executions().get(key, []) if e.end is None and alive(e.parent, e.parent_ticks)
                           and parent_of(e.parent) == pid] if key else []
                    attempt = (read_state(task_dir) or {}).get("attempt")
                    worker.send_signal(signal.SIGTERM)
                    obs.wait_exit(worker, 2.0 + SLACK, "a worker after SIGTERM")
                    # 143, or killed by the SIGTERM itself when it came in the last instant of an exit
                    # (the shell's 143 too).
                    if worker.returncode not in (128 + signal.SIGTERM, -signal.SIGTERM) or "Traceback" in output_of(worker):
                        obs.problem("crash", f"worker exited {worker.returncode} after SIGTERM, not 143:\n{output_of(worker)[-1500:]}")
                    if own:
                        # Its task: the script's own ending, preempted (resumable) unless it exited 0
                        # (unless another worker resumed it since: a later attempt is not judged here);
                        # saves take at most 2 s: any worker grace worth the name lets them finish.
                        obs.check_grace(plans, 10.0, "SIGTERM of its worker", keys=[key])
                        obs.check_states(sweep_dir, "after SIGTERM of its worker", keys=[key], attempt=attempt,
                                         allowed_stopped=("preempted", "interrupted"))
                    workers.append(obs.start("worker", "--sweep", str(cfg), env=FAST_WORKERS))
                else:
                    os.kill(pid, signal.SIGKILL)
                    worker.wait()
                    if plan and plan["daemon"]:
                        chaos.count("workers: takeovers next to daemon children")
                    workers.append(obs.start("worker", "--sweep", str(cfg), env=FAST_WORKERS))
            for w in workers:
                if w.poll() is None:
                    obs.wait_exit(w, 45, "a worker finishing the sweep")
                if w.returncode not in (0, 1, 128 + signal.SIGTERM, -signal.SIGTERM, -signal.SIGKILL) or "Traceback" in output_of(w):
                    obs.problem("crash", f"worker exited {w.returncode}:\n{output_of(w)[-1500:]}")
            final = obs.run("worker", "--sweep", str(cfg), bound=45, why="a last worker", env=FAST_WORKERS)
            obs.check_gone(final.exited_at, "after every worker exited")  # type: ignore[attr-defined]
            obs.check_no_overlap(f"round {r + 1}")
            obs.check_exactly_once(sweep_dir, n)
            obs.assert_no_problems(f"round {r + 1}")
            chaos.count("tasks", n)


# --------------------------------------------------------------------------------------------
# Pid reuse and half-started attempts
# --------------------------------------------------------------------------------------------


def _replace_pid(text: str, old: int, new: int) -> str:
    """``text`` with the pid ``old`` replaced by ``new`` wherever it stands as a number (whatever
    else the file records about the process stays as the dead process left it)."""
    return re.sub(rf"(?<!\d){old}(?!\d)", str(new), text)


def test_pid_reuse_and_half_started_attempts_after_a_node_loss(chaos: Chaos, tmp_path: Path) -> None:
    """The controller and every task process are SIGKILLed at once (a node lost), then, for each
    task recorded running: its wrapper's pid is handed to an unrelated live process (a ``sleep``,
    usually a session leader) in ``.hsm_pid`` or in status ``process:``, or the status goes back to
    ``process: starting`` (the controller died while starting it; item 5), or both. ``hsm complete``
    must reach a verdict for each (items 5, 7), never signal the unrelated processes, and run each
    task exactly once."""
    from chaos_support import kill_tree

    for r in range(chaos.rounds):
        with chaos.round(r) as rng, Observer(tmp_path / f"r{r}", chaos) as obs:
            n = rng.randint(3, 4)
            write_project(obs.root, parallel=n, grace=1.0)
            plans = random_plans(rng, n, "abd", run=(1.5, 3.0))
            cfg = write_sweep(obs.root, plans)
            sweep_id = f"p{r}"
            sweep_dir = obs.root / "sweeps" / "outputs" / sweep_id
            proc = obs.start("run", "--config", str(cfg), "--sweep-id", sweep_id)
            wait_for(lambda: len(obs.all_executions()) >= n or proc.poll() is not None, 30, "every task to start")
            # (at least 0.2 s: a pid is reused long after its first process started, so a stranger
            # must not look like the wrapper's twin by its start time)
            time.sleep(rng.uniform(0.2, 0.8))
            controller = f"{proc.pid}:{start_ticks(proc.pid)}"
            kill_tree(proc.pid)
            proc.wait()
            obs.kill_tasks()  # a node lost: every process of the task goes, daemon children included
            wait_for(lambda: not obs.running(), 10, "the task processes to die")
            strangers: list[tuple[subprocess.Popen, str, str]] = []  # (process, its start, what it stands for)
            starters: list[subprocess.Popen] = []  # stand-ins for a controller busy starting a task
            for key, d in obs.task_dirs(sweep_dir).items():
                status = read_state(d) or {}
                if status.get("state") != "running":
                    continue
                kind = rng.choice(["vanished", "pid file reused", "process reused", "starting",
                                   "starting, pid file reused", "starting, its starter alive then gone"])
                chaos.count(f"running tasks left: {kind}")
                stranger = None
                if "reused" in kind:
                    leader = rng.random() < 0.8
                    stranger = subprocess.Popen(["sleep", "300"], start_new_session=leader)
                    obs.strangers.append(stranger)
                    strangers.append((stranger, start_ticks(stranger.pid) or "?",
                                      f"{key} {kind}, {'leading its own session' if leader else 'in our session'}"))
                pid_file = d / ".hsm_pid"
                wrapper = re.match(r"\s*(\d+)", pid_file.read_text()) if pid_file.exists() else None
                recorded = str(status.get("process") or "")
                if "pid file reused" in kind and wrapper:
                    pid_file.write_text(_replace_pid(pid_file.read_text(), int(wrapper.group(1)), stranger.pid))
                if kind == "process reused" and recorded.split(":")[0].isdigit():
                    status["process"] = _replace_pid(recorded, int(recorded.split(":")[0]), stranger.pid)
                if kind.startswith("starting"):
                    status.update(process="starting", starter=controller)
                if kind.endswith("alive then gone"):
                    starter = subprocess.Popen(["sleep", "300"])
                    obs.strangers.append(starter)
                    starters.append(starter)
                    status.update(starter=f"{starter.pid}:{start_ticks(starter.pid)}", start_epoch=round(time.time(), 3))
                    pid_file.unlink(missing_ok=True)  # its wrapper was not started yet
                (d / "status.yaml").write_text(yaml_dump(status))
            done = obs.start("complete", sweep_id, "--retry-failed")
            if starters:
                wait_for(lambda: _sweep_log_lines(sweep_dir, "complete") or done.poll() is not None, 30, "hsm complete to start")
                time.sleep(rng.uniform(0.2, 1.5))
                for starter in starters:  # the controller that was starting them dies without starting them
                    starter.kill()
                    starter.wait()
            done.exited_at = obs.wait_exit(done, 40, "adopting tasks whose pids were reused or that were being started")  # type: ignore[attr-defined]
            if done.returncode not in (0, 1) or "Traceback" in output_of(done):
                obs.problem("crash", f"hsm complete exited {done.returncode}:\n{output_of(done)[-1500:]}")
            for stranger, ticks, what in strangers:
                if not alive(stranger.pid, ticks):
                    obs.problem("killed a stranger", f"the unrelated process {stranger.pid} ({what}) was killed")
            obs.check_gone(done.exited_at, "after hsm complete")  # type: ignore[attr-defined]
            obs.complete(sweep_id, sweep_dir)
            obs.check_no_overlap(f"round {r + 1}")
            obs.check_exactly_once(sweep_dir, n)
            obs.assert_no_problems(f"round {r + 1}")
            chaos.count("tasks", n)


def yaml_dump(doc: dict) -> str:
    import yaml

    return yaml.safe_dump(doc, sort_keys=False)
