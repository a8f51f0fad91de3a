"""Sources that stop answering: what the engine keeps about them, and what users are shown.

While calls on a source fail (an SSH host down, a scheduler that does not answer), the engine keeps
one :class:`Outage` for it: since when, how many calls of each kind failed, the latest error, which
tasks wait on it and, when the source says so (:class:`~hsm_core.errors.SourceUnavailable`'s
``lost_at``), when those tasks will be given up and run elsewhere. The controller writes the current
outages to ``logs/source_outages.json`` (and removes the file when none is left), so that
``hsm status`` and ``hsm monitor`` from another terminal can say what the sweep waits for and what
the user can do about it; ``hsm run`` prints the same lines in its own terminal.

Retries of a failing source follow :func:`backoff` (0.5 s growing to 10 s): an outage of a day is a
few thousand calls, and its log is two lines, not one per failed call.
"""

from __future__ import annotations

import datetime as _dt
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hsm_core.durations import fmt_duration

#: File (under the sweep's ``logs/``) with the outages of the sources of a running controller.
OUTAGES_FILE = "source_outages.json"
#: Seconds before calling a source again after its n-th failure in a row (the last one repeats).
BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0, 10.0)

#: Names of the kinds of calls, for "12 failed polls, 1 failed launch".
_KIND_NAMES = {"poll": "poll", "launch": "launch", "health": "health check"}


def backoff(failures: int) -> float:
    """Seconds to wait after the ``failures``-th failure in a row (0 for none)."""
    if failures <= 0:
        return 0.0
    return BACKOFF[min(failures, len(BACKOFF)) - 1]


@dataclass
class Outage:
    """One source that stopped answering, as the controller sees it."""

    source: str
    since: float  #: epoch seconds of the first failed call
    error: str  #: the latest error
    failed: dict[str, int] = field(default_factory=dict)  #: kind of call -> failures
    tasks: list[str] = field(default_factory=list)  #: task dir names waiting on the source
    lost_at: float | None = None  #: epoch seconds: the waiting tasks are run elsewhere then
    lost_setting: str | None = None  #: the configuration key that sets that delay

    def failures_text(self) -> str:
        """``12 failed polls, 1 failed launch`` (``no failed call`` when empty)."""
        parts = []
        for kind, n in self.failed.items():
            name = _KIND_NAMES.get(kind, kind)
            parts.append(f"{n} failed {name}{'' if n == 1 else 's'}")
        return ", ".join(parts) or "no failed call"

    def to_json(self) -> dict[str, Any]:
        """The record as written to ``logs/source_outages.json``."""
        return {
            "source": self.source,
            "since": _iso(self.since),
            "since_epoch": round(self.since, 3),
            "error": self.error,
            "failed": dict(self.failed),
            "tasks": list(self.tasks),
            "run_elsewhere_at": _iso(self.lost_at) if self.lost_at is not None else None,
            "run_elsewhere_epoch": round(self.lost_at, 3) if self.lost_at is not None else None,
            "lost_setting": self.lost_setting,
        }


def _iso(epoch: float) -> str:
    return _dt.datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


def _controller() -> dict[str, Any]:
    """Who writes the file: enough for a reader to tell whether that process still runs."""
    from hsm_core import processes

    pid = os.getpid()
    return {"host": socket.gethostname(), "machine": processes.machine_id(), "pid": pid,
            "identity": processes.identity(pid)}


def write_outages(logs_dir: Path, sweep_id: str, outages: list[Outage]) -> None:
    """Write the current outages of a controller (the file is removed when there is none)."""
    from hsm_core.atomic import atomic_write_json

    path = Path(logs_dir) / OUTAGES_FILE
    if not outages:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        return
    data = {
        "sweep_id": sweep_id,
        "written": _iso(time.time()),
        "controller": _controller(),
        "sources": [o.to_json() for o in outages],
    }
    atomic_write_json(path, data, fsync=False)


