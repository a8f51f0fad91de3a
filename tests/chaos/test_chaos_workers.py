"""Chaos for pull-based workers (`hsm worker`, docs/workers.md): workers SIGKILLed while they hold a
claim, and workers whose clocks disagree (skewed, stepping backwards) next to claim holders whose
lock files carry heartbeat times far in the future or the past."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import yaml

from chaos_support import (  # noqa: F401 - chaos is a fixture
    Chaos,
    assert_clean_exit,
    assert_exactly_once,
    chaos,
    completed_ids,
    hsm,
    hsm_popen,
    kill_tree,
    output_of,
    wait_until,
    write_chaos_project,
)

#: Short heartbeat and stale timeout, core behaviour only (no installed plugins).
FAST = {"HSM_WORKER_HEARTBEAT": "0.3", "HSM_WORKER_STALE_TIMEOUT": "2", "HSM_DISABLE_PLUGINS": "all"}

#: Runs `hsm worker` as if on another host whose clock is off: time.time() is shifted by
#: CHAOS_SKEW seconds (by CHAOS_SKEW_AFTER seconds once CHAOS_STEP_AT seconds have passed or the
#: file CHAOS_STEP_FILE exists: a clock step, e.g. NTP correcting it), and the machine id is CHAOS_MACHINE, so other workers cannot
#: check its pid and must go by the lock file's age alone.
SKEWED_WORKER = r'''
import os, runpy, sys, time
_real, _real_ns, _t0 = time.time, time.time_ns, time.monotonic()
def _skew():
    at, flag = os.environ.get("CHAOS_STEP_AT"), os.environ.get("CHAOS_STEP_FILE")
    if (at and time.monotonic() - _t0 >= float(at)) or (flag and os.path.exists(flag)):
        return float(os.environ["CHAOS_SKEW_AFTER"])
    return float(os.environ.get("CHAOS_SKEW", "0"))
time.time = lambda: _real() + _skew()
time.time_ns = lambda: _real_ns() + int(_skew() * 1e9)
import hsm_core.workers.claims as claims
import hsm_core.workers.worker as worker
fake = os.environ["CHAOS_MACHINE"]
claims.machine_id = worker.machine_id = lambda: fake
sys.argv = ["hsm", *sys.argv[1:]]
runpy.run_module("hsm_core", run_name="__main__")
'''


def _worker_sweep(root: Path, rng, name: str, n: int, sleep: tuple[float, float]) -> Path:
    values = [round(rng.uniform(*sleep), 2) for _ in range(n)]
    path = root / "sweeps" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"name": name, "paired": [{"p": {"x": list(range(n)), "sleep": values}}]}))
    return path


def _lock_holders(sweep_dir: Path) -> dict[int, str]:
    """pid -> run id of every readable lock file."""
    out = {}
    locks = sweep_dir / ".locks"
    for p in locks.glob("*.lock") if locks.is_dir() else []:
        try:
            holder = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(holder.get("pid"), int):
            out[holder["pid"]] = p.name[: -len(".lock")]
    return out


def _finish_with_a_worker(chaos: Chaos, root: Path, cfg: Path, workers: list) -> None:
    """The workers finish the sweep by themselves (a stuck one fails the test); one more worker
    afterwards finds nothing left to do."""
    for w in workers:
        try:
            w.wait(timeout=120)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker {w.pid} did not finish the sweep (stuck?):\n{output_of(w)[-3000:]}") from None
        # 0: all done; -9: killed by us. Nothing else (no traceback, no failure).
        if w.returncode != -signal.SIGKILL:
            assert_clean_exit(w, (0,))
    final = hsm(root, "worker", "--sweep", str(cfg), env=FAST)
    chaos.count("final workers")
    assert_clean_exit(final, (0,))


def test_sigkill_of_a_worker_holding_a_claim(chaos: Chaos, tmp_path: Path) -> None:
    """Three workers share a sweep; 1-4 times a worker that holds a claim is SIGKILLed - alone
    (its task keeps running and must be waited for, not run again) or with its task (a node
    lost) - and a fresh worker is started. Every configuration runs to its end exactly once."""
    for r in range(chaos.rounds):
        with chaos.round(r) as rng:
            root = tmp_path / f"r{r}"
            count = write_chaos_project(root)
            n = rng.randint(8, 14)
            cfg = _worker_sweep(root, rng, f"w{r}", n, (0.3, 1.2))
            sweep_dir = root / "sweeps" / "outputs" / f"w{r}"
            workers = [hsm_popen(root, "worker", "--sweep", str(cfg), env=FAST) for _ in range(3)]
            try:
                for _ in range(rng.randint(1, 4)):
                    def holders() -> list[int]:
                        mine = {w.pid for w in workers if w.poll() is None}
                        return [pid for pid in _lock_holders(sweep_dir) if pid in mine]

                    if not wait_until(lambda: holders() or all(w.poll() is not None for w in workers), 60, "a claim"):
                        break
                    time.sleep(rng.uniform(0.0, 0.8))
                    if not holders():
                        break
                    mine = {w.pid: w for w in workers}
                    pid = rng.choice(holders())
                    if rng.random() < 0.5:
                        os.kill(pid, signal.SIGKILL)
                        chaos.count("worker SIGKILLs (task left running)")
                    else:
                        kill_tree(pid)
                        chaos.count("worker SIGKILLs with their task (node lost)")
                    mine[pid].wait()
                    workers.append(hsm_popen(root, "worker", "--sweep", str(cfg), env=FAST))
                _finish_with_a_worker(chaos, root, cfg, workers)
            finally:
                for w in workers:
                    if w.poll() is None:
                        kill_tree(w.pid)
                        w.wait()
            assert_exactly_once(sweep_dir, count, n)
            assert not list((sweep_dir / ".locks").glob("*.lock")), "claims left behind"
            chaos.count("tasks", n)


class Ghost(threading.Thread):
    """A claim holder on a host whose clock is ``skew`` seconds off: it writes heartbeat times
    from that clock into the lock (like a real worker) and rewrites the file every ``interval``
    seconds until ``stop()``. Records whether anyone replaced its lock while it was refreshing."""

    def __init__(self, lock: Path, run_id: str, skew: float, interval: float = 0.3) -> None:
        super().__init__(daemon=True)
        self.lock, self.run_id, self.skew, self.interval = lock, run_id, skew, interval
        self.token = uuid.uuid4().hex
        self.stolen = False
        self.held = False
        self._halt = threading.Event()

    def _content(self) -> str:
        t = time.time() + self.skew
        return json.dumps({"host": "ghost", "machine": f"ghost-{self.token[:6]}|boot|ns", "pid": 4_000_000,
                           "cluster": "far", "run_id": self.run_id, "token": self.token, "start_epoch": t,
                           "heartbeat": t, "beats": 0})

    def claim(self) -> bool:
        try:
            fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as fh:
            fh.write(self._content())
        self.held = True
        return True

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                if json.loads(self.lock.read_text()).get("token") != self.token:
                    self.stolen = True
                    return
            except (OSError, ValueError):
                self.stolen = True
                return
            tmp = self.lock.with_name(f".{self.run_id}.ghost.tmp")
            tmp.write_text(self._content())
            os.replace(tmp, self.lock)

    def stop(self) -> None:
        """The ghost's host dies: it stops refreshing and leaves its lock behind."""
        self._halt.set()
        self.join()


