"""Each task's link back to the scheduler (part of the array-job toolkit of :mod:`hsm_core.plugin`).

What :meth:`ArrayJobSource.describe_tasks <hsm_core.plugin.ArrayJobSource.describe_tasks>` says
about a task, for ``hsm status --tasks`` and ``hsm export``:

* ``scheduler_id``: the element's name in the scheduler's own words (Slurm ``12345_7``, PBS
  ``123[7]``), from the sweep's manifest (``jobs.jsonl``: the latest submission of each task);
  no status file is read, so an export of 100,000 tasks costs one manifest read.
* with ``live``: ``job_id`` (the id the runner recorded: the element's own job once it ran),
  ``scheduler_state`` and ``reason`` from ONE status query (while the queue still knows the job),
  and ``held`` (a user or admin hold).
* from the scheduler's accounting when the site keeps one (Slurm: sacct), queried once by array
  job: ``elapsed`` (seconds), ``max_rss`` (bytes), ``cpu_efficiency`` (0..1), ``nodes``. Without
  accounting nothing is said (a failing ``sacct`` is normal).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from hsm_core.plugin.arrayjob.manifest import SubmittedChunk, read_manifest
from hsm_core.plugin.arrayjob.states import JobInfo, QueryFailed
from hsm_core.plugin.values import TaskSpec

__all__ = ["describe_tasks", "owners"]


def owners(chunks: Mapping[str, SubmittedChunk]) -> dict[str, SubmittedChunk]:
    """task id -> the array job of its latest submission (the manifest is in submission order)."""
    return {tid: chunk for chunk in chunks.values() for tid in chunk.task_ids}


def describe_tasks(source: Any, tasks: Sequence[TaskSpec], *, live: bool = False) -> dict[str, dict[str, Any]]:
    """Task id -> what the scheduler can say about it (see the module docstring). ``source`` is an
    :class:`~hsm_core.plugin.ArrayJobSource`; nothing here raises because the scheduler cannot be
    asked: less is said."""
    chunks = read_manifest(source.job_dir, source.name)
    owner = owners(chunks)
    out: dict[str, dict[str, Any]] = {}
    for spec in tasks:
        chunk = owner.get(spec.task_id)
        if chunk is not None:
            out[spec.task_id] = {"scheduler_id": source.scheduler_id(chunk.job_id, chunk.element_of(spec.task_id))}
    if not out:
        return out
    if live:
        _add_queue_view(source, [s for s in tasks if s.task_id in out], chunks, out)
    _add_accounting(source, {owner[tid].job_id for tid in out}, out)
    return out


def _add_queue_view(source: Any, tasks: Sequence[TaskSpec], chunks: Mapping[str, SubmittedChunk],
                    out: dict[str, dict[str, Any]]) -> None:
    from hsm_core.plugin.arrayjob.watcher import QueueWatcher

    watcher = QueueWatcher(source, accounting=False)
    watcher.follow_submitted(tasks, chunks)  # reads each task's status: the runner's job id
    queue: Mapping[str, JobInfo] | None
    try:
        queue = source.query(watcher._query_ids())
    except (QueryFailed, OSError):
        queue = None
    for tid, t in watcher.tracked.items():
        row = out[tid]
        own = source.status_keys(t.status)
        if own:
            row["job_id"] = own[0]
        if queue is None:
            continue
        info = watcher._lookup(t, queue)
        if info is None:
            continue  # the queue forgot the job (or never had it): the task files say the rest
        row["scheduler_state"] = info.raw or info.state.value
        if info.reason and info.reason.lower() != "none":
            row["reason"] = info.reason
        if source.is_held(info):
            row["held"] = True


def _add_accounting(source: Any, job_ids: set[str], out: dict[str, dict[str, Any]]) -> None:
    if not source.accounting_enabled or not job_ids:
        return
    try:
        found = source.job_accounting(sorted(job_ids))
    except (QueryFailed, OSError):
        return
    for row in out.values():
        usage = found.get(str(row.get("scheduler_id"))) or found.get(str(row.get("job_id")))
        if usage:
            row.update(usage)
