"""The ``pbs`` (PBS Pro / OpenPBS) and ``torque`` compute sources: qsub / qstat / qdel.

The same code talks to Slurm's ``qsub``/``qstat``/``qdel`` front-ends (slurm-wlm-torque), which
accept fewer options: a status query that the front-end refuses (``qstat -x -t``) is retried once
with plain ``qstat -f`` and the plainer form is kept. Once a sweep's array job is known to be the
front-end's (:meth:`PbsSource.on_slurm_front_end`), its jobs are read from the plain ``qstat``
listing instead (:func:`parse_qstat_listing`): the same states for a fraction of the cost.
"""

from __future__ import annotations

import getpass
import re
from typing import Any, ClassVar, Iterable, Mapping, Sequence

from hsm_core.plugin import (
    ArrayJob,
    ArrayJobSource,
    CommandResult,
    JobInfo,
    Resources,
    QueryFailed,
    QueueState,
    SourceContext,
)
from hsm_plugin_pbs.script import pbs_cannot_express, pbs_is_array, render_pbs_script, render_pbs_worker_script

#: PBS job_state letters (PBS Pro, Torque and Slurm's qstat front-end) -> generic queue states.
PBS_STATES: dict[str, QueueState] = {
    "Q": QueueState.PENDING,  # queued
    "H": QueueState.PENDING,  # held
    "W": QueueState.PENDING,  # waiting for its start time
    "T": QueueState.PENDING,  # being moved to a new location
    "M": QueueState.PENDING,  # moved to another server (PBS Pro)
    "R": QueueState.RUNNING,
    "B": QueueState.RUNNING,  # array job: at least one subjob has started (PBS Pro)
    "E": QueueState.COMPLETING,  # exiting after having run
    "S": QueueState.SUSPENDED,
    "U": QueueState.SUSPENDED,  # suspended because the workstation is busy (PBS Pro)
    "C": QueueState.ENDED,  # completed (Torque, Slurm's front-end: whatever the outcome)
    "F": QueueState.ENDED,  # finished (PBS Pro, qstat -x)
    "X": QueueState.ENDED,  # subjob finished (PBS Pro)
}

#: Exit_status values meaning "killed at the walltime limit" (JOB_EXEC_KILL_WALLTIME).
WALLTIME_EXIT = {"pbs": "-29", "torque": "-11"}


def map_pbs_state(letter: str, exit_status: str | None = None, flavour: str = "pbs") -> QueueState:
    """Map a job_state letter (and, for a finished job, its Exit_status) to a QueueState."""
    state = PBS_STATES.get(letter.strip().upper()[:1], QueueState.PENDING)
    if state is QueueState.ENDED and exit_status is not None:
        code = exit_status.strip()
        if code == WALLTIME_EXIT.get(flavour):
            return QueueState.TIMEOUT
        if code == "0":
            return QueueState.COMPLETED
    return state


def short_id(job_id: str) -> str:
    """``123[4].server.domain`` -> ``123[4]`` (qstat prints the server part in several ways)."""
    return job_id.split(".", 1)[0]


_JOB_ID = re.compile(r"^(?P<job_id>\d+(?:\[\d*\])?(?:\.[\w.-]+)?)$")
_BLOCK = re.compile(r"^Job Id:\s*(?P<id>\S+)", re.M)
_ATTR = re.compile(r"^\s+(?P<key>[\w.]+)\s*=\s*(?P<value>.*)$")


def parse_qstat_full(stdout: str, flavour: str = "pbs") -> dict[str, JobInfo]:
    """``qstat -f`` output -> id -> JobInfo (keyed by the full and the short id)."""
    out: dict[str, JobInfo] = {}
    current: str | None = None
    attrs: dict[str, str] = {}

    def flush() -> None:
        if current and "job_state" in attrs:
            exit_status = attrs.get("exit_status") or attrs.get("Exit_status")
            raw = attrs["job_state"] + (f" exit={exit_status}" if exit_status is not None else "")
            info = JobInfo(map_pbs_state(attrs["job_state"], exit_status, flavour), raw, attrs.get("comment", ""))
            out[current] = info
            out.setdefault(short_id(current), info)

    for line in stdout.splitlines():
        m = _BLOCK.match(line)
        if m:
            flush()
            current, attrs = m.group("id"), {}
            continue
        a = _ATTR.match(line)
        if a and current:
            attrs[a.group("key")] = a.group("value").strip()
    flush()
    return out