def read_outages(logs_dir: Path) -> dict[str, Any] | None:
    """The outages a running controller wrote for a sweep, or None (none, unreadable, or written
    by a controller on this machine that is gone: it was killed before it could remove them)."""
    from hsm_core import processes
    from hsm_core.atomic import read_json

    try:
        data = read_json(Path(logs_dir) / OUTAGES_FILE)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("sources"), list):
        return None
    ctl = data.get("controller") if isinstance(data.get("controller"), dict) else {}
    if ctl.get("machine") == processes.machine_id() and processes.is_running(ctl.get("identity")) is False:
        return None  # its controller is gone (killed): nothing waits any more
    data["sources"] = [s for s in data["sources"] if isinstance(s, dict) and s.get("source")]
    for s in data["sources"]:
        s["hints"] = action_hints(s, str(data.get("sweep_id") or ""), ctl)
    return data if data["sources"] else None


def shown(outage: Outage, sweep_id: str) -> dict[str, Any]:
    """An outage of this controller as :func:`read_outages` returns it (for :func:`describe`)."""
    data = outage.to_json()
    data["hints"] = action_hints(data, sweep_id, {"pid": os.getpid()})
    return data


def _clock(epoch: float, now: float) -> str:
    when = _dt.datetime.fromtimestamp(epoch)
    today = _dt.datetime.fromtimestamp(now).date()
    return when.strftime("%H:%M:%S" if when.date() == today else "%Y-%m-%d %H:%M:%S")


def _span(seconds: float) -> str:
    return fmt_duration(max(0.0, seconds))


def action_hints(o: dict[str, Any], sweep_id: str, controller: dict[str, Any] | None = None) -> list[str]:
    """What the user can do now about an outage (``o`` as in the file)."""
    src = o.get("source")
    pid = (controller or {}).get("pid")
    stop = "stop the controller (Ctrl-C in its terminal" + (f", or kill {pid})" if pid else ")")
    hints = [f"wait: once {src} answers, its tasks are followed to their end (none runs twice)"]
    if o.get("tasks"):
        if o.get("run_elsewhere_epoch") is not None:
            key = o.get("lost_setting") or "the source's lost_after"
            hints.append(
                f"run them elsewhere sooner, or wait longer: set {key} (seconds) in hsm_config.yaml, {stop}, "
                f"then: hsm complete {sweep_id} (it waits that long from its own start)"
            )
        hints.append(f"give up on the sweep: {stop}, then: hsm cancel {sweep_id}"
                     f" (tasks on {src} cannot be stopped while it is unreachable)")
    return hints


def describe(o: dict[str, Any], now: float | None = None, *, hints: bool = True) -> list[str]:
    """Lines saying what the sweep waits for (``o`` as returned by :func:`read_outages`)."""
    now = time.time() if now is None else now
    src = o.get("source")
    since = o.get("since_epoch")
    failed = Outage(str(src), 0.0, "", failed=dict(o.get("failed") or {})).failures_text()
    head = f"{src} has not answered since {_clock(since, now)} ({_span(now - since)}; {failed})" if since else f"{src} is not answering"
    lines = [head + (f": {o['error']}" if o.get("error") else "")]
    tasks = list(o.get("tasks") or [])
    if tasks:
        shown = ", ".join(tasks[:8]) + (f" (+{len(tasks) - 8} more)" if len(tasks) > 8 else "")
        lines.append(f"{len(tasks)} task(s) wait on it: {shown}")
        at = o.get("run_elsewhere_epoch")
        if at is not None:
            left = at - now
            key = f"; {o['lost_setting']}" if o.get("lost_setting") else ""
            when = f"in {_span(left)}" if left > 0 else "now"
            lines.append(f"they run elsewhere at {_clock(at, now)} ({when}{key}) unless {src} answers first")
        else:
            lines.append(f"they wait until {src} answers (no deadline)")
    else:
        lines.append("no task waits on it; new tasks go to the other sources")
    if hints:
        lines += [f"now: {h}" for h in o.get("hints") or []]
    return lines
