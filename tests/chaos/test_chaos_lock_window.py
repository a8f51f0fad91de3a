"""Chaos at the moment a lock is taken: controllers and workers SIGKILLed as they create the
controller lease or a task claim, and at random moments around it (hsm_core/whole_file.py).

A kill between creating a lock file and writing its holder into it used to leave an empty lock
that named no one: the next controller was refused (exit 2) until the lease timed out, a task's
claim held it for the stale timeout. Kills at random moments rarely land in those microseconds, so
here a watcher polls the lock directory and SIGKILLs the process as soon as its lock's temporary
(or the lock itself) shows up, at once or after a random 0-300 µs. A watcher in Python often
comes too late for a window of some tens of µs, so, where ``strace`` is installed, some processes
run under it and the kernel kills them at their N-th ``link`` call (``strace -e inject``: nothing in
hsm is changed), the very moment between writing a lock's temporary and linking it. Some kills are
at plain random moments.

Each round checks, from the tasks' own start/end log (hsm_core.testing.runlog), that every task ran
to its end exactly once with no two copies overlapping; that no lock file was ever found empty or
unreadable after a kill; that the next controller was never refused for an unreadable lease (the
lease timeout and the workers' stale timeout are long, so an empty lock would show as a refusal or
a hang); and that no temporary is left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import yaml

from chaos_support import (  # noqa: F401 - chaos is a fixture
    Chaos,
    assert_clean_exit,
    chaos,
    hsm,
    hsm_popen,
    kill_tree,
    output_of,
    states,
    task_ids,
    write_chaos_project,
)
from hsm_core.testing.runlog import RUNLOG_SCRIPT, check_once, read_runs
from hsm_core.whole_file import is_temp_name, temp_owner

CORE = {"HSM_DISABLE_PLUGINS": "all"}
#: Workers: a quick heartbeat, and a stale timeout no round waits for (an empty claim would hang it).
WORKER_ENV = dict(CORE, HSM_WORKER_HEARTBEAT="0.3", HSM_WORKER_STALE_TIMEOUT="300")
#: No controller or worker may take longer than this.
BOUND = 90.0
STRACE = shutil.which("strace")


def _popen(root: Path, args: list[str], env: dict[str, str], kill: list[str] | None = None) -> subprocess.Popen:
    """The real ``hsm`` (as :func:`hsm_popen`); with ``kill`` (:func:`at_nth_link`,
    :func:`at_first_call_on`), under ``strace``, which SIGKILLs it at that system call (strace then
    dies of SIGKILL too)."""
    if kill is None:
        return hsm_popen(root, *args, env=env)
    logs = root.parent / f"{root.name}-logs"
    logs.mkdir(exist_ok=True)
    stamp = f"{time.time_ns()}"
    out, err = logs / f"{stamp}.out", logs / f"{stamp}.err"
    argv = [STRACE, "-qq", "-o", os.devnull, *kill, sys.executable, "-m", "hsm_core", *args]
    with open(out, "w") as fo, open(err, "w") as fe:
        proc = subprocess.Popen(argv, cwd=root, env=dict(os.environ, **env), stdout=fo, stderr=fe, text=True)
    proc.out_path, proc.err_path = out, err  # type: ignore[attr-defined]
    return proc


#: System calls a lock file sees, as strace sets (``link`` is ``linkat`` on some architectures).
LOCK_CALLS = {"open": "/^open(at)?$", "write": "/^write$", "link": "/^link(at)?$", "rename": "/^rename(at2?)?$",
              "utime": "/^utimensat$"}


def at_nth_link(n: int) -> list[str]:
    """strace arguments: SIGKILL at the process's ``n``-th ``link`` (a lock's temporary linked)."""
    return ["-e", "trace=/^link(at)?$", "-e", f"inject=/^link(at)?$:signal=SIGKILL:when={n}"]


def at_first_call_on(path: Path, calls: str) -> list[str]:
    """strace arguments: SIGKILL at the first of ``calls`` (a syscall set) on ``path``: for an
    older hsm, ``write`` is the moment between creating the lock and filling it."""
    return ["-P", str(path), "-e", f"trace={calls}", "-e", f"inject={calls}:signal=SIGKILL:when=1"]


def _mode(rng) -> str:
    """How the next process is killed: ``snipe`` (the watcher), ``strace``, ``random``."""
    pick = rng.random()
    if pick < 0.4 and STRACE:
        return "strace"
    return "random" if pick > 0.75 else "snipe"


def _project(root: Path, rng, n: int, name: str | None = None) -> tuple[Path, Path, Path]:
    """A project whose tasks log their start and end, and a sweep file of ``n`` tasks.
    Returns (run log, fail flag, sweep file)."""
    log, flag = root / "runs.log", root / "fail.flag"
    write_chaos_project(root, parallel=rng.choice([2, 3]))
    (root / "train.py").write_text(RUNLOG_SCRIPT.format(log=str(log), fail_flag=str(flag)))
    values = [round(rng.uniform(0.1, 0.5), 2) for _ in range(n)]
    doc: dict = {"paired": [{"p": {"x": list(range(n)), "sleep": values}}]}
    if name:
        doc["name"] = name
    cfg = root / "sweeps" / f"{name or 'sweep'}.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(yaml.safe_dump(doc))
    return log, flag, cfg


def _holder_pid(path: Path) -> int | None:
    try:
        pid = json.loads(path.read_text()).get("pid")
    except (OSError, ValueError, AttributeError):
        return None
    return pid if isinstance(pid, int) else None


def snipe(directory: Path, live: Callable[[], set[int]], rng, timeout: float = 60.0) -> int | None:
    """Watch ``directory`` until one of the ``live()`` processes takes a lock there (its
    temporary appears, or a lock file naming it), then SIGKILL it at once or after 0-300 µs.
    Returns its pid; None when none of them took one (they all ended, or ``timeout``)."""
    known: set[str] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = live()
        if not pids:
            return None
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            names = []
        target = None
        for name in names:
            owner = temp_owner(name)
            if owner is not None and owner[1] in pids:
                target = owner[1]
                break
            if name.endswith(".lock") and name not in known:
                pid = _holder_pid(directory / name)
                if pid is None and len(pids) == 1:
                    target = next(iter(pids))  # a lock not written yet (an older hsm): its taker
                    break
                if pid is not None:
                    known.add(name)
                if pid in pids:
                    target = pid
                    break
        if target is not None:
            # Mostly at once: the window between temporary and link lasts some tens of µs.
            until = time.perf_counter() + rng.choice([0.0, 0.0, rng.uniform(0.0, 50e-6), rng.uniform(0.0, 300e-6)])
            while time.perf_counter() < until:
                pass
            try:
                os.kill(target, signal.SIGKILL)
            except ProcessLookupError:
                return None
            return target
    return None


def assert_whole(chaos: Chaos, directory: Path, pid: int | None) -> None:
    """After killing ``pid`` (None: a process under strace, whose pid the temporaries name) as it
    took a lock in ``directory``: every lock there names its holder (none empty or half written).
    Counts where the kill landed."""
    if not directory.is_dir():
        return
    names = os.listdir(directory)
    owners = {temp_owner(n)[1] for n in names if temp_owner(n) is not None}
    if pid is None:
        gone = [p for p in owners if not _alive(p)]
        pid = gone[0] if gone else -1
    mine = False
    for name in names:
        if name.endswith(".lock") and not name.startswith("."):
            holder = _holder_pid(directory / name)
            assert holder is not None, f"{directory / name} is empty or unreadable: {(directory / name).read_bytes()!r}"
            mine = mine or holder == pid
    if pid in owners and not mine:
        chaos.count("killed between writing the temporary and linking it")
    elif pid in owners:
        chaos.count("killed after the link, before removing the temporary")
    else:
        chaos.count("killed with no temporary of its own (lock taken, or not begun)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _no_temps(directory: Path) -> None:
    left = [n for n in os.listdir(directory) if is_temp_name(n)] if directory.is_dir() else []
    assert not left, f"temporaries left in {directory}: {left}"


def _check_once(chaos: Chaos, sweep_dir: Path, log: Path, n: int) -> None:
    ids = task_ids(sweep_dir)
    assert len(ids) == n, ids
    problems = check_once(read_runs(log), ids.values())
    assert not problems, "\n".join(problems)
    chaos.count("tasks", n)


def test_controllers_killed_as_they_take_the_lease(chaos: Chaos, tmp_path: Path) -> None:
    """`hsm complete --retry-failed` SIGKILLed 1-3 times as it takes the sweep's lease (watched, or
    at its link under strace) or at a random moment; the next `hsm complete` (without
    --wait-for-controller; the lease timeout is the default 120 s) is never refused and finishes
    the sweep, every task run exactly once."""
    for r in range(chaos.rounds):
        with chaos.round(r) as rng:
            root = tmp_path / f"r{r}"
            n = rng.randint(4, 8)
            log, flag, cfg = _project(root, rng, n)
            sweep_id = f"c{r}"
            sweep_dir = root / "sweeps" / "outputs" / sweep_id
            lease_dir = sweep_dir / ".controller"
            flag.write_text("")  # a first run that failed every task: --retry-failed runs them all
            first = hsm(root, "run", "--config", str(cfg), "--sweep-id", sweep_id, env=CORE)
            assert_clean_exit(first, (1,))
            flag.unlink()
            for _ in range(rng.randint(1, 3)):
                mode = _mode(rng)
                # Under strace: killed at the first call of a random kind on the lease file, or at
                # its first link (its lease's, or the takeover mutex's before it).
                kill, what = None, mode
                if mode == "strace" and rng.random() < 0.6:
                    call = rng.choice(sorted(LOCK_CALLS))
                    kill, what = at_first_call_on((lease_dir / "lease.lock").resolve(), LOCK_CALLS[call]), f"strace at its first {call} of the lease"
                elif mode == "strace":
                    kill, what = at_nth_link(1), "strace at its first link"
                proc = _popen(root, ["complete", sweep_id, "--retry-failed"], CORE, kill)
                pid: int | None = proc.pid
                try:
                    if mode == "snipe":
                        pid = snipe(lease_dir, lambda: {proc.pid} if proc.poll() is None else set(), rng)
                    elif mode == "random":
                        try:
                            proc.wait(timeout=rng.uniform(0.0, 2.0))
                            pid = None
                        except subprocess.TimeoutExpired:
                            proc.send_signal(signal.SIGKILL)
                    proc.wait(timeout=BOUND)
                finally:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
                if proc.returncode != -signal.SIGKILL:
                    # Ended before the kill came (or never made that call on the lease).
                    assert_clean_exit(proc, (0, 1))
                    chaos.count(f"controllers not killed ({what})")
                    continue
                chaos.count(f"controller SIGKILLs ({what})")
                assert_whole(chaos, lease_dir, None if mode == "strace" else pid)
            for attempt in range(2):
                done = hsm(root, "complete", sweep_id, "--retry-failed", env=CORE, timeout=BOUND)
                chaos.count("hsm complete runs")
                said = done.stdout + done.stderr
                assert "unreadable" not in said, said  # refused for an empty lease
                assert_clean_exit(done, (0, 1))
                if all(s == "completed" for s in states(sweep_dir).values()):
                    break
            else:
                raise AssertionError(f"hsm complete {sweep_id} did not finish the sweep:\n{said}")
            _check_once(chaos, sweep_dir, log, n)
            assert not (lease_dir / "lease.lock").exists(), "a lease left behind by a controller that ended"
            _no_temps(lease_dir)


def test_workers_killed_as_they_claim(chaos: Chaos, tmp_path: Path) -> None:
    """Two workers share a sweep; 2-4 times one is SIGKILLed as it claims a task or its takeover
    mutex (watched, or at its 1st-3rd link under strace) or at a random moment, and a fresh worker
    is started. The workers finish the sweep well within the stale timeout (300 s), every task run
    exactly once."""
    for r in range(chaos.rounds):
        with chaos.round(r) as rng:
            root = tmp_path / f"r{r}"
            n = rng.randint(6, 10)
            name = f"w{r}"
            log, _, cfg = _project(root, rng, n, name=name)
            sweep_dir = root / "sweeps" / "outputs" / name
            locks = sweep_dir / ".locks"
            args = ["worker", "--sweep", str(cfg)]
            workers = [_popen(root, args, WORKER_ENV) for _ in range(2)]
            killed: set[int] = set()
            try:
                for _ in range(rng.randint(2, 4)):
                    mode = _mode(rng)
                    pid: int | None = None
                    if mode == "strace":
                        # A worker killed at its N-th link: a task's claim or a takeover mutex.
                        traced = _popen(root, args, WORKER_ENV, at_nth_link(rng.randint(1, 3)))
                        workers.append(traced)
                        traced.wait(timeout=BOUND)
                        if traced.returncode == 0:
                            continue  # nothing left to claim before its N-th link
                        assert traced.returncode == -signal.SIGKILL, output_of(traced)[-3000:]
                        killed.add(traced.pid)
                    else:
                        live = {w.pid: w for w in workers if w.poll() is None}
                        if not live:
                            break
                        if mode == "snipe":
                            pid = snipe(locks, lambda: {p for p, w in live.items() if w.poll() is None}, rng)
                        else:
                            time.sleep(rng.uniform(0.0, 1.5))
                            alive = [p for p, w in live.items() if w.poll() is None]
                            pid = rng.choice(alive) if alive else None
                            if pid is not None:
                                os.kill(pid, signal.SIGKILL)
                        if pid is None:
                            break
                        live[pid].wait(timeout=BOUND)
                        killed.add(pid)
                    chaos.count(f"worker SIGKILLs ({mode})")
                    assert_whole(chaos, locks, pid)
                    workers.append(_popen(root, args, WORKER_ENV))
                deadline = time.monotonic() + BOUND
                for w in workers:
                    try:
                        w.wait(timeout=max(1.0, deadline - time.monotonic()))
                    except subprocess.TimeoutExpired:
                        raise AssertionError(f"worker {w.pid} did not finish the sweep (an empty claim?):\n"
                                             f"{output_of(w)[-3000:]}") from None
                    if w.pid not in killed:
                        assert_clean_exit(w, (0,))
                final = hsm(root, "worker", "--sweep", str(cfg), env=WORKER_ENV, timeout=BOUND)
                assert_clean_exit(final, (0,))
            finally:
                for w in workers:
                    if w.poll() is None:
                        kill_tree(w.pid)
                        w.wait()
            _check_once(chaos, sweep_dir, log, n)
            assert not list(locks.glob("*.lock")), "claims left behind"
            _no_temps(locks)
