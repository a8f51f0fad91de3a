"""Exactly one start per attempt: the claim a task's runner makes before it starts attempt N.

Every start of a task is planned as attempt N = 1 + the attempt its status recorded when the start
was decided. Two starters can decide the same N: a controller stopped (SIGSTOP, a suspended
laptop) inside a launch, after its last "am I still in charge?" and before the task's start, and
the controller that took the sweep over meanwhile; or two runs of one array element's job script
(a job submitted twice by such a controller). So before it touches anything of the task (its
markers, the processes an earlier attempt left, its status) the runner creates
``.hsm_attempt.N`` in the task dir, exclusively: only one starter of attempt N gets it; the
other does not start the command and writes nothing of the task (:class:`AttemptTaken` says why).

The claim of the latest attempt is kept (it is what turns a late starter of the same attempt away,
also once the attempt has ended); a claim of attempt N removes those of earlier attempts, so a
task dir holds one at rest. A starter of an earlier attempt that comes later still (its claim file
removed meanwhile) gets its file, then finds the later claim and gives up: a claim counts only
while no later one exists, and the latest one is never removed.

A claim whose runner is provably gone (same machine, its process ended; or an earlier run of the
same scheduler job, requeued since) and whose attempt no status recorded was cut off before the
command started (runners record ``running`` before starting it): the next start plans the attempt
after it (:func:`planned_attempt`), so such a leftover never blocks a task.

The file is created whole (:func:`hsm_core.whole_file.create_whole`: a temporary ``link``ed to the
name, the NFS-safe way); the bash fast path of array jobs (:mod:`hsm_core.fastrun`) creates it with
``set -o noclobber`` (``O_EXCL``, atomic on local file systems and NFSv3+), no process per element.
Its one line: ``host pid job restart`` of the runner that claimed it (``-`` for none).

Light (stdlib, :mod:`hsm_core.whole_file`; :mod:`hsm_core.processes` only to judge a leftover):
the task runner imports it once per task.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from hsm_core.taskdir import ATTEMPT_CLAIM_PREFIX


class AttemptTaken(Exception):
    """This start of a task was not made: its attempt was claimed by another starter."""

    def __init__(self, task_dir: Path, attempt: int, holder: "Claim | None", later: int | None = None) -> None:
        self.task_dir, self.attempt, self.holder, self.later = Path(task_dir), attempt, holder, later
        if later is not None:
            why = f"attempt {later} was started since"
        else:
            why = f"it was already started by {holder.describe() if holder else 'another runner'}"
        super().__init__(f"{Path(task_dir).name}: attempt {attempt} not started here: {why} "
                         "(a controller or job that was stopped or submitted twice; the task runs once)")


@dataclass(frozen=True)
class Claim:
    """Who claimed an attempt: the runner's host, pid and scheduler job (job key and restart count)."""

    attempt: int
    host: str
    pid: int | None
    job: str | None
    restart: int | None

    def describe(self) -> str:
        job = f", job {self.job}" if self.job else ""
        return f"pid {self.pid} on {self.host}{job}" if self.pid else f"a runner on {self.host}{job}"

    def gone(self, job: Mapping[str, str] | None = None) -> bool:
        """True when the runner that made this claim provably ended: a process of this machine
        that is gone, or an earlier run of ``job`` (the same job key, a smaller restart count:
        the scheduler requeued the job, so that run is over). Unknown counts as alive."""
        key, restart = _job_of(job)
        # (Slurm sets no restart count on a job's first run: a claim without one is from run 0.)
        if key and self.job == key and restart is not None and (self.restart or 0) < restart:
            return True
        if self.host != socket.gethostname() or self.pid is None:
            return False
        from hsm_core import processes

        return processes.is_running(f"{self.pid}:?") is False


def claim_path(task_dir: Path, attempt: int) -> Path:
    """The claim file of ``attempt``."""
    return Path(task_dir) / f"{ATTEMPT_CLAIM_PREFIX}{int(attempt)}"


def claimed(task_dir: Path) -> list[int]:
    """The attempts whose claim files the task dir holds, ascending."""
    found = []
    try:
        names = os.listdir(task_dir)
    except OSError:
        return []
    for name in names:
        if name.startswith(ATTEMPT_CLAIM_PREFIX):
            tail = name[len(ATTEMPT_CLAIM_PREFIX):]
            if tail.isdigit():
                found.append(int(tail))
    return sorted(found)


def read_claim(task_dir: Path, attempt: int) -> Claim | None:
    """The claim of ``attempt``, None when there is none (one being written reads as unknown)."""
    try:
        words = claim_path(task_dir, attempt).read_text(encoding="utf-8", errors="replace").split()
    except OSError:
        return None
    words += ["-"] * (4 - len(words))
    host, pid, job, restart = words[:4]
    return Claim(attempt, host if host != "-" else "", int(pid) if pid.isdigit() else None,
                 job if job != "-" else None, int(restart) if restart.isdigit() else None)


def _job_of(job: Mapping[str, str] | None) -> tuple[str | None, int | None]:
    """(job key, restart count) of a ``HSM_JOB_*`` mapping (see :mod:`hsm_core.jobenv`)."""
    if not job:
        return None, None
    key = job.get("HSM_JOB_KEY") or job.get("HSM_JOB_ID") or None
    restart = str(job.get("HSM_JOB_RESTART") or "")
    return key, int(restart) if restart.isdigit() else None


