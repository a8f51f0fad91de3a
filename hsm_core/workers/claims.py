"""Claims: one lock file per run, created atomically, refreshed by a heartbeat, taken over once.

Protocol (all on the sweep's ``.locks/`` directory, which may be on NFS v3+):

* **Claim**: ``.locks/<run_id>.lock`` is created *whole* (:func:`hsm_core.whole_file.create_whole`):
  the JSON naming its holder (host, pid, cluster, scheduler job, a random token, start time,
  heartbeat) is written to a temporary ``.<run_id>.lock.<machine>.<pid>.<random>.part`` that is then
  ``link``-ed to the lock's name. Exactly one creator succeeds, and a kill at any moment leaves either
  no lock or a complete one (never an empty lock that names no one), plus perhaps a temporary that
  blocks nobody and is cleaned up (:meth:`ClaimStore.sweep_leftovers`). A filesystem without hard
  links gets ``O_CREAT | O_EXCL`` then a write; an empty lock (from there, or from an older hsm) is
  judged by its age alone.
* **Heartbeat**: the holder checks the file still carries its token, then touches it (sets its
  mtime) every few seconds; it never rewrites it (see :meth:`ClaimStore.refresh`). Finding another
  token (or no file) means the claim was taken over: the holder must stop its task without
  writing anything more.
* **Verdict** on someone else's lock: *dead* when its process is provably gone (same machine and
  the pid is not that process any more, or an earlier incarnation of this very scheduler job, which
  a scheduler only requeues after killing it); *stale* when its file was not rewritten for
  ``stale_timeout`` seconds. Ages use the file's mtime against the *filesystem's* clock (measured
  by writing a probe file), never only the time written inside the file: a holder whose clock is
  ahead cannot make its lock look fresh forever, and client/server clock skew on NFS cancels out.
* **Takeover** (dead or stale): a taker first creates the run's takeover mutex
  (``.locks/.<run_id>.takeover``, created whole the same way; one left by a dead taker is cleared the same way
  as a lock), judges the lock again, renames it to a unique tombstone name (``rename`` is atomic)
  and checks the tombstone is the very file it judged (inode and mtime): if the holder rewrote it
  in between (it was slow, not dead), the fresh lock is put back with ``link`` (which never
  overwrites). Only then does the taker create its own lock, delete the tombstone and
  leave the mutex. The mutex matters: without it a slow taker that judged the old lock could move
  aside the fresh lock a faster taker had just created, and both would run the task.
* **Release**: the same rename-verify step, so a holder never deletes a lock that is not its own.

Stdlib and psutil (through :mod:`hsm_core.processes`) only: this module runs inside every worker.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from hsm_core import processes
from hsm_core.atomic import unlink_if_present
from hsm_core.whole_file import clean_stale_temps, create_whole

LOCK_SUFFIX = ".lock"
TOMB_MARK = ".lock.tomb-"
MUTEX_SUFFIX = ".takeover"
#: Seconds a measured filesystem clock offset stays valid.
_CLOCK_TTL = 60.0


# --------------------------------------------------------------------------------------------
# Who we are
# --------------------------------------------------------------------------------------------


def machine_id() -> str:
    """Identifies this OS instance and pid namespace (see :func:`hsm_core.processes.machine_id`):
    two processes with the same machine id can check each other's pids."""
    return processes.machine_id()


def process_start(pid: int) -> str | None:
    """Start time of a live process (epoch seconds, as text): with the pid, it names the process."""
    ident = processes.identity(pid)
    return ident.split(":", 1)[1] if ident else None


def process_alive(pid: int, start: str | None) -> bool:
    """True when ``pid`` is still the process that started at ``start`` and is not a zombie, or
    when that cannot be checked (a lock is never judged dead on a guess)."""
    return processes.is_running(f"{pid}:{start if start is not None else '?'}") is not False


