"""Fail fast: stop starting tasks when the first finished ones all failed the same way.

A sweep whose every task fails the same way (a misspelt Hydra key, a missing module, a script
error) used to run all its tasks, each failing in turn. When the first K tasks of a run to finish
(``compute.fail_fast``, default 3; 0 turns it off) all failed with the same error pattern (the
pattern of ``hsm monitor errors``), the controller starts no more tasks: the tasks already
running finish, the others stay pending, and one line names the pattern and what to do. After the
fix, ``hsm complete SWEEP_ID --retry-failed`` runs them all.

Only a verdict about the script counts: tasks that end ``failed`` or ``timeout``. Preempted,
lost, cancelled or interrupted tasks say nothing about the script and are not counted. Once one
of the first K finished tasks completed, or two failed differently, the run goes on to the end.
"""

from __future__ import annotations

from typing import Any, Callable

from hsm_core.state import SweepDir, TaskRecord
from hsm_core.taskdir import STDERR_LOG

DEFAULT_FAIL_FAST = 3
#: Final states that say the script itself failed.
_COUNTED = frozenset({"failed", "timeout", "completed"})


def fail_fast_limit(project_data: dict[str, Any]) -> int:
    """``compute.fail_fast`` of hsm_config.yaml (default :data:`DEFAULT_FAIL_FAST`; 0: off)."""
    value = (project_data.get("compute") or {}).get("fail_fast", DEFAULT_FAIL_FAST)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else DEFAULT_FAIL_FAST


def _fix_for(category: str, message: str) -> str:
    """What to do about a failure of ``category`` (one clause)."""
    if category == "hydra_config":
        import re

        key = re.search(r"Could not override '([^']+)'", message)
        if key:
            return (f"the app's config has no key {key.group(1)!r}: correct the parameter name in the sweep file, "
                    f"or write +{key.group(1)} to add it")
        return "fix the parameter (name or value) in the sweep file, or the app's config"
    if category == "out_of_memory":
        return "lower the memory a task needs (batch size, model size) or ask for more"
    if category == "timeout":
        return "raise the walltime"
    if category == "cuda_error":
        return "check the GPUs and the CUDA setup of the nodes"
    return "fix the script or its parameters"


def _what(category: str, pattern: str, message: str) -> str:
    """The shared failure as the verdict names it: the error line itself where it says what went
    wrong, else the pattern (with the last line of stderr for a bare exit code)."""
    if category in ("hydra_config", "python_exception", "cuda_error") and message:
        return f'"{message}"'
    if category == "exit_code" and message and message != pattern:
        return f'{pattern} (last line of stderr: "{message}")'
    return pattern


class FailFast:
    """Watches the first ``limit`` finished tasks of a run; :meth:`stops` says when to stop starting
    tasks. ``notify(line)`` receives the one-line verdict (``hsm run`` prints it)."""

    def __init__(self, sweep: SweepDir, limit: int, notify: Callable[[str], None] | None = None) -> None:
        self.sweep = sweep
        self.limit = max(0, int(limit))
        self.notify = notify
        self._patterns: list[tuple[str, str, str, str]] = []  # (pattern, category, message, task name)
        self._decided = self.limit == 0
        self.verdict: str | None = None  #: the pattern that tripped it, once it did
        self._reported = False

    @property
    def tripped(self) -> bool:
        """True once the first ``limit`` finished tasks all failed the same way."""
        return self.verdict is not None

    def observe(self, rec: TaskRecord) -> None:
        """A task of this run reached a final state."""
        if self._decided or rec.state not in _COUNTED:
            return
        if rec.state == "completed":
            self._decided = True
            return
        from hsm_core.monitor.errors import diagnose

        try:
            diag = diagnose(self.sweep, rec).diagnosis
        except OSError:
            return  # its files cannot be read: say nothing about it
        self._patterns.append((diag.pattern, diag.category, diag.message, rec.name))
        if len({p for p, *_ in self._patterns}) > 1:
            self._decided = True
        elif len(self._patterns) >= self.limit:
            self._decided = True
            self.verdict = diag.pattern

    def stops(self, pending: int, running: int) -> bool:
        """True when no more tasks may start; the first time, the verdict is logged and told."""
        if not self.tripped:
            return False
        if not self._reported:
            self._reported = True
            line = self.message(pending, running)
            self.sweep.log("sweep.log", line)
            if self.notify is not None:
                self.notify(line)
        return True

    def message(self, pending: int, running: int) -> str:
        """The one-line verdict: the pattern, what to do, and how to run the rest."""
        pattern, category, message, first = self._patterns[0]
        sid = self.sweep.sweep_id
        ran = f"{running} running task(s) finish, " if running else ""
        fix = _fix_for(category, message)
        return (f"Fail fast: the first {len(self._patterns)} finished tasks all failed with {_what(category, pattern, message)} "
                f"(see tasks/{first}/{STDERR_LOG}); no more tasks are started: {ran}{pending} stay pending. "
                f"Fix: {fix}, then run hsm complete {sid} --retry-failed{self._edited_file_clause(fix)} "
                f"(compute.fail_fast: 0 in hsm_config.yaml turns this check off)")

    def _edited_file_clause(self, fix: str) -> str:
        """When the fix may be in the sweep file: how to run the corrected file. ``hsm complete``
        runs the sweep's own copy, so after a misspelt key is corrected it would fail again; no
        task has completed, so starting the corrected file afresh loses nothing."""
        if "sweep file" not in fix and "parameters" not in fix:
            return ""
        from pathlib import Path

        try:
            meta = self.sweep.read_metadata()
        except (OSError, ValueError):
            return ""
        given = meta.get("config_file")
        if not given:
            return ""
        path = Path(str(given))
        try:
            path = path.relative_to(Path(str(meta.get("project_root") or "")).resolve())
        except ValueError:
            pass
        return f"; a parameter corrected in the sweep file: start it again with hsm run -c {path}"

