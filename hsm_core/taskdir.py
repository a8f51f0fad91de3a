"""A task directory's files: the one place that names them, writes them and reads what they mean.

``tasks/task_NNN/`` (or ``tasks/<run id>_s<seed>/`` under pull-based workers) holds::

    params.yaml    the task's id, index and parameters (written once, when the task is made)
    command.json   what the runner runs: argv, working directory, environment
    status.yaml    the truth about the task (state, attempts, times, exit code, host ...)
    stdout.log     the command's output, appended by every attempt
    stderr.log
    metrics.json   written by the script, or by hsm from what the result collectors find
    intermediate.jsonl  values the script reports while it runs, one JSON object per step (early stopping)
    pruning.json   what the sweep's pruner decided about the task (hsm's, see hsm_core.pruning)
    results/       the task's ``HSM_OUTPUT_DIR``
    checkpoints/   a worker task's ``HSM_CHECKPOINT_DIR`` (pull-based workers)
    runner.log     the task runner's own output, where a source starts it detached (ssh)
    .hsm_pid       the runner's wrapper writes its pid here before the command starts ...
    .exit_code     ... and its command's exit code here when it ends (see :func:`left_exit_code`)

Every other module (the runner, the sweep index, sources, workers, monitors, plugins through
:mod:`hsm_core.plugin.taskfiles`) goes through the names and functions here; a test fails when a
file name appears as a string anywhere else. Files another process may read are written
atomically (temporary file, fsync, rename).

``status.yaml`` has one key that is nobody's but its sources': ``source_data``, a mapping of a
source's name to whatever that source keeps about the task (a job id, a runner's identity, the
scheduler's own words). Core never reads, changes or drops it: every rewrite of a status
(the runner's, the engine's, workers', a source's final state) keeps it (:func:`carry_kept`).

Kept light (stdlib, PyYAML, :mod:`hsm_core.processes`): the task runner imports it once per task.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import IO, Any, Mapping

from hsm_core import processes
from hsm_core.atomic import atomic_write_text, atomic_write_yaml, dump_yaml, read_yaml
from hsm_core.taskstate import TaskState

#: The task's status, written where the task runs (see the module docstring).
STATUS_FILE = "status.yaml"
#: ``{task_id, index, params}``, written once when the task dir is made.
PARAMS_FILE = "params.yaml"
#: What the runner runs (see :func:`write_command`).
COMMAND_FILE = "command.json"
#: The same for the task runner's shell fast path, in bash (see :mod:`hsm_core.fastrun`).
COMMAND_SCRIPT = "command.sh"
STDOUT_LOG = "stdout.log"
STDERR_LOG = "stderr.log"
#: Metrics of the task: written by the script (``$HSM_TASK_DIR/metrics.json``) or by hsm.
METRICS_FILE = "metrics.json"
#: Intermediate values the script reports while it runs, one JSON object a line:
#: ``{"step": 3, "loss": 0.41}`` (see docs/pruning.md).
INTERMEDIATE_FILE = "intermediate.jsonl"
#: The pruner's record of the task: its memo and, once decided, ``{"pruned": true, ...}``.
PRUNING_FILE = "pruning.json"
#: The task's ``HSM_OUTPUT_DIR``.
RESULTS_DIR = "results"
#: A worker task's ``HSM_CHECKPOINT_DIR``.
CHECKPOINTS_DIR = "checkpoints"
#: The task runner's own output (not the command's), where a source that starts the runner
#: detached sends it: a runner that fails before starting the command says why there.
RUNNER_LOG = "runner.log"
#: Written by the task's shell wrapper as it starts: its pid (see :func:`started_process`).
PID_FILE = ".hsm_pid"
#: Written by the task's shell wrapper when its command ends: the exit code.
EXIT_MARKER = ".exit_code"
#: ``$0`` of the task's shell wrapper: how its process is recognised (see :func:`started_process`).
WRAPPER_NAME = "hsm-task"
#: Every file name above, for tests that hold the rest of the code to this module.
TASK_FILE_NAMES = (STATUS_FILE, PARAMS_FILE, COMMAND_FILE, COMMAND_SCRIPT, STDOUT_LOG, STDERR_LOG, METRICS_FILE,
                   PID_FILE, EXIT_MARKER, RUNNER_LOG, INTERMEDIATE_FILE, PRUNING_FILE)
#: The directories above: words too common to look for inside other strings.
TASK_DIR_NAMES = (RESULTS_DIR, CHECKPOINTS_DIR)

#: The key of ``status.yaml`` that belongs to sources: ``{source name: {their keys}}``.
SOURCE_DATA = "source_data"

_STATES = frozenset(s.value for s in TaskState)


# -- status.yaml ----------------------------------------------------------------------------------
def status_path(task_dir: Path) -> Path:
    """Where the task's status is (for a stat, or a copy to another host)."""
    return Path(task_dir) / STATUS_FILE


