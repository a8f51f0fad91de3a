"""Lock files appear whole (hsm_core/whole_file.py): a kill at any moment leaves no lock or a
complete one, never an empty one that names no one.

What a process killed while taking a lock now leaves is a temporary beside it. The tests make real
processes leave exactly that (a child whose ``link`` is its own SIGKILL: killed after writing the
temporary, before the lock exists) and check, with the real ``hsm``, that the next controller or
worker is not blocked by it and removes it. Chaos with kills at random moments is in
tests/chaos/test_chaos_lock_window.py.
"""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from chaos_support import hsm, write_chaos_project
from hsm_core import whole_file
from hsm_core.testing.runlog import RUNLOG_SCRIPT, check_once, read_runs
from hsm_core.whole_file import clean_stale_temps, create_whole, is_temp_name, temp_owner
from hsm_core.workers.claims import ClaimStore

CORE = {"HSM_DISABLE_PLUGINS": "all"}

#: Runs python code (argv[1]) in a process whose ``os.link`` SIGKILLs it: it dies with its lock's
#: temporary written and not yet linked, what a kill at that moment leaves.
KILLED_AT_LINK = r'''
import os, runpy, signal, sys
os.link = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
if sys.argv[1] == "hsm":
    sys.argv = ["hsm", *sys.argv[2:]]
    runpy.run_module("hsm_core", run_name="__main__")
else:
    exec(sys.argv[1])
'''


