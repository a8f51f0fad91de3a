"""Following a sweep's array jobs in the scheduler's queue (part of the array-job toolkit of
:mod:`hsm_core.plugin`).

:class:`QueueWatcher` keeps the tasks a source follows and, on each poll, reads their status files
(cheap: only files whose stat changed) and, on a backoff schedule (0 right after a launch, cancel
or attach, then 2, 4, 8 ... s, capped), asks the scheduler about every job of the sweep in ONE
call. A job the queue has forgotten is looked up in the scheduler's accounting, when it has one.
The task files and the scheduler's answer together decide each task's state
(:func:`~hsm_core.plugin.resolve_task_state`); a final state decided from an absence is confirmed
by a second query, :data:`CONFIRM_AFTER` seconds later whatever the backoff, before it is written
(:func:`~.final_status.write_verdict`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from hsm_core.plugin.arrayjob.final_status import write_verdict
from hsm_core.plugin.arrayjob.manifest import SubmittedChunk
from hsm_core.plugin.arrayjob.unmade import ChunkRows, make_dir, submitted_record
from hsm_core.plugin.arrayjob.states import (
    JobInfo,
    QueryFailed,
    QueueState,
    Verdict,
    resolve_task_state,
    verdict_from_files,
)
from hsm_core.plugin.taskfiles import read_status
from hsm_core.taskdir import STATUS_FILE, status_path
from hsm_core.plugin.values import TaskSpec, TaskState, TaskUpdate

__all__ = ["QueueWatcher", "Tracked"]


#: Seconds between the query that found a job ended or gone and the one that confirms it. Not the
#: backoff's pace: at its cap (``poll_interval_max``, 30 s by default) the second look came that
#: much later, and a cancelled element was shown running that long after the scheduler ended it.
CONFIRM_AFTER = 2.0


@dataclass
class Tracked:
    """A task the watcher follows."""

    spec: TaskSpec
    keys: list[str]  #: scheduler ids that name this task's element, most specific first
    chunk_id: str | None = None
    reported: TaskState | None = None
    confirmations: int = 0
    stat_key: tuple[int, int] | None = None
    status: dict[str, Any] = field(default_factory=dict)


class QueueWatcher:
    """The tasks one :class:`~hsm_core.plugin.ArrayJobSource` follows, and their polling.

    ``source`` answers the scheduler questions (``query``, ``accounting``, ``element_keys``,
    ``status_keys``) and holds the staging of files and the log.
    """

    def __init__(self, source: Any, *, poll_interval_max: float = 30.0, accounting: bool = True) -> None:
        self.source = source
        self.tracked: dict[str, Tracked] = {}
        self.chunks: dict[str, SubmittedChunk] = {}
        #: task id -> the state hsm asked for when it stopped the task (cancelled, interrupted)
        self.stopping: dict[str, TaskState] = {}
        self.poll_interval_max = poll_interval_max
        #: False once the scheduler said it keeps no accounting (then it is not asked again)
        self.accounting_ok = accounting
        self.query_failures = 0
        self.last_query_error = ""
        self.pending_updates: list[TaskUpdate] = []
        #: The last chunk task file read to make a dir its element never made (:mod:`.unmade`).
        self._chunk_rows = ChunkRows()
        #: Tasks being stopped whose element the scheduler did not name when the cancel was asked
        #: (a pending array shown as one line): cancelled once the runner records the element's id.
        self.cancel_when_named: set[str] = set()
        self._query_delay = 0.0
        self._next_query = 0.0
        #: CPU seconds the last poll spent on the task files (the scheduler query left out): what
        #: the source's poll interval is paced by (:mod:`.poll_pace`). CPU, not wall time: with
        #: the elements busy on every core a check of 200 files took 10-20 ms of wall time for
        #: 1-2 ms of work, which paced the polls to up to 1 s and saw the last task end late.
        self.last_check_seconds = 0.0

    # ------------------------------------------------------------------ what is followed
    def follow_chunk(self, chunk: SubmittedChunk, specs: Sequence[TaskSpec]) -> None:
        """Follow the tasks of a chunk just submitted (``specs`` in array order)."""
        self.chunks[chunk.job_id] = chunk
        for line, spec in enumerate(specs):
            keys = self.source.element_keys(chunk.job_id, line // chunk.per_element)
            # The status is read from the file on the next poll: the runner may have started it.
            self.tracked[spec.task_id] = Tracked(spec, keys, chunk_id=chunk.job_id, status={"state": TaskState.SUBMITTED.value})

    def forget_chunk(self, chunk: SubmittedChunk) -> None:
        """Stop following a chunk (its submission is being undone)."""
        self.chunks.pop(chunk.job_id, None)
        for tid in chunk.task_ids:
            self.tracked.pop(tid, None)

    def follow_submitted(self, tasks: Sequence[TaskSpec], chunks: Mapping[str, SubmittedChunk]) -> None:
        """Follow tasks an earlier controller submitted: ``chunks`` is the sweep's manifest."""
        owner = {tid: c for c in chunks.values() for tid in c.task_ids}
        for spec in tasks:
            status = read_status(spec.task_dir) or {}
            # The latest submission of the task: its status, else the last manifest line naming it.
            chunk_id = str(status["array_job_id"]) if status.get("array_job_id") else None
            chunk = chunks.get(chunk_id) if chunk_id else owner.get(spec.task_id)
            if chunk is not None:
                chunk_id = chunk.job_id
            keys: list[str] = []
            if chunk is not None:
                self.chunks.setdefault(chunk.job_id, chunk)
                keys = self.source.element_keys(chunk.job_id, chunk.element_of(spec.task_id))
            elif status.get("array_index") is not None and chunk_id:
                keys = self.source.element_keys(chunk_id, int(status["array_index"]))
            if not keys and not chunk_id and not self.source.status_keys(status):
                # Nothing names its job: the scheduler cannot know it either, so polls record it
                # as lost (after the usual second look) rather than waiting for it forever.
                self.source.log(f"{spec.name}: no job id in {STATUS_FILE}")
            self.tracked[spec.task_id] = Tracked(spec, keys, chunk_id=chunk_id, status=status)
        self.query_soon()

    def keys_of(self, t: Tracked) -> list[str]:
        """Every scheduler id naming ``t``'s element: the runner's own first."""
        return [*self.source.status_keys(t.status), *t.keys]

    def query_soon(self) -> None:
        """Ask the scheduler on the next poll (after a launch, cancel or attach)."""
        self._query_delay = 0.0
        self._next_query = 0.0

    # ------------------------------------------------------------------ polling
    def _read_statuses(self, fetch_remote: bool) -> None:
        """Bring each tracked task's status up to date (local: only files whose stat changed)."""
        if not self.source.remote:
            for t in self.tracked.values():
                path = status_path(t.spec.task_dir)
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                key = (st.st_mtime_ns, st.st_size)
                if key != t.stat_key:
                    t.stat_key = key
                    t.status = read_status(t.spec.task_dir) or t.status
            return
        if not fetch_remote or not self.tracked:
            return
        by_dir = {t.spec.task_dir: t for t in self.tracked.values()}
        for d, status in self.source.staging.read_statuses(list(by_dir)).items():
            by_dir[d].status = status

    def _cancel_named(self) -> None:
        """Cancel the elements of tasks being stopped that their runner has named by now."""
        named = []
        for tid in sorted(self.cancel_when_named):
            t = self.tracked.get(tid)
            keys = self.source.status_keys(t.status) if t is not None else []
            if t is None or tid not in self.stopping:
                self.cancel_when_named.discard(tid)
            elif keys:
                named.append(keys[0])
                self.cancel_when_named.discard(tid)
        if named:
            self.source.cancel_jobs(named)
            self.query_soon()

    def _query_ids(self) -> list[str]:
        ids = {t.chunk_id for t in self.tracked.values() if t.chunk_id}
        for t in self.tracked.values():
            if not t.chunk_id:
                ids.update(t.keys)
            ids.update(self.source.status_keys(t.status))
        return sorted(i for i in ids if i)

    def _schedule_query(self, now: float) -> None:
        # 0 (right after a launch, cancel or attach), then 2, 4, 8 ... s, capped.
        self._query_delay = min(max(2.0, self._query_delay * 2), self.poll_interval_max)
        self._next_query = now + self._query_delay

    def poll(self) -> list[TaskUpdate]:
        """Report changed tasks: status files every poll, the scheduler on a backoff schedule."""
        updates, self.pending_updates = self.pending_updates, []
        if not self.tracked:
            return updates
        now = time.monotonic()
        cpu_start = time.thread_time()
        queue: dict[str, JobInfo] | None = None
        query_due = now >= self._next_query
        self._read_statuses(fetch_remote=query_due)
        self._cancel_named()
        query_seconds = 0.0
        if query_due:
            self._schedule_query(now)
            try:
                query_start = time.thread_time()
                queue = self.source.query(self._query_ids())
                query_seconds = time.thread_time() - query_start
                self.query_failures = 0
            except QueryFailed as exc:
                self.query_failures += 1
                self.last_query_error = str(exc)
                self.source.log(f"status query failed ({self.query_failures} in a row): {exc}")
        gone: list[Tracked] = []
        decided: list[tuple[Tracked, Verdict, JobInfo | None]] = []
        for task_id, t in list(self.tracked.items()):
            status_state = t.status.get("state")
            if queue is None:
                # No fresh word from the scheduler: report only what the files say.
                verdict = verdict_from_files(status_state)
                if verdict is not None:
                    decided.append((t, verdict, None))
                continue
            known = verdict_from_files(status_state)
            if known is not None and known.final:
                decided.append((t, known, None))
                continue
            info = self._lookup(t, queue)
            if info is None and self.accounting_ok:
                gone.append(t)
                continue
            verdict = resolve_task_state(status_state, info.state if info else None, stopping=self.stopping.get(task_id))
            decided.append((t, verdict, info))
        if gone:
            acct = self._ask_accounting(gone)
            for t in gone:
                info = next((acct[k] for k in self.keys_of(t) if k in acct), None)
                verdict = resolve_task_state(t.status.get("state"), info.state if info else None, stopping=self.stopping.get(t.spec.task_id))
                decided.append((t, verdict, info))
        self.source.staging.fetch([t.spec for t, v, _ in decided if v.final and (not v.confirm or t.confirmations >= 1)])
        for t, verdict, info in decided:
            self._apply(t, verdict, info, updates, asked=queue is not None)
        if queue is not None and any(t.confirmations for t in self.tracked.values()):
            self._next_query = min(self._next_query, now + CONFIRM_AFTER)
        self.last_check_seconds = max(0.0, time.thread_time() - cpu_start - query_seconds)
        return updates

    def _lookup(self, t: Tracked, queue: Mapping[str, JobInfo]) -> JobInfo | None:
        for k in self.keys_of(t):
            if k in queue:
                info = queue[k]
                chunk = self.chunks.get(t.chunk_id or "")
                if (chunk is not None and chunk.per_element > 1 and info.state is QueueState.RUNNING
                        and t.status.get("state") in (None, TaskState.SUBMITTED.value, TaskState.PENDING.value)):
                    return JobInfo(QueueState.PENDING, info.raw, "waiting for its turn in a packed element")
                return info
        if self.source.lists_array_elements or not t.chunk_id or t.chunk_id not in queue:
            return None
        # Schedulers that show a pending array as one line (PBS, Slurm's qsub front-end): the
        # array's own line speaks for tasks whose element id is not known yet.
        info = queue[t.chunk_id]
        if not info.state.active:
            return None
        if t.status.get("state") in (None, TaskState.SUBMITTED.value, TaskState.PENDING.value):
            return JobInfo(QueueState.PENDING, info.raw, info.reason)
        if not self.source.status_keys(t.status):
            return JobInfo(QueueState.RUNNING, info.raw, info.reason)
        return None

    def _ask_accounting(self, gone: Sequence[Tracked]) -> dict[str, JobInfo]:
        ids = sorted({k for t in gone for k in self.keys_of(t)})
        if not ids:
            return {}
        try:
            return self.source.accounting(ids)
        except QueryFailed as exc:
            # No accounting (sacct missing or disabled) is normal: do not ask again.
            self.accounting_ok = False
            self.source.log(f"accounting not available ({exc}); final states come from the queue and the task files")
            return {}

    def _apply(self, t: Tracked, verdict: Verdict, info: JobInfo | None, updates: list[TaskUpdate], *,
               asked: bool = True) -> None:
        """Act on ``verdict``; ``asked``: the scheduler was queried in this poll (else the verdict
        comes from the task files alone)."""
        if verdict.confirm:
            t.confirmations += 1
            if t.confirmations < 2:
                return  # decided from an absence: look once more before writing anything
        elif asked:
            # The scheduler shows the job again: a later absence is counted anew. Not on a poll
            # between queries: the files' "running" said nothing of the job, and resetting there
            # left a task whose runner died without a final record "running" for ever.
            t.confirmations = 0
        if verdict.write:
            self.write_final(t, verdict, info)
        if verdict.final:
            self.tracked.pop(t.spec.task_id, None)
            self.stopping.pop(t.spec.task_id, None)
            updates.append(TaskUpdate(t.spec.task_id, verdict.state, infrastructure_failure=verdict.infrastructure, message=verdict.message))
        elif t.status.get("state") == TaskState.PREEMPTED.value:
            # The runner recorded a preempted attempt and the scheduler requeued the element. Once
            # it is queued again the files say so (every reader, a monitor included, would take
            # 'preempted' for the end); while the scheduler still shows it running, say nothing.
            if verdict.state is TaskState.SUBMITTED and self._mark_requeued(t) and t.reported is not TaskState.SUBMITTED:
                t.reported = TaskState.SUBMITTED
                updates.append(TaskUpdate(t.spec.task_id, TaskState.SUBMITTED, message="requeued by the scheduler"))
            return
        elif verdict.state != t.reported:
            t.reported = verdict.state
            updates.append(TaskUpdate(t.spec.task_id, verdict.state))

    def _mark_requeued(self, t: Tracked) -> bool:
        """Write ``submitted`` over the runner's ``preempted`` of a task whose element the scheduler
        requeued (its attempt history keeps the preempted attempt). False if the file changed."""
        status = read_status(t.spec.task_dir)
        if not status or status.get("state") != TaskState.PREEMPTED.value:
            return False
        new = {k: v for k, v in status.items() if k not in ("process", "signal_received", "unconfirmed")}
        new.update(state=TaskState.SUBMITTED.value, message="requeued by the scheduler after a signal")
        from hsm_core.plugin.taskfiles import write_status

        # The runner of the next attempt writes over this; it reads the history from it.
        write_status(t.spec.task_dir, new)
        t.status = new
        self.source.staging.push_status(t.spec.task_dir, new, t.spec.name)
        self.source.log(f"{t.spec.name}: requeued by {self.source.scheduler_name} after a signal")
        return True

    def settle(self, rounds: int = 3) -> dict[str, TaskState]:
        """Ask the scheduler at once, a few times, about every followed task; returns the states
        decided (final ones are written), and SUBMITTED for tasks still queued or running (or that
        nothing could be said about: better watched than run twice)."""
        states: dict[str, TaskState] = {}
        for _ in range(rounds):
            if not self.tracked:
                break
            self.query_soon()
            for upd in self.poll():
                states[upd.task_id] = upd.state
        for task_id in self.tracked:
            states.setdefault(task_id, TaskState.SUBMITTED)
        return states

    def write_final(self, t: Tracked, verdict: Verdict, info: JobInfo | None) -> None:
        """Write a final state hsm decided into ``t``'s status (here, and there for a login node)."""
        known = self._make_dir_if_unmade(t)
        new = write_verdict(t.spec.task_dir, verdict, info, known=known)
        if new is None:
            return
        t.status = new
        self.source.staging.push_status(t.spec.task_dir, new, t.spec.name)
        self.source.log(f"{t.spec.name} {verdict.state.value}: {verdict.message}")

    def _make_dir_if_unmade(self, t: Tracked) -> dict[str, Any]:
        """The status a verdict starts from. A task whose element never made its dir (cancelled
        while pending, a node that failed first: see :mod:`.unmade`) gets it made now, from its
        chunk's task file, as its element would have, with the ``submitted`` record it would have
        had at submission: the verdict is then written, and read by ``hsm complete``, as for any task."""
        if t.spec.task_dir.is_dir():
            return t.status
        chunk = self.chunks.get(t.chunk_id or "")
        if chunk is None:
            return t.status
        try:
            line = chunk.line_of(t.spec.task_id)
        except ValueError:
            return t.status
        # (one read of the chunk's task file for all its tasks, when a whole chunk was cancelled)
        if not make_dir(t.spec.task_dir, self.source.job_dir / chunk.list_file, line, self._chunk_rows):
            return t.status
        if t.status.get("task_id"):
            return t.status
        record = submitted_record(t.spec, source=self.source.name, array_index=chunk.element_of(t.spec.task_id),
                                  script=chunk.script)
        return {**record, **{k: v for k, v in t.status.items() if k != "state"}, "state": t.status.get("state", record["state"])}

    def interrupt_remaining(self) -> list[TaskUpdate]:
        """After an interrupt's wait: every task still followed is recorded ``interrupted`` (hsm
        cancelled its job), and nothing is followed any more."""
        out = []
        for t in list(self.tracked.values()):
            verdict = Verdict(TaskState.INTERRUPTED, final=True, write=True, message="interrupted (Ctrl-C): the job was cancelled")
            self.write_final(t, verdict, None)
            out.append(TaskUpdate(t.spec.task_id, TaskState.INTERRUPTED, message=verdict.message))
        self.tracked.clear()
        self.stopping.clear()
        return out
