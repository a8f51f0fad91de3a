"""The ``slurm`` compute source: sbatch / squeue / scancel (and sacct when accounting exists)."""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from hsm_core.plugin import (
    ArrayJob, ArrayJobSource, CommandResult, JobInfo, QueryFailed, QueueState, Resources, SourceContext,
)
from hsm_plugin_slurm.script import render_slurm_script, render_slurm_worker_script, slurm_cannot_express

#: Slurm job states (squeue %T, sacct State) -> generic queue states. Every state Slurm 22.05
#: documents is listed; an unknown one is treated as still active (never as finished).
SLURM_STATES: dict[str, QueueState] = {
    "PENDING": QueueState.PENDING,
    "CONFIGURING": QueueState.PENDING,
    "REQUEUED": QueueState.PENDING,
    "REQUEUE_FED": QueueState.PENDING,
    "REQUEUE_HOLD": QueueState.PENDING,
    "RESV_DEL_HOLD": QueueState.PENDING,
    "SPECIAL_EXIT": QueueState.PENDING,  # held after a special exit code: waits for a release
    "POWER_UP_NODE": QueueState.PENDING,
    "RUNNING": QueueState.RUNNING,
    "RESIZING": QueueState.RUNNING,
    "SIGNALING": QueueState.RUNNING,
    "SUSPENDED": QueueState.SUSPENDED,
    "STOPPED": QueueState.SUSPENDED,
    "COMPLETING": QueueState.COMPLETING,
    "STAGE_OUT": QueueState.COMPLETING,
    "COMPLETED": QueueState.COMPLETED,
    "FAILED": QueueState.FAILED,
    "CANCELLED": QueueState.CANCELLED,
    "REVOKED": QueueState.CANCELLED,  # federation: another cluster runs it
    "TIMEOUT": QueueState.TIMEOUT,
    "DEADLINE": QueueState.TIMEOUT,
    "PREEMPTED": QueueState.PREEMPTED,
    "NODE_FAIL": QueueState.NODE_FAIL,
    "BOOT_FAIL": QueueState.NODE_FAIL,
    "OUT_OF_MEMORY": QueueState.OUT_OF_MEMORY,
}


def map_slurm_state(raw: str) -> QueueState:
    """Map a Slurm state word (``CANCELLED by 0`` and ``CANCELLED+`` included) to a QueueState."""
    word = raw.strip().split(" ")[0].rstrip("+").upper()
    return SLURM_STATES.get(word, QueueState.PENDING)


#: squeue's states of jobs not ended (``hsm queue`` without ``--all``).
ACTIVE_STATES = ("PENDING,RUNNING,SUSPENDED,COMPLETING,CONFIGURING,RESIZING,RESV_DEL_HOLD,REQUEUED,REQUEUE_FED,"
                 "REQUEUE_HOLD,SIGNALING,SPECIAL_EXIT,STAGE_OUT,STOPPED")

_JOB_ID = re.compile(r"^(?P<job_id>\d+)(?:;\S+)?$")
_SEP = "\x1f"  # squeue/sacct field separator that no job name or reason contains