def _line(job: Mapping[str, str] | None) -> bytes:
    key, restart = _job_of(job)
    words = [socket.gethostname() or "-", str(os.getpid()), key or "-", "-" if restart is None else str(restart)]
    return (" ".join(w.replace(" ", "_") for w in words) + "\n").encode("utf-8")


def planned_attempt(task_dir: Path, status: Mapping[str, Any] | None, job: Mapping[str, str] | None = None) -> int:
    """The attempt a start decided now makes: 1 + the attempt ``status`` recorded (at least the
    latest claimed one), past any claim whose runner is provably gone (cut off before its command
    started, or the status no longer says how far it got; see the module docstring). A ``running``
    attempt whose runner lives is that attempt again (claimed already: this start is a duplicate)."""
    last = int((status or {}).get("attempt") or 0)
    if last >= 1 and _in_progress(read_claim(task_dir, last), status or {}, job):
        # Its claimer still lives and has not ended it (or not started it yet): this start would
        # be a second copy of that attempt (it finds the attempt claimed).
        return last
    attempt = last + 1
    # Never below the latest claim: a status that lost its count (torn, rebuilt) must not plan an
    # attempt that a later claim turns away for ever. A live claimer of it keeps it (this start
    # then finds it taken); one gone hands on to the next.
    attempt = max([attempt, *claimed(task_dir)])
    while True:
        holder = read_claim(task_dir, attempt)
        if holder is None or not holder.gone(job):
            return attempt
        attempt += 1


def read_status_attempt(task_dir: Path) -> int:
    """The attempt the task's status records now (0: none)."""
    from hsm_core.taskdir import read_status

    return int((read_status(task_dir) or {}).get("attempt") or 0)


def _in_progress(holder: Claim | None, status: Mapping[str, Any], job: Mapping[str, str] | None) -> bool:
    """True while the attempt ``status`` names is its claimer's to carry on: the claimer lives and
    the status says the attempt runs, or says it ended with neither an exit code nor a process
    while the claimer is another process (a look by another controller closed a start that was slow
    to come: a claimer stopped past the grace of ``process: starting``, which will still start it)."""
    if holder is None or holder.gone(job):
        return False
    state = status.get("state")
    if state == "running":
        return True
    if state in (None, "pending", "submitted") or status.get("exit_code") is not None or status.get("last_process"):
        return False  # (an attempt whose process ran and was closed by a look is over)
    return not (holder.host == socket.gethostname() and holder.pid == os.getpid())


def claim(task_dir: Path, attempt: int, job: Mapping[str, str] | None = None) -> Path:
    """Claim ``attempt`` of the task: returns the claim file, or raises :class:`AttemptTaken` when
    another starter has it (or a later attempt was claimed). On success the claims of earlier
    attempts are removed (the latest one alone turns late starters away)."""
    from hsm_core.whole_file import create_whole

    path = claim_path(task_dir, attempt)
    if not create_whole(path, _line(job)):
        raise AttemptTaken(task_dir, attempt, read_claim(task_dir, attempt))
    attempts = claimed(task_dir)
    later = [n for n in attempts if n > attempt]
    if later:
        release(task_dir, attempt)
        raise AttemptTaken(task_dir, attempt, None, later=later[-1])
    for n in attempts:
        if n < attempt:
            release(task_dir, n)
    return path


def release(task_dir: Path, attempt: int) -> None:
    """Remove the claim of ``attempt`` (one this process made and will not use: its start failed
    before the command could run, so the attempt is free again)."""
    try:
        claim_path(task_dir, attempt).unlink()
    except FileNotFoundError:
        pass


def planned_for_job(task_dir: Path, status: Mapping[str, Any] | None, job: Mapping[str, str] | None) -> int:
    """The attempt a runner started by a scheduler job (``job``: its ``HSM_JOB_*`` variables, or
    None outside a job) means to start, from the status it finds when it starts.

    Its submission wrote ``submitted`` (with the last attempt's number) before the job ran; any
    other status was written by a run of the task since:

    * ``running``: by a runner of that attempt whose claim says who it is. Provably gone (this
      machine, its process ended; an earlier run of this job, requeued since): the next attempt.
      Otherwise this runner would duplicate that attempt (a job submitted twice, a job script run
      twice): it plans the same number, which is claimed already.
    * ended, and written by another scheduler job than this one: that job ran the attempt this
      submission was for (the submitted record was overwritten): the same number again.
    * ended by this job (a requeue after its runner recorded the stop) or by no job: the next one.
    """
    status = status or {}
    state = status.get("state")
    last = int(status.get("attempt") or 0)
    if state in (None, "submitted", "pending") or last < 1:
        return planned_attempt(task_dir, status, job)
    if state == "running":
        return planned_attempt(task_dir, status, job)
    theirs = status.get("job_id")
    mine = (job or {}).get("HSM_JOB_ID")
    if theirs not in (None, "") and mine and str(theirs) != str(mine) and read_claim(task_dir, last) is not None:
        return last
    return planned_attempt(task_dir, status, job)