def parse_qstat_listing(stdout: str, ids: Sequence[str], flavour: str = "pbs") -> dict[str, JobInfo]:
    """The rows of ``ids`` in a ``qstat`` listing (``Job id  Name  User  Time  S  Queue``) ->
    id -> JobInfo, keyed by the full and the short id as :func:`parse_qstat_full` does."""
    wanted = {*ids, *(short_id(i) for i in ids)}
    out: dict[str, JobInfo] = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) < 3 or not parts[0][:1].isdigit() or (parts[0] not in wanted and short_id(parts[0]) not in wanted):
            continue
        letter = parts[-2]  # the state, before the queue (as filter_qstat_rows reads it)
        info = JobInfo(map_pbs_state(letter, None, flavour), letter, "")
        out[parts[0]] = info
        out.setdefault(short_id(parts[0]), info)
    return out


class PbsSource(ArrayJobSource):
    """Tasks as subjobs of PBS array jobs (``system: pbs`` = PBS Pro/OpenPBS, ``system: torque``)."""

    scheduler_name = "PBS"
    directive_prefix = "#PBS"
    default_max_array_size = 10000  # PBS Pro's default max_array_size
    cancel_command = ("qdel",)
    transient_patterns = ("pbs_server busy",)
    script_suffix = ".pbs"
    directive_scopes = ("pbs",)
    supports_dependencies = True
    foreign_directive_forms = ("--",)  # PBS options have one dash: "--signal=..." is Slurm's
    #: The flavour when ``system:`` does not say.
    default_flavour: ClassVar[str] = "pbs"

    def __init__(self, name: str, options: Mapping[str, Any], context: SourceContext) -> None:
        # The flavour and the query first: the base class checks hsm run --after (the scheduler's
        # name, a query of the jobs to wait for).
        # A system of another scheduler (hpc.system: slurm, which says what --sources hpc means)
        # is not this source's business: --sources pbs named PBS itself.
        system = str(options.get("system") or self.default_flavour).lower()
        self.flavour = system if system in ("pbs", "torque") else self.default_flavour
        if self.flavour == "torque":
            self.scheduler_name = "Torque"
        default_args = ["-x", "-t"] if self.flavour == "pbs" else ["-t"]
        self.qstat_args = [str(a) for a in options.get("qstat_args", default_args)]
        super().__init__(name, options, context)

    # -- submission
    @classmethod
    def cannot_express(cls, resources: Resources, options: Mapping[str, Any]) -> list[tuple[str, str]]:
        system = str(options.get("system") or cls.default_flavour).lower()
        return pbs_cannot_express(resources, system if system in ("pbs", "torque") else cls.default_flavour)

    def render_script(self, job: ArrayJob) -> str:
        return render_pbs_script(job, self.flavour)

    def render_worker_script(self, job: ArrayJob) -> str:
        return render_pbs_worker_script(job, self.flavour)

    def submit_argv(self, script_name: str, job: ArrayJob) -> list[str]:
        return ["qsub", *depend_args(job.after, self.flavour), script_name]

    def parse_job_id(self, stdout: str) -> str:
        lines = [ln.strip() for ln in stdout.splitlines() if ln.strip()]
        m = _JOB_ID.match(lines[-1]) if lines else None
        if not m:
            raise ValueError(stdout)
        return m.group("job_id")

    def element_keys(self, job_id: str, index: int) -> list[str]:
        if "[]" in job_id:
            full = job_id.replace("[]", f"[{index}]", 1)
            return [full, short_id(full)]
        chunk = self.chunks.get(job_id)
        if chunk is not None and not pbs_is_array(_sized(len(chunk.task_ids)), self.flavour):
            return [job_id, short_id(job_id)]  # a one-task PBS Pro job is its own element
        # Slurm's front-end names elements by numbers known only once they run.
        return []

    def scheduler_id(self, job_id: str, index: int) -> str:
        # 123[7] (the short form users type); Slurm's front-end's plain array ids get [index] too.
        keys = self.element_keys(job_id, index)
        return keys[-1] if keys else f"{short_id(job_id)}[{index}]"

    def control_argv(self, action: str, ids: Sequence[str]) -> list[str]:
        commands = {"hold": "qhold", "release": "qrls", "requeue": "qrerun"}
        if action not in commands:
            return super().control_argv(action, ids)
        # Element ids only as control_keys gives them: Slurm's Torque front-end reads 123[7] as 123.
        return [commands[action], *ids]

    def control_keys(self, tracked: Any) -> list[str]:
        # Slurm's Torque front-end names arrays by plain numbers: it reads 123[4] as 123 (another
        # element, or the whole array) and its qdel of an element's own job id does nothing, so
        # there no single element can be acted on (real Torque and PBS Pro ids have brackets).
        if self.flavour == "torque" and tracked.chunk_id and "[" not in str(tracked.chunk_id):
            return []
        return super().control_keys(tracked)

    def cannot_cancel_alone(self, task_ids: Iterable[str]) -> list[str]:
        # Slurm's Torque front-end: no id stops one element (see control_keys; its qdel of the
        # element's own job id fails or does nothing), only the whole array can be cancelled.
        w = self.watcher
        wanted = {tid for tid in task_ids if tid in w.tracked}
        out = []
        for tid in sorted(wanted):
            t = w.tracked[tid]
            if self.flavour != "torque" or not t.chunk_id or "[" in str(t.chunk_id):
                continue
            chunk = w.chunks.get(t.chunk_id)
            rest = [x for x in chunk.task_ids if x in w.tracked] if chunk is not None else [tid]
            if not set(rest) <= wanted:
                out.append(tid)
        return out

    def status_keys(self, status: Mapping[str, Any]) -> list[str]:
        job_id = status.get("job_id")
        if job_id in (None, ""):
            return []
        return list(dict.fromkeys([str(job_id), short_id(str(job_id))]))

    # -- status
    def on_slurm_front_end(self) -> bool:
        """True when the sweep's array jobs went to Slurm's qsub front-end (slurm-wlm-torque): it
        names an array job by a plain number, where PBS Pro and Torque name it ``123[]``."""
        return any("[" not in job_id and pbs_is_array(_sized(len(chunk.task_ids)), self.flavour)
                   for job_id, chunk in self.chunks.items())

    def query(self, ids: Sequence[str]) -> dict[str, JobInfo]:
        if not ids:
            return {}
        if self.on_slurm_front_end():
            return self._query_front_end(ids)
        return self._query_full(ids)

    def _query_full(self, ids: Sequence[str]) -> dict[str, JobInfo]:
        res = self._qstat(ids)
        if res.returncode != 0 and self.qstat_args and _refused_options(res):
            self.log(f"qstat refused {' '.join(self.qstat_args)}; polling with plain qstat -f")
            self.qstat_args = []
            res = self._qstat(ids)
        found = parse_qstat_full(res.stdout, self.flavour)
        if res.returncode != 0 and not found:
            said = (res.stderr + res.stdout).lower()
            # Only unknown (finished and purged) ids: an answer, not a failure.
            if "unknown job" in said or not said.strip():
                return {}
            raise QueryFailed(f"qstat exit {res.returncode}: {(res.stderr or res.stdout).strip()[:300]}")
        return found

    def _qstat(self, ids: Sequence[str]) -> CommandResult:
        return self.run(["qstat", "-f", *self.qstat_args, *ids], timeout=60)

    def _query_front_end(self, ids: Sequence[str]) -> dict[str, JobInfo]:
        """The jobs ``ids`` from the front-end's plain ``qstat`` listing. Its ``qstat`` loads every
        job of the cluster whatever it is asked, then matches each against every id given (a Perl
        regex per pair): ``qstat -f`` of a running array's 200 element ids cost 0.4-0.5 s of CPU
        where the whole listing costs 0.2 s, and its ``-f`` shows nothing more than the listing
        (the state letter only: no exit status, no comment). It refuses ``-t`` (Torque) and
        ``-x`` (PBS Pro), so no query is spent finding that out either."""
        res = self.run(["qstat"], timeout=60)
        found = parse_qstat_listing(res.stdout, ids, self.flavour)
        # 153: no job at all in the cluster (the front-end's "nothing found"), an answer too.
        if res.returncode not in (0, 153) and not found:
            raise QueryFailed(f"qstat exit {res.returncode}: {(res.stderr or res.stdout).strip()[:300]}")
        # An id the listing does not show as such (an array cancelled before any element started
        # is listed under another name): asked the way it always was, so it is answered as before.
        missing = [i for i in ids if i not in found and short_id(i) not in found]
        if missing:
            found.update(self._query_full(missing))
        return found

    # -- commands
    def health_argv(self) -> list[str]:
        return ["qstat", "-Q"]

    def queue_argv(self) -> list[str]:
        return ["qstat", "-u", str(self.options.get("user") or getpass.getuser())]

    def queue_listing(self, job_ids: Sequence[str] = (), *, ended: bool = False) -> CommandResult:
        # qstat lists finished jobs too (Torque's keep_completed, Slurm's front-end while slurmctld
        # remembers them): rows in an ended state are left out unless asked for.
        res = self.run(self.queue_argv(), timeout=60)
        if res.returncode != 0:
            return res
        return CommandResult(0, filter_qstat_rows(res.stdout, job_ids, ended=ended), res.stderr)

    def partitions(self) -> list[dict[str, str]]:
        """Queues as ``qstat -Q`` lists them."""
        res = self.run(["qstat", "-Q"], timeout=60)
        rows = []
        for line in res.stdout.splitlines():
            parts = line.split()
            if not parts or parts[0] in ("Queue",) or set(parts[0]) <= {"-"}:
                continue
            rows.append({"name": parts[0], "state": "enabled" if "yes" in (p.lower() for p in parts[1:]) else "?", "timelimit": "?"})
        return rows


