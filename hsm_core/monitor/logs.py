"""Reading the engine's logs: ``logs/source_utilization.log`` and ``logs/health_status.log``.

Both are append-only text files written by the engine, one timestamped line per event::

    2024-03-15T14:30:22+01:00 local=2/4 server1=8/8 cluster=3/16
    2024-03-15T14:30:22+01:00 server1 healthy
    2024-03-15T14:35:22+01:00 server1 unhealthy: ssh: connect timed out
    2024-03-15T14:40:22+01:00 server1 disabled after 3 consecutive failures (ssh: connect timed out)
    2024-03-15T14:45:22+01:00 server1 recovered: enabled again

Utilization is read from the end of the file (only its last line matters); the health log is
followed incrementally by :class:`HealthTracker`, so a live monitor never re-reads what it has seen.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

UTILIZATION_LOG = "source_utilization.log"
HEALTH_LOG = "health_status.log"

_UTIL_PAIR = re.compile(r"(\S+?)=(\d+)/(\d+)")
_HEALTH_PATTERNS = (
    ("disabled", re.compile(r"^(?P<src>\S+) disabled after (?P<n>\d+) consecutive failures(?: \((?P<msg>.*)\))?$")),
    ("recovered", re.compile(r"^(?P<src>\S+) recovered(?::\s*(?P<msg>.*))?$")),
    ("unhealthy", re.compile(r"^(?P<src>\S+) unhealthy(?::\s*(?P<msg>.*))?$")),
    ("healthy", re.compile(r"^(?P<src>\S+) healthy(?::\s*(?P<msg>.*))?$")),
)

#: What a source's health looks like to a user, by the state :class:`HealthTracker` derives.
HEALTH_LABELS = {
    "healthy": "✅ Healthy",
    "degraded": "⚠️ Degraded",
    "disabled": "❌ Disabled",
    "unknown": "– not checked",
}


def parse_time(text: object) -> _dt.datetime | None:
    """An ISO 8601 time as an aware datetime (local time when it has no offset), else None."""
    if isinstance(text, _dt.datetime):
        value = text
    elif isinstance(text, str) and text:
        try:
            value = _dt.datetime.fromisoformat(text.strip())
        except ValueError:
            return None
    else:
        return None
    return value if value.tzinfo else value.astimezone()


def tail_lines(path: Path, n: int = 1, *, block: int = 8192) -> list[str]:
    """The last ``n`` non-empty lines of a text file, read from its end (cheap for huge logs)."""
    try:
        fh = open(path, "rb")
    except OSError:
        return []
    with fh:
        fh.seek(0, os.SEEK_END)
        end = fh.tell()
        data = b""
        pos = end
        while pos > 0 and data.count(b"\n") <= n:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            data = fh.read(step) + data
    lines = [ln for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-n:]


def split_stamp(line: str) -> tuple[_dt.datetime | None, str]:
    """``(time, rest)`` of a log line written by :meth:`hsm_core.state.SweepDir.log`."""
    stamp, _, rest = line.partition(" ")
    when = parse_time(stamp)
    if when is None:
        return None, line.strip()
    return when, rest.strip()


@dataclass
class Utilization:
    """The latest line of ``source_utilization.log``: source -> (active, capacity)."""

    when: _dt.datetime | None
    sources: dict[str, tuple[int, int]]


def latest_utilization(logs_dir: Path) -> Utilization | None:
    """The last utilization line of a sweep, or None when the engine has not logged one yet."""
    lines = tail_lines(Path(logs_dir) / UTILIZATION_LOG, 1)
    if not lines:
        return None
    when, rest = split_stamp(lines[-1])
    pairs = {name: (int(a), int(c)) for name, a, c in _UTIL_PAIR.findall(rest)}
    return Utilization(when, pairs) if pairs else None


@dataclass
class HealthEvent:
    """One line of ``health_status.log``."""

    when: _dt.datetime | None
    source: str | None  #: None for sweep-wide notes ("all sources disabled ...")
    event: str  #: healthy, unhealthy, disabled, recovered or note
    message: str


def parse_health_line(line: str) -> HealthEvent | None:
    """A :class:`HealthEvent` from one log line (None for a blank line)."""
    if not line.strip():
        return None
    when, rest = split_stamp(line)
    for event, pattern in _HEALTH_PATTERNS:
        m = pattern.match(rest)
        if m:
            return HealthEvent(when, m.group("src"), event, (m.group("msg") or "").strip())
    return HealthEvent(when, None, "note", rest)


@dataclass
class SourceHealth:
    """The current health of one source, folded from its events."""

    state: str = "unknown"  #: healthy, degraded, disabled or unknown (see HEALTH_LABELS)
    since: _dt.datetime | None = None
    message: str = ""
    checks: int = 0
    failures: int = 0

    @property
    def label(self) -> str:
        return HEALTH_LABELS.get(self.state, self.state)


@dataclass
class HealthTracker:
    """Follows ``health_status.log``: reads only the bytes appended since the last call."""

    path: Path
    keep: int = 200  #: events kept in memory for the history view
    events: list[HealthEvent] = field(default_factory=list)
    current: dict[str, SourceHealth] = field(default_factory=dict)
    _offset: int = 0
    _partial: bytes = b""

    def update(self) -> None:
        """Read new lines (a truncated or replaced file is read again from the start)."""
        try:
            size = os.path.getsize(self.path)
        except OSError:
            return
        if size < self._offset:
            self._offset, self._partial = 0, b""
            self.events.clear()
            self.current.clear()
        if size == self._offset:
            return
        with open(self.path, "rb") as fh:
            fh.seek(self._offset)
            data = self._partial + fh.read(size - self._offset)
        self._offset = size
        *complete, self._partial = data.split(b"\n")
        for raw in complete:
            ev = parse_health_line(raw.decode("utf-8", "replace"))
            if ev is not None:
                self._fold(ev)
        del self.events[: max(0, len(self.events) - self.keep)]

    def _fold(self, ev: HealthEvent) -> None:
        self.events.append(ev)
        if ev.source is None:
            return
        h = self.current.setdefault(ev.source, SourceHealth())
        before = h.state
        if ev.event == "healthy":
            h.checks += 1
            h.state = "healthy" if h.state != "disabled" else "disabled"
        elif ev.event == "unhealthy":
            h.checks += 1
            h.failures += 1
            # A disabled source stays disabled until the engine logs its recovery.
            h.state = "disabled" if h.state == "disabled" else "degraded"
        elif ev.event == "disabled":
            h.state = "disabled"
        elif ev.event == "recovered":
            h.state = "healthy"
        if ev.message or ev.event != "healthy":
            h.message = ev.message or ev.event
        elif h.state == "healthy":
            h.message = ""
        if h.state != before or h.since is None:
            h.since = ev.when


def read_health(logs_dir: Path, keep: int = 200) -> HealthTracker:
    """The health history and current health per source of a sweep."""
    tracker = HealthTracker(Path(logs_dir) / HEALTH_LOG, keep=keep)
    tracker.update()
    return tracker