def read_status(task_dir: Path) -> dict[str, Any] | None:
    """The task's ``status.yaml`` as a dict, or None when missing or unreadable (half-written by a
    non-atomic writer, or corrupt): such a task is treated as not started."""
    try:
        data = read_yaml(status_path(task_dir))
    except FileNotFoundError:
        return None
    except Exception:
        return None
    return data if _is_status(data) else None


def _is_status(data: object) -> bool:
    return isinstance(data, dict) and data.get("state") in _STATES


def write_status(task_dir: Path, status: Mapping[str, Any], *, fsync: bool = True) -> None:
    """Write ``status.yaml`` atomically (a reader sees the old status or the new, never half)."""
    atomic_write_yaml(status_path(task_dir), dict(status), fsync=fsync)


def remove_status(task_dir: Path) -> None:
    """Remove ``status.yaml`` (a task that, after all, was never started); no error when missing."""
    try:
        status_path(task_dir).unlink()
    except FileNotFoundError:
        pass


# -- what sources keep in status.yaml -------------------------------------------------------------
def carry_kept(previous: Mapping[str, Any] | None, status: Mapping[str, Any]) -> dict[str, Any]:
    """``status`` with what no rewrite may drop taken over from ``previous``: the sources' own
    ``source_data``. Every writer that builds a status afresh (a new attempt, a ``submitted``
    record) passes it through here."""
    new = dict(status)
    kept = (previous or {}).get(SOURCE_DATA)
    if isinstance(kept, Mapping) and kept and SOURCE_DATA not in new:
        new[SOURCE_DATA] = {str(k): v for k, v in kept.items()}
    return new


def with_kept_on_disk(task_dir: Path, status: Mapping[str, Any]) -> dict[str, Any]:
    """``status`` with the ``source_data`` its ``status.yaml`` holds now. For a writer whose status
    was read a while ago (the runner, at the end of a long task): a source may have kept something
    since, and only sources change ``source_data``."""
    new = dict(status)
    on_disk = (read_status(task_dir) or {}).get(SOURCE_DATA)
    if isinstance(on_disk, Mapping) and on_disk:
        new[SOURCE_DATA] = dict(on_disk)
    return new


def source_data(status: Mapping[str, Any] | None, source: str) -> dict[str, Any]:
    """What the source named ``source`` keeps in this status (empty when nothing)."""
    mapping = (status or {}).get(SOURCE_DATA)
    data = mapping.get(source) if isinstance(mapping, Mapping) else None
    return dict(data) if isinstance(data, Mapping) else {}


