"""Built-in plugin: dispatch strategies ``round_robin`` (default), ``least_loaded`` and ``random``."""

from __future__ import annotations

import random
from typing import Sequence

from hsm_core.plugin import DispatchStrategy, SourceSlot, StrategyRecord, TaskSpec, hookimpl


class RoundRobin(DispatchStrategy):
    """Sources take turns, in the order given in ``--sources``; a full source is skipped."""

    def __init__(self) -> None:
        self._next = 0

    def choose(self, task: TaskSpec, sources: Sequence[SourceSlot]) -> SourceSlot | None:
        if not sources:
            return None
        slot = sources[self._next % len(sources)]
        self._next += 1
        return slot


class LeastLoaded(DispatchStrategy):
    """The source with the lowest fraction of its capacity in use (ties: most free slots)."""

    def choose(self, task: TaskSpec, sources: Sequence[SourceSlot]) -> SourceSlot | None:
        if not sources:
            return None
        return min(sources, key=lambda s: (s.active / max(1, s.capacity), -s.free))


class RandomChoice(DispatchStrategy):
    """A random source, weighted by its free slots."""

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def choose(self, task: TaskSpec, sources: Sequence[SourceSlot]) -> SourceSlot | None:
        if not sources:
            return None
        return self._rng.choices(list(sources), weights=[s.free for s in sources])[0]


@hookimpl
def hsm_register_dispatch_strategies() -> list[StrategyRecord]:
    return [
        StrategyRecord("round_robin", "Sources take turns (default)", RoundRobin),
        StrategyRecord("least_loaded", "Lowest fraction of capacity in use first", LeastLoaded),
        StrategyRecord("random", "Random source, weighted by free slots", RandomChoice),
    ]
