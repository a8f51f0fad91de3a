"""Small Python programs run on the remote with ``PYTHON -c CODE`` (their input is JSON on stdin).

They use the standard library, plus hsm's plugin API (``hsm_core.plugin``: process identity, and
the task-file functions where a status must be rewritten; hsm-core is installed there: the tasks
run under its runner). The plugin API loads only the names a script asks for, so these imports
cost what the modules behind them cost, plus about 1 ms (``python -X importtime``). Each script is
a single SSH command however many tasks it handles, so a poll costs one round trip.
"""

from __future__ import annotations

from hsm_core.plugin import RUNNER_LOG, STATUS_FILE

#: The names of the task files the scripts read, as the plugin API gives them (never spelled here).
_NAMES = f"STATUS_FILE, RUNNER_LOG = {STATUS_FILE!r}, {RUNNER_LOG!r}\n"

# Shared helpers: is a process alive, and the same process (pid + start time, as hsm-core's
# process identity records it, so a reused pid is not mistaken for ours; a zombie counts as
# dead). Through psutil, which hsm-core brings; on a host without it the answers are only ever
# "alive" or "unknown", never a guessed "dead" (a guess would run a task a second time).
_ALIVE = _NAMES + r'''
import json, os, signal, sys, time
try:
    import psutil as _psutil
    from hsm_core.plugin import processes as _procs
except Exception:
    _procs = None
def start_of(pid):
    if _procs is None:
        return None
    ident = _procs.identity(pid)
    return ident.split(":", 1)[1] if ident else None
def alive(pid, ticks=None):
    if not pid:
        return False
    if _procs is None:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    return _procs.is_running("%d:%s" % (int(pid), ticks if ticks not in (None, "") else "?")) is not False
def find_runner(d):
    # The detached Python runner of task dir d, by its command line.
    found = []
    if _procs is not None:
        for p in _psutil.process_iter(["cmdline"]):
            args = p.info.get("cmdline") or []
            if "hsm_core.runner" in args and d in args:
                found.append(p.pid)
        return found
    for name in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as fh:
                args = fh.read().split(b"\0")
        except OSError:
            continue
        if b"hsm_core.runner" in args and d.encode() in args:
            found.append(int(name))
    return found
def group_alive(pgid, d=None):
    # A task runs in its wrapper's process group; the group outlives a killed wrapper. Once the
    # wrapper is gone its pid may be a stranger's: with the task dir, only the task's processes count.
    if _procs is not None:
        return bool(_procs.task_members(int(pgid), d)) if d else _procs.group_alive(int(pgid))
    try:
        os.killpg(int(pgid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True
def wrapper_pid(d):
    # The runner's /bin/sh wrapper writes its pid to its pid file as it starts: a runner killed after
    # starting it, but before recording it in the task's status, leaves the task findable. The pid
    # counts only if it is still that wrapper (pids are reused: see started_process in hsm_core.plugin).
    if _procs is None:
        return None
    from pathlib import Path
    from hsm_core.plugin import started_process
    ident = started_process(Path(d))
    return int(ident.split(":", 1)[0]) if ident else None
def task_process(status_text):
    for line in (status_text or "").splitlines():
        if line.startswith("process:"):
            value = line.split(":", 1)[1].strip().strip("'\"")
            pid, _, ticks = value.partition(":")
            if pid.isdigit():
                return int(pid), ticks
    return None, None
'''

#: Start one detached runner per task: its own session (setsid), output to runner.log, so neither
#: a dropped connection nor the end of this command stops it. Prints {dir: {pid, ticks}}.
LAUNCH = _ALIVE + r'''
import subprocess
req = json.load(sys.stdin)
out = {}
for t in req["tasks"]:
    d = t["dir"]
    env = dict(os.environ)
    env.update({k: str(v) for k, v in (t.get("env") or {}).items()})
    argv = [req["python"], "-m", "hsm_core.runner", "--source", req["source"],
            "--project-root", req["project_root"], "--python", req["python"], d]
    try:
        log = open(os.path.join(d, RUNNER_LOG), "ab")
        try:
            p = subprocess.Popen(argv, cwd=req["project_root"], env=env, stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
        finally:
            log.close()
    except OSError as exc:
        out[d] = {"error": str(exc)}
        continue
    out[d] = {"pid": p.pid, "ticks": start_of(p.pid)}
print(json.dumps(out))
'''

