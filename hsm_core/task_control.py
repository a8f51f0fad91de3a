"""Per-task control of a sweep: which tasks ``--tasks 3,5-7`` means, and ``hsm hold|release|requeue``.

Cancelling selected tasks goes through :func:`hsm_core.cancel.cancel_sweep` (``only=``); hold,
release and requeue through each source's optional :meth:`ComputeSource.control
<hsm_core.plugin.ComputeSource.control>` (a batch scheduler's ``scontrol hold 12345_7``,
``qhold``...). Only tasks queued or running are handed to a source: a finished task has no job to
hold, and one to run again is ``hsm complete``'s (``--retry-failed``).
"""

from __future__ import annotations

import collections
import re
from typing import Any, Callable, Iterable, Sequence

from hsm_core.errors import HsmError

#: ``hsm hold|release|requeue``: the word the user types -> what is said once it is done.
ACTIONS = {"hold": "held", "release": "released", "requeue": "requeued"}

_RANGE = re.compile(r"^(\d+)\s*-\s*(\d+)$")


def select_tasks(text: str, records: Iterable[Any], *, option: str = "--tasks") -> list[Any]:
    """The index records ``text`` names, in task order: comma-separated task numbers (``3`` is
    ``task_003``), ranges (``5-7``), task dir names (``task_003``) or task ids. Anything that
    names no task of the sweep is a one-line error (exit 2)."""
    recs = sorted(records, key=lambda r: r.index)
    by_index = {r.index: r for r in recs}
    by_name = {r.name: r for r in recs}
    by_id = {r.task_id: r for r in recs}
    chosen: dict[str, Any] = {}
    for raw in str(text).split(","):
        item = raw.strip()
        if not item:
            continue
        m = _RANGE.match(item)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if lo > hi:
                raise HsmError(f"{option} {text}: range {item} is backwards", hint=f"write it as {hi}-{lo}")
            missing = [i for i in range(lo, hi + 1) if i not in by_index]
            if missing:
                raise HsmError(f"{option} {text}: the sweep has no task {missing[0]}", hint=_known(recs))
            for i in range(lo, hi + 1):
                chosen[by_index[i].task_id] = by_index[i]
            continue
        rec = by_index.get(int(item)) if item.isdigit() else by_name.get(item) or by_id.get(item)
        if rec is None:
            raise HsmError(f"{option} {text}: the sweep has no task {item!r}", hint=_known(recs))
        chosen[rec.task_id] = rec
    if not chosen:
        raise HsmError(f"{option} names no task", hint="e.g. --tasks 3,5-7 (task numbers as in task_003)")
    return sorted(chosen.values(), key=lambda r: r.index)


def _known(recs: Sequence[Any]) -> str:
    if not recs:
        return "the sweep has no tasks"
    return f"its tasks are {recs[0].index}-{recs[-1].index}, numbered as in {recs[0].name}"


def control_tasks(project: Any, registry: Any, sweep: Any, records: Sequence[Any], action: str,
                  echo: Callable[[str], None] = print) -> dict[str, int]:
    """``action`` (hold, release, requeue) the queued or running tasks among ``records`` through
    their sources; one line per task that was not, and counts: ``{"held": 2, "not held": 1}``."""
    from hsm_core.monitor.scheduler_link import sweep_sources, task_specs
    from hsm_core.state import read_status
    from hsm_core.taskstate import TaskState

    done_word = ACTIONS[action]
    counts: dict[str, int] = collections.Counter()
    groups: dict[str, list[Any]] = collections.defaultdict(list)
    for rec in records:
        status = read_status(sweep.record_dir(rec)) or {}
        state = str(status.get("state") or rec.state)
        if state not in (TaskState.SUBMITTED.value, TaskState.RUNNING.value):
            hint = (f"; run it again with: hsm complete {sweep.sweep_id} --retry-failed"
                    if action == "requeue" and state != TaskState.COMPLETED.value else "")
            echo(f"{rec.name}: {state}, not queued or running: nothing to {action}{hint}")
            counts[f"not {done_word}"] += 1
            continue
        groups[str(status.get("source") or rec.source or "local")].append(rec)
    sources = sweep_sources(project, registry, sweep, groups, warn=echo)
    for name, recs in groups.items():
        src = sources.get(name)
        if src is None:
            for rec in recs:
                echo(f"{rec.name}: source {name!r} cannot be reached from here")
            counts[f"not {done_word}"] += len(recs)
            continue
        try:
            results = src.control(task_specs(sweep, recs), action)
        finally:
            try:
                src.close()
            except Exception:
                pass
        for rec in recs:
            why = results.get(rec.task_id, "the source said nothing about it")
            if why:
                echo(f"{rec.name}: {why}")
                counts[f"not {done_word}"] += 1
            else:
                counts[done_word] += 1
    return dict(counts)