class TorqueSource(PbsSource):
    """``--sources torque``: PBS with Torque syntax whatever ``system:`` says."""

    default_flavour = "torque"

    def __init__(self, name: str, options: Mapping[str, Any], context: SourceContext) -> None:
        super().__init__(name, {**dict(options), "system": "torque"}, context)


def filter_qstat_rows(text: str, job_ids: Sequence[str] = (), *, ended: bool = False) -> str:
    """``qstat -u`` output with the rows of ended jobs (state C, F or X: the column before the
    last) left out unless ``ended``, and only the rows of ``job_ids`` and their elements when
    given; header lines are kept (when a row is)."""
    shorts = [short_id(j).replace("[]", "") for j in job_ids]
    header: list[str] = []
    rows: list[str] = []
    for line in text.splitlines():
        parts = line.split()
        is_row = bool(parts) and parts[0][:1].isdigit() and len(parts) >= 3
        if not is_row:
            if not rows:
                header.append(line)
            continue
        if not ended and PBS_STATES.get(parts[-2].upper()) is QueueState.ENDED:
            continue
        own = short_id(parts[0])
        if shorts and not any(own == s or own.startswith((s + "[", s + "_")) for s in shorts):
            continue
        rows.append(line)
    return "\n".join([*header, *rows]) + "\n" if rows else ""


def depend_args(after: Sequence[str], flavour: str) -> list[str]:
    """``-W depend=afterany:ID:ID`` for the jobs a chunk waits for (however they end). Torque
    names a dependency on a whole array job ``afteranyarray`` (ids such as ``123[]``); PBS Pro's
    ``afterany`` takes an array id as it is; Slurm's qsub front-end passes the value on to
    ``sbatch --dependency``."""
    if not after:
        return []
    kind = "afteranyarray" if flavour == "torque" and any("[" in a for a in after) else "afterany"
    return ["-W", f"depend={kind}:{':'.join(after)}"]


def _sized(n: int) -> ArrayJob:
    return ArrayJob(name="x", size=n, list_file="", project_root="", runner=(), source="")


def _refused_options(res: CommandResult) -> bool:
    said = (res.stderr + res.stdout).lower()
    return "unknown option" in said or "invalid option" in said or "usage:" in said