#: Read every task's status.yaml in one go, waiting up to ``wait`` seconds for a change. Liveness
#: is checked BEFORE the status is read: a runner seen dead has already written its last status. A task whose runner and command are both gone is
#: finished here (exit code from .exit_code), or marked lost/failed, so the truth stays on disk.
READ = _ALIVE + r'''
def text(path, limit=None):
    try:
        with open(path, "rb") as fh:
            if limit:
                fh.seek(0, 2)
                fh.seek(max(0, fh.tell() - limit))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return None
def state_of(status):
    for line in (status or "").splitlines():
        if line.startswith("state:"):
            return line.split(":", 1)[1].strip().strip("'\"")
    return None
FINAL = ("completed", "failed", "cancelled", "timeout", "lost", "interrupted", "preempted")
def changed(t, r):
    # Worth reporting now: the task ended (or its runner is gone), or it started running.
    state = state_of(r["status"])
    return not r["alive"] or state in FINAL or (state == "running" and t.get("known") != "running")
def scan(t):
    d = t["dir"]
    # No pid recorded (the controller died while launching, or the launch was cut off): look the
    # runner up by its task dir, once; the controller learns its pid from "runner".
    found = None
    if not t.get("pid"):
        for p in find_runner(d):
            start = start_of(p)
            if alive(p) and start:
                t["pid"], t["ticks"] = p, start
                found = [p, start]
                break
    runner_alive = alive(t.get("pid"), t.get("ticks")) if t.get("pid") else False
    status = text(os.path.join(d, STATUS_FILE))
    pid, ticks = task_process(status)
    task_alive = (alive(pid, ticks) if pid else False) or wrapper_pid(d) is not None
    if pid and not runner_alive and not task_alive and group_alive(pid, d):
        # The runner and its wrapper were killed but the command runs on, where nothing can
        # record how it ends: stop it now (it is run again), rather than let it finish unseen.
        if _procs is not None:
            _procs.stop_pids(_procs.task_members(int(pid), d, unknown=False), 0.0)
        else:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for _ in range(100):
            if not group_alive(pid, d):
                break
            time.sleep(0.02)
        status = text(os.path.join(d, STATUS_FILE))
    r = {"status": status, "alive": runner_alive or task_alive}
    if found:
        r["runner"] = found
    if not r["alive"]:
        if state_of(status) in (None, "pending", "submitted", "running"):
            from hsm_core.plugin import left_exit_code, now_iso, read_status, reconcile_status, write_status
            from pathlib import Path
            p = Path(d)
            st = read_status(p)
            if st and st.get("state") == "running" and left_exit_code(p) is not None:
                reconcile_status(p, st)
                r["note"] = "finished while nobody watched"
            elif st and st.get("state") == "running":
                st = dict(st, state="lost", end_time=now_iso(), error="the runner and the task vanished (killed, or the host restarted)")
                st.pop("process", None)
                write_status(p, st)
                r["note"] = "vanished"
            elif not (text(os.path.join(d, RUNNER_LOG)) or "").strip():
                # A runner that fails says why in its log; one that left nothing was killed
                # (SIGKILL, OOM killer) before it started the task: nothing ran, run it again.
                st = dict(st or {}, state="lost", end_time=now_iso(),
                          error="the task runner vanished before starting the task (killed?)")
                write_status(p, st)
                r["note"] = "vanished"
            else:
                st = dict(st or {}, state="failed", end_time=now_iso(),
                          error="the task runner exited before starting the task; see " + RUNNER_LOG)
                write_status(p, st)
                r["note"] = "runner failed"
                r["log"] = text(os.path.join(d, RUNNER_LOG), 2000)
            r["status"] = text(os.path.join(d, STATUS_FILE))
    return r
# A long poll: look again every 0.1 s, for up to "wait" seconds, until something is worth
# reporting. One SSH command then covers the wait, and an end is seen within 0.1 s of it.
# After the first change, a short linger gathers the ends that come with it into one report (the
# controller then copies them back and starts their successors in one go each).
req = json.load(sys.stdin)
deadline = time.time() + min(float(req.get("wait") or 0), 30.0)
while True:
    out = {t["dir"]: scan(t) for t in req["tasks"]}
    if time.time() >= deadline:
        break
    if any(changed(t, out[t["dir"]]) for t in req["tasks"]):
        deadline = min(deadline, time.time() + float(req.get("linger") or 0))
        if time.time() >= deadline or all(changed(t, out[t["dir"]]) for t in req["tasks"]):
            break
    time.sleep(0.1)
print(json.dumps(out))
'''

