"""The errors of hsm (re-exported by :mod:`hsm_core.plugin`, where plugins import them from).

Kept apart, with no imports beyond the standard library, so that light modules (the task runner
started once per array job element, :mod:`hsm_core.state`) can raise them cheaply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable


class HsmError(Exception):
    """An error the user can fix. The CLI prints ``Error: <message>`` and exits with ``exit_code``."""

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(HsmError):
    """Invalid configuration: names the file, the line and the key when known."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        self.key = key
        where = ""
        if self.file:
            where = self.file + (f":{line}" if line else "") + ": "
        keypart = f"{key}: " if key else ""
        super().__init__(f"{where}{keypart}{message}", hint=hint)


class ComponentNotFound(HsmError):
    """A component (source kind, strategy, expander, ...) that no installed plugin provides."""


class SourceUnavailable(HsmError):
    """A compute source cannot be reached or used right now (host down, scheduler not answering).

    Raised by :meth:`ComputeSource.launch` for infrastructure failures; the engine counts these
    against the source's health rather than against the task. A launch that fails part-way names
    the task ids it did start in *started*: the engine keeps those on the source (it polls them as
    usual) and queues only the others again, so no task runs twice.

    Raised by :meth:`ComputeSource.poll`, it tells the engine the source cannot be watched now; the
    engine then polls it again no sooner than its backoff (0.5 s growing to 10 s) allows. A source
    that knows more says so: *retry_after* (seconds until trying again is worth it, e.g. a
    reconnect delay), *lost_at* (epoch seconds at which it will report the tasks still on it lost,
    so that they run elsewhere) and *lost_setting* (the configuration key that sets that delay).
    ``hsm status``, ``hsm monitor`` and ``hsm run`` show them to the user.
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        started: Iterable[str] = (),
        retry_after: float | None = None,
        lost_at: float | None = None,
        lost_setting: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.started: frozenset[str] = frozenset(started)
        self.retry_after = retry_after
        self.lost_at = lost_at
        self.lost_setting = lost_setting


class NotInCharge(HsmError):
    """This controller no longer holds the sweep: another one took it over while it was stopped.

    Raised by :meth:`ComputeSource.launch` when :attr:`SourceContext.may_launch` says no right
    before a task's start (a source that starts processes itself asks it for each task, under
    the task's start lock, see :mod:`hsm_core.start_lock`). *started* names the task ids of the
    batch that were started before: the engine keeps watching those, gives the others back to the
    controller that holds the sweep now, and launches nothing more.
    """

    def __init__(self, message: str = "another controller took the sweep over", *, started: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.started: frozenset[str] = frozenset(started)
