"""The claim protocol of pull-based workers: O_EXCL claims, verdicts, exactly-once takeover."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hsm_core.plugin import ComputeSourceRecord, hookimpl
from hsm_core.workers.claims import ClaimStore, identity, machine_id, process_start


def other(locks: Path, n: int, *, stale: float = 5.0, machine: str | None = None, job=None) -> ClaimStore:
    """A store acting as a distinct worker (another machine unless told otherwise)."""
    me = identity("test")
    me.update(machine=machine or f"elsewhere-{n}|boot|ns", pid=100000 + n, pid_start="1", job=job)
    return ClaimStore(locks, cluster="test", stale_timeout=stale, me=me)


def make_stale(path: Path, seconds: float) -> None:
    """Age a lock file's mtime (what a worker that stopped refreshing leaves behind)."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_claim_is_exclusive_and_release_frees_it(tmp_path: Path) -> None:
    a, b = other(tmp_path, 1), other(tmp_path, 2)
    claim = a.acquire("run1")
    assert claim is not None
    holder = json.loads((tmp_path / "run1.lock").read_text())
    assert holder["pid"] == a.me["pid"] and holder["cluster"] == "test" and holder["token"] == claim.token
    assert {"host", "start_time", "heartbeat"} <= set(holder)
    assert b.acquire("run1") is None
    assert b.inspect("run1").verdict == "live"
    assert a.release(claim)
    assert not (tmp_path / "run1.lock").exists()
    assert b.acquire("run1") is not None


def test_heartbeat_touches_the_lock_and_keeps_it_fresh(tmp_path: Path) -> None:
    a, b = other(tmp_path, 1, stale=1.0), other(tmp_path, 2, stale=1.0)
    claim = a.acquire("r")
    before = claim.path.read_text()
    make_stale(claim.path, 10)
    assert b.inspect("r").verdict == "stale"
    assert a.refresh(claim)
    view = b.inspect("r")
    assert view.verdict == "live" and view.age < 1.0
    assert claim.path.read_text() == before  # touched, never rewritten


