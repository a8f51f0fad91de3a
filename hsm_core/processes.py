"""Process identity: is this still *that* process, which processes belong to a task, stop them.

Everything hsm decides about processes goes through this module: whether a task's process still
runs (a ``pid:start`` identity, so a reused pid is never mistaken for ours), which processes make
up a task (its wrapper's process group and session), stopping them, and which machine and pid
namespace a pid belongs to. It uses psutil, so it works the same on Linux, macOS and the BSDs.

Every question has three answers, not two: a process can be provably alive, provably gone, or
*unknown* (``None``: permission denied, a hidden ``/proc``). Callers stay on the safe side with
unknown: hsm never starts a second copy of a task because it could not check the first.

``HSM_PROCESS_PORTABLE=1`` forces the behaviour of a system without ``/proc`` (macOS): nothing
here reads ``/proc`` itself (no Linux pid namespace, no boot id), so the whole test suite can
exercise the paths a laptop takes. psutil is imported on first use: the task runner, started
once per array element, pays for it only when it needs an identity.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from functools import lru_cache
from typing import Callable, Iterable

#: Seconds two start times of one process may differ by (psutil derives them from boot time and
#: clock ticks; identities written by another psutil version or a legacy tick count compare loosely).
_START_SLACK = 0.05


def portable() -> bool:
    """True when told to behave as on a system without ``/proc`` (``HSM_PROCESS_PORTABLE=1``)."""
    return os.environ.get("HSM_PROCESS_PORTABLE", "") not in ("", "0")


def _psutil():  # noqa: ANN202 - the module, imported on first use
    import psutil

    return psutil


def start_time(pid: int) -> float | None:
    """When ``pid`` started (epoch seconds), or None when there is no such live process or it
    cannot be seen. A zombie counts as gone: it has exited, only its exit status is left."""
    ps = _psutil()
    try:
        proc = ps.Process(pid)
        created = proc.create_time()
        if proc.status() == ps.STATUS_ZOMBIE:
            return None
    except (ps.NoSuchProcess, ps.AccessDenied, ValueError, OSError):
        return None
    return created


def identity(pid: int) -> str | None:
    """``"PID:START"`` naming the live process ``pid`` (pid + start time), None when it is gone."""
    start = start_time(pid)
    return None if start is None else f"{pid}:{start:.3f}"


def parse_identity(ident: object) -> tuple[int, float | None] | None:
    """``(pid, start)`` from an identity; start None when the identity has none (``"PID:?"``).
    None for anything that is not an identity."""
    head, _, tail = str(ident or "").partition(":")
    if not head.isdigit() or int(head) <= 0:
        return None
    if "." not in tail:
        return int(head), None  # "PID:?", or a legacy identity (Linux clock ticks): the pid must do
    try:
        return int(head), float(tail)
    except ValueError:
        return int(head), None


def is_running(ident: object) -> bool | None:
    """Whether the process an identity names still runs: True, False (provably gone: no such
    pid, a zombie, or another process that reused the pid), or None when it cannot be told
    (permission denied). An identity without a start time matches any live process with its pid."""
    parsed = parse_identity(ident)
    if parsed is None:
        return False
    pid, start = parsed
    ps = _psutil()
    try:
        proc = ps.Process(pid)
        created = proc.create_time()
        if proc.status() == ps.STATUS_ZOMBIE:
            return False
    except ps.NoSuchProcess:
        return False
    except (ps.AccessDenied, OSError):
        return None
    return start is None or abs(created - start) <= _START_SLACK


def pid_exists(pid: int) -> bool:
    """True when some process (any user's, zombies included) has ``pid``."""
    return pid > 0 and _psutil().pid_exists(pid)


def members(leader: int) -> list[int]:
    """Live processes of the task whose wrapper is ``leader``: those in its process group or its
    session (the wrapper starts both, and both outlive it while the command runs). A process that
    left both (``setsid`` of its own) is beyond reach and not counted."""
    ps = _psutil()
    found: list[int] = []
    me = os.getpid()
    for proc in ps.process_iter():
        pid = proc.pid
        if pid == me:
            continue
        try:
            if os.getpgid(pid) != leader and _session(pid) != leader:
                continue
            if proc.status() == ps.STATUS_ZOMBIE:
                continue
        except (ps.NoSuchProcess, ProcessLookupError):
            continue
        except (ps.AccessDenied, PermissionError, OSError):
            continue
        found.append(pid)
    return found


def wrappers_of(task_dir: "os.PathLike[str] | str", word: str) -> list[int]:
    """Live processes whose command line has ``word`` (the task wrapper's ``$0``) and whose
    environment names ``task_dir`` (``HSM_TASK_DIR``); a wrapper whose environment cannot be read
    counts (used to wait for a wrapper that may be the task's, never to kill one)."""
    ps = _psutil()
    target = os.path.realpath(os.fspath(task_dir))
    found = []
    for proc in ps.process_iter():
        argv = cmdline(proc.pid)
        if not argv or word not in argv:
            continue
        env = _environ(proc.pid)
        if env is None or (env.get("HSM_TASK_DIR") and os.path.realpath(env["HSM_TASK_DIR"]) == target):
            found.append(proc.pid)
    return found


def escaped(task_dir: "os.PathLike[str] | str", leader: int | None = None) -> list[int]:
    """This user's live processes anywhere on the machine whose environment names ``task_dir``
    (``HSM_TASK_DIR``) and that are not in the process group or session of ``leader``: a task's
    daemons that left its session (``setsid``, a double fork). The environment a process started
    with survives both, so this finds what :func:`members` cannot.

    One pass over every process of the machine (about 20 ms for 400): for stops and before a new
    attempt, never per poll; the stops of many tasks at once share passes (see :func:`_tagged`).
    Never counted: another user's process (even when hsm runs as root), a process whose
    environment cannot be read (gone, hidden: where no environment can be read, as on some macOS
    set-ups, nothing is found and only the session counts, as before), a zombie, hsm itself and
    its own ancestors (an hsm started from inside the task's shell)."""
    target = os.path.realpath(os.fspath(task_dir))
    found: list[int] = []
    for pid in _tagged().get(target, ()):
        if leader is not None:
            try:
                if os.getpgid(pid) == leader or _session(pid) == leader:
                    continue  # a member: reached through the group and session
            except OSError:
                continue  # gone since
        found.append(pid)
    return found


def by_task_dir() -> dict[str, list[int]]:
    """Task dir (real path) -> this user's live processes whose environment names it (not hsm
    itself nor its ancestors), from one pass over the machine that began after this call: the
    search of :func:`escaped`, once for many task dirs."""
    return _tagged()


_tag_lock = threading.Condition()
_tag_state: dict = {"started": 0, "done": 0, "running": False, "result": {}}


def _tagged() -> dict[str, list[int]]:
    """Task dir (real path) -> this user's live processes whose environment names it, from a pass
    over the machine that began after this call (never an older one: a daemon started before the
    call is in it). Threads asking while a pass runs wait for the next one and share it, so the
    stop of 32 tasks at once costs a few passes, not 32."""
    with _tag_lock:
        wanted = _tag_state["started"] + 1
        while _tag_state["done"] < wanted:
            if not _tag_state["running"]:
                _tag_state["running"] = True
                _tag_state["started"] += 1
                mine = _tag_state["started"]
                break
            _tag_lock.wait()
        else:
            return _tag_state["result"]
    try:
        result = _tag_pass()
    except BaseException:
        with _tag_lock:  # no answer from a failed pass: the waiting threads make their own
            _tag_state["running"] = False
            _tag_lock.notify_all()
        raise
    with _tag_lock:
        _tag_state.update(running=False, done=mine, result=result)
        _tag_lock.notify_all()
    return result


def _tag_pass() -> dict[str, list[int]]:
    ps = _psutil()
    uid = os.getuid()
    spared = _self_and_ancestors()
    out: dict[str, list[int]] = {}
    for proc in ps.process_iter():
        pid = proc.pid
        if pid in spared:
            continue
        try:
            if proc.uids().real != uid:
                continue
            value = proc.environ().get("HSM_TASK_DIR")
            if not value or proc.status() == ps.STATUS_ZOMBIE:
                continue
        except (ps.NoSuchProcess, ps.AccessDenied, OSError):
            continue
        out.setdefault(os.path.realpath(value), []).append(pid)
    return out


def _self_and_ancestors() -> set[int]:
    ps = _psutil()
    spared = {os.getpid()}
    try:
        spared.update(p.pid for p in ps.Process().parents())
    except (ps.NoSuchProcess, ps.AccessDenied, OSError):
        pass
    return spared


def _pinned(pids: Iterable[int]) -> list:
    """psutil handles of ``pids`` as they are now (pid + start time): a signal sent through one
    never reaches a process that took the pid over after it ended."""
    ps = _psutil()
    out = []
    for pid in pids:
        try:
            out.append(ps.Process(pid))
        except (ps.NoSuchProcess, ps.AccessDenied, OSError):
            pass
    return out


def _signal_pinned(procs: Iterable, signum: int) -> None:
    ps = _psutil()
    for proc in procs:
        try:
            proc.send_signal(signum)
        except (ps.NoSuchProcess, ps.AccessDenied, ProcessLookupError, PermissionError, OSError):
            pass


def _still_alive(proc) -> bool:  # noqa: ANN001 - a psutil.Process
    ps = _psutil()
    try:
        return proc.is_running() and proc.status() != ps.STATUS_ZOMBIE
    except (ps.NoSuchProcess, ps.AccessDenied, OSError):
        return False


def _session(pid: int) -> int | None:
    if portable():
        return None  # as on macOS, which refuses the session of a process outside ours
    try:
        return os.getsid(pid)
    except OSError:
        return None


def group_alive(leader: int) -> bool:
    """True while any process of the task whose wrapper is ``leader`` lives (see :func:`members`)."""
    return bool(members(leader))


def task_members(leader: int, task_dir: "os.PathLike[str] | str", *, unknown: bool = True) -> list[int]:
    """:func:`members` of ``leader`` that belong to the task in ``task_dir`` (``HSM_TASK_DIR`` in
    the environment they started with). Once the wrapper is gone its pid, and so the group and
    session id, may be another process's: only this tells the task's processes from a stranger's.
    ``unknown``: whether a process whose environment cannot be read counts (yes to decide whether
    to wait for it; no before killing it)."""
    target = os.path.realpath(os.fspath(task_dir))
    found = []
    for pid in members(leader):
        env = _environ(pid)
        if env is None:
            if unknown:
                found.append(pid)
        elif env.get("HSM_TASK_DIR") and os.path.realpath(env["HSM_TASK_DIR"]) == target:
            found.append(pid)
    return found


def signal_group(leader: int, signum: int, *, spare: int | None = None) -> None:
    """Send ``signum`` to every process of the task whose wrapper is ``leader``. ``spare``: a pid
    left out (the wrapper, so that it lives to record how its command ended)."""
    grouped = False
    if spare is None:
        try:
            os.killpg(leader, signum)
            grouped = True
        except (ProcessLookupError, PermissionError, OSError):
            pass
    for pid in members(leader):
        if pid == spare:
            continue
        try:
            if grouped and os.getpgid(pid) == leader:
                continue  # reached by killpg already: one signal each (a second SIGTERM aborts many checkpoints)
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def kill_now(leader: int, *, task_dir: "os.PathLike[str] | str | None" = None) -> bool:
    """Stop a task at once (its claim was lost): SIGKILL everything but the wrapper, then let the
    wrapper (woken with SIGCONT if it was suspended) reap its command and record how it ended: a
    command that had already exited keeps its exit code. With ``task_dir``, the task's daemons
    that left its session (:func:`escaped`) are killed too. True when nothing of the task is left."""
    signal_group(leader, signal.SIGKILL, spare=leader)
    strays = _pinned(escaped(task_dir, leader)) if task_dir is not None else []
    _signal_pinned(strays, signal.SIGKILL)
    _cont(leader)
    if wait_gone(leader, 2.0, also=strays):
        return True
    signal_group(leader, signal.SIGKILL)
    return wait_gone(leader, 2.0, also=strays)


def _cont(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGCONT)
    except (ProcessLookupError, PermissionError):
        pass


def wait_gone(leader: int, timeout: float, *, poll: float = 0.05, until: Iterable[int] = (), also: Iterable = ()) -> bool:
    """Wait up to ``timeout`` seconds until no process of the task led by ``leader`` lives (or
    none of the pids ``until`` when given), nor any of the pinned processes ``also`` (see
    :func:`stop_group`). True when they are gone."""
    watch = list(until)
    pinned = list(also)

    def gone() -> bool:
        left = [p for p in watch if start_time(p) is not None] if watch else members(leader)
        return not left and not any(map(_still_alive, pinned))

    return _wait_until(gone, timeout, poll)


def _wait_until(done: Callable[[], bool], timeout: float, poll: float) -> bool:
    """Poll ``done`` every ``poll`` seconds for up to ``timeout``; True once it says so."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True


def stop_group(leader: int, grace: float, *, task_dir: "os.PathLike[str] | str | None" = None) -> bool:
    """Stop a task's processes: SIGTERM to all of them, up to ``grace`` seconds for them to end
    (a training script saving its checkpoint), then SIGKILL for what is left.

    With ``task_dir``, "all of them" includes the task's daemons that left its session (see
    :func:`escaped`): they get the same SIGTERM, grace and SIGKILL. The machine is searched for
    them when the stop begins and once more before the SIGKILL (a daemon started in the grace).

    The wrapper (``leader``) is killed last: killed first, it could not record how its command
    ended. True when nothing of the task is left."""
    signal_group(leader, signal.SIGTERM)
    # The search (a few ms per few hundred processes; more with many tasks stopped at once) comes
    # after the group's SIGTERM: it never delays the stop of the script itself.
    strays = _pinned(escaped(task_dir, leader)) if task_dir is not None else []
    _signal_pinned(strays, signal.SIGTERM)
    # A suspended process acts on SIGTERM only once continued: a wrapper stopped after its command
    # exited would otherwise be killed in the end, and the command's exit code lost with it.
    signal_group(leader, signal.SIGCONT)
    _signal_pinned(strays, signal.SIGCONT)
    if wait_gone(leader, grace, also=strays):
        return _stop_late(task_dir)
    if task_dir is not None:
        strays = _pinned(escaped(task_dir, leader))
    # Kill the command and its children first, so the wrapper lives to record the exit status.
    for _ in range(20):
        others = [p for p in members(leader) if p != leader]
        strays = [p for p in strays if _still_alive(p)]
        if not others and not strays:
            break
        signal_group(leader, signal.SIGKILL, spare=leader)
        _signal_pinned(strays, signal.SIGKILL)
        time.sleep(0.02)
    _cont(leader)
    if wait_gone(leader, 2.0, also=strays):
        return _stop_late(task_dir)
    signal_group(leader, signal.SIGKILL)
    _signal_pinned(strays, signal.SIGKILL)
    return wait_gone(leader, 2.0, also=strays) and _stop_late(task_dir)


def _stop_late(task_dir: "os.PathLike[str] | str | None") -> bool:
    """Stop a daemon of the task that left its session while the task was being stopped (started
    by a SIGTERM handler): the group is gone, so nothing else would ever reach it."""
    if task_dir is None:
        return True
    late = escaped(task_dir)
    return not late or stop_pids(late, 2.0)


def stop_pids(pids: Iterable[int], grace: float) -> bool:
    """Stop processes that are known one by one (a task whose wrapper, and so its group id, is
    gone; a daemon that left the task's session): SIGTERM, up to ``grace`` seconds, SIGKILL.
    Each is pinned by its start time first: one that ends in the grace and whose pid is taken by
    another process meanwhile is never signalled again. True when all are gone."""
    procs = _pinned(pids)
    _signal_pinned(procs, signal.SIGTERM)
    _signal_pinned(procs, signal.SIGCONT)
    if _wait_pinned(procs, grace):
        return True
    _signal_pinned([p for p in procs if _still_alive(p)], signal.SIGKILL)
    return _wait_pinned(procs, 2.0)


def signal_pids(pids: Iterable[int], signum: int) -> None:
    """Send ``signum`` to each of ``pids`` (found a moment ago) once, through a handle pinned by
    its start time: a pid taken over by another process in between is left alone."""
    _signal_pinned(_pinned(pids), signum)


def _wait_pinned(procs: list, timeout: float, poll: float = 0.05) -> bool:
    return _wait_until(lambda: not any(map(_still_alive, procs)), timeout, poll)


@lru_cache(maxsize=1)
def machine_id() -> str:
    """Identifies this OS instance and pid namespace: ``host|boot|pid namespace``.

    Two processes with the same machine id can check each other's pids; containers sharing a
    host name and kernel but not a pid namespace get different ids (on Linux).
    """
    host = socket.gethostname()
    try:
        boot = str(int(_psutil().boot_time()))
    except Exception:  # noqa: BLE001 - an unknown boot time only makes ids less precise
        boot = "?"
    pidns = "?"
    if not portable():
        try:
            pidns = str(os.stat("/proc/self/ns/pid").st_ino)
        except OSError:
            pass
    return f"{host}|{boot}|{pidns}"


def cmdline(pid: int) -> list[str] | None:
    """The command line of ``pid``, or None when it cannot be read (gone, or not ours to read)."""
    ps = _psutil()
    try:
        return ps.Process(pid).cmdline()
    except (ps.NoSuchProcess, ps.AccessDenied, OSError):
        return None


def _environ(pid: int) -> dict[str, str] | None:
    ps = _psutil()
    try:
        return ps.Process(pid).environ()
    except (ps.NoSuchProcess, ps.AccessDenied, OSError):
        return None
