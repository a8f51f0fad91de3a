"""An outside observer for the stop paths (issue 12, items 2-7): training-like task scripts that
keep their own log, and the checks that judge hsm from that log alone.

The task script (:data:`TASK_SCRIPT`) is what ML training scripts do when they are stopped: it
traps SIGTERM to "save a checkpoint" and exits 0 or non-zero, or ignores SIGTERM, or leaves daemon
children behind (a ``sleep`` started with Popen and a multiprocessing child, like a wandb service
or a dataloader worker). It appends to ``observed/t<x>.log`` (O_APPEND, fsync after every line
but the last):

* ``start KEY PID MONO TICKS PPID PPID_TICKS``: an execution begins (PPID is hsm's wrapper);
* ``overlap KEY PID OTHER_PID``: at its start, an earlier copy of the same task was still alive;
* ``child KEY PID TICKS KIND MAIN_PID``: a daemon child it started;
* ``term KEY PID MONO``: it received SIGTERM;
* ``end KEY CODE MONO PID``: its own exit code, written just before ``os._exit(CODE)`` (catchable
  signals blocked from before the line until the exit, and nothing but one write() between the
  two, so that a SIGKILL cannot fall between them in practice: the line is the exit code).

``MONO`` is ``time.monotonic()``, one clock for every process of the machine, so the observer can
compare it with when a controller exited. ``TICKS`` is the start time from ``/proc/PID/stat``: with
the pid, it names a process, so a reused pid is never taken for the task.

The parameters of a task say how it behaves (see :func:`random_plans`): ``run`` seconds of work,
``resume`` seconds of work left when an earlier execution is in the log (it resumes from its
checkpoint; default: ``run``), ``term`` (``save0``: trap SIGTERM, save for ``save`` seconds, exit 0; ``saveN``: the same, exit
``code``; ``ignore``: trap it and carry on; ``default``: die of it), ``daemon`` (seconds the daemon
children live; 0: none).

:class:`Observer` reads those logs and the sweep's files and collects *problems* instead of
failing at the first one, so a failing round reports every double run, overlap, leftover and
wrong state it saw (the figures docs/reliability.md quotes).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from chaos_support import hsm_popen, kill_tree, output_of, read_state

TASK_SCRIPT = r'''
import os, signal, sys, time
LOG_DIR = {log_dir!r}
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
key = "t" + args.get("x", "?")
path = os.path.join(LOG_DIR, key + ".log")
me = os.getpid()


def ticks(pid):
    try:
        with open("/proc/%d/stat" % pid) as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def log(*words):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (" ".join(str(w) for w in words) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def finish(code):
    # The end line must be the exit code: no signal may land between the two. Catchable ones are
    # blocked; SIGKILL cannot be, so the window is made as small as it gets - one write() on a file
    # opened at the start, then the exit (no fsync there: the line is visible to every process as
    # soon as write() returns; fsync only guards against power loss, which is not tested here).
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2])
    os.write(end_fd, ("end %s %s %r %s\n" % (key, code, time.monotonic(), me)).encode())
    os._exit(code)


parent = os.getppid()
log("start", key, me, repr(time.monotonic()), ticks(me), parent, ticks(parent))
end_fd = os.open(path, os.O_WRONLY | os.O_APPEND)
# Another copy of this task alive right now? (started, not ended, and still that very process)
ended = set()
starts = []
with open(path) as fh:
    for line in fh.read().splitlines():
        w = line.split()
        if len(w) >= 5 and w[0] == "start":
            starts.append((int(w[2]), w[4]))
        elif len(w) >= 5 and w[0] == "end":
            ended.add(int(w[4]))
for pid, tk in starts:
    if pid != me and pid not in ended and tk != "None" and ticks(pid) == tk:
        log("overlap", key, me, pid)

daemon = float(args.get("daemon", 0))
if daemon:
    # Started before any handler is installed: they keep the default SIGTERM action.
    import multiprocessing, subprocess
    kid = subprocess.Popen(["sleep", str(daemon)])
    log("child", key, kid.pid, ticks(kid.pid), "sleep", me)
    mp = multiprocessing.Process(target=time.sleep, args=(daemon,))
    mp.start()
    log("child", key, mp.pid, ticks(mp.pid), "multiprocessing", me)

term = args.get("term", "default")
saving = []


def on_term(signum, frame):
    log("term", key, me, repr(time.monotonic()))
    if term == "ignore" or saving:
        return  # carry on (a second SIGTERM does not cut the checkpoint short)
    saving.append(1)
    time.sleep(float(args.get("save", 1)))  # "saving a checkpoint"
    finish(0 if term == "save0" else int(args.get("code", 1)))


if term != "default":
    signal.signal(signal.SIGTERM, on_term)
# A later execution resumes from the checkpoint: "resume" seconds of work left (default: all).
earlier = len(starts) > 1
time.sleep(float(args.get("resume" if earlier else "run", args.get("run", 1))))
finish(0)
'''

#: How each variant of the brief behaves (see :func:`random_plans`).
VARIANTS = {
    "a": "traps SIGTERM, saves, exits 0",
    "b": "traps SIGTERM, saves, exits non-zero",
    "c": "ignores SIGTERM",
    "d": "leaves daemon children",
    "e": "very short",
}

#: Seconds the daemon children of variant d live: far longer than any bound of the tests, so a
#: controller or worker that waits for them is seen hanging instead of merely being slow.
DAEMON_SECONDS = 120

#: Worker settings: short heartbeat and stale timeout, core only.
FAST_WORKERS = {"HSM_WORKER_HEARTBEAT": "0.3", "HSM_WORKER_STALE_TIMEOUT": "2", "HSM_DISABLE_PLUGINS": "all"}


def random_plans(rng: random.Random, n: int, variants: str = "abcde", *, run: tuple[float, float] = (0.8, 2.0),
                 save: tuple[float, float] = (0.5, 2.0)) -> list[dict[str, Any]]:
    """Parameters of ``n`` tasks, variants drawn from ``variants`` (each at least once when n allows)."""
    kinds = list(variants)[:n]
    kinds += [rng.choice(variants) for _ in range(n - len(kinds))]
    rng.shuffle(kinds)
    plans = []
    for x, kind in enumerate(kinds):
        p: dict[str, Any] = {"x": x, "variant": kind, "run": round(rng.uniform(*run), 3),
                             "resume": round(rng.uniform(0.2, 0.8), 3), "term": "default",
                             "save": round(rng.uniform(*save), 3), "code": 0, "daemon": 0}
        if kind == "a":
            p["term"] = "save0"
        elif kind == "b":
            p.update(term="saveN", code=rng.choice([1, 143]))
        elif kind == "c":
            p.update(term="ignore", run=round(rng.uniform(run[1], 1.6 * run[1]), 3))  # outlives the stop and its grace
        elif kind == "d":
            p.update(daemon=DAEMON_SECONDS, term=rng.choice(["default", "save0"]), run=round(rng.uniform(0.4, run[1]), 3))
        elif kind == "e":
            p.update(run=round(rng.uniform(0.0, 0.03), 3), term=rng.choice(["default", "save0"]), resume=0.0,
                     save=round(rng.uniform(0.0, 0.02), 3))
        plans.append(p)
    return plans


def expected_end(ex: "Execution", plans: list[dict[str, Any]], execs: list["Execution"]) -> float:
    """When the script of ``ex`` will end by itself (``time.monotonic()``), from its parameters."""
    plan = plans[int(ex.key[1:])]
    first = bool(execs) and execs[0].pid == ex.pid
    return ex.start + float(plan["run"] if first else plan.get("resume", plan["run"]))


def write_project(root: Path, *, parallel: int = 2, grace: float = 1.5) -> None:
    """A project whose ``train.py`` is :data:`TASK_SCRIPT` (logs in ``root/observed``)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "observed").mkdir(exist_ok=True)
    (root / "train.py").write_text(TASK_SCRIPT.format(log_dir=str(root / "observed")))
    (root / "hsm_config.yaml").write_text(
        textwrap.dedent(
            f"""\
            project:
              name: stops
            paths:
              python_interpreter: {sys.executable}
              train_script: train.py
            compute:
              local:
                max_parallel_jobs: {parallel}
                kill_grace: {grace}
            """
        )
    )