def test_a_heartbeat_late_after_its_check_never_puts_back_a_lost_claim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A holder stopped between its ownership check and its heartbeat write (SIGSTOP, a laptop
    lid) while another worker takes the claim over: the late heartbeat must leave the new lock."""
    a, b = other(tmp_path, 1, stale=1.0), other(tmp_path, 2, stale=1.0)
    old = a.acquire("r")
    make_stale(old.path, 5)
    real_owns = a.owns

    def owns_then_lose(claim):  # the check passes, then the takeover happens before the write
        mine = real_owns(claim)
        assert b.acquire("r") is not None
        return mine

    monkeypatch.setattr(a, "owns", owns_then_lose)
    a.refresh(old)
    monkeypatch.undo()
    assert json.loads(old.path.read_text())["token"] != old.token  # the new holder's lock stands
    assert not a.refresh(old) and old.lost


def test_stale_lock_is_taken_over_and_the_old_holder_notices(tmp_path: Path) -> None:
    a, b = other(tmp_path, 1, stale=1.0), other(tmp_path, 2, stale=1.0)
    old = a.acquire("r")
    make_stale(old.path, 5)
    new = b.acquire("r")
    assert new is not None and new.token != old.token
    # The old holder's next heartbeat finds another token: it has lost the claim...
    assert not a.refresh(old) and old.lost
    # ...and its release leaves the new holder's lock alone.
    assert not a.release(old)
    assert b.owns(new)
    assert [p.name for p in tmp_path.iterdir()] == ["r.lock"]  # no tombstone left behind


def test_clock_skew_lock_time_in_the_future_but_old_mtime_is_stale(tmp_path: Path) -> None:
    b = other(tmp_path, 2, stale=10.0)
    path = tmp_path / "r.lock"
    future = time.time() + 3600  # written by a worker whose clock runs an hour ahead
    path.write_text(json.dumps({"token": "x", "host": "fast-clock", "machine": "fast|b|n", "pid": 1,
                                "heartbeat": future, "start_epoch": future}))
    make_stale(path, 60)  # but the filesystem saw no rewrite for a minute
    view = b.inspect("r")
    assert view.verdict == "stale", view
    assert b.acquire("r") is not None


def test_clock_skew_lock_time_in_the_past_but_fresh_mtime_is_live(tmp_path: Path) -> None:
    b = other(tmp_path, 2, stale=10.0)
    path = tmp_path / "r.lock"
    past = time.time() - 3600  # a holder whose clock is an hour behind, refreshing normally
    path.write_text(json.dumps({"token": "x", "host": "slow-clock", "machine": "slow|b|n", "pid": 1, "heartbeat": past}))
    assert b.inspect("r").verdict == "live"
    assert b.acquire("r") is None


def test_a_lock_of_a_dead_process_on_this_machine_is_dead_at_once(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    start = process_start(proc.pid)
    proc.wait()
    path = tmp_path / "r.lock"
    path.write_text(json.dumps({"token": "x", "machine": machine_id(), "host": "me", "pid": proc.pid, "pid_start": start}))
    me = ClaimStore(tmp_path, stale_timeout=3600)
    view = me.inspect("r")
    assert view.verdict == "dead" and "gone" in view.reason
    # A live process on this machine keeps its lock, however old the file.
    path.write_text(json.dumps({"token": "x", "machine": machine_id(), "host": "me", "pid": os.getppid(),
                                "pid_start": process_start(os.getppid())}))
    make_stale(path, 60)
    assert me.inspect("r").verdict == "live"


def test_an_earlier_run_of_the_same_requeued_slurm_job_is_dead(tmp_path: Path) -> None:
    job0 = {"key": "slurm:77_3", "restart": 0, "step": "."}
    job1 = {"key": "slurm:77_3", "restart": 1, "step": "."}
    first = other(tmp_path, 1, stale=3600, job=job0)
    claim = first.acquire("r")
    assert claim is not None
    same_run = other(tmp_path, 2, stale=3600, job=job0)
    assert same_run.inspect("r").verdict == "live"
    requeued = other(tmp_path, 3, stale=3600, job=job1)
    assert requeued.inspect("r").verdict == "dead"
    assert requeued.acquire("r") is not None


def test_a_taker_that_moved_a_refreshed_lock_puts_it_back(tmp_path: Path) -> None:
    a, b = other(tmp_path, 1, stale=1.0), other(tmp_path, 2, stale=1.0)
    claim = a.acquire("r")
    make_stale(claim.path, 5)
    view = b.inspect("r")
    assert view.takeable
    assert a.refresh(claim)  # the holder was only slow: it refreshes after b judged it stale
    assert b._move_aside(view) is None  # b moved the fresh file, sees it, and puts it back
    assert a.owns(claim) and a.refresh(claim)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.lock"]


def test_empty_lock_of_a_worker_killed_while_claiming_ages_out(tmp_path: Path) -> None:
    b = other(tmp_path, 2, stale=2.0)
    (tmp_path / "r.lock").touch()
    assert b.inspect("r").verdict == "live"
    make_stale(tmp_path / "r.lock", 10)
    assert b.acquire("r") is not None


def test_leftover_tombstones_and_temp_files_are_swept(tmp_path: Path) -> None:
    b = other(tmp_path, 2, stale=1.0)
    for name in ("r.lock.tomb-1-abc", ".r.abcd.tmp", ".clock-1-x"):
        (tmp_path / name).touch()
        make_stale(tmp_path / name, 10)
    (tmp_path / "keep.lock").touch()
    assert b.sweep_leftovers() == 3
    assert [p.name for p in tmp_path.iterdir()] == ["keep.lock"]


@pytest.mark.parametrize("round_", range(20))
def test_exactly_one_of_many_threads_takes_over_a_stale_lock(tmp_path: Path, round_: int) -> None:
    dead = other(tmp_path, 0, stale=1.0)
    dead.acquire("r")
    make_stale(tmp_path / "r.lock", 30)
    stores = [other(tmp_path, i + 1, stale=1.0) for i in range(16)]
    barrier = threading.Barrier(len(stores))
    wins: list[int] = []

    def race(i: int) -> None:
        barrier.wait()
        if stores[i].acquire("r") is not None:
            wins.append(i)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1, wins
    holder = json.loads((tmp_path / "r.lock").read_text())
    assert holder["pid"] == stores[wins[0]].me["pid"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.lock"]


def _race_in_process(locks: str, n: int, start_at: float, out: str) -> None:
    store = other(Path(locks), n, stale=1.0)
    while time.time() < start_at:
        time.sleep(0.0005)
    got = store.acquire("r")
    with open(out, "a") as fh:
        fh.write(f"{n} {'won' if got else 'lost'}\n")


@pytest.mark.parametrize("round_", range(5))
def test_exactly_one_of_many_processes_takes_over_a_stale_lock(tmp_path: Path, round_: int) -> None:
    locks = tmp_path / "locks"
    locks.mkdir()
    other(locks, 0, stale=1.0).acquire("r")
    make_stale(locks / "r.lock", 30)
    out = tmp_path / "results.txt"
    ctx = multiprocessing.get_context("fork")
    start_at = time.time() + 0.5
    procs = [ctx.Process(target=_race_in_process, args=(str(locks), i + 1, start_at, str(out))) for i in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    lines = out.read_text().split("\n")
    assert sum(1 for ln in lines if ln.endswith("won")) == 1, lines
    assert sum(1 for ln in lines if ln.endswith("lost")) == 7
    assert sorted(p.name for p in locks.iterdir()) == ["r.lock"]


# --------------------------------------------------------------------------------------------
# Settings, names and job scripts (pure functions)
# --------------------------------------------------------------------------------------------


def test_settings_precedence_flag_env_cluster_config_default(tmp_path: Path) -> None:
    from hsm_core.plugin import ConfigError
    from hsm_core.workers.settings import resolve_settings

    config = {"workers": {"storage_root": "shared", "stale_timeout": 100,
                          "clusters": {"slurm": {"storage_root": "/nobackup/x", "heartbeat_interval": 10}}}}
    s = resolve_settings(tmp_path, config, cluster="local", env={})
    assert s.storage_root == tmp_path / "shared" and s.stale_timeout == 100 and s.heartbeat_interval == 30
    s = resolve_settings(tmp_path, config, cluster="slurm", env={})
    assert s.storage_root == Path("/nobackup/x") and s.heartbeat_interval == 10
    s = resolve_settings(tmp_path, config, cluster="slurm", env={"HSM_STORAGE_ROOT": "/env/root"})
    assert s.storage_root == Path("/env/root") and s.origins["storage_root"] == "env HSM_STORAGE_ROOT"
    s = resolve_settings(tmp_path, config, cluster="slurm", storage_root="/flag", env={"HSM_STORAGE_ROOT": "/env/root"})
    assert s.storage_root == Path("/flag")
    assert resolve_settings(tmp_path, {}, env={}).storage_root is None
    with pytest.raises(ConfigError, match="at least twice"):
        resolve_settings(tmp_path, {"workers": {"heartbeat_interval": 60, "stale_timeout": 90}}, env={})
    with pytest.raises(ConfigError, match="number of seconds"):
        resolve_settings(tmp_path, {}, env={"HSM_WORKER_STALE_TIMEOUT": "soon"})


def test_run_dir_names_are_deterministic_and_carry_the_seed() -> None:
    from hsm_core.sweep import default_task_id
    from hsm_core.workers.layout import run_dir_name, safe_name

    p = {"lr": 0.1, "training.seed": 3}
    assert run_dir_name(default_task_id(p), p) == f"{default_task_id(p)}_s3"
    assert run_dir_name("abc", {"lr": 1}) == "abc"
    assert run_dir_name("abc", {"seed": "a/b"}) == "abc_sa-b"
    assert safe_name("bpe 16384/n3", "x") == "bpe-16384-n3"


class _QueuePlugin:
    """A batch scheduler that core knows nothing of but its record: its jobs set QUEUE_JOB."""

    @hookimpl
    def hsm_register_compute_sources(self):
        def job(env):
            return {"HSM_JOB_ID": env["QUEUE_JOB"], "HSM_JOB_RESTART": env.get("QUEUE_RUNS", "")} if env.get("QUEUE_JOB") else None

        def broken(env):
            raise RuntimeError("a plugin bug")

        return [ComputeSourceRecord("queue", "q", "x:y", batch_scheduler=True, job_from_env=job),
                ComputeSourceRecord("aaa_broken", "b", "x:y", batch_scheduler=True, job_from_env=broken),
                ComputeSourceRecord("plain", "not a scheduler", "x:y", job_from_env=broken)]


def test_a_worker_knows_its_scheduler_job_from_hsm_variables_or_the_plugin_record() -> None:
    from hsm_core.jobenv import claim_job, current_job, status_fields
    from hsm_core.registry import build_registry

    registry = build_registry(entry_points=False, extra=[("queue", _QueuePlugin())])
    assert current_job({}, registry) is None
    # A job script of a scheduler plugin exports hsm's names: they win, no plugin is asked.
    exported = {"HSM_JOB_ID": "9", "HSM_ARRAY_INDEX": "2", "HSM_JOB_RESTART": "", "QUEUE_JOB": "1"}
    assert status_fields(current_job(exported, registry)) == {"job_id": "9", "array_index": "2"}
    # A script the user wrote: the plugin recognises its own job (a broken one is passed over).
    job = current_job({"QUEUE_JOB": "41", "QUEUE_RUNS": "3"}, registry)
    assert claim_job(job) == {"key": "41", "restart": 3, "step": ""}
    store = ClaimStore(Path("/nonexistent"), cluster="c", job=claim_job(job))
    assert store.me["job"] == {"key": "41", "restart": 3, "step": ""}