def identity(cluster: str, job: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a lock says about its holder (without token and times). ``job``: the scheduler job
    this process runs in, ``{"key", "restart", "step"}`` (:func:`hsm_core.jobenv.claim_job`)."""
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "machine": machine_id(),
        "pid": pid,
        "pid_start": process_start(pid),
        "cluster": cluster,
        "job": dict(job) if job else None,
    }


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


@dataclass
class Claim:
    """A lock this process holds."""

    run_id: str
    path: Path
    token: str
    info: dict[str, Any]
    ino: int = 0
    #: Set by the heartbeat when another worker took the lock over.
    lost: bool = False
    #: True when this claim replaced a dead or stale one (its worker may have left a process).
    taken_over: bool = False


@dataclass
class LockView:
    """Someone's lock as seen now."""

    run_id: str
    path: Path
    holder: dict[str, Any] | None  #: the JSON content (None: empty or unreadable)
    ino: int
    mtime_ns: int
    age: float  #: seconds since the last rewrite, on the filesystem's clock
    verdict: str  #: "live", "stale", "dead" or "mine"
    reason: str = ""

    @property
    def takeable(self) -> bool:
        """True when the lock may be taken over."""
        return self.verdict in ("stale", "dead")


@dataclass
class ClaimStore:
    """The locks of one sweep (``<sweep>/.locks``) as seen by one worker."""

    locks_dir: Path
    cluster: str = "local"
    stale_timeout: float = 300.0
    me: dict[str, Any] = field(default_factory=dict)
    #: The scheduler job this worker runs in (see :func:`identity`), when ``me`` is not given.
    job: Mapping[str, Any] | None = None
    _offset: float = 0.0
    _offset_at: float = float("-inf")

    def __post_init__(self) -> None:
        self.locks_dir = Path(self.locks_dir)
        if not self.me:
            self.me = identity(self.cluster, self.job)

    # -- paths ---------------------------------------------------------------------------------
    def lock_path(self, run_id: str) -> Path:
        """``.locks/<run_id>.lock``."""
        if "/" in run_id or run_id.startswith("."):
            raise ValueError(f"bad run id {run_id!r}")
        return self.locks_dir / f"{run_id}{LOCK_SUFFIX}"

    def _tomb(self, run_id: str) -> Path:
        return self.locks_dir / f"{run_id}{TOMB_MARK}{self.me['pid']}-{uuid.uuid4().hex[:12]}"

    # -- the filesystem's clock ----------------------------------------------------------------
    def fs_now(self) -> float:
        """The current time on the filesystem holding the locks (its mtimes use this clock)."""
        now = time.time()
        # Measure again after the TTL, and at once when our clock went backwards (an NTP step):
        # the old offset would make every lock look younger by the step and none ever stale.
        if not 0.0 <= now - self._offset_at <= _CLOCK_TTL:
            self._measure_clock()
        return time.time() + self._offset

    def _measure_clock(self) -> None:
        probe = self.locks_dir / f".clock-{self.me['pid']}-{uuid.uuid4().hex[:8]}"
        before = time.time()
        try:
            fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            os.close(fd)
            mtime = os.stat(probe).st_mtime
        except OSError:
            return
        finally:
            try:
                os.unlink(probe)
            except OSError:
                pass
        after = time.time()
        self._note_mtime(mtime, (before + after) / 2)

    def _note_mtime(self, mtime: float, local: float) -> None:
        self._offset = mtime - local
        self._offset_at = local

    # -- reading -------------------------------------------------------------------------------
    def inspect(self, run_id: str) -> LockView | None:
        """The lock of ``run_id`` with a verdict, or None when there is none."""
        path = self.lock_path(run_id)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        holder = _read_json(path)
        age = self.fs_now() - st.st_mtime
        verdict, reason = self._verdict(holder, age)
        return LockView(run_id, path, holder, st.st_ino, st.st_mtime_ns, age, verdict, reason)

    def _verdict(self, holder: dict[str, Any] | None, age: float) -> tuple[str, str]:
        if holder:
            if holder.get("machine") == self.me["machine"]:
                pid = holder.get("pid")
                if pid == self.me["pid"]:
                    return "mine", ""
                if isinstance(pid, int) and not process_alive(pid, holder.get("pid_start")):
                    return "dead", f"process {pid} on {holder.get('host')} is gone"
            mine, theirs = self.me.get("job"), holder.get("job")
            if (
                mine
                and theirs
                and mine.get("key") == theirs.get("key")
                and mine.get("step") == theirs.get("step")
                and isinstance(theirs.get("restart"), int)
                and isinstance(mine.get("restart"), int)
                and theirs["restart"] < mine["restart"]
            ):
                # A scheduler requeues a job only after killing it: an earlier run of our own job is dead.
                return "dead", f"earlier run of job {theirs['key']} (restart {theirs['restart']})"
        if age > self.stale_timeout:
            return "stale", f"no heartbeat for {age:.0f}s (timeout {self.stale_timeout:g}s)"
        return "live", ""

    def locks(self) -> dict[str, LockView]:
        """Every lock in the directory, by run id."""
        out: dict[str, LockView] = {}
        for run_id in self.locked_ids():
            view = self.inspect(run_id)
            if view is not None:
                out[run_id] = view
        return out

    def locked_ids(self) -> set[str]:
        """Run ids that have a lock file (one directory listing, no reads)."""
        try:
            names = os.listdir(self.locks_dir)
        except FileNotFoundError:
            return set()
        return {n[: -len(LOCK_SUFFIX)] for n in names if n.endswith(LOCK_SUFFIX) and not n.startswith(".")}

    # -- claiming ------------------------------------------------------------------------------
    def acquire(self, run_id: str) -> Claim | None:
        """Claim ``run_id``: create its lock, or take over a dead or stale one. None when held."""
        path = self.lock_path(run_id)
        self.locks_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            claim = self._create(run_id, path)
            if claim is not None:
                return claim
            view = self.inspect(run_id)
            if view is None:
                continue  # released between our create and our look: try again
            if not view.takeable:
                return None
            return self._take_over(run_id, path)
        return None

    def _take_over(self, run_id: str, path: Path) -> Claim | None:
        """Replace a dead or stale lock by ours; exactly one of several racing takers succeeds."""
        # Takers serialise on a per-run mutex, and judge the lock again while holding it. Without
        # it, a slow taker could move aside the *fresh* lock a faster taker had just created.
        mutex = self._enter(run_id)
        if mutex is None:
            return None  # another worker is taking it over right now
        try:
            view = self.inspect(run_id)
            if view is None:
                return self._create(run_id, path)
            if not view.takeable:
                return None
            tomb = self._move_aside(view)
            if tomb is None:
                return None
            try:
                claim = self._create(run_id, path)
            finally:
                unlink_if_present(tomb)
            if claim is not None:
                claim.taken_over = True
            return claim
        finally:
            unlink_if_present(mutex)

    def _mutex_path(self, run_id: str) -> Path:
        return self.locks_dir / f".{run_id}{MUTEX_SUFFIX}"

    def _enter(self, run_id: str) -> Path | None:
        """Create the takeover mutex of ``run_id`` (clearing one left by a dead taker)."""
        mpath = self._mutex_path(run_id)
        for attempt in range(2):
            if not create_whole(mpath, json.dumps(self.me).encode("utf-8")):
                if attempt:
                    return None
                try:
                    st = os.stat(mpath)
                except FileNotFoundError:
                    continue
                verdict, _ = self._verdict(_read_json(mpath), self.fs_now() - st.st_mtime)
                if verdict not in ("stale", "dead"):
                    return None
                stale = LockView(run_id, mpath, None, st.st_ino, st.st_mtime_ns, 0.0, verdict)
                tomb = self._move_aside(stale)
                if tomb is None:
                    return None
                unlink_if_present(tomb)
                continue
            return mpath
        return None

    def _create(self, run_id: str, path: Path) -> Claim | None:
        token = uuid.uuid4().hex
        now = time.time()
        info = dict(self.me)
        info.update(
            run_id=run_id,
            token=token,
            start_time=_iso(now),
            start_epoch=round(now, 3),
            heartbeat=round(now, 3),
            heartbeat_time=_iso(now),
            beats=0,
        )
        # Whole or not at all: a kill cannot leave a lock naming no one. No fsync: a lock only has
        # to outlive its process, not the machine (one a crash emptied ages out by its mtime).
        if not create_whole(path, json.dumps(info).encode("utf-8")):
            return None
        st = os.stat(path)
        self._note_mtime(st.st_mtime, time.time())
        return Claim(run_id, path, token, info, st.st_ino)

    def _move_aside(self, view: LockView) -> Path | None:
        """Rename the judged lock to a tombstone. Returns the tombstone, or None if we lost the race
        or moved a different (fresh) lock, which is then put back."""
        tomb = self._tomb(view.run_id)
        try:
            os.rename(view.path, tomb)
        except FileNotFoundError:
            return None  # another taker moved it first
        try:
            st = os.stat(tomb)
        except FileNotFoundError:
            return None
        if (st.st_ino, st.st_mtime_ns) == (view.ino, view.mtime_ns):
            return tomb
        # Not the file we judged: its holder rewrote it meanwhile. Put it back unless the path
        # was claimed again already (link never overwrites); its holder then notices the loss.
        try:
            os.link(tomb, view.path)
        except OSError:
            pass
        unlink_if_present(tomb)
        return None

    def clear(self, run_id: str) -> bool:
        """Remove a dead or stale lock (of a task that is finished anyway). True if removed."""
        view = self.inspect(run_id)
        if view is None or not view.takeable:
            return False
        mutex = self._enter(run_id)
        if mutex is None:
            return False
        try:
            view = self.inspect(run_id)
            if view is None or not view.takeable:
                return False
            tomb = self._move_aside(view)
            if tomb is None:
                return False
            unlink_if_present(tomb)
            return True
        finally:
            unlink_if_present(mutex)

    # -- holding -------------------------------------------------------------------------------
    def owns(self, claim: Claim) -> bool:
        """True when the lock file still carries this claim's token."""
        for attempt in range(2):
            holder = _read_json(claim.path)
            if holder is not None:
                return holder.get("token") == claim.token
            if attempt == 0:
                # Missing or unreadable for a moment: a taker may be putting back a lock it
                # moved by mistake (see _move_aside). Look once more before calling it lost.
                time.sleep(0.05)
        return False

    def refresh(self, claim: Claim) -> bool:
        """Heartbeat: touch the lock if it is still ours. False when lost.

        Only the file's mtime says how fresh a lock is, so the heartbeat sets it and never rewrites
        the file: a rewrite by a holder stopped between its ownership check and its rename would
        put its lock back over the one of the worker that took over meanwhile, and both would run
        the task. A touch that lands on the new holder's file only makes that one fresher."""
        if claim.lost or not self.owns(claim):
            claim.lost = True
            return False
        try:
            os.utime(claim.path)
            st = os.stat(claim.path)
        except FileNotFoundError:
            # Moved aside for a moment by a taker that then put it back, or really taken.
            if not self.owns(claim):
                claim.lost = True
                return False
            return True
        except OSError:
            return True  # a failed heartbeat is not a lost claim; the next one may succeed
        claim.info["beats"] = int(claim.info.get("beats", 0)) + 1
        self._note_mtime(st.st_mtime, time.time())
        return True

    def release(self, claim: Claim) -> bool:
        """Delete our lock (never someone else's). True if it was ours."""
        view_path = claim.path
        tomb = self._tomb(claim.run_id)
        try:
            os.rename(view_path, tomb)
        except FileNotFoundError:
            return False
        holder = _read_json(tomb)
        if holder is not None and holder.get("token") == claim.token:
            unlink_if_present(tomb)
            return True
        try:
            os.link(tomb, view_path)  # someone else's: put it back
        except OSError:
            pass
        unlink_if_present(tomb)
        return False

    # -- housekeeping --------------------------------------------------------------------------
    def sweep_leftovers(self, older_than: float | None = None) -> int:
        """Delete tombstones, temp and probe files left by killed workers. Returns the count.
        Temporaries of :func:`~hsm_core.whole_file.create_whole` go as soon as their writer is
        provably gone (on this machine), else after ``older_than`` (never one being written)."""
        limit = self.stale_timeout if older_than is None else older_than
        now = self.fs_now()
        removed = clean_stale_temps(self.locks_dir, limit, now)
        try:
            entries = list(os.scandir(self.locks_dir))
        except FileNotFoundError:
            return 0
        for entry in entries:
            name = entry.name
            if not (TOMB_MARK in name or name.endswith((".tmp", MUTEX_SUFFIX)) or name.startswith(".clock-")):
                continue
            try:
                if now - entry.stat().st_mtime > limit:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                pass
        return removed


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None



def _iso(epoch: float) -> str:
    import datetime as _dt

    return _dt.datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")
