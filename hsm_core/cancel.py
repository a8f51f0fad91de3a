"""``hsm cancel``: stop the queued and running tasks of a sweep and record them ``cancelled``.

The sweep's sources are made again from ``sweep_metadata.yaml`` (a task's own ``source`` when its
source is not among them); each attaches to its tasks (pid, job id, host: from the task dirs,
since the controller that launched them may be gone) and cancels them. A sweep run by pull-based
workers is not cancelled behind their backs: the error says how to stop the workers.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path
from typing import Any, Callable

from hsm_core.plugin import HsmError


def refuse_worker_sweep(sweep: Any, meta: dict[str, Any], registry: Any) -> None:
    """Raise for a sweep run by pull-based workers (``mode: workers``), naming what stops them;
    a stopped worker's task is resumed by the next worker."""
    if meta.get("mode") != "workers":
        return
    from hsm_core.workers.layout import continue_command
    from hsm_core.workers.stop import stop_commands

    commands = stop_commands(sweep.path, registry)
    how = "; ".join(commands) if commands else "stop each hsm worker where it runs (Ctrl-C, kill, or its scheduler job)"
    raise HsmError(
        f"sweep {sweep.sweep_id!r} is run by pull-based workers: stop them with: {how}",
        hint=f"each stopped worker's task is resumed by the next: {continue_command(meta)}",
    )


def cancel_sweep(project: Any, sweep: Any, registry: Any, *, wait: float = 60.0,
                 echo: Callable[[str], None] = print, only: set[str] | None = None) -> dict[str, int]:
    """Cancel every queued or running task of ``sweep`` (see :func:`_cancel_active`); the whole
    sweep's cancel first asks a controller still running it to launch nothing more
    (:mod:`hsm_core.cancel_request`), then looks again for a task that controller was launching
    at that moment."""
    if only is not None:
        return _cancel_active(project, sweep, registry, wait=wait, echo=echo, only=only)
    from hsm_core.cancel_request import request_cancel
    from hsm_core.lease import current_holder

    request_cancel(sweep.path)
    counts = _cancel_active(project, sweep, registry, wait=wait, echo=echo, only=None)
    for _ in range(3 if current_holder(sweep.path) is not None else 0):
        more = _cancel_active(project, sweep, registry, wait=wait, echo=echo, only=None)
        if not more:
            break
        for state, n in more.items():
            counts[state] = counts.get(state, 0) + n
    return counts


