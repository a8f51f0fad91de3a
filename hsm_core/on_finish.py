"""``on_finish:`` in ``hsm_config.yaml``: a command run when a sweep ends, to tell its user.

A sweep ends when every task is final: at the end of ``hsm run`` or ``hsm complete``, or when
``hsm complete`` finds that the tasks of a sweep whose controller left (``--no-wait``, a killed
``hsm run``) have all ended meanwhile. The command gets the summary in its environment::

    on_finish: 'notify-send "$HSM_SUMMARY"'                  # a string runs with /bin/sh -c
    on_finish: [python, tools/notify.py]                       # a list is an argv (no shell)
    on_finish: {command: 'mail -s "$HSM_SUMMARY" me@example.org < /dev/null', timeout: 60}

It runs in the project root with hsm's environment plus ``HSM_SWEEP_ID``, ``HSM_SWEEP_DIR``,
``HSM_SWEEP_STATUS`` (``completed`` or ``incomplete``), ``HSM_PROJECT_ROOT``, ``HSM_TASKS_TOTAL``,
``HSM_TASKS_<STATE>`` for every task state (``HSM_TASKS_COMPLETED``, ``HSM_TASKS_FAILED`` ...),
``HSM_SUMMARY`` (one line, ready to send) and ``HSM_REPORT`` (the completion report, when written).
Its output goes to ``logs/on_finish.log``. It is a notification: when it fails or outlives its
``timeout`` (default 120 s; it is then killed) hsm prints a warning, and the sweep's result and
exit code stay what they were.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from hsm_core.state import SweepDir, TaskRecord, now_iso
from hsm_core.taskstate import TaskState

DEFAULT_TIMEOUT = 120.0
LOG_NAME = "on_finish.log"
#: Sweep states that mean "every task is final" (what ``sweep_metadata.yaml`` says after a run).
ENDED = ("completed", "incomplete")


@dataclass(frozen=True)
class FinishCommand:
    """The ``on_finish`` setting, normalised."""

    argv: list[str]
    timeout: float = DEFAULT_TIMEOUT
    shown: str = ""


def finish_command(project_data: Mapping[str, Any]) -> FinishCommand | None:
    """The ``on_finish`` command of a project config (validated by the schema), or None."""
    value = project_data.get("on_finish") if isinstance(project_data, Mapping) else None
    timeout = DEFAULT_TIMEOUT
    if isinstance(value, Mapping):
        timeout = float(value.get("timeout", DEFAULT_TIMEOUT))
        value = value.get("command")
    if isinstance(value, str) and value.strip():
        return FinishCommand(["/bin/sh", "-c", value], timeout, value)
    if isinstance(value, list) and value:
        argv = [str(v) for v in value]
        return FinishCommand(argv, timeout, " ".join(argv))
    return None


def summary_env(sweep: SweepDir, records: Iterable[TaskRecord], state: str, project_root: Path) -> dict[str, str]:
    """The variables that describe how the sweep ended."""
    counts = {s.value: 0 for s in TaskState}
    total = 0
    for rec in records:
        counts[rec.state] = counts.get(rec.state, 0) + 1
        total += 1
    env = {
        "HSM_SWEEP_ID": sweep.sweep_id,
        "HSM_SWEEP_DIR": str(sweep.path.resolve()),
        "HSM_SWEEP_STATUS": state,
        "HSM_PROJECT_ROOT": str(Path(project_root).resolve()),
        "HSM_TASKS_TOTAL": str(total),
    }
    env.update({f"HSM_TASKS_{name.upper()}": str(n) for name, n in counts.items()})
    parts = ", ".join(f"{n} {name}" for name, n in counts.items() if n)
    env["HSM_SUMMARY"] = f"hsm sweep {sweep.sweep_id} {state}: {parts or 'no tasks'}"
    report = sweep.path / "reports" / "completion_report.html"
    env["HSM_REPORT"] = str(report.resolve()) if report.exists() else ""
    return env


def run_on_finish(project_data: Mapping[str, Any], project_root: Path, sweep: SweepDir,
                  records: Iterable[TaskRecord], state: str) -> bool | None:
    """Run the project's ``on_finish`` command for ``sweep``, ended as ``state``. Never raises:
    a failure is a warning on stderr and a line in ``logs/sweep.log``. Returns None when there is
    no command, else whether it succeeded."""
    command = finish_command(project_data)
    if command is None:
        return None
    env = dict(os.environ)
    env.update(summary_env(sweep, records, state, project_root))
    problem = _run(command, env, Path(project_root), sweep)
    try:
        sweep.log("sweep.log", f"on_finish: {problem or 'ok'}")
    except OSError:
        pass
    if problem:
        print(f"hsm: warning: on_finish command {problem} (output in {sweep.logs_dir / LOG_NAME}); "
              f"the sweep's result is unchanged", file=sys.stderr)
        return False
    return True


def _run(command: FinishCommand, env: Mapping[str, str], cwd: Path, sweep: SweepDir) -> str | None:
    """Run it, output to ``logs/on_finish.log``; what went wrong, or None."""
    try:
        sweep.logs_dir.mkdir(parents=True, exist_ok=True)
        log = open(sweep.logs_dir / LOG_NAME, "ab")
    except OSError as exc:
        return f"not run: cannot open its log ({exc.strerror or exc})"
    with log:
        log.write(f"==== {now_iso()} {command.shown}\n".encode())
        log.flush()
        try:
            # A session of its own: on a timeout, everything it started is stopped with it.
            proc = subprocess.Popen(command.argv, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            return f"could not start: {exc.strerror or exc} ({command.argv[0]})"
        try:
            code = proc.wait(timeout=command.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return f"did not finish within {command.timeout:g}s and was stopped"
        except KeyboardInterrupt:
            _kill_group(proc)
            raise
    if code != 0:
        return f"exited with code {code}"
    return None


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    proc.wait()