def test_clock_skew_between_hosts_in_claim_heartbeats(chaos: Chaos, tmp_path: Path) -> None:
    """Workers "on other hosts" run with clocks off by up to two hours (some stepping backwards by
    an hour mid-run), while ghost holders whose heartbeat times lie a day in the future or the past
    hold a few claims: a live ghost (refreshing its file) never loses its claim, a dead one (its
    host gone, its heartbeat time in the future) is taken over once its file is stale_timeout old,
    a skewed worker killed with its task is taken over the same way, and every configuration runs
    to its end exactly once."""
    for r in range(chaos.rounds):
        with chaos.round(r) as rng:
            root = tmp_path / f"r{r}"
            count = write_chaos_project(root)
            (root / "skewed_worker.py").write_text(SKEWED_WORKER)
            n = rng.randint(8, 12)
            group = f"c{r}"
            cfg = _worker_sweep(root, rng, group, n, (0.2, 0.7))
            sweep_dir = root / "sweeps" / "outputs" / group
            # Create the sweep dir (and learn the run ids) without running anything.
            listing = hsm(root, "worker", "--sweep", str(cfg), "--status", "--json", env=FAST)
            assert_clean_exit(listing, (0,))
            run_ids = [t["run_id"] for t in json.loads(listing.stdout)["tasks"]]
            (sweep_dir / ".locks").mkdir(parents=True, exist_ok=True)
            ghosts = []
            for run_id in rng.sample(run_ids, 2):
                skew = rng.choice([-1, 1]) * 86400.0
                ghost = Ghost(sweep_dir / ".locks" / f"{run_id}.lock", run_id, skew)
                assert ghost.claim()
                ghost.start()
                ghosts.append(ghost)
                chaos.count(f"ghost claims, heartbeat in the {'future' if skew > 0 else 'past'}")
            workers = []
            skews = []
            # Half the rounds: once the workers have nothing left but to watch the ghosts' claims,
            # every worker's clock steps back an hour; they alone must notice the stale claims.
            all_step = rng.random() < 0.5
            step_file = root / "clock_step"
            for i in range(3):
                skew = rng.uniform(-7200, 7200)
                env = {**FAST, "CHAOS_SKEW": str(skew), "CHAOS_MACHINE": f"host{i}-r{r}|boot|ns"}
                if all_step:
                    env.update(CHAOS_STEP_FILE=str(step_file), CHAOS_SKEW_AFTER=str(skew - 3600))
                    chaos.count("idle workers whose clock steps back an hour")
                elif rng.random() < 0.5:
                    env.update(CHAOS_STEP_AT=str(rng.uniform(0.2, 2.0)), CHAOS_SKEW_AFTER=str(skew - 3600))
                    chaos.count("workers whose clock steps back an hour")
                skews.append(skew)
                workers.append(hsm_popen(root, "worker", "--sweep", str(cfg), env=env,
                                         python_prefix=[str(root / "skewed_worker.py")]))
                chaos.count("skewed workers")
            try:
                # Ghosts hold their claims for a while; one dies with its lock in place, the other
                # releases it (deletes the lock) like a worker that finished elsewhere... then the
                # workers must run both exactly once.
                time.sleep(rng.uniform(1.0, 3.0))
                if all_step:
                    wait_until(lambda: len(completed_ids(sweep_dir)) >= n - len(ghosts), 120, "the unclaimed tasks")
                    step_file.touch()
                    time.sleep(rng.uniform(0.3, 1.0))
                elif rng.random() < 0.7:
                    mine = {w.pid: w for w in workers if w.poll() is None}
                    holders = [pid for pid in _lock_holders(sweep_dir) if pid in mine]
                    if holders:
                        kill_tree(rng.choice(holders))
                        chaos.count("skewed workers killed with their task (stale path)")
                for ghost in ghosts:
                    ghost.stop()
                    assert not ghost.stolen, f"the live claim of ghost {ghost.run_id} (skew {ghost.skew:+.0f}s) was taken"
                    if rng.random() < 0.3:
                        ghost.lock.unlink()
                        chaos.count("ghost claims released")
                    else:
                        chaos.count("ghost claims left stale")
                for w in list(workers):
                    if w.poll() is not None and w.returncode == -signal.SIGKILL:
                        env = {**FAST, "CHAOS_SKEW": "0", "CHAOS_MACHINE": f"late-r{r}|boot|ns"}
                        workers.append(hsm_popen(root, "worker", "--sweep", str(cfg), env=env,
                                                 python_prefix=[str(root / "skewed_worker.py")]))
                _finish_with_a_worker(chaos, root, cfg, workers)
            finally:
                for ghost in ghosts:
                    ghost.stop()
                for w in workers:
                    if w.poll() is None:
                        kill_tree(w.pid)
                        w.wait()
            assert_exactly_once(sweep_dir, count, n)
            chaos.count("tasks", n)
            chaos.count("rounds where every worker's clock stepped back", int(all_step))
