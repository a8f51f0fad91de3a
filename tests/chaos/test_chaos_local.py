"""Chaos on one machine: the controller, the task runner and status files, hit at random moments."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from chaos_support import (  # noqa: F401 - chaos is a fixture
    Chaos,
    assert_clean_exit,
    assert_exactly_once,
    chaos,
    cmdline,
    completed_ids,
    hsm,
    hsm_popen,
    output_of,
    process_of,
    read_state,
    same_process,
    states,
    stop,
    wait_until,
    write_chaos_project,
)


def _sweep(root: Path, rng, n: int, sleep: tuple[float, float]) -> Path:
    values = [round(rng.uniform(*sleep), 2) for _ in range(n)]
    path = root / "sweeps" / "sweep.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    # paired: task i sleeps values[i]; distinct x keeps every parameter set (and task id) distinct.
    import yaml

    path.write_text(yaml.safe_dump({"paired": [{"p": {"x": list(range(n)), "sleep": values}}]}))
    return path


def _finish_with_complete(chaos: Chaos, root: Path, sweep_id: str, *extra: str) -> None:
    """``hsm complete`` until it has nothing left to do; it must never need more than two calls."""
    for attempt in range(2):
        done = hsm(root, "complete", sweep_id, *extra)
        chaos.count("hsm complete runs")
        assert_clean_exit(done, (0, 1))
        if done.returncode == 0 and all(s == "completed" for s in states(root / "sweeps" / "outputs" / sweep_id).values()):
            return
    raise AssertionError(f"hsm complete {sweep_id} did not finish the sweep:\n{done.stdout}\n{done.stderr}")


def test_sigkill_of_the_controller(chaos: Chaos, tmp_path: Path) -> None:
    """`hsm run` / `hsm complete` SIGKILLed 1-3 times at random moments (also before the sweep dir
    exists); the tasks it started keep running and are adopted, `hsm complete` finishes the sweep,
    every task runs to its end exactly once."""
    for r in range(chaos.rounds):
        with chaos.round(r) as rng:
            root = tmp_path / f"r{r}"
            count = write_chaos_project(root, parallel=rng.choice([2, 3]))
            n = rng.randint(6, 12)
            cfg = _sweep(root, rng, n, (0.05, 0.6))
            sweep_id = f"k{r}"
            sweep_dir = root / "sweeps" / "outputs" / sweep_id
            proc = hsm_popen(root, "run", "--config", str(cfg), "--sweep-id", sweep_id)
            seen: set[str] = set()
            for _ in range(rng.randint(1, 3)):
                # From "still importing" to "well into the sweep".
                wait = rng.uniform(0.0, 2.5)
                try:
                    proc.wait(timeout=wait)
                except Exception:
                    pass
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    chaos.count("controller SIGKILLs")
                stop(proc)
                if (sweep_dir / "sweep_metadata.yaml").exists():
                    status = hsm(root, "status", sweep_id, "--json")
                    assert_clean_exit(status, (0,))
                    seen |= completed_ids(sweep_dir)
                    proc = hsm_popen(root, "complete", sweep_id)
                else:
                    # Killed before the sweep existed: nothing ran; starting again is the user's move.
                    assert not count.exists() or not count.read_text().strip()
                    chaos.note("killed before the sweep directory existed: `hsm run` again starts it")
                    if sweep_dir.exists():
                        # Killed between creating the dir and writing its metadata: the same id is
                        # refused with one line saying so (not "already exists: hsm complete it").
                        again = hsm(root, "run", "--config", str(cfg), "--sweep-id", sweep_id)
                        assert again.returncode == 2 and "creation was interrupted" in again.stderr, again.stderr
                        chaos.count("sweep dirs left half-created (refused with one line)")
                    sweep_id = f"{sweep_id}x"
                    sweep_dir = root / "sweeps" / "outputs" / sweep_id
                    proc = hsm_popen(root, "run", "--config", str(cfg), "--sweep-id", sweep_id)
            stop(proc, timeout=120)
            # A kill as it took the lease leaves no lease or a whole one (hsm_core/whole_file.py),
            # never an empty one that would refuse the next controller until it timed out.
            assert "is unreadable" not in output_of(proc), output_of(proc)
            assert_clean_exit(proc, (0, 1))
            _finish_with_complete(chaos, root, sweep_id)
            assert_exactly_once(sweep_dir, count, n, seen)
            chaos.count("tasks", n)


def test_sigkill_of_the_task_runner(chaos: Chaos, tmp_path: Path) -> None:
    """The runner process of 1-3 running tasks (the ``hsm-task`` wrapper that records the exit
    code) is SIGKILLed at a random moment: its task is stopped with it and recorded as ``lost``
    (never left running behind hsm's back, never recorded as completed), the sweep exits 1, and
    `hsm complete` runs exactly the lost tasks again."""
    for r in range(chaos.rounds):
        with chaos.round(r) as rng:
            root = tmp_path / f"r{r}"
            count = write_chaos_project(root, parallel=3)
            n = rng.randint(6, 10)
            cfg = _sweep(root, rng, n, (0.3, 1.2))
            sweep_id = f"t{r}"
            sweep_dir = root / "sweeps" / "outputs" / sweep_id
            proc = hsm_popen(root, "run", "--config", str(cfg), "--sweep-id", sweep_id)
            killed: set[str] = set()
            for _ in range(rng.randint(1, 3)):
                def running() -> list[tuple[str, tuple[int, str]]]:
                    out = []
                    for name, state in states(sweep_dir).items():
                        st = read_state(sweep_dir / "tasks" / name)
                        proc_ = process_of(st)
                        if state == "running" and proc_ and name not in killed:
                            out.append((name, proc_))
                    return out

                try:
                    candidates = wait_until(lambda: running() or proc.poll() is not None, 60, "a running task")
                except AssertionError:
                    break
                if proc.poll() is not None or candidates is True:
                    break
                name, (pid, ticks) = rng.choice(candidates)
                # Let it run a random part of its time first.
                try:
                    proc.wait(timeout=rng.uniform(0.0, 0.6))
                except Exception:
                    pass
                if same_process(pid, ticks) and "hsm-task" in cmdline(pid):
                    os.kill(pid, signal.SIGKILL)
                    killed.add(name)
                    chaos.count("runner SIGKILLs")
            stop(proc, timeout=120)
            assert_clean_exit(proc, (0, 1))
            st = states(sweep_dir)
            for name in killed:
                # Killed before its command ended (lost), or it had just finished (completed).
                assert st[name] in ("lost", "completed"), (name, st[name], output_of(proc))
                if st[name] == "lost":
                    assert proc.returncode == 1
                    chaos.count("tasks recorded lost")
            seen = completed_ids(sweep_dir)
            _finish_with_complete(chaos, root, sweep_id)
            assert_exactly_once(sweep_dir, count, n, seen)
            chaos.count("tasks", n)


def test_half_written_status_files(chaos: Chaos, tmp_path: Path) -> None:
    """While a sweep runs, status.yaml files of random tasks (running or finished) are overwritten
    with a random prefix of themselves - what a non-atomic writer leaves when it dies - and stray
    half-written temp files appear. The controller carries on, `hsm status` answers, and every
    task completes exactly once."""
    for r in range(chaos.rounds):
        with chaos.round(r) as rng:
            root = tmp_path / f"r{r}"
            count = write_chaos_project(root, parallel=2)
            n = rng.randint(6, 10)
            cfg = _sweep(root, rng, n, (0.1, 0.6))
            sweep_id = f"h{r}"
            sweep_dir = root / "sweeps" / "outputs" / sweep_id
            proc = hsm_popen(root, "run", "--config", str(cfg), "--sweep-id", sweep_id)
            wait_until(lambda: (sweep_dir / "tasks").is_dir() or proc.poll() is not None, 60, "the sweep to start")
            while proc.poll() is None:
                try:
                    proc.wait(timeout=rng.uniform(0.05, 0.5))
                    break
                except Exception:
                    pass
                dirs = [d for d in (sweep_dir / "tasks").iterdir() if (d / "status.yaml").exists()]
                if not dirs:
                    continue
                d = rng.choice(dirs)
                try:
                    text = (d / "status.yaml").read_bytes()
                except FileNotFoundError:
                    continue
                if rng.random() < 0.5:
                    with open(d / "status.yaml", "wb") as fh:  # not atomic, on purpose
                        fh.write(text[: rng.randrange(0, max(1, len(text)))])
                    chaos.count("status files torn")
                else:
                    (d / f".status.yaml.chaos{rng.randrange(10**6)}.tmp").write_bytes(text[: len(text) // 2])
                    chaos.count("stray temp files")
                status = hsm(root, "status", sweep_id, "--json")
                assert_clean_exit(status, (0,))
            assert_clean_exit(proc, (0, 1))
            seen = completed_ids(sweep_dir)
            status = hsm(root, "status", sweep_id, "--json")
            assert_clean_exit(status, (0,))
            done = hsm(root, "complete", sweep_id)
            chaos.count("hsm complete runs")
            assert_clean_exit(done, (0,))
            for d in (sweep_dir / "tasks").iterdir():
                if read_state(d) is None:
                    # The index still knows it completed; its status file stays as the crash left it.
                    chaos.note("a torn status.yaml of a task the index knows completed is left as it is; it is not run again")
            assert_exactly_once_allowing_torn(sweep_dir, count, n, seen)
            chaos.count("tasks", n)


def assert_exactly_once_allowing_torn(sweep_dir: Path, count: Path, n: int, seen: set[str]) -> None:
    """Like :func:`assert_exactly_once`, for a sweep whose finished status files may stay torn:
    the index (``hsm status``) must then still count them completed."""
    import json

    from chaos_support import executions, task_ids

    ids = task_ids(sweep_dir)
    assert len(ids) == n
    index = json.loads((sweep_dir / "task_index.json").read_text())
    by_id = {t["id"]: t["state"] for t in index["tasks"]}
    assert set(by_id.values()) == {"completed"}, by_id
    from collections import Counter

    runs = Counter(executions(count))
    assert set(runs) == set(ids.values()) and max(runs.values()) == 1, runs
    torn_and_completed = {name for name, s in states(sweep_dir).items() if s is None}
    assert all(ids[name] in runs for name in torn_and_completed)
    assert seen <= set(runs)


def test_a_sweep_dir_left_half_created_is_one_clear_line(tmp_path: Path) -> None:
    """What a controller killed between creating the sweep dir and writing its metadata leaves:
    `hsm run` with that id says so (it used to say "already exists: hsm complete it", and `hsm
    complete` then said "unknown sweep id")."""
    root = tmp_path / "p"
    write_chaos_project(root)
    (root / "sweeps" / "outputs" / "half" / "tasks").mkdir(parents=True)
    cfg = root / "sweeps" / "sweep.yaml"
    cfg.write_text("grid:\n  x: [1]\n")
    proc = hsm(root, "run", "--config", str(cfg), "--sweep-id", "half")
    assert proc.returncode == 2 and "creation was interrupted" in proc.stderr and "rm -r" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_controller_and_wrapper_killed_together_the_command_is_stopped_not_run_twice(tmp_path: Path) -> None:
    """`pkill -9 -f hsm` kills the controller and the `hsm-task` wrappers but not the training
    script. `hsm status` shows that task still running; `hsm complete` stops it (nothing could
    record how it ends) instead of starting a second copy next to it, and runs it again once."""
    import time

    root = tmp_path / "p"
    count = write_chaos_project(root, parallel=2)
    cfg = root / "sweeps" / "sweep.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text("grid:\n  x: [1, 2]\n  sleep: [6]\n")
    sweep_dir = root / "sweeps" / "outputs" / "pk"
    proc = hsm_popen(root, "run", "--config", str(cfg), "--sweep-id", "pk")
    try:
        def running() -> list[tuple[str, tuple[int, str]]]:
            out = []
            for name, state in states(sweep_dir).items():
                p = process_of(read_state(sweep_dir / "tasks" / name))
                if state == "running" and p and same_process(*p):
                    out.append((name, p))
            return out

        found = wait_until(lambda: len(running()) == 2 and running(), 60, "two running tasks")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for _, (pid, _) in found:
            os.kill(pid, signal.SIGKILL)  # the wrappers; their commands (python train.py) run on
        time.sleep(0.3)
        status = hsm(root, "status", "pk", "--json")
        assert_clean_exit(status, (0,))
        assert set(states(sweep_dir).values()) == {"running"}  # not "interrupted": the commands run
        for _ in range(2):
            done = hsm(root, "complete", "pk")
            assert_clean_exit(done, (0, 1))
        assert set(states(sweep_dir).values()) == {"completed"}
    finally:
        stop(proc, timeout=1)
    assert_exactly_once(sweep_dir, count, 2)
    for d in (sweep_dir / "tasks").iterdir():
        attempts = read_state(d)["attempts"]
        assert [a["state"] for a in attempts] == ["interrupted", "completed"], attempts
