"""Shared pieces of the chaos suite: rounds, seeds, the counting task, process and file helpers.

Every chaos test repeats one fault ``ROUNDS`` times with random timing drawn from a seeded
generator, and checks the same promises after each round:

* no completed task is lost: every task ends ``completed`` (after ``hsm complete``, or another
  worker for pull-based sweeps), and a task seen completed stays completed;
* none is completed twice: the task script appends its task id to ``executions.log`` as its very
  last action (then ``os._exit(0)``), so every line is one execution that ran to its end;
* the commands a user runs next (``hsm status``, ``hsm complete``) answer without a traceback.

Environment:

* ``HSM_CHAOS_ROUNDS`` (default 2, the form the normal test suite runs; ``make chaos`` sets 20);
* ``HSM_CHAOS_SEED``: the base seed (default: a new one each session, printed with any failure);
* ``HSM_CHAOS_REPORT``: a JSON-lines file; each test appends what it did (rounds, faults injected,
  tasks, executions, durations), which ``scripts/chaos.sh`` summarises.

There is deliberately no ``conftest.py`` here (tests/conftest.py is imported as ``conftest`` by
the other test modules): the fixtures are imported from this module by each test file.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import zlib
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pytest
import yaml

ROUNDS = max(1, int(os.environ.get("HSM_CHAOS_ROUNDS", "2") or 2))
BASE_SEED = int(os.environ.get("HSM_CHAOS_SEED") or (time.time_ns() // 1000) % 1_000_000_007)
REPORT = os.environ.get("HSM_CHAOS_REPORT")

#: For a fault that ``make chaos`` finds not to hold yet (docs/reliability.md says how it fails):
#: the normal suite skips it, so a known and documented failure cannot hide a new one in CI;
#: ``scripts/chaos.sh`` (``make chaos``) runs it (HSM_CHAOS_ALL=1). None at the moment.
KNOWN_FAILING = pytest.mark.skipif(
    os.environ.get("HSM_CHAOS_ALL") != "1",
    reason="does not hold yet (see docs/reliability.md); run it with: make chaos",
)

#: The task every chaos sweep runs. It sleeps ``sleep`` seconds, then records one finished execution
#: and exits at once (``os._exit``): the window between "counted" and "exited" is microseconds, so a
#: kill at a random moment cannot make an unfinished execution look finished (or the reverse).
TASK_SCRIPT = """\
import os, sys, time
COUNT_FILE = {count_file!r}
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
time.sleep(float(args.get("sleep", 0)))
task = os.environ.get("HSM_TASK_ID") or os.environ.get("HSM_RUN_ID") or "?"
fd = os.open(COUNT_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
os.write(fd, (task + "\\n").encode())
os.close(fd)
os._exit(int(args.get("exit", 0)))
"""


class Chaos:
    """One chaos test: its seed, its per-round random generators and what it injected."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seed = BASE_SEED
        self.rounds = ROUNDS
        self.stats: Counter[str] = Counter()
        self.notes: list[str] = []
        self.rounds_done = 0
        self.started = time.time()

    def rng(self, round_: int) -> random.Random:
        """The generator of round ``round_``: the same base seed replays the same round."""
        return random.Random(zlib.crc32(f"{self.seed}:{self.name}:{round_}".encode()))

    def reproduce(self) -> str:
        return f"HSM_CHAOS_SEED={self.seed} HSM_CHAOS_ROUNDS={self.rounds} python -m pytest tests/chaos -k '{self.name}'"

    @contextmanager
    def round(self, round_: int) -> Iterator[random.Random]:
        """Run one round; a failure names the fault, the round and the seed that replays it."""
        try:
            yield self.rng(round_)
        except BaseException as exc:
            exc.add_note(f"chaos {self.name}: round {round_ + 1}/{self.rounds} failed with seed {self.seed}; "
                         f"replay with: {self.reproduce()}")
            raise
        self.rounds_done += 1

    def count(self, key: str, n: int = 1) -> None:
        """Add ``n`` to one of this test's figures (faults injected, tasks run ...)."""
        self.stats[key] += n

    def note(self, text: str) -> None:
        """Something noteworthy that held (or was tolerated), for the report."""
        if text not in self.notes:
            self.notes.append(text)

    def write_report(self, passed: bool) -> None:
        if not REPORT:
            return
        line = {
            "test": self.name,
            "passed": passed,
            "rounds": self.rounds,
            "rounds_done": self.rounds_done,
            "seed": self.seed,
            "seconds": round(time.time() - self.started, 1),
            "stats": dict(self.stats),
            "notes": self.notes,
        }
        with open(REPORT, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")


@pytest.fixture
def chaos(request: pytest.FixtureRequest) -> Iterator[Chaos]:
    """The chaos state of one test (prints the seed; appends to ``HSM_CHAOS_REPORT``)."""
    c = Chaos(request.node.name)
    print(f"chaos {c.name}: {c.rounds} round(s), seed {c.seed}; replay with: {c.reproduce()}")
    yield c
    c.write_report(passed=c.rounds_done == c.rounds)


# --------------------------------------------------------------------------------------------
# Projects
# --------------------------------------------------------------------------------------------


def write_chaos_project(root: Path, *, count_file: Path | None = None, parallel: int = 2, extra_config: str = "",
                        script: str | None = None) -> Path:
    """Make ``root`` a project whose train.py is :data:`TASK_SCRIPT` (or ``script``, the whole
    text); returns the count file. ``extra_config`` is appended (two spaces: a key of ``compute``)."""
    root.mkdir(parents=True, exist_ok=True)
    count_file = count_file or root / "executions.log"
    (root / "train.py").write_text(script if script is not None else TASK_SCRIPT.format(count_file=str(count_file)))
    (root / "hsm_config.yaml").write_text(
        textwrap.dedent(
            f"""\
            project:
              name: chaos
            paths:
              python_interpreter: {sys.executable}
              train_script: train.py
            compute:
              local:
                max_parallel_jobs: {parallel}
                kill_grace: 2
            """
        )
        + extra_config
    )
    return count_file


def executions(count_file: Path) -> list[str]:
    """Task ids of executions that ran to their end, in order."""
    return count_file.read_text().split() if count_file.exists() else []


def task_ids(sweep_dir: Path) -> dict[str, str]:
    """task dir name -> task id, from every ``params.yaml`` of a sweep."""
    out = {}
    for d in sorted((sweep_dir / "tasks").iterdir()) if (sweep_dir / "tasks").is_dir() else []:
        try:
            doc = yaml.safe_load((d / "params.yaml").read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        if doc.get("task_id"):
            out[d.name] = str(doc["task_id"])
    return out


def read_state(task_dir: Path) -> dict[str, Any] | None:
    """A task's status.yaml, None when missing or unreadable."""
    try:
        doc = yaml.safe_load((task_dir / "status.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None
    return doc if isinstance(doc, dict) else None


def states(sweep_dir: Path) -> dict[str, str | None]:
    """task dir name -> state in its status.yaml (None when unreadable)."""
    out: dict[str, str | None] = {}
    for d in sorted((sweep_dir / "tasks").iterdir()) if (sweep_dir / "tasks").is_dir() else []:
        st = read_state(d)
        out[d.name] = st.get("state") if st else None
    return out


def completed_ids(sweep_dir: Path) -> set[str]:
    """Ids of the tasks whose status.yaml says completed right now."""
    ids = task_ids(sweep_dir)
    return {ids[name] for name, state in states(sweep_dir).items() if state == "completed" and name in ids}


def assert_exactly_once(sweep_dir: Path, count_file: Path, expected_tasks: int, seen_completed: set[str] = frozenset()) -> None:
    """Every task completed, each ran to its end exactly once, and completed ones stayed so."""
    ids = task_ids(sweep_dir)
    st = states(sweep_dir)
    assert len(ids) == expected_tasks, f"{len(ids)} task dirs, expected {expected_tasks}"
    not_done = {name: s for name, s in st.items() if s != "completed"}
    assert not not_done, f"tasks not completed: {not_done}\n" + _task_files(sweep_dir, not_done)
    runs = Counter(executions(count_file))
    twice = {t: n for t, n in runs.items() if n > 1}
    assert not twice, f"tasks that ran to their end more than once: {twice}"
    never = set(ids.values()) - set(runs)
    assert not never, f"completed tasks without an execution: {never}"
    assert set(runs) <= set(ids.values()), f"executions of unknown tasks: {set(runs) - set(ids.values())}"
    lost = set(seen_completed) - completed_ids(sweep_dir)
    assert not lost, f"tasks seen completed earlier are not completed any more: {lost}"


def _task_files(sweep_dir: Path, names: Iterable[str]) -> str:
    """What the bookkeeping files of these tasks say (for a failure message)."""
    out = []
    for name in names:
        for f in ("status.yaml", ".hsm_pid", ".exit_code"):
            path = sweep_dir / "tasks" / name / f
            try:
                out.append(f"--- {name}/{f}:\n{path.read_text(errors='replace')[-1500:]}")
            except OSError as exc:
                out.append(f"--- {name}/{f}: {exc.strerror}")
    index = sweep_dir / "task_index.json"
    try:
        tasks = json.loads(index.read_text()).get("tasks") or {}
        out.append("--- index: " + repr({k: v for k, v in tasks.items() if isinstance(v, dict) and v.get("name") in set(names)}
                                          if isinstance(tasks, dict) else tasks)[:1500])
    except (OSError, ValueError) as exc:
        out.append(f"--- index: {exc}")
    return "\n".join(out)


def wait_until(cond: Callable[[], Any], timeout: float, what: str, step: float = 0.05) -> Any:
    """Poll ``cond`` until it returns something true; AssertionError naming ``what`` on timeout."""
    deadline = time.time() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(step)


def hsm(root: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run the real ``hsm`` in ``root`` and wait for it."""
    full = dict(os.environ)
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "hsm_core", *args], cwd=root, env=full, capture_output=True,
                          text=True, timeout=timeout)


def lease_holder(lease: Path) -> int | None:
    """The pid written in a sweep's controller lease file, or None (no lease, or unreadable)."""
    try:
        return json.loads(lease.read_text()).get("pid")
    except (OSError, ValueError, AttributeError):
        return None


def hsm_popen(root: Path, *args: str, env: dict[str, str] | None = None, python_prefix: list[str] | None = None,
              log_dir: Path | None = None) -> subprocess.Popen:
    """Start the real ``hsm`` in ``root``, its output going to files (a full pipe never blocks it)
    beside the project (remote sync checks compare the project), or in ``log_dir``."""
    full = dict(os.environ)
    full.update(env or {})
    logs = log_dir or root.parent / f"{root.name}-logs"
    logs.mkdir(exist_ok=True)
    stamp = f"{time.time_ns()}"
    out = open(logs / f"{stamp}.out", "w")
    err = open(logs / f"{stamp}.err", "w")
    argv = [sys.executable, *(python_prefix or ["-m", "hsm_core"]), *args]
    try:
        proc = subprocess.Popen(argv, cwd=root, env=full, stdout=out, stderr=err, text=True)
    finally:
        out.close()
        err.close()
    proc.out_path = logs / f"{stamp}.out"  # type: ignore[attr-defined]
    proc.err_path = logs / f"{stamp}.err"  # type: ignore[attr-defined]
    return proc


def output_of(proc: subprocess.Popen) -> str:
    """stdout + stderr of a process started by :func:`hsm_popen`."""
    return Path(proc.out_path).read_text() + Path(proc.err_path).read_text()  # type: ignore[attr-defined]


def assert_clean_exit(proc: subprocess.Popen | subprocess.CompletedProcess, allowed: tuple[int, ...] = (0, 1), text: str | None = None) -> None:
    """Exit code in ``allowed`` and no Python traceback in the output."""
    out = text if text is not None else (output_of(proc) if isinstance(proc, subprocess.Popen) else proc.stdout + proc.stderr)
    assert proc.returncode in allowed, f"exit {proc.returncode} not in {allowed}:\n{out[-3000:]}"
    assert "Traceback" not in out, out[-3000:]


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(name))
    return kids


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children first)."""
    kids = _children_map()
    out: list[int] = []
    todo = list(kids.get(pid, []))
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def kill_tree(pid: int) -> list[int]:
    """SIGKILL ``pid`` and all its descendants at once (a node that loses power): the process is
    frozen first, so it cannot start anything new while its tree is collected."""
    try:
        os.kill(pid, signal.SIGSTOP)
    except ProcessLookupError:
        return []
    victims = [pid, *descendants(pid)]
    for p in victims:
        try:
            os.kill(p, signal.SIGSTOP)
        except ProcessLookupError:
            pass
    victims += [p for v in list(victims) for p in descendants(v) if p not in victims]
    for p in victims:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return victims


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def process_of(status: dict[str, Any] | None) -> tuple[int, str] | None:
    """(pid, start time) of the ``process`` a running status.yaml names."""
    if not status or not status.get("process"):
        return None
    pid, _, start = str(status["process"]).partition(":")
    return (int(pid), start) if pid.isdigit() else None


def same_process(pid: int, start: str) -> bool:
    """True when ``pid`` is alive (not a zombie) and is the process that started at ``start``
    (epoch seconds, as hsm records it), read independently of hsm through psutil."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return abs(proc.create_time() - float(start)) < 0.05
    except (psutil.Error, ValueError):
        return False


def stop(proc: subprocess.Popen, timeout: float = 10) -> None:
    """Make sure a process we started is gone (SIGKILL after ``timeout``), reaped."""
    if proc.poll() is None:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
