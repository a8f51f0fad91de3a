"""The controller lease: at most one controller (``hsm run``, ``hsm complete``) launches tasks of
a sweep at a time.

Two controllers that plan the same sweep each see the same pending tasks and would both run them.
So a controller holds the sweep's lease from before it plans until it ends: one lock file,
``<sweep>/.controller/lease.lock``, claimed and kept with the claim protocol the pull-based
workers use for their tasks (:mod:`hsm_core.workers.claims`), refreshed by a heartbeat thread. The
file is created whole (:mod:`hsm_core.whole_file`: written under a temporary name, then linked), so
a controller killed as it takes the lease leaves no lease at all, never an empty one that would
refuse every other controller until it timed out.

* A second controller finds the lease held and stops with one line saying who holds it and how to
  watch it (:class:`LeaseHeld`, exit 2), or, with ``hsm complete --wait-for-controller``, waits for it.
* A holder on this machine whose process is gone (pid and start time) is taken over at once; one
  on another machine sharing the filesystem only once its file has not been rewritten for
  ``compute.controller_lease_timeout`` seconds (the longer of the taker's and the holder's own).
* A holder that finds its lease taken over (it was suspended past the timeout) launches nothing
  more: :meth:`ControllerLease.may_launch` is asked before every launch batch, and again by each
  start of a local process under the task's start lock (:mod:`hsm_core.start_lock`), so a holder
  stopped inside a launch and continued after its replacement planned starts nothing twice.

The lease has its own directory, not the workers' ``.locks/``: everything there is read as the claim
of a task (``hsm status`` of a worker sweep, ``hsm cancel``'s list of workers to stop).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from hsm_core.errors import ConfigError, HsmError
from hsm_core.state import SweepDir
from hsm_core.workers.claims import Claim, ClaimStore, LockView, identity, machine_id, process_alive

LEASE_DIR = ".controller"
#: The lock's name in :data:`LEASE_DIR` (``lease.lock``).
LEASE_NAME = "lease"
#: Seconds without a heartbeat after which a holder on another machine may be replaced.
DEFAULT_TIMEOUT = 120.0
#: The heartbeat: every 10 s, or a quarter of a shorter timeout (tests use a few seconds).
MAX_HEARTBEAT = 10.0
#: How often ``hsm complete --wait-for-controller`` looks at the lease again.
WAIT_POLL = 0.5


def lease_timeout(project_config: Mapping[str, Any] | None) -> float:
    """``compute.controller_lease_timeout`` of ``hsm_config.yaml`` (default 120 s)."""
    value = ((project_config or {}).get("compute") or {}).get("controller_lease_timeout", DEFAULT_TIMEOUT)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"must be a number of seconds above 0, not {value!r}", file="hsm_config.yaml",
                          key="compute.controller_lease_timeout")
    return float(value)


def heartbeat_interval(timeout: float) -> float:
    """Seconds between two heartbeats of a lease that goes stale after ``timeout``."""
    return min(MAX_HEARTBEAT, timeout / 4)


@dataclass
class Holder:
    """Who holds (or held) a sweep's lease, as another process sees it."""

    command: str
    pid: Any
    host: str
    since: str  #: ISO time the holder took the lease
    age: float  #: seconds since its last heartbeat
    verdict: str  #: "live", "stale", "dead" (see :class:`~hsm_core.workers.claims.LockView`)
    reason: str = ""

    @classmethod
    def from_view(cls, view: LockView) -> "Holder":
        h = view.holder or {}
        return cls(str(h.get("command") or "an hsm controller"), h.get("pid", "?"), str(h.get("host") or "?"),
                   str(h.get("start_time") or ""), view.age, view.verdict, view.reason)

    def describe(self) -> str:
        """``hsm complete (pid 1234 on host h, since 12:01:02)``."""
        if self.pid == "?":
            # A lock file left empty (its writer killed as it created it: an older hsm, or a
            # filesystem without hard links, see hsm_core.whole_file) ages out like any other.
            return f"another hsm controller (its lease file {LEASE_DIR}/{LEASE_NAME}.lock is unreadable)"
        return f"{self.command} (pid {self.pid} on host {self.host}, since {short_time(self.since)})"

    def to_json(self) -> dict[str, Any]:
        return {"command": self.command, "pid": self.pid, "host": self.host, "since": self.since,
                "heartbeat_age": round(self.age, 1)}