def _killed_at_link(code_or_hsm: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = dict(os.environ, **(env or {}))
    done = subprocess.run([sys.executable, "-c", KILLED_AT_LINK, *code_or_hsm], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr
    return done


def _temps(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if is_temp_name(p.name)) if directory.is_dir() else []


# --------------------------------------------------------------------------------------------
# The protocol
# --------------------------------------------------------------------------------------------


def _race(directory: str, n: int, start_at: float, out: str) -> None:
    while time.time() < start_at:
        time.sleep(0.0005)
    won = create_whole(Path(directory) / "r.lock", json.dumps({"n": n, "pad": "x" * 5000}).encode())
    with open(out, "a") as fh:
        fh.write(f"{n} {'won' if won else 'lost'}\n")


def test_exactly_one_of_many_processes_creates_the_lock_and_it_is_whole(tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    locks.mkdir()
    out = tmp_path / "results.txt"
    ctx = multiprocessing.get_context("fork")
    start_at = time.time() + 0.5
    procs = [ctx.Process(target=_race, args=(str(locks), i, start_at, str(out))) for i in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    won = [int(line.split()[0]) for line in out.read_text().splitlines() if line.endswith("won")]
    assert len(won) == 1, out.read_text()
    assert json.loads((locks / "r.lock").read_text())["n"] == won[0]
    assert [p.name for p in locks.iterdir()] == ["r.lock"]  # no temporaries left


def test_a_claim_killed_before_its_link_leaves_only_a_complete_temporary(tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    code = f"from hsm_core.workers.claims import ClaimStore; ClaimStore({str(locks)!r}).acquire('r')"
    _killed_at_link([code], tmp_path)
    assert not (locks / "r.lock").exists()
    [temp] = _temps(locks)
    holder = json.loads(temp.read_text())  # written whole before the link was tried
    assert holder["run_id"] == "r" and temp_owner(temp.name) == (whole_file.machine_tag(), holder["pid"])
    # It blocks no one, and the next store's housekeeping removes it (its writer is gone).
    store = ClaimStore(locks, stale_timeout=300)
    assert store.locked_ids() == set()
    claim = store.acquire("r")
    assert claim is not None and store.owns(claim)
    assert store.sweep_leftovers() == 1
    assert sorted(p.name for p in locks.iterdir()) == ["r.lock"]


def test_a_temporary_of_a_live_writer_is_never_removed(tmp_path: Path) -> None:
    # A writer stopped between its temporary and its link (here: one that sleeps there).
    code = textwrap.dedent(f"""\
        import sys, time
        from pathlib import Path
        from hsm_core.whole_file import temp_path
        t = temp_path(Path({str(tmp_path)!r}) / "r.lock")
        t.write_text("{{}}")
        print(t, flush=True)
        time.sleep(120)
        """)
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        temp = Path(writer.stdout.readline().strip())
        old = time.time() - 3600
        os.utime(temp, (old, old))
        assert clean_stale_temps(tmp_path, older_than=1.0) == 0
        assert temp.exists()
    finally:
        writer.kill()
        writer.wait()
    assert clean_stale_temps(tmp_path, older_than=1.0) == 1  # its writer is gone
    assert not temp.exists()


def test_a_temporary_from_another_machine_goes_only_once_older_than_the_limit(tmp_path: Path) -> None:
    temp = tmp_path / ".r.lock.0badf00d.12345.abcdef123456.part"  # pid 12345 of another machine
    temp.write_text("{}")
    (tmp_path / "r.lock").write_text("{}")
    (tmp_path / ".r.lock.abcd.tmp").write_text("")  # not a temporary of create_whole
    assert clean_stale_temps(tmp_path, older_than=60.0) == 0
    old = time.time() - 120
    os.utime(temp, (old, old))
    assert clean_stale_temps(tmp_path, older_than=60.0) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.lock.abcd.tmp", "r.lock"]


def test_without_hard_links_the_lock_is_created_with_o_excl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # What a FUSE or SMB mount without hard links answers (link(2): EPERM). No such mount here,
    # so the filesystem's answer is the one thing stood in for.
    calls = []

    def no_links(src, dst, *a, **k):
        calls.append(dst)
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(whole_file, "_no_link_devices", set())
    monkeypatch.setattr(os, "link", no_links)
    assert create_whole(tmp_path / "a.lock", b'{"a": 1}')
    assert not create_whole(tmp_path / "a.lock", b'{"a": 2}')
    assert create_whole(tmp_path / "b.lock", b'{"b": 1}')
    assert len(calls) == 1  # asked once for the device, then O_EXCL straight away
    assert json.loads((tmp_path / "a.lock").read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.lock", "b.lock"]


def test_a_link_made_but_reported_failed_counts_as_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # NFS: the server makes the link and its answer is lost; the retried request says EEXIST
    # (link(2) BUGS). The temporary's link count shows it is ours.
    real_link = os.link

    def lost_answer(src, dst, *a, **k):
        real_link(src, dst)
        raise OSError(errno.EEXIST, "File exists")

    monkeypatch.setattr(os, "link", lost_answer)
    assert create_whole(tmp_path / "r.lock", b'{"mine": true}')
    monkeypatch.setattr(os, "link", real_link)
    assert not create_whole(tmp_path / "r.lock", b'{"mine": false}')
    assert json.loads((tmp_path / "r.lock").read_text()) == {"mine": True}
    assert [p.name for p in tmp_path.iterdir()] == ["r.lock"]


# --------------------------------------------------------------------------------------------
# Through the real hsm
# --------------------------------------------------------------------------------------------


def _runlog_project(root: Path, n: int) -> tuple[Path, Path]:
    """A project whose tasks log their start and end; a sweep of ``n`` of them that failed once
    (``--retry-failed`` runs them). Returns (run log, sweep dir)."""
    log, flag = root / "runs.log", root / "fail.flag"
    write_chaos_project(root)
    (root / "train.py").write_text(RUNLOG_SCRIPT.format(log=str(log), fail_flag=str(flag)))
    cfg = root / "sweeps" / "sweep.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(yaml.safe_dump({"grid": {"x": list(range(n)), "sleep": [0.2]}}))
    flag.write_text("")
    first = hsm(root, "run", "--config", str(cfg), "--sweep-id", "s", env=CORE)
    assert first.returncode == 1, first.stdout + first.stderr
    flag.unlink()
    return log, root / "sweeps" / "outputs" / "s"


def _task_ids(sweep: Path) -> set[str]:
    return {str(yaml.safe_load((d / "params.yaml").read_text())["task_id"]) for d in (sweep / "tasks").iterdir()}


def test_a_controller_killed_as_it_took_the_lease_blocks_no_one(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    log, sweep = _runlog_project(root, 3)
    # Before: the lease file left empty, every controller refused for 120 s (the default timeout).
    _killed_at_link(["hsm", "complete", "s", "--retry-failed"], root, CORE)
    lease_dir = sweep / ".controller"
    assert not (lease_dir / "lease.lock").exists()
    [temp] = _temps(lease_dir)
    assert json.loads(temp.read_text())["command"] == "hsm complete"
    assert not read_runs(log)
    started = time.monotonic()
    done = hsm(root, "complete", "s", "--retry-failed", env=CORE, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert time.monotonic() - started < 60  # not the lease timeout
    assert not check_once(read_runs(log), _task_ids(sweep))
    assert not _temps(lease_dir), "the killed controller's temporary was not removed"
    assert not (lease_dir / "lease.lock").exists()


def test_a_worker_killed_as_it_claimed_a_task_blocks_no_one(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    log, flag = root / "runs.log", root / "fail.flag"
    write_chaos_project(root)
    (root / "train.py").write_text(RUNLOG_SCRIPT.format(log=str(log), fail_flag=str(flag)))
    cfg = root / "sweeps" / "w.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(yaml.safe_dump({"name": "w", "grid": {"x": list(range(3)), "sleep": [0.2]}}))
    # A long stale timeout: a claim left empty would hold its task for 300 s.
    env = dict(CORE, HSM_WORKER_HEARTBEAT="0.3", HSM_WORKER_STALE_TIMEOUT="300")
    _killed_at_link(["hsm", "worker", "--sweep", str(cfg)], root, env)
    sweep = root / "sweeps" / "outputs" / "w"
    locks = sweep / ".locks"
    assert [p.name for p in locks.iterdir() if p.name.endswith(".lock")] == []
    assert len(_temps(locks)) == 1
    # The status table reads no claim into it (nothing held, nothing stale).
    status = hsm(root, "worker", "--sweep", str(cfg), "--status", "--json", env=env)
    assert status.returncode == 0, status.stdout + status.stderr
    table = json.loads(status.stdout)
    assert table["stale_locks"] == 0 and table["counts"]["pending"] == 3, table
    assert all(row["claimed_by"] is None for row in table["tasks"]), table["tasks"]
    done = hsm(root, "worker", "--sweep", str(cfg), env=env, timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not check_once(read_runs(log), _task_ids(sweep))
    assert sorted(p.name for p in locks.iterdir()) == [], "leftovers in .locks"
