"""When each task ran, from the tasks' own logs (public test API): for tests that judge a
scheduler as an outside observer would (how many tasks ran at once, whether one sweep started
after another ended, whether a warned task saved its work).

:data:`TIMED_SCRIPT` is a training script that prints ``HSM_T START <epoch seconds>`` when it
starts and ``HSM_T END <epoch seconds>`` when it ends (to its stdout, which the runner keeps in the
task's ``stdout.log``, appended to by every attempt). Its arguments are ``name=value`` pairs:
``sleep=S`` works for S seconds in steps of 0.2 s; on SIGUSR1 or SIGTERM it saves how far it got in
``checkpoint.txt`` in the task dir and exits 128+signal (the checkpoint pattern of docs/hpc.md);
a later attempt resumes from the checkpoint and ``resume_sleep=R`` then works R seconds only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

from hsm_core.taskdir import stdout_path

__all__ = ["TIMED_SCRIPT", "Interval", "intervals", "max_overlap"]

TIMED_SCRIPT = r'''
import os, signal, sys, time
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
task_dir = os.environ["HSM_TASK_DIR"]
ckpt = os.path.join(task_dir, "checkpoint.txt")
print("HSM_T START %.3f" % time.time(), flush=True)
done = float(open(ckpt).read()) if os.path.exists(ckpt) else 0.0
total = float(args.get("resume_sleep", args.get("sleep", 0))) if done else float(args.get("sleep", 0))

def save_and_exit(signum, frame):
    # The checkpoint pattern: save, say so, exit non-zero (the attempt did not finish the work).
    with open(ckpt, "w") as fh:
        fh.write(str(done + 1))
    print("HSM_T SAVED %s %.3f" % (signal.Signals(signum).name, time.time()), flush=True)
    print("HSM_T END %.3f" % time.time(), flush=True)
    sys.exit(128 + signum)

signal.signal(signal.SIGUSR1, save_and_exit)
signal.signal(signal.SIGTERM, save_and_exit)
worked = 0.0
while worked < total:
    time.sleep(0.2)
    worked += 0.2
print("HSM_T END %.3f" % time.time(), flush=True)
'''

_LINE = re.compile(r"^HSM_T (START|END) (\d+(?:\.\d+)?)$", re.M)


class Interval(tuple):
    """``(start, end, task)``: one execution of a task, in epoch seconds."""

    @property
    def start(self) -> float:
        return self[0]

    @property
    def end(self) -> float:
        return self[1]

    @property
    def task(self) -> str:
        return self[2]


def intervals(sweep: Path) -> list[Interval]:
    """Every execution of every task of ``sweep`` that printed both its start and its end,
    sorted by start. An execution that started and has not ended (or was killed before it could
    say) is left out: check ``len`` against what you expect."""
    out: list[Interval] = []
    for d in sorted((Path(sweep) / "tasks").iterdir()):
        log = stdout_path(d)
        if not log.exists():
            continue
        start = None
        for kind, t in _LINE.findall(log.read_text(errors="replace")):
            if kind == "START":
                start = float(t)
            elif start is not None:
                out.append(Interval((start, float(t), d.name)))
                start = None
    return sorted(out)


def max_overlap(spans: Iterable[Interval]) -> int:
    """The largest number of executions running at one moment (an end at the very moment of a
    start counts as before it)."""
    events = []
    for s in spans:
        events.append((s.start, 1))
        events.append((s.end, -1))
    running = peak = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):
        running += step
        peak = max(peak, running)
    return peak