class LeaseHeld(HsmError):
    """Another controller runs the sweep (exit 2)."""

    def __init__(self, sweep_id: str, holder: Holder, timeout: float) -> None:
        stale_note = ""
        if holder.pid == "?":
            # Empty: its taker (an older hsm, or one on a filesystem without hard links) was killed
            # between creating it and writing itself into it. Whose it
            # is cannot be known, so it ages out like a silent holder: say when.
            stale_note = f" (made {holder.age:.0f}s ago; taken over {timeout:g}s after it was made)"
        elif holder.verdict == "live" and holder.age > 2 * heartbeat_interval(timeout):
            # A holder elsewhere that stopped beating: say when it may be replaced.
            stale_note = f"; no heartbeat for {holder.age:.0f}s, taken over after {timeout:g}s without one"
        super().__init__(
            f"sweep {sweep_id} is being run by {holder.describe()}{stale_note}",
            hint=f"watch it with: hsm monitor watch {sweep_id}; or finish what it leaves with: hsm complete {sweep_id} --wait-for-controller",
        )
        self.holder = holder


class LeaseLost(HsmError):
    """This controller's lease was taken over while it ran (it was suspended past the timeout)."""


def short_time(iso: str) -> str:
    """``12:01:02`` for a time today, else ``2026-11-23 12:01``; the text as is if unreadable."""
    try:
        when = _dt.datetime.fromisoformat(iso).astimezone()
    except (TypeError, ValueError):
        return iso or "?"
    if when.date() == _dt.datetime.now().astimezone().date():
        return when.strftime("%H:%M:%S")
    return when.strftime("%Y-%m-%d %H:%M")


def _store(sweep_path: Path, timeout: float) -> ClaimStore:
    # The scheduler job this controller runs in (if any): a lease held by an earlier run of the same
    # requeued job is dead at once. Its plugin recognises the job (core names no scheduler).
    from hsm_core.jobenv import claim_job, current_job
    from hsm_core.registry import get_registry

    return ClaimStore(Path(sweep_path) / LEASE_DIR, stale_timeout=timeout, job=claim_job(current_job(os.environ, get_registry())))