def with_source_data(status: Mapping[str, Any], source: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``status`` in which the source ``source`` keeps ``values`` too (merged into what it
    kept before; a value ``None`` removes that key). Other sources' data is left as it is."""
    new = dict(status)
    mapping = dict(new.get(SOURCE_DATA) or {}) if isinstance(new.get(SOURCE_DATA), Mapping) else {}
    mine = source_data(status, source)
    for key, value in values.items():
        if value is None:
            mine.pop(key, None)
        else:
            mine[key] = value
    if mine:
        mapping[source] = mine
    else:
        mapping.pop(source, None)
    if mapping:
        new[SOURCE_DATA] = mapping
    else:
        new.pop(SOURCE_DATA, None)
    return new


def keep_source_data(task_dir: Path, source: str, values: Mapping[str, Any]) -> dict[str, Any] | None:
    """Record ``values`` as the source ``source``'s own in the task's ``status.yaml`` (atomically;
    see :func:`with_source_data`). Returns the new status, or None when the task has no status
    yet (write one first: a source keeps its data next to a state)."""
    status = read_status(task_dir)
    if status is None:
        return None
    new = with_source_data(status, source, values)
    write_status(task_dir, new)
    return new


# -- params.yaml and command.json -----------------------------------------------------------------
def read_params(task_dir: Path) -> Any:
    """The task's ``params.yaml`` as YAML gives it (``{task_id, index, params}``); raises OSError
    when missing, a YAML error when damaged."""
    return read_yaml(Path(task_dir) / PARAMS_FILE)


def write_params_once(task_dir: Path, task_id: str, index: int, params: Mapping[str, Any], *,
                      atomic: bool = True) -> None:
    """Write the task's ``params.yaml`` unless it exists (it names the task: never rewritten).
    ``atomic=False``: straight into a dir nobody sees yet (see :func:`hsm_core.task_manifest.materialize`)."""
    path = Path(task_dir) / PARAMS_FILE
    if not path.exists():
        doc = {"task_id": task_id, "index": index, "params": dict(params)}
        if atomic:
            atomic_write_yaml(path, doc, fsync=False)
        else:
            _write_new(path, dump_yaml(doc))


def read_command(task_dir: Path) -> dict[str, Any]:
    """The task's ``command.json``."""
    with open(Path(task_dir) / COMMAND_FILE, encoding="utf-8") as fh:
        return json.load(fh)


def read_command_text(task_dir: Path) -> str:
    """The task's ``command.json`` as written (the shell fast path compares it with the copy its
    ``command.sh`` was made from)."""
    return (Path(task_dir) / COMMAND_FILE).read_text(encoding="utf-8")


def write_command(task_dir: Path, command: Mapping[str, Any], *, atomic: bool = True) -> None:
    """Write the task's ``command.json`` (``sweep_id, task_id, index, argv, python_arg0, cwd, env``).

    Its environment may carry a plugin's token: then the file is the owner's only; else it follows
    the umask, like every other file of the sweep (colleagues on shared storage read it)."""
    from hsm_core.secrecy import holds_secret

    text, private = json.dumps(dict(command), indent=1), holds_secret(command.get("env"))
    if atomic:
        atomic_write_text(Path(task_dir) / COMMAND_FILE, text, fsync=False, private=private)
    else:
        _write_new(Path(task_dir) / COMMAND_FILE, text, private=private)


def _write_new(path: Path, text: str, *, private: bool = False) -> None:
    """Create ``path`` with ``text`` (mode as :func:`~hsm_core.atomic.atomic_write_bytes` gives)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600 if private else 0o666)
    with os.fdopen(fd, "wb") as fh:
        fh.write(text.encode("utf-8"))


def write_command_script(task_dir: Path, text: str | None, *, private: bool = False) -> None:
    """Write the task's ``command.sh`` (``text``, from :func:`hsm_core.fastrun.command_script`), or
    remove it when ``text`` is None (the fast path must not run an outdated command)."""
    path = Path(task_dir) / COMMAND_SCRIPT
    if text is None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        return
    atomic_write_text(path, text, fsync=False, private=private)


# -- output, metrics, results ---------------------------------------------------------------------
def stdout_path(task_dir: Path) -> Path:
    return Path(task_dir) / STDOUT_LOG


def stderr_path(task_dir: Path) -> Path:
    return Path(task_dir) / STDERR_LOG


def open_output(task_dir: Path) -> tuple[IO[bytes], IO[bytes]]:
    """``stdout.log`` and ``stderr.log`` opened for appending (every attempt adds to them)."""
    out = open(stdout_path(task_dir), "ab")
    try:
        err = open(stderr_path(task_dir), "ab")
    except OSError:
        out.close()
        raise
    return out, err


def results_dir(task_dir: Path) -> Path:
    """The task's ``HSM_OUTPUT_DIR``."""
    return Path(task_dir) / RESULTS_DIR


def checkpoints_dir(task_dir: Path) -> Path:
    """A worker task's ``HSM_CHECKPOINT_DIR``."""
    return Path(task_dir) / CHECKPOINTS_DIR


def runner_log_path(task_dir: Path) -> Path:
    """The task runner's own output (see :data:`RUNNER_LOG`)."""
    return Path(task_dir) / RUNNER_LOG


def metrics_path(task_dir: Path) -> Path:
    return Path(task_dir) / METRICS_FILE


def metrics_paths(task_dir: Path) -> tuple[Path, Path]:
    """Where a script may have written its metrics: the task dir, else its results dir."""
    return metrics_path(task_dir), results_dir(task_dir) / METRICS_FILE


def intermediate_path(task_dir: Path) -> Path:
    """Where the script appends its intermediate values (``$HSM_TASK_DIR/intermediate.jsonl``)."""
    return Path(task_dir) / INTERMEDIATE_FILE


def pruning_path(task_dir: Path) -> Path:
    """The pruner's record of the task (written by hsm only)."""
    return Path(task_dir) / PRUNING_FILE


def pruned_decision(task_dir: Path) -> dict[str, Any] | None:
    """The pruner's decision to stop this task (``{"pruned": true, "step": N, "reason": ...}``),
    or None: no decision to prune was recorded. A missing file costs one failed open."""
    try:
        with open(pruning_path(task_dir), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("pruned") is True else None


def write_metrics_once(task_dir: Path, metrics: Mapping[str, Any]) -> bool:
    """Write ``metrics.json`` unless the script wrote it itself. True when written."""
    path = metrics_path(task_dir)
    if path.exists():
        return False
    atomic_write_text(path, json.dumps(dict(metrics), indent=1))
    return True


# -- the wrapper's markers ------------------------------------------------------------------------
def wrapper_script(not_started_exit: int) -> str:
    """The ``/bin/sh -c`` program that runs a task's command (``"$@"``) and leaves the markers.

    ``"$@"`` is the user's argv, passed as separate words: never re-parsed by the shell. The pid
    file is what says, after any crash, that the command was started: without it the command is
    not started at all (exit ``not_started_exit``). The exit code goes to ``.exit_code`` and,
    first, onto the end of ``.hsm_pid``: that file exists and its disk block is already
    allocated, so the append works on a full disk where creating ``.exit_code`` fails (see
    :func:`left_exit_code`). The wrapper traps the stop signals (its command gets them at default,
    as a trap is not inherited): a signal sent to the task's group must not kill the wrapper
    before its command has ended, or the command's own exit code (0 from a script that saved its
    checkpoint and exited) would be lost; the trap runs only once the command has ended. A
    SIGTERM, SIGINT or SIGUSR2 (the signals the runners pass on as a stop) that reaches the
    wrapper before its command started is not lost that way: the command is not started, and the
    wrapper records the exit code it would have died with (128 + the signal). A scheduler
    signals the processes it found, and the command, forked just after, would otherwise run on
    unsignalled after its job was cancelled. SIGUSR1, the warning before the walltime, is only
    for a command that handles it.
    """
    pid = f'"$HSM_TASK_DIR/{PID_FILE}"'
    code = f'"$HSM_TASK_DIR/{EXIT_MARKER}"'
    # .exit_code is written in place, not renamed into place (no mv process per task): a reader
    # that catches it empty has the code from .hsm_pid, which was appended first and is read first.
    return (
        f'trap "" HUP; _hsm_stop=; trap _hsm_stop={128 + signal.SIGTERM} TERM; trap _hsm_stop={128 + signal.SIGINT} INT; '
        f'trap _hsm_stop={128 + signal.SIGUSR2} USR2; trap : USR1; printf "%s" "$$" > {pid} || exit {not_started_exit}; '
        'if [ -z "$_hsm_stop" ]; then "$@"; rc=$?; else rc=$_hsm_stop; fi; '
        f'printf " exit %s" "$rc" >> {pid}; '
        f'printf "%s" "$rc" > {code}; '
        "exit $rc"
    )


def clear_markers(task_dir: Path) -> None:
    """Remove the wrapper's files: before an attempt starts, and once its end is recorded (left
    behind, they would read as an end nobody recorded)."""
    for marker in (EXIT_MARKER, PID_FILE):
        try:
            (Path(task_dir) / marker).unlink()
        except FileNotFoundError:
            pass


def pid_recorded(task_dir: Path) -> bool:
    """True when the wrapper wrote its pid into ``.hsm_pid`` (so it went on to start the command)."""
    try:
        return bool((Path(task_dir) / PID_FILE).read_text().strip())
    except OSError:
        return False


def started_process(task_dir: Path) -> str | None:
    """Identity of the live wrapper whose pid the task's ``.hsm_pid`` names, None if there is none.

    A pid alone proves nothing (pids are reused, files get corrupted): the process must have been
    alive when the file was written (it started no later than the file's last change: two live
    processes never share a pid), lead its own process group as the wrapper does, and, where its
    command line can be read, be an hsm task wrapper.
    """
    path = Path(task_dir) / PID_FILE
    try:
        pid = int(path.read_text().split()[0])
        written = path.stat().st_mtime
    except (OSError, ValueError, IndexError):
        return None
    ident = processes.identity(pid)
    parsed = processes.parse_identity(ident)
    if parsed is None or parsed[1] is None or parsed[1] > written + 1.0:
        return None
    try:
        if os.getpgid(pid) != pid:
            return None
    except OSError:
        return None
    argv = processes.cmdline(pid)
    if argv is not None and WRAPPER_NAME not in argv:
        return None
    return ident


def left_exit_code(task_dir: Path) -> tuple[int, float] | None:
    """The exit code a task's wrapper left when its command ended, and when (epoch seconds);
    None while it runs or when it left none.

    From the `` exit N`` the wrapper appends to ``.hsm_pid`` first (on a full disk creating
    ``.exit_code`` fails while that append, into a block the file already has, works; and
    ``.exit_code``, written in place after it, may be caught empty), else from ``.exit_code`` (an
    unreadable one counts as 1). A task that ended then is recorded, not run again.
    """
    pid_file = Path(task_dir) / PID_FILE
    try:
        words = pid_file.read_text().split()
        end = pid_file.stat().st_mtime
    except OSError:
        words = []
    if len(words) >= 3 and words[1] == "exit" and words[2].lstrip("-").isdigit():
        return int(words[2]), end
    marker = Path(task_dir) / EXIT_MARKER
    try:
        end = marker.stat().st_mtime
    except OSError:
        return None
    try:
        return int(marker.read_text().strip() or "1"), end
    except (OSError, ValueError):
        return 1, end
