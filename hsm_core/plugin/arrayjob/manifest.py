"""What was submitted, as the sweep directory records it (part of the array-job toolkit of
:mod:`hsm_core.plugin`).

Two records, both under the sweep: ``scripts/job_scripts/jobs.jsonl``, one line per array job
(:class:`SubmittedChunk`: its job id and the tasks of each element), appended once the scheduler
accepted it; and each task's ``status.yaml``, which says ``submitted`` *before* the job is handed
to the scheduler (:func:`write_submitted`), so that the runner, which may start the task a moment
after the submission command returned, always writes over hsm and never the other way round. A
refused submission puts the statuses back (:func:`roll_back`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from hsm_core.plugin.arrayjob.unmade import unmade_flags
from hsm_core.plugin.taskfiles import now_iso, read_status, write_status
from hsm_core.taskdir import carry_kept
from hsm_core.taskstate import TaskState

# Only SubmittedChunk is part of the plugin API (hsm_core.plugin); the functions serve the toolkit.
__all__ = ["SubmittedChunk"]

#: The manifest of a sweep's array jobs, in ``scripts/job_scripts/``.
MANIFEST = "jobs.jsonl"


@dataclass
class SubmittedChunk:
    """One array job of the sweep."""

    job_id: str
    name: str
    script: str
    list_file: str
    task_ids: list[str]
    per_element: int = 1

    def line_of(self, task_id: str) -> int:
        """The line of ``task_id`` in the chunk's list file (ValueError when it has none)."""
        # A map made on first use: list.index per task made following (and the verdicts of) a
        # 10,000-task chunk quadratic.
        made = self.__dict__.get("_positions")
        if made is None or made[0] != len(self.task_ids):
            positions: dict[str, int] = {}
            for i, tid in enumerate(self.task_ids):
                positions.setdefault(tid, i)  # (the first, as list.index)
            made = self.__dict__["_positions"] = (len(self.task_ids), positions)
        positions = made[1]
        if task_id not in positions:
            raise ValueError(f"{task_id} is not in array job {self.job_id}")
        return positions[task_id]

    def element_of(self, task_id: str) -> int:
        """The array index running ``task_id``."""
        return self.line_of(task_id) // self.per_element

    def to_json(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "name": self.name, "script": self.script, "list": self.list_file,
                "per_element": self.per_element, "tasks": self.task_ids}


def append_chunk(job_dir: Path, chunk: SubmittedChunk, source: str, *, scheduler: str | None = None,
                 after: Sequence[str] = ()) -> None:
    """Add ``chunk`` (accepted by the scheduler) to the manifest; ``scheduler`` (its name, which
    ``hsm run --after`` matches) and ``after`` (the jobs it waits for) when known."""
    extra: dict[str, Any] = {"scheduler": scheduler} if scheduler else {}
    if after:
        extra["after"] = list(after)
    with open(Path(job_dir) / MANIFEST, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({**chunk.to_json(), "source": source, **extra, "submitted": now_iso()}) + "\n")


def read_manifest(job_dir: Path, source: str | None = None) -> dict[str, SubmittedChunk]:
    """The array jobs of the manifest by job id (only ``source``'s when given); a torn or foreign
    line is skipped."""
    out: dict[str, SubmittedChunk] = {}
    try:
        lines = (Path(job_dir) / MANIFEST).read_text(encoding="utf-8").splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if not isinstance(d, dict) or "job_id" not in d or (source is not None and d.get("source") not in (None, source)):
            continue
        out[str(d["job_id"])] = SubmittedChunk(
            str(d["job_id"]), d.get("name", ""), d.get("script", ""), d.get("list", ""), list(d.get("tasks") or []),
            int(d.get("per_element") or 1),
        )
    return out


def element_ids(job_dir: Path, element_keys: Any, source: str | None = None) -> dict[str, str]:
    """task id -> the scheduler's id of the element that runs it, from the manifest (the latest
    submission of each task); ``element_keys(job_id, index)`` is the source's naming (an empty list:
    the scheduler names the element only once it runs, and the array's id stands for it)."""
    out: dict[str, str] = {}
    for chunk in read_manifest(job_dir, source).values():
        for tid in chunk.task_ids:
            keys = element_keys(chunk.job_id, chunk.element_of(tid))
            out[tid] = keys[0] if keys else chunk.job_id
    return out


def submitted_status(spec: Any, position: int, *, source: str, per_element: int, script: str, stamp: str,
                     before: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``submitted`` record of the task at ``position`` of a chunk (its element:
    ``position // per_element``), over its status ``before`` (its attempt count, attempts and
    what a source keeps in status.yaml carry over)."""
    before = before or {}
    status: dict[str, Any] = {
        "task_id": spec.task_id,
        "index": spec.index,
        "state": TaskState.SUBMITTED.value,
        "source": source,
        "runner": "batch",
        "attempt": int(before.get("attempt") or 0),
        "array_index": position // per_element,
        "job_script": script,
        "submit_time": stamp,
    }
    if before.get("attempts"):
        status["attempts"] = before["attempts"]
    return carry_kept(before, status)  # what a source keeps in status.yaml survives


def write_submitted(specs: Sequence[Any], *, source: str, per_element: int, script: str) -> dict[str, dict[str, Any] | None]:
    """Write ``submitted`` into the status of each task of one chunk, before its submission.

    ``specs`` are the chunk's :class:`~hsm_core.plugin.TaskSpec` in array order (task i runs in
    element ``i // per_element``). Returns each task's previous status (None: it had none), for
    :func:`roll_back`. The element's job id is not known yet: the manifest gets it once the
    scheduler accepted the job, and the runner records its own when it starts.
    """
    stamp = now_iso()
    previous: dict[str, dict[str, Any] | None] = {}
    for i, (spec, dirless) in enumerate(zip(specs, unmade_flags(specs))):
        if dirless:
            continue  # no dir yet: submitted per array job (the index and jobs.jsonl say so)
        before = read_status(spec.task_dir)
        previous[spec.task_id] = before
        status = submitted_status(spec, i, source=source, per_element=per_element, script=script,
                                  stamp=stamp, before=before or {})
        # 10,000 tasks at once: no fsync per file (a crash here leaves 'submitted' with no job in
        # the manifest, which a later hsm complete records as lost and runs again).
        write_status(spec.task_dir, status, fsync=False)
    return previous


def roll_back(specs: Sequence[Any], previous: Mapping[str, Mapping[str, Any] | None]) -> None:
    """Undo :func:`write_submitted` for a chunk the scheduler did not accept: each task's status
    as it was (``pending`` when it had none). A task whose status changed meanwhile is left alone."""
    for spec in specs:
        status = read_status(spec.task_dir) or {}
        if status.get("state") != TaskState.SUBMITTED.value or status.get("job_script") is None:
            continue
        before = previous.get(spec.task_id)
        if before:
            write_status(spec.task_dir, before)
        else:
            write_status(spec.task_dir, {**status, "state": TaskState.PENDING.value})