class ControllerLease:
    """The lease of one sweep, held by this process. Take it with :meth:`acquire`."""

    def __init__(self, sweep: SweepDir, store: ClaimStore, claim: Claim, timeout: float) -> None:
        self.sweep = sweep
        self.store = store
        self.claim = claim
        self.timeout = timeout
        self.interval = heartbeat_interval(timeout)
        self.taken_by: Holder | None = None  #: who took it over, once lost
        self._lost = threading.Event()
        self._released = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._beat, name="hsm-controller-lease", daemon=True)
        self._thread.start()

    # -- taking it -----------------------------------------------------------------------------
    @classmethod
    def acquire(
        cls,
        sweep: SweepDir,
        *,
        command: str,
        timeout: float = DEFAULT_TIMEOUT,
        wait: bool = False,
        on_wait: Callable[[Holder], None] | None = None,
    ) -> "ControllerLease":
        """Take the lease of ``sweep`` for ``command`` (``"hsm complete"``), or raise
        :class:`LeaseHeld`. With ``wait``, wait until its holder ends (or goes dead or stale);
        ``on_wait(holder)`` is called once, when waiting starts."""
        store = _store(sweep.path, timeout)
        store.me = dict(identity("local"), command=command, lease_timeout=timeout)
        announced = False
        while True:
            claim, holder = cls._try(store, timeout)
            if claim is not None:
                lease = cls(sweep, store, claim, timeout)
                lease._note_taken(holder)
                return lease
            if holder is None:
                continue  # released while we looked: try again at once
            if not wait:
                raise LeaseHeld(sweep.sweep_id, holder, store.stale_timeout)
            if not announced and on_wait is not None:
                on_wait(holder)
            announced = True
            time.sleep(min(WAIT_POLL, heartbeat_interval(timeout)))

    @staticmethod
    def _try(store: ClaimStore, timeout: float) -> tuple[Claim | None, Holder | None]:
        """One attempt: (our claim, the holder we replaced) or (None, the holder that keeps it)."""
        view = store.inspect(LEASE_NAME)
        # A holder that promised a longer timeout than ours is judged by its own: taking over a
        # live controller that merely beats less often than we expect would run tasks twice.
        declared = (view.holder or {}).get("lease_timeout") if view else None
        if isinstance(declared, (int, float)) and not isinstance(declared, bool):
            store.stale_timeout = max(timeout, float(declared))
        else:
            store.stale_timeout = timeout
        previous = Holder.from_view(view) if view is not None and view.holder else None
        claim = store.acquire(LEASE_NAME)
        if claim is not None:
            return claim, previous if claim.taken_over else None
        # Held; maybe just created and not written yet (only where the filesystem has no hard
        # links, or by an older hsm), or a dead/stale one another taker is
        # replacing right now: give the winner a moment to write its lock, so that we name it
        # (not an empty file, nor the holder it replaced).
        for _ in range(40):
            view = store.inspect(LEASE_NAME)
            if view is None:
                return None, None
            if view.holder and not view.takeable:
                break
            time.sleep(0.05)
        return None, Holder.from_view(view)

    def _note_taken(self, previous: Holder | None) -> None:
        me = self.claim.info
        what = f"controller lease taken by {me.get('command')} (pid {me.get('pid')} on host {me.get('host')})"
        if previous is not None:
            what += f", taken over from {previous.describe()}: {previous.reason or previous.verdict}"
        self._log(what)
        try:
            self.store.sweep_leftovers()  # temporaries of controllers killed as they took the lease
        except OSError:
            pass

    # -- holding it ----------------------------------------------------------------------------
    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                if self._released or self._lost.is_set():
                    return
                try:
                    still = self._touch()
                except Exception:  # a heartbeat that cannot be written is retried, never fatal
                    continue
            if not still:
                self._on_lost()
                return

    def _touch(self) -> bool:
        """One heartbeat: False when the lease is not ours any more.

        Only the file's mtime counts for staleness, so the heartbeat sets it and never rewrites the
        file: a rewrite (``ClaimStore.refresh``) by a holder stopped between its ownership check and
        its rename would put its lock back over the one of the controller that took over meanwhile,
        and both would launch. A touch landing on the new holder's file only makes it fresher."""
        if not self.store.owns(self.claim):
            return False
        try:
            os.utime(self.claim.path)
        except FileNotFoundError:
            return self.store.owns(self.claim)  # moved aside for a moment by a taker that then put it back
        return True

    def may_launch(self) -> bool:
        """True while this process holds the lease: asked before every launch batch. Reads the
        lock file, so a takeover is seen at once, even before the next heartbeat."""
        if self._lost.is_set():
            return False
        if self._released:
            return False
        if self.store.owns(self.claim):
            return True
        self._on_lost()
        return False

    @property
    def lost(self) -> bool:
        """True once another controller took the lease over."""
        return self._lost.is_set()

    def _on_lost(self) -> None:
        with self._lock:
            if self._lost.is_set() or self._released:
                return
            self.claim.lost = True
            view = self.store.inspect(LEASE_NAME)
            self.taken_by = Holder.from_view(view) if view is not None and view.holder else None
            self._lost.set()
        by = self.taken_by.describe() if self.taken_by else "another controller"
        line = (f"controller lease of pid {os.getpid()} lost to {by} (this controller was stopped or "
                f"unresponsive for over {self.timeout:g}s): it launches nothing more")
        self._log(line)
        try:
            print(f"hsm: {line}", file=sys.stderr, flush=True)
        except (OSError, ValueError):
            pass

    def lost_error(self) -> LeaseLost:
        """The error a controller that lost its lease ends with."""
        sid = self.sweep.sweep_id
        by = self.taken_by.describe() if self.taken_by else "another controller"
        return LeaseLost(
            f"sweep {sid} was taken over by {by} while this controller was stopped; "
            "it launched nothing after that and left the rest to it",
            hint=f"watch it with: hsm monitor watch {sid}",
        )

    def release(self) -> None:
        """Give the lease back (idempotent); never removes a lease that is no longer ours."""
        with self._lock:
            if self._released:
                return
            self._released = True
            self._stop.set()
            lost = self._lost.is_set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        if lost or not self.store.owns(self.claim):
            return  # the new holder's file: not ours to touch
        try:
            self.store.release(self.claim)
        except OSError:
            pass  # a leftover lock of a gone process is taken over at once by the next controller

    def _log(self, line: str) -> None:
        try:
            self.sweep.log("sweep.log", line)
        except OSError:
            pass


def current_holder(sweep_path: Path) -> Holder | None:
    """The live controller of a sweep, or None: for ``hsm status``. Only reads (no clock probe):
    a holder on this machine is live while its process is; one elsewhere while its file is younger
    than the timeout it declared."""
    path = Path(sweep_path) / LEASE_DIR / f"{LEASE_NAME}.lock"
    try:
        st = os.stat(path)
        holder = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(holder, dict):
        return None
    age = max(0.0, time.time() - st.st_mtime)
    if holder.get("machine") == machine_id():
        pid = holder.get("pid")
        if not isinstance(pid, int) or not process_alive(pid, holder.get("pid_start")):
            return None
    else:
        declared = holder.get("lease_timeout")
        timeout = float(declared) if isinstance(declared, (int, float)) and not isinstance(declared, bool) else DEFAULT_TIMEOUT
        if age > timeout:
            return None
    return Holder(str(holder.get("command") or "an hsm controller"), holder.get("pid", "?"), str(holder.get("host") or "?"),
                  str(holder.get("start_time") or ""), age, "live")
