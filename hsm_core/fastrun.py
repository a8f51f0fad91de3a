"""The task runner's shell fast path: an array element's task run by the job script's own bash.

A Python task runner per array element costs about 80 ms of CPU (interpreter, imports, run), as
much as a trivial task itself. For the common case the job script instead sources
:func:`program`, a bash program generated here from the same definitions as the Python runner
(:mod:`hsm_core.runner`, :mod:`hsm_core.taskdir`, :mod:`hsm_core.state`): the same ``/bin/sh``
wrapper and markers, the same ``status.yaml`` records (state, attempt and attempts history, host,
times, exit code, signal, ``signal_received``, ``last_process``, the ``HSM_JOB_*`` fields, the
sources' ``source_data`` kept), the same signal forwarding. It uses bash builtins only, plus one
``mv`` per ``status.yaml`` write (atomic: readers see the old record or the new) and one ``rm`` of
the markers at the end (bash's loadable ``rm`` builtin where the system ships it, as Debian's
``bash-builtins`` does: no process then).

It applies, and otherwise returns before writing anything so that the job script goes on to
``exec`` the Python runner, when:

* the shell is bash 5 or later (``$EPOCHREALTIME``);
* the element's task dir exists with a ``command.sh`` made from the ``command.json`` it holds
  now (:func:`write_for_task`, at submission; a command that bash cannot express exactly, such
  as an environment variable bash reserves, gets none), or, for a dir left to the element (a
  large submission), the element's own rename made it from its line of the chunk's rows
  (:mod:`hsm_core.fastrun_rows`);
* its ``status.yaml`` is the ``submitted`` record of a submission, in the form hsm writes, with no
  process of an earlier attempt to look for. A requeued element (its status names the process of
  the attempt the scheduler stopped), a task already completed, packed elements
  (``tasks_per_element``), a ``runner`` set in the config, sweeps submitted through a remote
  login node and a multi-node task (``HSM_TASK_LAUNCHER``) take the Python runner. The warning
  before the walltime of schedulers without a directive for it (``HSM_WARNING_AT``, PBS and
  Torque) is a timer here as in the Python runner.

SIGUSR1 (the warning before the walltime) is forwarded only when a process of the task handles it,
as the Python runner does: a script without a handler runs on to the walltime.

Differences, by design: the fast path writes no transient ``process: starting`` record (its
controller is the job itself: if the job dies, the scheduler's verdict says how the element
ended); ``status.yaml`` is renamed into place but not fsynced; the wrapper gets a process group of
its own (bash job control), not a session, so the signals it forwards reach the task's process
group (a scheduler's own signals and kills reach every process of the job anyway).

The tests (tests/test_fast_runner.py) run the same tasks through both runners and compare what
they recorded.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import sys
from pathlib import Path
from typing import Any, Mapping

from hsm_core.atomic import dump_yaml
from hsm_core.runner import ATTEMPT_BANNER, NOT_STARTED_EXIT, TASK_PATH_VARS, WRAPPER_LOST_ERROR
from hsm_core.secrecy import holds_secret
from hsm_core.state import ATTEMPT_FIELDS
from hsm_core.taskdir import (
    COMMAND_FILE,
    COMMAND_SCRIPT,
    EXIT_MARKER,
    PARAMS_FILE,
    PID_FILE,
    PRUNING_FILE,
    RESULTS_DIR,
    SOURCE_DATA,
    STATUS_FILE,
    STDERR_LOG,
    STDOUT_LOG,
    WRAPPER_NAME,
    read_command_text,
    results_dir,
    wrapper_script,
    write_command_script,
)
from hsm_core.taskstate import TaskState

__all__ = ["PROGRAM_NAME", "command_script", "finish", "program", "write_for_task"]

#: The file name of the program in a sweep's ``scripts/job_scripts`` (sourced by job scripts).
PROGRAM_NAME = "hsm-fastrun.bash"

#: Lines per page of the rows an element makes its task dir from (:mod:`hsm_core.fastrun_rows`),
#: and what names a page: ``<list stem>`` + :data:`ROWS_INFIX` + the page number.
ROWS_PAGE = 100
ROWS_INFIX = ".rows."

#: The ``runner`` recorded by the standalone runner (``hsm-task``'s ``--runner`` default).
STANDALONE = "standalone"

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Names bash gives a meaning of its own (read-only, or changing the shell's behaviour): a command
#: setting one in its environment is left to the Python runner.
_BASH_NAMES = frozenset(
    "BASH BASHOPTS BASHPID BASH_ALIASES BASH_ARGC BASH_ARGV BASH_ARGV0 BASH_CMDS BASH_COMMAND BASH_ENV "
    "BASH_LINENO BASH_REMATCH BASH_SOURCE BASH_SUBSHELL BASH_VERSINFO BASH_VERSION CDPATH COLUMNS "
    "DIRSTACK ENV EPOCHREALTIME EPOCHSECONDS EUID FUNCNAME GLOBIGNORE GROUPS HISTCMD HOSTNAME IFS "
    "LINENO OLDPWD OPTARG OPTERR OPTIND PPID PS4 PWD RANDOM SECONDS SHELLOPTS SHLVL SRANDOM UID _".split()
)


def _q(value: str) -> str:
    """``value`` as one shell word (single quotes: nothing in it is expanded)."""
    return shlex.quote(value) if value else "''"


def _expanded(value: str) -> str:
    """A shell word for ``value`` in which ``${HSM_TASK_DIR}`` and the other task path variables,
    and nothing else, take their values (what :func:`hsm_core.runner.expand_task_paths` does)."""
    pattern = "(" + "|".join(re.escape("${" + v + "}") for v in TASK_PATH_VARS) + ")"
    words = []
    for piece in re.split(pattern, value):
        if not piece:
            continue
        words.append(f'"${piece[2:-1]}"' if piece.startswith("${") and piece[2:-1] in TASK_PATH_VARS else _q(piece))
    return "".join(words) or "''"


def command_script(command: Mapping[str, Any], json_text: str = "") -> str | None:
    """The ``command.sh`` of a task whose ``command.json`` is ``command``: bash assignments the fast
    path sources (argv, cwd, environment, the ids as ``status.yaml`` writes them). None when bash
    cannot set that environment exactly as the Python runner does (a variable name that is no
    shell name, or one bash reserves) or a value holds a NUL: the Python runner runs such a task.
    ``json_text`` is ``command.json`` as written: the fast path runs the task only while the file
    still reads the same (a command changed since is the Python runner's)."""
    argv = [str(a) for a in command.get("argv") or ()]
    env = {str(k): str(v) for k, v in (command.get("env") or {}).items()}
    if not argv:
        return None
    for key in env:
        if not _IDENT.match(key) or key in _BASH_NAMES or key.startswith("_hsm"):
            return None
    texts = [*argv, *env.values(), str(command.get("cwd") or "")]
    if any("\0" in t for t in texts):
        return None
    ids = dump_yaml({"task_id": command.get("task_id"), "index": command.get("index")})
    lines = [
        f"# Generated by hsm from {COMMAND_FILE} for the task runner's shell fast path (hsm_core/fastrun.py).",
        f"_hsm_command_json={_q(json_text)}",
        f"_hsm_ids_yaml={_q(ids)}",
        f"_hsm_sweep_id={_q(str(command.get('sweep_id', '')))}",
        f"_hsm_task_id={_q(str(command.get('task_id', '')))}",
        f"_hsm_task_index={_q(str(command.get('index', '')))}",
        f"_hsm_cwd={_q(str(command.get('cwd') or ''))}",
        f"_hsm_python_arg0={'1' if command.get('python_arg0') else ''}",
        "_hsm_argv=(" + " ".join(_q(a) for a in argv) + ")",
        # The command's environment, before the task's own variables (which win over it) ...
        "_hsm_env_command() {",
        *(f"  export {k}={_q(v)}" for k, v in env.items()),
        "  :",
        "}",
        # ... and its values naming the task's paths, set afterwards from this host's paths.
        "_hsm_env_paths() {",
        *(f"  export {k}={_expanded(v)}" for k, v in env.items() if "${HSM_" in v),
        "  :",
        "}",
    ]
    return "\n".join(lines) + "\n"


def write_for_task(task_dir: os.PathLike[str] | str) -> bool:
    """Write the task's ``command.sh`` from its ``command.json``; False (and none written, an older
    one removed) when the fast path cannot run it or there is no readable ``command.json``."""
    try:
        text = read_command_text(Path(task_dir))
        command = json.loads(text)
    except (OSError, ValueError):
        write_command_script(task_dir, None)
        return False
    script = command_script(command, text) if isinstance(command, dict) else None
    write_command_script(task_dir, script, private=holds_secret(command.get("env")) if script else False)
    if script is not None:
        # Made now rather than by a mkdir process in every element (the runner makes it when missing).
        results_dir(Path(task_dir)).mkdir(exist_ok=True)
    return script is not None


def finish(argv: list[str]) -> int:
    """``python -m hsm_core.fastrun finish TASK_DIR CODE STATE ERROR``: the end of an attempt
    the fast path ran, recorded by :func:`hsm_core.state.finalize_status` from the running record
    on disk, as the Python runner records it (``STATE``: what the fast path concluded, which a
    pruner's decision overrides). Returns the Python runner's exit code."""
    from hsm_core.state import finalize_status
    from hsm_core.taskdir import read_status

    task_dir, code, state, error = Path(argv[0]), int(argv[1]), argv[2], argv[3]
    status = read_status(task_dir) or {}
    chosen = None if state in (TaskState.COMPLETED.value, TaskState.FAILED.value) else TaskState(state)
    # No end time, as the Python runner passes none: the pruner's decision counts whenever it came.
    final = finalize_status(task_dir, status, code, state=chosen, extra={"error": error} if error else None)
    exit_code = final.get("exit_code")
    return exit_code if isinstance(exit_code, int) and 0 <= exit_code < 256 else 1


def _signal_names() -> str:
    """A bash ``case`` naming signal numbers as Python's ``signal.Signals`` does."""
    cases = []
    for n in range(1, 65):
        try:
            cases.append(f"{n}) _hsm_signame={signal.Signals(n).name};;")
        except ValueError:
            continue
    return " ".join(cases)


def program(python: str = sys.executable) -> str:
    """The bash program array job scripts source: ``. hsm-fastrun.bash --list FILE --index I
    --source S [--project-root P] [--python PY]``. It runs the element's task and exits with the
    Python runner's exit code, or returns without having written anything when it does not apply
    (the script then runs the Python runner). ``python`` is the interpreter that records the end of
    a task the sweep's pruner keeps a record of (:func:`finish`): how a pruned task ends is the
    Python side's to decide."""
    st = TaskState
    banner = ATTEMPT_BANNER.replace("%", "%%").format(attempt="%s", host="%s", time="%s")
    attempt_keys = "\n".join(f"{k}" for k in ATTEMPT_FIELDS)
    assert attempt_keys.split() == ["attempt", "state", "host", "source", "start_time", "end_time", "exit_code"], (
        "the fast path writes the attempt fields of hsm_core.state.ATTEMPT_FIELDS: update fastrun.program")
    values = {
        "WRAPPER": _q(wrapper_script(NOT_STARTED_EXIT)),
        "WRAPPER_NAME": _q(WRAPPER_NAME),
        "STATUS": STATUS_FILE,
        "COMMAND_JSON": COMMAND_FILE,
        "COMMAND_SH": COMMAND_SCRIPT,
        "PID_FILE": PID_FILE,
        "EXIT_MARKER": EXIT_MARKER,
        "STDOUT": STDOUT_LOG,
        "STDERR": STDERR_LOG,
        "RESULTS": RESULTS_DIR,
        "SOURCE_DATA": SOURCE_DATA,
        "SUBMITTED": st.SUBMITTED.value,
        "RUNNING": st.RUNNING.value,
        "COMPLETED": st.COMPLETED.value,
        "FAILED": st.FAILED.value,
        "PREEMPTED": st.PREEMPTED.value,
        "LOST": st.LOST.value,
        "STANDALONE": STANDALONE,
        "NOT_STARTED": str(NOT_STARTED_EXIT),
        "NOT_STARTED_ERROR": _q(f"could not write {PID_FILE} (no space left on device?): the command was not started"),
        "LOST_ERROR": _q(WRAPPER_LOST_ERROR.format(signal="%s")),
        "BANNER": _q(banner),
        "CLK_TCK": str(os.sysconf("SC_CLK_TCK")),
        "SIGNAMES": _signal_names(),
        "TERM": str(int(signal.SIGTERM)),
        "USR1": str(int(signal.SIGUSR1)),
        "PRUNING": PRUNING_FILE,
        "PYTHON": _q(python),
        "PARAMS": PARAMS_FILE,
        "ROWS_PAGE": str(ROWS_PAGE),
        "ROWS_INFIX": ROWS_INFIX,
    }
    text = _PROGRAM
    for key, value in values.items():
        text = text.replace("@" + key + "@", value)
    assert "@" not in text.replace("${_hsm_argv[@]}", "").replace('"$@"', ""), "an unfilled place in the fast path"
    return text


# The program. @NAME@ places are filled by program() from the definitions above. Every variable
# is _hsm_-prefixed and none is exported: the task inherits the job script's environment as it
# would through the Python runner.
_PROGRAM = r"""# Generated by hsm (hsm_core/fastrun.py): the task runner's shell fast path for array jobs.
# Sourced by the job script: runs the element's task and exits, or returns before writing anything
# when it does not apply (the script then runs the Python task runner, which records the same).
_hsm_q() { _hsm_quoted="'${1//\'/\'\'}'"; }

_hsm_now() {  # _hsm_us: epoch microseconds; _hsm_iso: local time, ISO 8601 as Python writes it
  _hsm_us=${EPOCHREALTIME/[.,]/}
  printf -v _hsm_iso '%(%Y-%m-%dT%H:%M:%S%z)T' "${_hsm_us:0:-6}"
  _hsm_iso="${_hsm_iso:0:-2}:${_hsm_iso: -2}"
}

_hsm_read_status() {  # $1: a @STATUS@ in hsm's form: _hsm_st, _hsm_at, _hsm_atts, _hsm_sd, _hsm_proc
  _hsm_st= _hsm_at= _hsm_atts= _hsm_sd= _hsm_proc=
  local _hsm_l _hsm_k= _hsm_v
  [ -r "$1" ] || return 1
  while IFS= read -r _hsm_l || [ -n "$_hsm_l" ]; do
    case $_hsm_l in
      ''|' '*|'-'*)  # inside the block of the key above (a list, a mapping, a long string)
        case $_hsm_k in
          attempts) _hsm_atts+=$_hsm_l$'\n' ;;
          @SOURCE_DATA@) _hsm_sd+=$_hsm_l$'\n' ;;
        esac ;;
      [A-Za-z_]*:*)
        _hsm_k=${_hsm_l%%:*} _hsm_v=${_hsm_l#*:}
        _hsm_v=${_hsm_v# }
        case $_hsm_k in
          state) _hsm_st=$_hsm_v ;;
          attempt) _hsm_at=$_hsm_v ;;
          attempts|@SOURCE_DATA@) case $_hsm_v in ''|'[]'|'{}') ;; *) return 1 ;; esac ;;
          process|last_process) _hsm_proc=1 ;;
        esac ;;
      *) return 1 ;;
    esac
  done < "$1"
}

# mv and rm by absolute path when they are where systems keep them (a search of the default PATH
# by `command -p` costs more than the rename itself).
_hsm_mv=mv _hsm_rm=rm
for _hsm_bin in /usr/bin /bin; do
  [ -x "$_hsm_bin/mv" ] && [ -x "$_hsm_bin/rm" ] && { _hsm_mv=$_hsm_bin/mv _hsm_rm=$_hsm_bin/rm; break; }
done
# rm as one of bash's loadable builtins where the system ships them (Debian's bash-builtins, the
# loadables of Fedora's bash), looked for where bash looks ($BASH_LOADABLES_PATH, when set) or
# where systems keep them: a removal without a process. Loaded only around each use, so that
# nothing else (a setup command, the task's own command) ever runs it in place of the real rm.
_hsm_find_loadable() {  # $1: a builtin's name; _hsm_so: the file bash loads it from, or empty
  local IFS=: _hsm_d
  _hsm_so=
  for _hsm_d in ${BASH_LOADABLES_PATH-/usr/lib/bash:/usr/lib64/bash:/usr/local/lib/bash}; do
    [ -n "$_hsm_d" ] && [ -f "$_hsm_d/$1" ] && { _hsm_so=$_hsm_d/$1; return 0; }
  done
  return 1
}
_hsm_find_loadable rm; _hsm_rm_so=$_hsm_so

_hsm_remove() {  # rm -f -- "$@", without a process when the loadable rm loads
  if [ -n "$_hsm_rm_so" ] && enable -f "$_hsm_rm_so" rm 2>/dev/null; then
    rm -f -- "$@"
    local _hsm_rc=$?
    enable -d rm
    return $_hsm_rc
  fi
  "$_hsm_rm" -f -- "$@"
}

_hsm_make_dir() {  # the missing task dir $_hsm_dir, from line $_hsm_index of the chunk's rows
  # (hsm_core/fastrun_rows.py), made whole in a temporary sibling renamed into place as
  # hsm_core.task_manifest.materialize makes it; fails when a racer's rename won (or could).
  local -a _hsm_row=()
  mapfile -t -s $((_hsm_index % @ROWS_PAGE@)) -n 1 _hsm_row 2>/dev/null \
    < "${_hsm_list%.*}@ROWS_INFIX@$((_hsm_index / @ROWS_PAGE@))" || return 1
  case ${_hsm_row[0]-} in "_hsm_mk_params=\$'"*) ;; *) return 1 ;; esac
  local _hsm_mk_params= _hsm_mk_json= _hsm_mk_sh=
  eval "${_hsm_row[0]}" || return 1
  [ -n "$_hsm_mk_json" ] && [ -n "$_hsm_mk_sh" ] || return 1
  local _hsm_parent=${_hsm_dir%/*} _hsm_so=
  [ -d "$_hsm_parent" ] || command mkdir -p -- "$_hsm_parent" 2>/dev/null || return 1  # the sweep's tasks/
  local _hsm_tmp="$_hsm_parent/.${_hsm_dir##*/}.$$.$RANDOM.making" _hsm_ok=
  if _hsm_find_loadable mkdir && enable -f "$_hsm_so" mkdir 2>/dev/null; then
    mkdir -- "$_hsm_tmp" && mkdir -- "$_hsm_tmp/@RESULTS@" && _hsm_ok=1
    enable -d mkdir
  else
    command mkdir -- "$_hsm_tmp" && command mkdir -- "$_hsm_tmp/@RESULTS@" && _hsm_ok=1
  fi
  # -T: never into a dir of that name made meanwhile (an mv without it fails: the Python runner's).
  if [ -n "$_hsm_ok" ] && printf '%s' "$_hsm_mk_params" > "$_hsm_tmp/@PARAMS@" \
      && printf '%s' "$_hsm_mk_json" > "$_hsm_tmp/@COMMAND_JSON@" \
      && printf '%s' "$_hsm_mk_sh" > "$_hsm_tmp/@COMMAND_SH@" \
      && "$_hsm_mv" -T -- "$_hsm_tmp" "$_hsm_dir" 2>/dev/null; then
    return 0
  fi
  "$_hsm_rm" -rf -- "$_hsm_tmp" 2>/dev/null
  return 1
}

_hsm_write_status() {  # $1: the whole record; temporary file + rename, as hsm writes it
  local _hsm_tmp="$_hsm_t/.@STATUS@.$$.$RANDOM.tmp"
  printf '%s' "$1" > "$_hsm_tmp" && "$_hsm_mv" -f -- "$_hsm_tmp" "$_hsm_t/@STATUS@" && { _hsm_written=$1; return 0; }
  _hsm_remove "$_hsm_tmp" 2>/dev/null
  return 1
}

_hsm_record() {  # the record of this attempt, $1 the state and $2 what follows the shared part
  local _hsm_sdtext=
  [ -n "$_hsm_sd" ] && _hsm_sdtext="@SOURCE_DATA@:"$'\n'"$_hsm_sd"
  _hsm_text="${_hsm_ids_yaml}state: $1
source: $_hsm_source_y
runner: @STANDALONE@
host: $_hsm_host_y
attempt: $_hsm_attempt
start_time: '$_hsm_start_iso'
start_epoch: $_hsm_start_epoch
$2$_hsm_sdtext$_hsm_jobtext"
}

_hsm_keep_source_data() {  # what a source kept in @STATUS@ since we read it stays
  local _hsm_st _hsm_at _hsm_atts _hsm_proc _hsm_sd0=$_hsm_sd _hsm_now_text=
  # Still the record we wrote last (as almost always): nothing was kept since, nothing to parse.
  IFS= read -r -d '' _hsm_now_text 2>/dev/null < "$_hsm_t/@STATUS@"
  [ -n "$_hsm_written" ] && [ "$_hsm_now_text" = "$_hsm_written" ] && return 0
  _hsm_read_status "$_hsm_t/@STATUS@" || _hsm_sd=
  [ -n "$_hsm_sd" ] || _hsm_sd=$_hsm_sd0
}

_hsm_catches_usr1() {  # a process of the task but its wrapper handles SIGUSR1: runner.task_catches
  [ -d /proc/self ] || return 0
  local _p _s _k _v _f
  for _p in /proc/[0-9]*; do
    _p=${_p#/proc/}
    [ "$_p" = "$_hsm_pid" ] && continue
    IFS= read -r _s 2>/dev/null < "/proc/$_p/stat" || continue
    _f=(${_s##*) })
    # fields after the command: state ppid pgrp session; the wrapper leads the task's group
    [ "${_f[2]-}" = "$_hsm_pid" ] || [ "${_f[3]-}" = "$_hsm_pid" ] || continue
    while read -r _k _v; do
      if [ "$_k" = SigCgt: ]; then
        (( 16#$_v & (1 << (@USR1@ - 1)) )) && return 0
        break
      fi
    done 2>/dev/null < "/proc/$_p/status"
  done
  return 1
}

_hsm_start_timer() {  # SIGUSR1 to this shell in $1 s (at once when past), as the Python runner's
  # timer thread sends it to the runner: _hsm_timer, the timer's process group, is stopped when
  # the task ends. It signals only while this shell is its parent, so never a process that took
  # this pid later. bash's loadable sleep where the system has it, else the sleep command.
  local _hsm_so= _hsm_me=$$ _hsm_delay=$1
  [ "$_hsm_delay" -gt 0 ] 2>/dev/null || _hsm_delay=0
  _hsm_find_loadable sleep
  set -m
  (
    trap - TERM INT USR1 USR2
    if [ -n "$_hsm_so" ] && enable -f "$_hsm_so" sleep 2>/dev/null; then
      sleep "$_hsm_delay"
    else
      command sleep "$_hsm_delay"
    fi
    local _hsm_s
    IFS= read -r _hsm_s 2>/dev/null < "/proc/$BASHPID/stat" || exit 0
    local -a _hsm_f=(${_hsm_s##*) })
    [ "${_hsm_f[1]-}" = "$_hsm_me" ] && kill -s USR1 "$_hsm_me"
  ) < /dev/null > /dev/null 2>&1 &
  _hsm_timer=$!
  set +m
  disown "$_hsm_timer" 2>/dev/null  # no "Killed" in the job's log when it is stopped (gone already: a warning time past)
}

_hsm_held_signal() {  # a stop signal while the task is being started: handled once its start is recorded
  _hsm_held+=" $1"
}

_hsm_on_signal() {  # forwarded to the task; the first one is recorded (the job is being stopped)
  _hsm_woke=1
  # The warning before the walltime, and no process of the task handles it: not passed on (its
  # default action would kill the task a minute early); it runs on to the walltime, as in Python.
  [ "$1" = USR1 ] && ! _hsm_catches_usr1 && return 0
  if [ -z "$_hsm_received" ]; then
    _hsm_received=SIG$1
    _hsm_keep_source_data
    _hsm_record @RUNNING@ "process: '$_hsm_ident'
${_hsm_attempts_text}signal_received: $_hsm_received
"
    _hsm_write_status "$_hsm_text"
  fi
  kill -s "$1" -- "-$_hsm_pid" 2>/dev/null
}

# The element's run, at the top level rather than in a function: bash copies a function's whole
# body at every call, and this is most of the program; and bash parses a top-level command only
# when it comes to it, so nothing after the point where the element exits or returns is parsed.
# Its variables are the job shell's (none is exported).
  set +e +u
  IFS=$' \t\n'
  _hsm_written=
  [ -n "${EPOCHREALTIME:-}" ] && [ "${BASH_VERSINFO[0]:-0}" -ge 5 ] || return 1
  declare _hsm_list= _hsm_source=unknown _hsm_index= _hsm_root= _hsm_python=
  while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || return 1
    case $1 in
      --list) _hsm_list=$2 ;;
      --source) _hsm_source=$2 ;;
      --index) _hsm_index=$2 ;;
      --project-root) _hsm_root=$2 ;;
      --python) _hsm_python=$2 ;;
      *) return 1 ;;
    esac
    shift 2
  done
  case $_hsm_index in ''|*[!0-9]*) return 1 ;; esac
  # A launcher before the command (srun for a task of several nodes): the Python runner's job.
  [ -z "${HSM_TASK_LAUNCHER:-}" ] || return 1
  # The warning time of schedulers without a warning directive (epoch seconds, from the job
  # script): a timer here, as in the Python runner; a value bash cannot count with is Python's.
  case ${HSM_WARNING_AT:-} in *[!0-9]*) return 1 ;; esac
  case $_hsm_list in /*) ;; *) return 1 ;; esac
  declare -a _hsm_line=()
  mapfile -t -s "$_hsm_index" -n 1 _hsm_line 2>/dev/null < "$_hsm_list" || return 1
  declare _hsm_dir=${_hsm_line[0]-}
  [ -n "$_hsm_dir" ] || return 1
  case $_hsm_dir in /*) ;; *) _hsm_dir=${_hsm_list%/*}/$_hsm_dir ;; esac
  # A dir the controller left to the element: made here, and run only when this rename made it.
  declare _hsm_made=
  if [ ! -e "$_hsm_dir" ]; then
    _hsm_make_dir || return 1
    _hsm_made=1
  fi
  # The task dir as the Python runner resolves it (symbolic links followed).
  declare _hsm_here=$PWD _hsm_t
  cd -P -- "$_hsm_dir" 2>/dev/null || return 1
  _hsm_t=$PWD
  cd -- "$_hsm_here" 2>/dev/null || return 1
  [ -f "$_hsm_t/@COMMAND_SH@" ] || return 1
  declare _hsm_st _hsm_at _hsm_atts _hsm_sd _hsm_proc
  if [ -n "$_hsm_made" ] && [ ! -e "$_hsm_t/@STATUS@" ]; then
    _hsm_st=@SUBMITTED@ _hsm_at=0 _hsm_atts= _hsm_sd= _hsm_proc=  # submitted with its array job
  else
    _hsm_read_status "$_hsm_t/@STATUS@" || return 1
  fi
  [ "$_hsm_st" = @SUBMITTED@ ] && [ -z "$_hsm_proc" ] || return 1
  case $_hsm_at in ''|*[!0-9]*) return 1 ;; esac
  declare _hsm_command_json= _hsm_json_now= _hsm_ids_yaml _hsm_sweep_id _hsm_task_id _hsm_task_index _hsm_cwd
  declare _hsm_python_arg0
  declare -a _hsm_argv
  . "$_hsm_t/@COMMAND_SH@" || return 1
  # Made from the @COMMAND_JSON@ there now? (Changed since the submission: the Python runner.)
  IFS= read -r -d '' _hsm_json_now 2>/dev/null < "$_hsm_t/@COMMAND_JSON@"
  [ -n "$_hsm_command_json" ] && [ "$_hsm_json_now" = "$_hsm_command_json" ] || return 1
  [ -n "$_hsm_python" ] && [ -n "$_hsm_python_arg0" ] && _hsm_argv[0]=$_hsm_python
  _hsm_cwd=${_hsm_root:-${_hsm_cwd:-$PWD}}
  [ -d "$_hsm_cwd" ] || return 1
  [ -d "$_hsm_t/@RESULTS@" ] || mkdir -p -- "$_hsm_t/@RESULTS@" 2>/dev/null || return 1
  # From here on the fast path runs the task: nothing returns to the Python runner.
  if [ -e "$_hsm_t/@EXIT_MARKER@" ] || [ -e "$_hsm_t/@PID_FILE@" ]; then
    _hsm_remove "$_hsm_t/@EXIT_MARKER@" "$_hsm_t/@PID_FILE@"
  fi
  # This host's name as Python's socket.gethostname() gives it: $HOSTNAME may have come with the
  # environment of the submitting host (bash sets it only when it is not set).
  declare _hsm_attempt=$((_hsm_at + 1)) _hsm_host= _hsm_us _hsm_iso _hsm_quoted _hsm_text
  IFS= read -r _hsm_host 2>/dev/null < /proc/sys/kernel/hostname || _hsm_host=${HOSTNAME:-}
  [ -n "$_hsm_host" ] || _hsm_host=${HOSTNAME:-}
  _hsm_now
  declare _hsm_start_us=$_hsm_us _hsm_start_iso=$_hsm_iso
  declare _hsm_start_epoch="${_hsm_us:0:-6}.${_hsm_us: -6:3}"
  if [ "$_hsm_attempt" -gt 1 ]; then
    printf @BANNER@ "$_hsm_attempt" "$_hsm_host" "$_hsm_iso" >> "$_hsm_t/@STDOUT@"
    printf @BANNER@ "$_hsm_attempt" "$_hsm_host" "$_hsm_iso" >> "$_hsm_t/@STDERR@"
  fi
  _hsm_q "$_hsm_host"; declare _hsm_host_y=$_hsm_quoted
  _hsm_q "$_hsm_source"; declare _hsm_source_y=$_hsm_quoted
  declare _hsm_jobtext=
  if [ -n "${HSM_JOB_ID:-}" ]; then
    _hsm_q "$HSM_JOB_ID"; _hsm_jobtext="job_id: $_hsm_quoted"$'\n'
    if [ -n "${HSM_JOB_RESTART:-}" ]; then _hsm_q "$HSM_JOB_RESTART"; _hsm_jobtext+="restart_count: $_hsm_quoted"$'\n'; fi
  fi
  declare _hsm_attempts_text=
  [ -n "$_hsm_atts" ] && _hsm_attempts_text="attempts:"$'\n'"$_hsm_atts"

  # The command, under the Python runner's /bin/sh wrapper, in a process group of its own.
  # A scheduler's stop signal from here on is held until the start is recorded, then passed on:
  # at its default action it would kill this shell between the fork and the record, leaving the
  # task running with nobody to stop it (a scheduler signals only the processes it found, and
  # the task's own may not have been forked yet). The subshell gets the default actions back.
  declare _hsm_pid _hsm_held=
  trap '_hsm_held_signal TERM' TERM
  trap '_hsm_held_signal INT' INT
  trap '_hsm_held_signal USR2' USR2
  set -m
  (
    cd -- "$_hsm_cwd" || exit 1
    _hsm_env_command
    export HSM_TASK_DIR="$_hsm_t" HSM_OUTPUT_DIR="$_hsm_t/@RESULTS@" HSM_SWEEP_DIR="${_hsm_t%/*/*}"
    export HSM_SWEEP_ID="$_hsm_sweep_id" HSM_TASK_ID="$_hsm_task_id" HSM_TASK_INDEX="$_hsm_task_index"
    export PYTHONUNBUFFERED="${PYTHONUNBUFFERED-1}"
    _hsm_env_paths
    exec /bin/sh -c @WRAPPER@ @WRAPPER_NAME@ "${_hsm_argv[@]}"
  ) < /dev/null >> "$_hsm_t/@STDOUT@" 2>> "$_hsm_t/@STDERR@" &
  _hsm_pid=$!
  set +m
  # Its identity as hsm_core.processes names it: pid and start time (boot time + clock ticks).
  declare _hsm_ident="$_hsm_pid:?" _hsm_stat _hsm_k _hsm_v _hsm_btime=
  if IFS= read -r _hsm_stat 2>/dev/null < "/proc/$_hsm_pid/stat"; then
    while read -r _hsm_k _hsm_v; do [ "$_hsm_k" = btime ] && { _hsm_btime=$_hsm_v; break; }; done < /proc/stat
    declare -a _hsm_f=(${_hsm_stat##*) })
    declare _hsm_ticks=${_hsm_f[19]-}
    if [ -n "$_hsm_btime" ] && [ -n "$_hsm_ticks" ]; then
      printf -v _hsm_ident '%s:%s.%03d' "$_hsm_pid" "$((_hsm_btime + _hsm_ticks / @CLK_TCK@))" \
        "$(( (_hsm_ticks % @CLK_TCK@) * 1000 / @CLK_TCK@ ))"
    fi
  fi
  _hsm_record @RUNNING@ "process: '$_hsm_ident'
$_hsm_attempts_text"
  if ! _hsm_write_status "$_hsm_text"; then
    # Started but not recorded (a full disk): stopped, as the Python runner does.
    kill -s KILL -- "-$_hsm_pid" 2>/dev/null
    wait "$_hsm_pid"
    exit 1
  fi

  declare _hsm_received= _hsm_woke _hsm_rc
  trap '_hsm_on_signal TERM' TERM
  trap '_hsm_on_signal INT' INT
  trap '_hsm_on_signal USR1' USR1
  trap '_hsm_on_signal USR2' USR2
  declare _hsm_s
  for _hsm_s in $_hsm_held; do _hsm_on_signal "$_hsm_s"; done
  declare _hsm_timer=
  [ -n "${HSM_WARNING_AT:-}" ] && _hsm_start_timer $((HSM_WARNING_AT - EPOCHSECONDS))
  while :; do
    _hsm_woke=
    wait "$_hsm_pid"
    _hsm_rc=$?
    [ -n "$_hsm_woke" ] || break
  done
  if [ "$_hsm_rc" = $((128 + @TERM@)) ] && [ -z "$_hsm_received" ]; then
    # A scheduler signals every process of the job at once: the task may die of it before our
    # own trap runs. Give that signal a moment, so the attempt is recorded as stopped by it.
    declare _hsm_i
    for _hsm_i in {1..40}; do
      [ -n "$_hsm_received" ] && break
      command -p sleep 0.05
    done
  fi
  trap - TERM INT USR1 USR2
  [ -n "$_hsm_timer" ] && kill -s KILL -- "-$_hsm_timer" 2>/dev/null
  [ -n "$_hsm_received" ] && kill -s KILL -- "-$_hsm_pid" 2>/dev/null

  # How the attempt ended, read as the Python runner reads it (see runner.finish_task).
  declare _hsm_left= _hsm_pidrec= _hsm_code _hsm_state= _hsm_extra= _hsm_error=
  IFS= read -r _hsm_pidrec 2>/dev/null < "$_hsm_t/@PID_FILE@"
  declare -a _hsm_w=($_hsm_pidrec)
  [ "${_hsm_w[1]-}" = exit ] && case ${_hsm_w[2]-} in ''|*[!0-9-]*|?*-*) ;; *) _hsm_left=${_hsm_w[2]} ;; esac
  if [ -z "$_hsm_left" ] && [ -e "$_hsm_t/@EXIT_MARKER@" ]; then
    IFS= read -r _hsm_left 2>/dev/null < "$_hsm_t/@EXIT_MARKER@"
    case $_hsm_left in ''|*[!0-9-]*|?*-*) _hsm_left=1 ;; esac
  fi
  if [ -n "$_hsm_left" ]; then
    _hsm_code=$_hsm_left                   # the wrapper ended and said how its command ended
  elif [ "$_hsm_rc" -gt 128 ]; then
    _hsm_code=$((128 - _hsm_rc))           # the wrapper itself was killed by a signal
  else
    _hsm_code=$_hsm_rc
  fi
  declare _hsm_signame= _hsm_signum=
  [ "$_hsm_code" -lt 0 ] && _hsm_signum=$((-_hsm_code))
  [ "$_hsm_code" -gt 128 ] && _hsm_signum=$((_hsm_code - 128))
  case $_hsm_signum in @SIGNAMES@ esac
  if [ "$_hsm_code" = @NOT_STARTED@ ] && [ -z "${_hsm_pidrec%% *}" ]; then
    _hsm_state=@LOST@
    _hsm_error=@NOT_STARTED_ERROR@
    _hsm_q "$_hsm_error"; _hsm_extra="error: $_hsm_quoted"$'\n'
  elif [ "$_hsm_code" = 0 ]; then
    _hsm_state=@COMPLETED@
  elif [ -n "$_hsm_received" ]; then
    _hsm_state=@PREEMPTED@
  elif [ "$_hsm_code" -lt 0 ]; then
    kill -s KILL -- "-$_hsm_pid" 2>/dev/null
    _hsm_state=@LOST@
    printf -v _hsm_error @LOST_ERROR@ "${_hsm_signame:-signal $_hsm_signum}"
    _hsm_q "$_hsm_error"; _hsm_extra="error: $_hsm_quoted"$'\n'
  else
    _hsm_state=@FAILED@
  fi
  _hsm_now
  declare _hsm_ms=$(( (_hsm_us - _hsm_start_us + 500) / 1000 ))
  declare _hsm_duration
  printf -v _hsm_duration '%d.%03d' "$((_hsm_ms / 1000))" "$((_hsm_ms % 1000))"
  declare _hsm_entry="- attempt: $_hsm_attempt
  state: $_hsm_state
  host: $_hsm_host_y
  source: $_hsm_source_y
  start_time: '$_hsm_start_iso'
  end_time: '$_hsm_iso'
  exit_code: $_hsm_code
"
  declare _hsm_end="exit_code: $_hsm_code
end_time: '$_hsm_iso'
duration: $_hsm_duration
"
  [ -n "$_hsm_signame" ] && _hsm_end+="signal: $_hsm_signame"$'\n'
  [ -n "$_hsm_received" ] && _hsm_end+="signal_received: $_hsm_received"$'\n'
  if [ -e "$_hsm_t/@PRUNING@" ]; then
    # The sweep's pruner keeps a record of this task: whether it was stopped as pruned is for
    # the Python side to say (hsm_core.state.finalize_status), from the running record on disk.
    @PYTHON@ -m hsm_core.fastrun finish "$_hsm_t" "$_hsm_code" "$_hsm_state" "$_hsm_error"
    exit $?
  fi
  _hsm_keep_source_data
  _hsm_record "$_hsm_state" "attempts:
$_hsm_atts$_hsm_entry$_hsm_end$_hsm_extra"
  _hsm_text+="last_process: '$_hsm_ident'"$'\n'
  _hsm_write_status "$_hsm_text" || exit 1   # the markers stay: hsm records the end from them
  _hsm_remove "$_hsm_t/@EXIT_MARKER@" "$_hsm_t/@PID_FILE@"
  if [ "$_hsm_code" -ge 0 ] && [ "$_hsm_code" -lt 256 ]; then exit "$_hsm_code"; fi
  exit 1
"""


if __name__ == "__main__":  # pragma: no cover - run by the fast path's program
    if sys.argv[1:2] == ["finish"]:
        sys.exit(finish(sys.argv[2:]))
    sys.exit("usage: python -m hsm_core.fastrun finish TASK_DIR CODE STATE ERROR")
