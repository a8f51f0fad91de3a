"""Counting executions as an outside observer: a task script that logs its own start and end.

hsm's records say what hsm believes; a test that wants to prove "every task ran exactly once, and
no two copies ever overlapped" must count from the task's side. :data:`RUNLOG_SCRIPT` appends
``start <task id> <time>`` when it starts and ``end <task id> <time>`` when it finishes to one log
shared by all tasks (``O_APPEND``, one ``write`` per line, so lines from concurrent tasks never
mix); :func:`read_runs` pairs them into executions and :func:`check_once` says what is wrong.

Used by the controller lease tests (tests/test_controller_lease.py, tests/chaos/).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

#: The task script; format it with ``log`` (the shared log) and ``fail_flag`` (while that file
#: exists, every task fails at once without logging anything: a first run "with a bug").
#: Parameters: ``sleep=S`` runs S seconds.
RUNLOG_SCRIPT = """\
import os, sys, time
LOG = {log!r}
FAIL_FLAG = {fail_flag!r}
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
task = os.environ.get("HSM_TASK_ID") or "?"
if os.path.exists(FAIL_FLAG):
    sys.exit(3)
def note(word):
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, ("%s %s %.6f\\n" % (word, task, time.time())).encode())
    os.close(fd)
note("start")
time.sleep(float(args.get("sleep", 0)))
note("end")
os._exit(0)
"""


@dataclass
class Execution:
    """One run of a task as its own log tells it; ``end`` is None while (or if never) finished."""

    task: str
    start: float
    end: float | None = None


def read_runs(log: Path) -> dict[str, list[Execution]]:
    """Executions per task id, in the order they started. An ``end`` closes the earliest open
    execution of its task."""
    runs: dict[str, list[Execution]] = defaultdict(list)
    try:
        lines = Path(log).read_text().splitlines()
    except FileNotFoundError:
        return {}
    for line in lines:
        parts = line.split()
        if len(parts) != 3:
            continue
        word, task, when = parts[0], parts[1], float(parts[2])
        if word == "start":
            runs[task].append(Execution(task, when))
        elif word == "end":
            open_ = [e for e in runs[task] if e.end is None]
            if open_:
                open_[0].end = when
            else:
                runs[task].append(Execution(task, when, when))  # an end without a start: shown as a problem
    return dict(runs)


def overlapping(runs: dict[str, list[Execution]]) -> dict[str, list[Execution]]:
    """Tasks with two executions running at the same time (an unfinished one lasts for ever)."""
    out: dict[str, list[Execution]] = {}
    for task, execs in runs.items():
        ordered = sorted(execs, key=lambda e: e.start)
        for a, b in zip(ordered, ordered[1:]):
            if a.end is None or b.start < a.end:
                out[task] = ordered
                break
    return out


def check_once(runs: dict[str, list[Execution]], tasks: Iterable[str]) -> list[str]:
    """What breaks "each of ``tasks`` ran exactly once, to its end, and nothing else ran"
    (empty when all is well)."""
    wanted = set(tasks)
    problems = []
    for task in sorted(wanted | set(runs)):
        execs = runs.get(task, [])
        if task not in wanted:
            problems.append(f"{task}: not a task of the sweep, ran {len(execs)} time(s)")
        elif not execs:
            problems.append(f"{task}: never ran")
        elif len(execs) > 1:
            problems.append(f"{task}: ran {len(execs)} times: {[(e.start, e.end) for e in execs]}")
        elif execs[0].end is None:
            problems.append(f"{task}: started at {execs[0].start} and never ended")
    for task, execs in overlapping(runs).items():
        problems.append(f"{task}: executions overlap: {[(e.start, e.end) for e in execs]}")
    return problems