def _cancel_active(project: Any, sweep: Any, registry: Any, *, wait: float,
                   echo: Callable[[str], None], only: set[str] | None) -> dict[str, int]:
    """Cancel every queued or running task of ``sweep``; returns counts of the resulting states
    (``"not cancelled"``: tasks on a source that cannot be reached now). ``echo`` says what
    happens per source.

    Tasks are grouped by the source recorded in their ``status.yaml``; each source is created from
    the sweep's ``sources`` (or from that name alone), attaches to its tasks and cancels them.
    Tasks whose final state is anything but completed are then recorded as ``cancelled``.

    ``only`` (task ids): cancel these tasks alone (``hsm cancel --tasks``). Every active task is
    still followed, so that a source never takes the selected ones for a whole array job; a
    selected task the source did not see end within ``wait`` is counted ``not cancelled``, not
    written ``cancelled`` (its element may still run), and the sweep keeps its status.
    """
    from hsm_core.plugin import TaskSpec, TaskState
    from hsm_core.plugin.arrayjob.manifest import read_manifest
    from hsm_core.plugin.arrayjob.unmade import ChunkRows, make_dir_from_jobs
    from hsm_core.sources import create_sources, parse_sources
    from hsm_core.state import now_iso, read_status, write_status
    from hsm_core.targets import source_context

    records = sweep.records()
    active = []
    for rec in records.values():
        if rec.state not in (TaskState.SUBMITTED.value, TaskState.RUNNING.value):
            continue  # (records() brought unfinished tasks up to date: no status.yaml of 100,000 to read)
        d = sweep.record_dir(rec)
        status = read_status(d) or {}
        state = status.get("state") or rec.state
        if state in (TaskState.SUBMITTED.value, TaskState.RUNNING.value):
            active.append((rec, d, status))
    if not active or (only is not None and not any(rec.task_id in only for rec, _, _ in active)):
        if only is None:
            sweep.update_metadata(status="cancelled", updated=now_iso())
        return {}
    context = source_context(project, registry, sweep.sweep_id, sweep.path)
    meta = sweep.read_metadata()
    sources: dict[str, Any] = {}
    try:
        for src in create_sources(parse_sources(str(meta.get("sources") or "local"), project.data, registry), registry, context):
            sources[src.name] = src
    except HsmError as exc:
        echo(f"warning: cannot recreate the sweep's sources ({exc}); trying each task's own source")
    groups: dict[str, list[tuple[Any, Path, dict]]] = collections.defaultdict(list)
    for item in active:
        groups[str(item[2].get("source") or item[0].source or "local")].append(item)
    followed: dict[str, Any] = {}
    unreachable = 0
    for name, items in groups.items():
        src = sources.get(name)
        if src is None:
            try:
                src = create_sources(parse_sources(name, project.data, registry), registry, context)[0]
            except HsmError as exc:
                echo(f"cannot cancel {len(items)} task(s) on {name!r}: {exc}")
                unreachable += len(items)
                continue
        specs = [TaskSpec(r.task_id, r.index, r.params, d.resolve(), sweep.sweep_id, sweep.path.resolve()) for r, d, _ in items]
        try:
            src.attach(specs)
        except NotImplementedError as exc:
            echo(f"cannot cancel {len(items)} task(s) on {name!r}: {exc}")
            unreachable += len(items)
            continue
        chosen = [s for s in specs if only is None or s.task_id in only]
        if only is not None and chosen:
            # A scheduler that cannot stop one element alone (Slurm's Torque front-end): say so
            # now rather than "cancel requested" for tasks that then run on.
            alone = set(src.cannot_cancel_alone([s.task_id for s in chosen])) if hasattr(src, "cannot_cancel_alone") else set()
            if alone:
                names = ", ".join(s.name for s in chosen if s.task_id in alone)
                runs_on = "it keeps running" if len(alone) == 1 else "they keep running"
                echo(f"{name}: cannot stop {names} alone: {getattr(src, 'scheduler_name', name)} cannot cancel one "
                     f"element of an array job here; {runs_on} (cancel the whole sweep, or run with a "
                     f"source whose scheduler can cancel one element)")
                unreachable += len(alone)
                chosen = [s for s in chosen if s.task_id not in alone]
        if not chosen:
            continue
        try:
            src.cancel([s.task_id for s in chosen])
        except HsmError as exc:
            # A host that is down: its tasks cannot be stopped now, and are not marked cancelled
            # (they may still run there; hsm complete follows them once it answers).
            echo(f"cannot cancel {len(items)} task(s) on {name!r}: {exc}")
            unreachable += len(items)
            try:
                src.close()
            except Exception:
                pass
            continue
        followed[name] = (src, {s.task_id: s for s in chosen})
        echo(f"{name}: cancel requested for {len(chosen)} task(s)")
    # Wait for the sources to see the tasks end (jobs leave the queue, processes exit).
    deadline = time.monotonic() + wait
    remaining = {tid for _, specs in followed.values() for tid in specs}
    ended: set[str] = set()
    while remaining and time.monotonic() < deadline:
        for src, specs in followed.values():
            try:
                for upd in src.poll():
                    if upd.state.finished:
                        remaining.discard(upd.task_id)
                        ended.add(upd.task_id)
            except HsmError:
                pass
        if remaining:
            time.sleep(0.3)
    counts: dict[str, int] = {}
    job_dir = sweep.path / "scripts" / "job_scripts"
    jobs: dict[str, Any] | None = None  # jobs.jsonl, read once, when a first task dir is missing
    chunk_rows = ChunkRows()  # and each chunk's task file once, not once per task
    for src, specs in followed.values():
        for tid, spec in specs.items():
            status = read_status(spec.task_dir) or {}
            if only is not None and tid not in ended and not _finished(status.get("state")):
                counts["not cancelled"] = counts.get("not cancelled", 0) + 1
                continue
            if status.get("state") != TaskState.COMPLETED.value:
                if status.get("state") != TaskState.CANCELLED.value:
                    status.update(state=TaskState.CANCELLED.value, end_time=status.get("end_time") or now_iso())
                    status.setdefault("message", "cancelled by hsm cancel")
                    status.pop("process", None)
                    status.setdefault("task_id", tid)
                    status.setdefault("index", spec.index)
                    # An array element cancelled before it made its task dir: made now, as it would have.
                    if not spec.task_dir.is_dir():
                        jobs = read_manifest(job_dir) if jobs is None else jobs
                        make_dir_from_jobs(spec.task_dir, job_dir, tid, jobs, chunk_rows)
                    write_status(spec.task_dir, status)
            counts[status["state"]] = counts.get(status["state"], 0) + 1
        try:
            src.close()
        except Exception:
            pass
    if unreachable:
        counts["not cancelled"] = unreachable
    records = sweep.records()
    sweep.save_index(records.values(), mapping=True)
    if only is None:
        sweep.update_metadata(status="cancelled", updated=now_iso())
    return counts


def _finished(state: Any) -> bool:
    from hsm_core.taskstate import TaskState

    try:
        return TaskState(str(state)).finished
    except ValueError:
        return False
