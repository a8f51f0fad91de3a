"""Built-in plugin: dispatch strategies ``round_robin`` (default), ``least_loaded`` and ``random``."""

from __future__ import annotations

import random
from typing import Sequence

from hsm_core.plugin import DispatchStrategy, SourceSlot, StrategyRecord, TaskSpec, hookimpl


class RoundRobin(DispatchStrategy):
    """Sources take turns, in the order given in ``--sources``; a full source is skipped."""

    def __init__(self) -> None:
        self._order: list[str] = []  # every source name seen, in --sources order
        self._last: str | None = None

    def choose(self, task: TaskSpec, sources: Sequence[SourceSlot]) -> SourceSlot | None:
        if not sources:
            return None
        for slot in sources:
            if slot.name not in self._order:
                self._order.append(slot.name)
        # The turn passes to the next source after the last one served, whatever is full now.
        start = self._order.index(self._last) + 1 if self._last in self._order else 0
        free = {s.name: s for s in sources}
        for i in range(len(self._order)):
            name = self._order[(start + i) % len(self._order)]
            if name in free:
                self._last = name
                return free[name]
        return None


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
