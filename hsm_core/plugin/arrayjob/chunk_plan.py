"""How a batch of tasks is cut into array jobs (part of the array-job toolkit of
:mod:`hsm_core.plugin`): one plan that ``hsm run`` submits (:func:`.submission.launch`) and
``hsm run --dry-run`` shows (:mod:`hsm_core.dry_run_scripts`), so that the dry run shows exactly
what the run submits.

The cut, in order: the tasks are grouped by their resources (per-task resource rules: each set of
equal resources goes to array jobs of its own, in the order the groups first appear); each group
is split into chunks of at most the array size limit times ``tasks_per_element`` tasks; then the
chunks are placed in the sweep's throttle lanes (:mod:`.throttle`): each chunk's ``%N`` and the
chunk of this same submission it waits for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from hsm_core.plugin.arrayjob.script import chunk_ranges
from hsm_core.plugin.arrayjob.throttle import ChunkSlot, plan_lanes

__all__ = ["PlannedChunk", "ChunkPlan", "plan_chunks", "lanes_of"]


@dataclass(frozen=True)
class PlannedChunk:
    """One array job of a plan, in submission order."""

    #: Position in the plan (0 for the first array job submitted).
    position: int
    #: The resources its elements ask for (a :class:`~hsm_core.plugin.Resources`).
    resources: Any
    #: Which set of resources (0 for the first group) it belongs to.
    group: int
    #: Offset of its first task within its group, and how many tasks it runs.
    first: int
    size: int
    #: Its tasks (specs, in array order); empty when the plan was made from a count alone.
    tasks: tuple[Any, ...]
    #: Array elements: ``size`` over tasks per element, rounded up.
    elements: int
    #: Its throttle (``%N``) and the chunk of this plan it waits for (see :class:`.throttle.ChunkSlot`).
    slot: ChunkSlot


@dataclass(frozen=True)
class ChunkPlan:
    """The array jobs one submission makes, and what its lanes' heads wait for."""

    chunks: tuple[PlannedChunk, ...]
    #: Job ids every lane's head waits for: this source's array jobs still active (so that
    #: ``array_parallelism`` holds across submissions) and those of ``hsm run --after``.
    waits_for: tuple[str, ...]
    #: Number of resource groups (1 without per-task resources).
    groups: int
    #: Tasks per array job at most (the array size limit) and tasks per element.
    max_array_size: int
    per_element: int

    @property
    def tasks(self) -> int:
        """Tasks in the plan."""
        return sum(c.size for c in self.chunks)

    def after(self, chunk: PlannedChunk, job_ids: Sequence[str]) -> tuple[str, ...]:
        """What ``chunk`` waits for, given the job ids of the chunks before it (in order)."""
        if chunk.slot.head:
            return self.waits_for
        return (job_ids[chunk.slot.after_chunk],)

    def signature(self) -> list[tuple[int, int, int, int, int | None, int | None]]:
        """(group, first, size, elements, %N, after chunk) of each chunk: what two plans of the
        same tasks agree on (the run's and the dry run's)."""
        return [(c.group, c.first, c.size, c.elements, c.slot.parallelism, c.slot.after_chunk) for c in self.chunks]


def plan_chunks(src: Any, tasks: Sequence[Any] | None = None, *, count: int | None = None,
                max_array_size: int | None = None) -> ChunkPlan:
    """The plan of source ``src`` (an :class:`~hsm_core.plugin.arrayjob.source.ArrayJobSource`)
    for ``tasks`` (specs, in order) or, without them, for ``count`` tasks of the source's own
    resources (a dry run that does not know the tasks). ``max_array_size``: the array size limit
    to use instead of asking the scheduler (a dry run through a login node opens no connection)."""
    limit = int(max_array_size) if max_array_size else src.max_array_size()
    per = src.per_element
    if tasks is not None:
        groups: list[tuple[Any, Sequence[Any] | None, int]] = [
            (resources, group, len(group)) for resources, group in src.resource_groups(list(tasks))]
    else:
        groups = [(src.resources, None, int(count or 0))]
    pieces = []
    for number, (resources, group, n) in enumerate(groups):
        for start, size in chunk_ranges(n, limit * per):
            members = tuple(group[start : start + size]) if group is not None else ()
            pieces.append((resources, number, start, size, members))
    elements = [-(-size // per) for _, _, _, size, _ in pieces]
    slots, waits_for = lanes_of(src, elements)
    chunks = tuple(PlannedChunk(i, resources, number, start, size, members, n_elements, slot)
                   for i, ((resources, number, start, size, members), n_elements, slot)
                   in enumerate(zip(pieces, elements, slots)))
    return ChunkPlan(chunks, waits_for, len(groups), limit, per)


def lanes_of(src: Any, elements: Sequence[int]) -> tuple[list[ChunkSlot], tuple[str, ...]]:
    """The throttle lanes of one submission (see :mod:`.throttle`) and what its lanes' heads wait
    for: the array jobs of this source still active (so that ``array_parallelism`` holds across
    submissions) and the jobs of ``hsm run --after``. A scheduler without dependencies gets
    every chunk throttled alone, as before (logged when that lets more than N run)."""
    limit = src.array_parallelism
    if not getattr(src, "supports_dependencies", False):
        if limit and len(elements) > 1:
            src.log(f"{src.scheduler_name} jobs cannot depend on each other here: each of {len(elements)} array jobs "
                    f"runs {limit} element(s) at once")
        return [ChunkSlot(limit, None, True) for _ in elements], ()
    earlier: list[str] = []
    if limit:
        live = {t.chunk_id for t in src.watcher.tracked.values() if t.chunk_id}
        earlier = [cid for cid in src.watcher.chunks if cid in live]
    waits = tuple(dict.fromkeys([*earlier, *getattr(src, "after_jobs", ())]))
    return plan_lanes(elements, limit), waits