#: Stop tasks: SIGTERM to the runner's and the command's process groups, SIGKILL after the grace
#: period, then record the requested final state (cancelled / interrupted / lost) unless the task
#: finished on its own first. Tasks without a known pid are found by their dir on the command line.
KILL = _ALIVE + r'''
req = json.load(sys.stdin)
grace = float(req.get("grace", 10))
wanted = req["state"]
groups = {}
for t in req["tasks"]:
    d = t["dir"]
    pids = [t["pid"]] if t.get("pid") and alive(t["pid"], t.get("ticks")) else (find_runner(d) if not t.get("pid") else [])
    try:
        with open(os.path.join(d, STATUS_FILE)) as fh:
            pid, ticks = task_process(fh.read())
    except OSError:
        pid, ticks = None, None
    if pid and (alive(pid, ticks) or group_alive(pid, d)):
        pids.append(pid)
    started = wrapper_pid(d)
    if started and started not in pids:
        pids.append(started)
    groups[d] = pids
def signal_all(sig):
    for pids in groups.values():
        for pid in pids:
            try:
                os.killpg(pid, sig)
            except (ProcessLookupError, PermissionError):
                try:
                    os.kill(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
def anything_left():
    # The groups, not only their leaders: a helper the command started (a data loader that
    # ignores SIGTERM) outlives the wrapper and the runner, and must not be left running.
    return any(alive(p) or group_alive(p) for ps in groups.values() for p in ps)
signal_all(signal.SIGTERM)
deadline = time.time() + grace
while time.time() < deadline and anything_left():
    time.sleep(0.05)
if anything_left():
    signal_all(signal.SIGKILL)
    end = time.time() + 5
    while time.time() < end and anything_left():
        time.sleep(0.05)
from pathlib import Path
from hsm_core.plugin import now_iso, read_status, write_status
out = {}
for d in groups:
    p = Path(d)
    if not p.is_dir():
        # The copy of the task dir never arrived (the connection dropped while launching): no
        # runner can have started there, so there is nothing to stop and nowhere to record it.
        out[d] = wanted
        continue
    st = read_status(p) or {}
    if st.get("state") == "completed" or (st.get("state") in ("failed", "timeout") and not st.get("signal_received")):
        out[d] = st["state"]
        continue
    st = dict(st, state=wanted)
    st.setdefault("end_time", now_iso())
    st.pop("process", None)
    history = list(st.get("attempts") or [])
    if history and history[-1].get("attempt") == st.get("attempt"):
        history[-1] = dict(history[-1], state=wanted)
    st["attempts"] = history
    write_status(p, st)
    out[d] = wanted
print(json.dumps(out))
'''

#: Everything ``hsm collect-results`` needs about a remote sweep dir: task dir names and states.
LIST = _NAMES + r'''
import json, os, sys
req = json.load(sys.stdin)
tasks = os.path.join(req["sweep_dir"], "tasks")
out = {}
try:
    names = sorted(os.listdir(tasks))
except OSError:
    names = []
for n in names:
    state = None
    try:
        with open(os.path.join(tasks, n, STATUS_FILE)) as fh:
            for line in fh:
                if line.startswith("state:"):
                    state = line.split(":", 1)[1].strip().strip("'\"")
    except OSError:
        pass
    out[n] = state
print(json.dumps(out))
'''

#: The project's state on the remote for the sync check: git commit/branch/uncommitted paths, and
#: SHA-256 of the files asked for (null when missing).
SYNC = r'''
import hashlib, json, os, subprocess, sys
req = json.load(sys.stdin)
root = req["root"]
out = {"git": None, "hashes": {}}
if req.get("git"):
    def git(*args):
        try:
            return subprocess.run(["git", "-C", root] + list(args), capture_output=True, text=True)
        except OSError:
            return None
    head = git("rev-parse", "HEAD")
    if head is not None and head.returncode == 0:
        branch = git("rev-parse", "--abbrev-ref", "HEAD").stdout.strip()
        status = git("status", "--porcelain", "-z", "--", ".").stdout
        out["git"] = {"commit": head.stdout.strip(), "branch": branch, "porcelain": status}
for rel in req.get("files") or []:
    h = hashlib.sha256()
    try:
        with open(os.path.join(root, rel), "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        out["hashes"][rel] = h.hexdigest()
    except OSError:
        out["hashes"][rel] = None
print(json.dumps(out))
'''
