"""A throttle for the whole sweep, not per array job (part of the array-job toolkit of
:mod:`hsm_core.plugin`).

``array_parallelism: N`` promises that at most N array elements of the sweep run at once. A
scheduler's own throttle (Slurm's ``--array=0-999%N``, Torque's ``-t 0-999%N``, PBS Pro's
``max_run_subjobs``) holds for ONE array job, and a sweep larger than the scheduler's array limit
(``MaxArraySize``) is submitted as several: each with ``%N`` ran N at once *per chunk*.

How it is kept here: the chunks are put in *lanes*. The N slots are split over the lanes (their
throttles add up to N), and the chunks of one lane run one after the other: each waits for the
one before it in its lane with an ``afterany`` dependency (it starts when that array job ended,
however it ended). A lane is as wide as a chunk can use, so a large chunk gets one lane of N
slots and small chunks get several lanes side by side.

Why this and not the alternatives:

* splitting the throttle alone (N/k per chunk) does not work when there are more chunks than
  slots (1,200 tasks in chunks of 10 with N=2), and leaves slots idle once a chunk is done;
* submitting the next chunk when one ends needs a controller watching: a sweep started with
  ``--no-wait``, or whose controller died, would stop after its first chunks;
* dependencies live in the scheduler: the limit holds whoever watches, and ``hsm cancel``,
  ``scancel`` and a requeue behave as for any job. The price is a lane's tail: while the last
  elements of a chunk run, the next chunk of its lane waits (at most N-1 slots idle for the
  length of one task, once per chunk).

A later submission into the same sweep (the engine launching a further batch, ``hsm complete``)
puts its first chunks behind every chunk of the source that is still active, so the sweep-wide
limit holds across submissions too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

__all__ = ["ChunkSlot", "plan_lanes"]


@dataclass(frozen=True)
class ChunkSlot:
    """Where one chunk of a submission goes: its throttle and what it waits for."""

    #: ``%N`` of this array job (None: no throttle).
    parallelism: int | None
    #: The chunk of this same submission (its position) it starts after; None for a lane's head.
    after_chunk: int | None
    #: True for a lane's head: it waits for what was active before this submission (and for the
    #: jobs of ``hsm run --after``).
    head: bool


def plan_lanes(elements: Sequence[int], limit: int | None) -> list[ChunkSlot]:
    """The lanes of chunks of ``elements`` array elements each (in submission order) under a
    sweep-wide limit of ``limit`` elements at once (None: no limit).

    Every chunk of one lane waits for the previous chunk of that lane; the lanes' throttles add
    up to ``limit``. Without a limit every chunk is a head with no throttle.
    """
    n = len(elements)
    if n == 0:
        return []
    if limit is None:
        return [ChunkSlot(None, None, True) for _ in range(n)]
    widest = max(1, max(elements))
    # As many lanes as it takes for the limit to be usable (a lane runs one chunk at a time, so it
    # can use at most a chunk's width), never more than there are chunks.
    lanes = max(1, min(n, -(-limit // widest)))
    base, extra = divmod(limit, lanes)
    widths = [base + (1 if lane < extra else 0) for lane in range(lanes)]
    out = []
    for i in range(n):
        lane = i % lanes
        before = i - lanes if i >= lanes else None
        out.append(ChunkSlot(max(1, widths[lane]), before, before is None))
    return out