def write_sweep(root: Path, plans: list[dict[str, Any]], *, name: str | None = None) -> Path:
    """A sweep file running one task per plan (paired lists keep every task's parameters together)."""
    path = root / "sweeps" / f"{name or 'sweep'}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = list(plans[0])
    doc: dict[str, Any] = {"paired": [{"p": {k: [p[k] for p in plans] for k in keys}}]}
    if name:
        doc = {"name": name, **doc}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


def start_ticks(pid: int) -> str | None:
    """Start time of a live (not zombie) process, None when there is none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def alive(pid: int | None, ticks: str | None) -> bool:
    """True while ``pid`` is the very process that started at ``ticks`` (stopped counts as alive)."""
    return bool(pid) and ticks not in (None, "None") and start_ticks(int(pid)) == ticks


def stopped(pid: int) -> bool:
    """True when ``pid`` is stopped (SIGSTOP)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("T", "t")
    except (OSError, IndexError):
        return False


def parent_of(pid: int) -> int | None:
    """The parent pid of a live process, None when it is gone."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def signal_pid(pid: int | None, ticks: str | None, sig: int) -> bool:
    """Send ``sig`` to ``pid`` only if it is still the process that started at ``ticks``."""
    if not alive(pid, ticks):
        return False
    try:
        os.kill(int(pid), sig)  # type: ignore[arg-type]
    except ProcessLookupError:
        return False
    return True


def processes_under(root: Path) -> list[int]:
    """Live processes whose ``HSM_TASK_DIR`` lies under ``root`` (tasks, wrappers, their children)."""
    prefix = f"HSM_TASK_DIR={root.resolve()}".encode()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            env = Path(f"/proc/{name}/environ").read_bytes()
        except OSError:
            continue
        if any(v.startswith(prefix) for v in env.split(b"\0")) and start_ticks(int(name)):
            out.append(int(name))
    return out


class Hang(AssertionError):
    """A command did not exit within its bound."""


# --------------------------------------------------------------------------------------------
# The log
# --------------------------------------------------------------------------------------------


@dataclass
class Execution:
    """One execution of a task script, as its log tells it."""

    key: str
    pid: int
    ticks: str | None
    start: float
    parent: int
    parent_ticks: str | None
    end: float | None = None
    code: int | None = None
    term: float | None = None
    children: list[tuple[int, str | None, str]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.end is not None

    @property
    def stopped_by_hsm(self) -> bool:
        """It got SIGTERM or ended without its own end line (killed)."""
        return self.term is not None or self.end is None

    def __str__(self) -> str:
        how = f"ended {self.code} at {self.end:.3f}" if self.end is not None else "no end line"
        return f"{self.key} pid {self.pid} started {self.start:.3f} {how}" + (" (got SIGTERM)" if self.term else "")


def parse_log(path: Path) -> tuple[list[Execution], list[str]]:
    """Executions (in start order) and overlap lines of one task log."""
    execs: list[Execution] = []
    overlaps: list[str] = []
    by_pid: dict[int, Execution] = {}
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return execs, overlaps
    for line in lines:
        w = line.split()
        if not w:
            continue
        try:
            if w[0] == "start" and len(w) >= 7:
                ex = Execution(w[1], int(w[2]), None if w[4] == "None" else w[4], float(w[3]), int(w[5]),
                               None if w[6] == "None" else w[6])
                execs.append(ex)
                by_pid[ex.pid] = ex
            elif w[0] == "end" and len(w) >= 5 and int(w[4]) in by_pid:
                ex = by_pid[int(w[4])]
                ex.code, ex.end = int(w[2]), float(w[3])
            elif w[0] == "term" and len(w) >= 4 and int(w[2]) in by_pid:
                ex = by_pid[int(w[2])]
                ex.term = ex.term or float(w[3])
            elif w[0] == "child" and len(w) >= 6 and int(w[5]) in by_pid:
                by_pid[int(w[5])].children.append((int(w[2]), None if w[3] == "None" else w[3], w[4]))
            elif w[0] == "overlap":
                overlaps.append(line)
        except ValueError:
            continue  # a torn line (cannot happen with O_APPEND writes this small, but never crash)
    return execs, overlaps


class Observer:
    """Judges a sweep from the task scripts' own logs; collects problems by kind."""

    def __init__(self, root: Path, chaos: Any = None) -> None:
        self.root = root
        self.log_dir = root / "observed"
        self.chaos = chaos
        self.problems: list[str] = []
        self.kinds: Counter[str] = Counter()
        self.procs: list[subprocess.Popen] = []
        self.strangers: list[subprocess.Popen] = []  #: unrelated processes (pid reuse stand-ins)

    # -- reading ---------------------------------------------------------------------------
    def executions(self) -> dict[str, list[Execution]]:
        out: dict[str, list[Execution]] = {}
        for path in sorted(self.log_dir.glob("t*.log")):
            out[path.stem] = parse_log(path)[0]
        return out

    def all_executions(self) -> list[Execution]:
        return [ex for execs in self.executions().values() for ex in execs]

    def overlap_lines(self) -> list[str]:
        return [line for path in sorted(self.log_dir.glob("t*.log")) for line in parse_log(path)[1]]

    def running(self) -> list[Execution]:
        """Executions started and not ended whose process is alive."""
        return [ex for ex in self.all_executions() if ex.end is None and alive(ex.pid, ex.ticks)]

    def task_dirs(self, sweep_dir: Path) -> dict[str, Path]:
        """Observer key (``t<x>``) -> task dir, from each task's params.yaml."""
        out = {}
        tasks = sweep_dir / "tasks"
        for d in sorted(tasks.iterdir()) if tasks.is_dir() else []:
            try:
                doc = yaml.safe_load((d / "params.yaml").read_text()) or {}
            except (OSError, yaml.YAMLError):
                continue
            x = (doc.get("params") or {}).get("x")
            if x is not None:
                out[f"t{x}"] = d
        return out

    # -- problems ---------------------------------------------------------------------------
    def problem(self, kind: str, text: str) -> None:
        self.kinds[kind] += 1
        self.problems.append(f"[{kind}] {text}")
        if self.chaos is not None:
            self.chaos.count(f"problems: {kind}")

    def assert_no_problems(self, what: str = "") -> None:
        """Fail with every problem seen so far (counts by kind first)."""
        if self.problems:
            counts = ", ".join(f"{n} {k}" for k, n in sorted(self.kinds.items()))
            raise AssertionError(f"{what}: {counts}\n" + "\n".join(self.problems[:40])
                                 + f"\n(task logs: {self.log_dir}; hsm's output: {self.root.parent / (self.root.name + '-logs')})")

    # -- commands ---------------------------------------------------------------------------
    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start the real ``hsm`` in the project (output to files beside it)."""
        proc = hsm_popen(self.root, *args, env=env)
        proc.args_text = "hsm " + " ".join(args)  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def wait_exit(self, proc: subprocess.Popen, bound: float, why: str) -> float:
        """Wait up to ``bound`` seconds for ``proc``; returns ``time.monotonic()`` when it was seen
        gone. A command still running then is a hang: it and its tasks are killed, and Hang raised."""
        try:
            proc.wait(timeout=bound)
        except subprocess.TimeoutExpired:
            where = self._stuck_tasks()
            kill_tree(proc.pid)
            proc.wait()
            self.problem("hang", f"{proc.args_text} ({why}) still running after {bound:.0f}s{where}")  # type: ignore[attr-defined]
            self.kill_tasks()
            raise Hang(f"{proc.args_text} ({why}) did not exit within {bound:.0f}s{where}\n"  # type: ignore[attr-defined]
                       f"output:\n{output_of(proc)[-2000:]}\nproblems so far:\n" + "\n".join(self.problems[:20]))
        return time.monotonic()

    def run(self, *args: str, bound: float, why: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Run ``hsm ARGS`` to its end (at most ``bound`` seconds, else Hang)."""
        proc = self.start(*args, env=env)
        proc.exited_at = self.wait_exit(proc, bound, why)  # type: ignore[attr-defined]
        return proc

    def _stuck_tasks(self) -> str:
        live = self.running()
        kids = [f"{pid}({kind})" for ex in self.all_executions() for pid, tk, kind in ex.children if alive(pid, tk)]
        out = ""
        if live:
            out += "; task scripts still running: " + ", ".join(str(ex) for ex in live)
        if kids:
            out += "; daemon children alive: " + ", ".join(kids)
        active = []
        for d in sorted(self.root.glob("sweeps/outputs/*/tasks/*")):
            st = read_state(d) or {}
            if st.get("state") == "running":
                pid_file = d / ".hsm_pid"
                active.append(f"{d.name} (process {st.get('process')}, .hsm_pid "
                              f"{pid_file.read_text().strip() if pid_file.exists() else None!r})")
        if active:
            out += "; hsm records as running: " + ", ".join(active)
        return out

    # -- checks -----------------------------------------------------------------------------
    def check_gone(self, exited_at: float, what: str, *, since: float | None = None, before: float | None = None) -> None:
        """After a controller exited at ``exited_at``: no task script it ran is alive or ended after
        it, no wrapper of one is alive, and no daemon child of a task hsm stopped is alive.
        ``since``/``before``: only executions started in that window."""
        for ex in self.all_executions():
            if (since is not None and ex.start < since) or (before is not None and ex.start > before):
                continue
            if alive(ex.pid, ex.ticks):
                self.problem("leftover", f"{what}: task script still running: {ex}")
            elif ex.end is not None and ex.end > exited_at + 0.001:
                self.problem("leftover", f"{what}: task script ended {ex.end - exited_at:.2f}s after that: {ex}")
            if ex.parent not in {p.pid for p in self.procs} and alive(ex.parent, ex.parent_ticks):
                self.problem("leftover", f"{what}: the wrapper {ex.parent} of {ex} is still alive"
                             + (" (stopped)" if stopped(ex.parent) else ""))
            if ex.stopped_by_hsm:
                for pid, tk, kind in ex.children:
                    if alive(pid, tk):
                        self.problem("leftover", f"{what}: {kind} child {pid} of stopped {ex} still running")

    def check_grace(self, plans: list[dict[str, Any]], grace: float, what: str, *, keys: Iterable[str] | None = None) -> None:
        """A script that traps SIGTERM and needs clearly less than ``grace`` seconds to save was let
        finish: it has its end line (it was not SIGKILLed, nor killed with its wrapper, mid-save)."""
        for ex in self.all_executions():
            if keys is not None and ex.key not in keys:
                continue
            plan = plans[int(ex.key[1:])]
            if ex.term is not None and ex.end is None and plan["term"] in ("save0", "saveN") and float(plan["save"]) + 0.5 < grace:
                self.problem("killed in the grace", f"{what}: {ex} needed {plan['save']}s to save, the grace is {grace}s")

    def check_states(self, sweep_dir: Path, what: str, *, allowed_stopped: Iterable[str] = ("interrupted", "cancelled", "preempted", "lost", "failed"),
                     before: float | None = None, keys: Iterable[str] | None = None, attempt: int | None = None) -> None:
        """hsm's record of each task agrees with its log: the last execution's own exit code 0 reads
        ``completed``; a non-zero one, or none (killed), reads a stopped state with that exit code;
        a task never started is not completed; nothing reads ``running``. With ``before`` (when a
        stop was asked while a controller lives on), only tasks whose last execution started
        before then are judged; with ``keys``, only those tasks; with ``attempt``, only a status of
        that attempt (a later one is another stopper's, started since)."""
        dirs = {key: d for key, d in self.task_dirs(sweep_dir).items() if keys is None or key in keys}
        statuses = {key: read_state(d) or {} for key, d in dirs.items()}
        read_at = time.monotonic()
        execs = self.executions()
        for key, d in dirs.items():
            status = statuses[key]
            if attempt is not None and status.get("attempt") != attempt:
                continue
            state = status.get("state")
            mine = [ex for ex in execs.get(key, []) if ex.start <= read_at]
            if before is not None:
                if not mine or mine[-1].start > before:
                    continue  # not running when the stop was asked: a live controller's business
            if state == "running":
                self.problem("state", f"{what}: {key} ({d.name}) reads running; its log: {[str(e) for e in mine] or 'never started'}")
                continue
            if not mine:
                if state == "completed":
                    self.problem("state", f"{what}: {key} ({d.name}) reads completed but never ran")
                continue
            last = mine[-1]
            if last.code == 0:
                if state != "completed":
                    self.problem("lost result", f"{what}: {key} ({d.name}) exited 0 (own log) but reads {state} "
                                 f"(exit_code {status.get('exit_code')}): {last}")
            elif state == "completed":
                self.problem("state", f"{what}: {key} ({d.name}) reads completed but its last execution did not exit 0: {last}")
            elif state not in allowed_stopped:
                self.problem("state", f"{what}: {key} ({d.name}) reads {state}, expected one of {tuple(allowed_stopped)}: {last}")
            elif last.code is not None and status.get("exit_code") != last.code:
                self.problem("exit code", f"{what}: {key} ({d.name}) exited {last.code} (own log) but reads "
                             f"{state} with exit_code {status.get('exit_code')}")

    def check_no_overlap(self, what: str) -> None:
        """No two executions of one task alive at once (by their own report, and by their times)."""
        for line in self.overlap_lines():
            self.problem("overlap", f"{what}: {line}")
        for key, execs in self.executions().items():
            for i, a in enumerate(execs):
                for b in execs[i + 1:]:
                    if a.end is not None and a.start < b.start < a.end:
                        self.problem("overlap", f"{what}: {b} started while {a} ran")

    def check_exactly_once(self, sweep_dir: Path, n: int, what: str = "at the end") -> None:
        """Every task reads completed and its log shows exactly one successful end."""
        dirs = self.task_dirs(sweep_dir)
        if len(dirs) != n:
            self.problem("state", f"{what}: {len(dirs)} task dirs, expected {n}")
        execs = self.executions()
        for key, d in dirs.items():
            status = read_state(d) or {}
            ok = [ex for ex in execs.get(key, []) if ex.code == 0]
            if len(ok) > 1:
                self.problem("double run", f"{what}: {key} ran to a successful end {len(ok)} times: " + "; ".join(map(str, ok)))
            elif not ok:
                self.problem("never completed", f"{what}: {key} ({d.name}) never ended with 0 (reads {status.get('state')}): "
                             + "; ".join(map(str, execs.get(key, []))))
            if status.get("state") != "completed":
                self.problem("state", f"{what}: {key} ({d.name}) reads {status.get('state')}, not completed")
        if self.chaos is not None:
            self.chaos.count("executions", len(self.all_executions()))
            self.chaos.count("SIGTERMs seen by task scripts", sum(1 for ex in self.all_executions() if ex.term))
            self.chaos.count("executions ended by a kill", sum(1 for ex in self.all_executions() if ex.end is None))

    # -- finishing -------------------------------------------------------------------------
    def complete(self, sweep_id: str, sweep_dir: Path, *, bound: float = 60, tries: int = 3) -> None:
        """``hsm complete --retry-failed`` until every task completed (at most ``tries`` calls),
        checking after each that it left nothing running."""
        for _ in range(tries):
            proc = self.run("complete", sweep_id, "--retry-failed", bound=bound, why="finishing the sweep")
            if self.chaos is not None:
                self.chaos.count("hsm complete runs")
            out = output_of(proc)
            if "Traceback" in out or proc.returncode not in (0, 1):
                self.problem("crash", f"hsm complete exited {proc.returncode}:\n{out[-1500:]}")
            self.check_gone(proc.exited_at, "after hsm complete")  # type: ignore[attr-defined]
            states = [(read_state(d) or {}).get("state") for d in self.task_dirs(sweep_dir).values()]
            if states and all(s == "completed" for s in states):
                return

    # -- cleanup ---------------------------------------------------------------------------
    def kill_tasks(self) -> None:
        """SIGKILL every process of this project's tasks (scripts, wrappers, daemon children)."""
        for ex in self.all_executions():
            for pid, tk in ((ex.pid, ex.ticks), (ex.parent, ex.parent_ticks), *((p, t) for p, t, _ in ex.children)):
                signal_pid(pid, tk, signal.SIGCONT)
                signal_pid(pid, tk, signal.SIGKILL)
        for pid in processes_under(self.root):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def cleanup(self) -> None:
        """Stop everything this test started: hsm commands, task processes, stand-ins."""
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
                kill_tree(proc.pid)
                proc.wait()
        self.kill_tasks()
        for p in self.strangers:
            if p.poll() is None:
                p.kill()
            p.wait()

    def __enter__(self) -> "Observer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cleanup()


def wait_for(cond: Any, timeout: float, what: str, step: float = 0.02) -> Any:
    """Poll ``cond`` until it returns something true; AssertionError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(step)


def sleep_until(t: float) -> None:
    """Sleep until ``time.monotonic()`` reaches ``t`` (no-op when it has)."""
    delay = t - time.monotonic()
    if delay > 0:
        time.sleep(delay)
