"""What the contract suite sees from outside hsm: the task's own log and this machine's processes.

A compute source passes the contract only if the tasks themselves agree: :data:`CONTRACT_SCRIPT`
is the "training script" of every contract test. Besides what :data:`hsm_core.testing.SCRIPT`
does (argv and environment on stdout, ``metrics.json``, ``exit=N``, ``sleep=S``), it appends to one
log shared by all tasks of a test (``O_APPEND``, one ``write`` per line):

* ``start TASK TIME`` when it starts and ``end TASK TIME`` when its work is done (read with
  :func:`hsm_core.testing.runlog.read_runs`: executions are counted from these, never from hsm's
  records);
* ``seen TASK STATE``: the state its ``status.yaml`` had when it started (a source must have
  recorded the launch before the task could start);
* ``term TASK TIME`` when it got SIGTERM.

Parameters for the stop tests: ``trap=1`` handles SIGTERM as training scripts do (saves a
"checkpoint" for ``checkpoint=S`` seconds, 0.5 by default, then exits 143); ``daemon=1`` starts a
helper process that ignores SIGTERM (a data loader, a logging service): only SIGKILL ends it.
``kill_controller=1``: the first task to start kills the controller process named in the
controller's pid file (``kill -9``), to kill it at the moment a task starts.

:func:`task_processes` finds every process of a sweep on this machine from its environment
(``HSM_SWEEP_ID``), whoever started it; :func:`kill_task_processes` is the clean-up of a test.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from hsm_core.taskdir import METRICS_FILE, STATUS_FILE

CONTRACT_SCRIPT = r'''
import json, os, signal, subprocess, sys, time
RUNLOG = {runlog!r}
STATUS_FILE, METRICS_FILE = {status_file!r}, {metrics_file!r}
CONTROLLER_PID = {controller_pid!r}
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
task = os.environ.get("HSM_TASK_ID") or "?"
task_dir = os.environ["HSM_TASK_DIR"]

def note(word, what=None):
    fd = os.open(RUNLOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, ("%s %s %s\n" % (word, task, "%.6f" % time.time() if what is None else what)).encode())
    os.close(fd)

def state_on_disk():
    try:
        with open(os.path.join(task_dir, STATUS_FILE)) as fh:
            for line in fh:
                if line.startswith("state:"):
                    return line.split(":", 1)[1].strip() or "empty"
    except OSError:
        return "missing"
    return "no-state"

note("start")
note("seen", state_on_disk())
if args.get("kill_controller") == "1":
    # Only the first task to start kills it: taking the pid file is atomic, and a later task must
    # not kill whatever process reuses the pid.
    try:
        os.rename(CONTROLLER_PID, CONTROLLER_PID + ".taken")
        pid = int(open(CONTROLLER_PID + ".taken").read().split()[0])
        import psutil
        if "hsm_core.testing.controller" in " ".join(psutil.Process(pid).cmdline()):
            os.kill(pid, signal.SIGKILL)
            note("killed", str(pid))
    except Exception:  # gone already, not ours to read: nothing to kill
        pass
if args.get("trap") == "1":
    def on_term(signum, frame):
        note("term")
        time.sleep(float(args.get("checkpoint", 0.5)))  # saving a checkpoint
        os._exit(143)
    signal.signal(signal.SIGTERM, on_term)
if args.get("daemon") == "1":
    subprocess.Popen([sys.executable, "-c",
                      "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(3600)"])
print("ARGV", json.dumps(sys.argv[1:]))
print("ENV", json.dumps({{k: v for k, v in os.environ.items() if k.startswith("HSM_") or k == "CUDA_VISIBLE_DEVICES"}}))
sys.stdout.flush()
if "sleep" in args:
    time.sleep(float(args["sleep"]))
with open(os.path.join(task_dir, METRICS_FILE), "w") as fh:
    json.dump({{"score": float(args.get("x", 1)) * 2}}, fh)
print("METRIC loss=0.5")
print("error output", file=sys.stderr)
sys.stdout.flush()
note("end")
sys.exit(int(args.get("exit", 0)))
'''


def contract_script(runlog: Path, controller_pid: Path) -> str:
    """:data:`CONTRACT_SCRIPT` logging to ``runlog``; ``controller_pid``: the controller's pid file."""
    return CONTRACT_SCRIPT.format(runlog=str(runlog), controller_pid=str(controller_pid), status_file=STATUS_FILE,
                                  metrics_file=METRICS_FILE)


def log_words(runlog: Path, word: str) -> dict[str, list[str]]:
    """Task id -> the values of its ``word`` lines in the log (``seen``: states, ``start``: times)."""
    out: dict[str, list[str]] = {}
    try:
        lines = Path(runlog).read_text().splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        parts = line.split()
        if len(parts) == 3 and parts[0] == word:
            out.setdefault(parts[1], []).append(parts[2])
    return out


def task_processes(sweep_id: str) -> list[dict[str, Any]]:
    """Live processes of this machine that belong to the sweep ``sweep_id`` (``HSM_SWEEP_ID`` in
    their environment: the task's command and everything it started), each as
    ``{"pid", "task", "cmdline"}``. Zombies have ended and are not counted."""
    import psutil

    found = []
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            env = proc.environ()
            if env.get("HSM_SWEEP_ID") != sweep_id:
                continue
            found.append({"pid": proc.pid, "task": env.get("HSM_TASK_ID", "?"), "cmdline": " ".join(proc.cmdline())})
        except (psutil.Error, OSError):
            continue
    return found


def wait_no_task_processes(sweep_id: str, timeout: float) -> list[dict[str, Any]]:
    """Wait up to ``timeout`` seconds for the processes of ``sweep_id`` to be gone; what is left."""
    deadline = time.monotonic() + timeout
    while True:
        left = task_processes(sweep_id)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.1)


def kill_task_processes(sweep_id: str) -> None:
    """SIGKILL whatever of ``sweep_id`` still runs on this machine (a test's clean-up: a source that
    failed the contract must not leave its tasks behind for the next test)."""
    for _ in range(3):
        left = task_processes(sweep_id)
        if not left:
            return
        for p in left:
            try:
                os.kill(p["pid"], signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.1)


__all__ = ["CONTRACT_SCRIPT", "contract_script", "kill_task_processes", "log_words", "task_processes",
           "wait_no_task_processes"]