class SlurmSource(ArrayJobSource):
    """Tasks as elements of Slurm array jobs."""

    scheduler_name = "Slurm"
    directive_prefix = "#SBATCH"
    default_max_array_size = 1001  # Slurm's own default MaxArraySize
    lists_array_elements = True
    cancel_command = ("scancel",)
    transient_patterns = ("unable to contact slurm controller", "slurm_persist_conn")
    script_suffix = ".sbatch"
    directive_scopes = ("slurm",)
    foreign_directive_forms = ("-l ",)  # PBS's resource lists: sbatch has no -l
    supports_dependencies = True

    def __init__(self, name: str, options: Mapping[str, Any], context: SourceContext) -> None:
        super().__init__(name, options, context)
        if self.options.get("sacct") is False:
            self.accounting_enabled = False

    # -- submission
    @classmethod
    def cannot_express(cls, resources: Resources, options: Mapping[str, Any]) -> list[tuple[str, str]]:
        return slurm_cannot_express(resources)

    def render_script(self, job: ArrayJob) -> str:
        return render_slurm_script(job)

    def render_worker_script(self, job: ArrayJob) -> str:
        return render_slurm_worker_script(job)

    def submit_argv(self, script_name: str, job: ArrayJob) -> list[str]:
        after = [f"--dependency=afterany:{':'.join(job.after)}"] if job.after else []
        return ["sbatch", "--parsable", *after, script_name]

    def parse_job_id(self, stdout: str) -> str:
        lines = [ln.strip() for ln in stdout.splitlines() if ln.strip()]
        m = _JOB_ID.match(lines[-1]) if lines else None
        if not m:
            raise ValueError(stdout)
        return m.group("job_id")

    def element_keys(self, job_id: str, index: int) -> list[str]:
        return [f"{job_id}_{index}"]

    def find_submitted(self, job_name: str) -> str | None:
        # Name and submission directory (this sweep's job_scripts/) together are this chunk only.
        res = self.run(["squeue", "-h", "-t", "all", "-n", job_name, "-o", f"%F{_SEP}%Z"], timeout=60)
        if res.returncode != 0:
            return None
        here = self.exec_path(self.job_dir)
        for line in res.stdout.splitlines():
            job_id, _, workdir = line.partition(_SEP)
            if workdir.strip() == here and job_id.strip():
                return job_id.strip()
        return None

    # -- status
    def query(self, ids: Sequence[str]) -> dict[str, JobInfo]:
        if not ids:
            return {}
        fmt = _SEP.join(("%A", "%i", "%T", "%r"))
        res = self.run(["squeue", "-h", "-r", "-t", "all", "-j", ",".join(ids), "-o", fmt], timeout=60)
        if res.returncode != 0:
            if "invalid job id" in res.stderr.lower():
                return {}  # every job has left squeue's memory (MinJobAge)
            raise QueryFailed(f"squeue exit {res.returncode}: {res.stderr.strip()[:300]}")
        return parse_squeue(res.stdout)

    def accounting(self, ids: Sequence[str]) -> dict[str, JobInfo]:
        fmt = "JobID,State"
        res = self.run(["sacct", "-n", "-X", "-P", "--delimiter", _SEP, "-j", ",".join(ids), "-o", fmt], timeout=60)
        if res.returncode != 0:
            raise QueryFailed(f"sacct exit {res.returncode}: {(res.stderr or res.stdout).strip()[:300]}")
        out: dict[str, JobInfo] = {}
        for line in res.stdout.splitlines():
            parts = line.split(_SEP)
            if len(parts) >= 2 and parts[0].strip():
                out[parts[0].strip()] = JobInfo(map_slurm_state(parts[1]), parts[1].strip())
        return out

    def job_accounting(self, job_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        from hsm_plugin_slurm.accounting import SACCT_FIELDS, parse_sacct_usage

        res = self.run(["sacct", "-n", "-P", "--delimiter", _SEP, "-j", ",".join(job_ids),
                        "--format", ",".join(SACCT_FIELDS)], timeout=60)
        if res.returncode != 0:
            raise QueryFailed(f"sacct exit {res.returncode}: {(res.stderr or res.stdout).strip()[:300]}")
        return parse_sacct_usage(res.stdout, _SEP)

    def control_argv(self, action: str, ids: Sequence[str]) -> list[str]:
        # scontrol takes a comma-separated job list; 12345_7 names one element of an array.
        if action not in ("hold", "release", "requeue"):
            return super().control_argv(action, ids)
        return ["scontrol", action, ",".join(ids)]

    def control_keys(self, tracked: Any) -> list[str]:
        # 12345_7 first: the name users see in squeue and in the element's log file.
        return [*tracked.keys, *self.status_keys(tracked.status)]

    def scheduler_max_array_size(self) -> int | None:
        res = self.run(["scontrol", "show", "config"], timeout=60)
        if res.returncode != 0:
            return None
        return parse_max_array_size(res.stdout)

    # -- commands
    def health_argv(self) -> list[str]:
        return ["sinfo", "-h", "-o", "%P"]

    def queue_argv(self) -> list[str]:
        return ["squeue", "--me", "-o", "%.18i %.9P %.30j %.8T %.10M %.9l %R"]

    def queue_listing(self, job_ids: Sequence[str] = (), *, ended: bool = False) -> CommandResult:
        # Given job ids, squeue lists them whatever their state: the states are always named.
        argv = [*self.queue_argv(), "-t", "all" if ended else ACTIVE_STATES]
        if job_ids:
            argv += ["-j", ",".join(job_ids)]
        res = self.run(argv, timeout=60)
        if res.returncode != 0 and job_ids and "invalid job id" in res.stderr.lower():
            return CommandResult(0, "", "")  # every job of the sweep has left squeue's memory
        if res.returncode == 0 and len(res.stdout.strip().splitlines()) <= 1:
            return CommandResult(0, "", res.stderr)  # the header alone: no jobs
        return res

    def partitions(self) -> list[dict[str, str]]:
        """Partitions as sinfo lists them (name, availability, time limit, nodes, state)."""
        res = self.run(["sinfo", "-h", "-o", _SEP.join(("%P", "%a", "%l", "%D", "%t"))], timeout=60)
        rows = []
        for line in res.stdout.splitlines():
            p = line.split(_SEP)
            if len(p) == 5:
                rows.append({"name": p[0], "available": p[1], "timelimit": p[2], "nodes": p[3], "state": p[4]})
        return rows


def parse_squeue(stdout: str) -> dict[str, JobInfo]:
    """``%A<US>%i<US>%T<US>%r`` lines -> id -> JobInfo, keyed by both the element's own job id and
    ``ARRAYID_INDEX``."""
    out: dict[str, JobInfo] = {}
    for line in stdout.splitlines():
        parts = line.split(_SEP)
        if len(parts) < 3:
            continue
        own, array_id, state = parts[0].strip(), parts[1].strip(), parts[2].strip()
        info = JobInfo(map_slurm_state(state), state, parts[3].strip() if len(parts) > 3 else "")
        out[array_id] = info
        # A pending array not yet split keeps the array's id in %A for every element: do not let
        # one element's line stand for another.
        if "_" not in array_id or not array_id.startswith(own + "_"):
            out.setdefault(own, info)
    return out


def parse_max_array_size(config_text: str) -> int | None:
    """MaxArraySize from ``scontrol show config``: indices go up to MaxArraySize - 1, so a chunk
    of that many tasks (indices 0..MaxArraySize-1) fits."""
    m = re.search(r"^MaxArraySize\s*=\s*(\d+)", config_text, re.M)
    return int(m.group(1)) if m else None
