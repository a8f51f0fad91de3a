"""The engine's queue of tasks to launch, made as it is consumed (issue 19).

A 100,000-task sweep used to build 100,000 :class:`~hsm_core.plugin.TaskSpec` objects (and their
paths) before its first task could start, and hold them all while it ran. :class:`SpecQueue`
holds the tasks' records and makes each spec when the engine first looks at it; it offers the
part of :class:`collections.deque` the engine uses (look at or replace the first, take it, put
tasks back in front or at the end, count, clear).
"""

from __future__ import annotations

import collections
from typing import Any, Callable, Iterable, Iterator, Sequence


class SpecQueue:
    """Tasks still to launch: specs already made (in front) followed by records not yet turned
    into specs (``make(record)`` does it)."""

    def __init__(self, records: Sequence[Any], make: Callable[[Any], Any]) -> None:
        self._records = records
        self._next = 0  # the first record not made into a spec yet
        self._make = make
        self._front: collections.deque[Any] = collections.deque()
        self._back: collections.deque[Any] = collections.deque()  # appended after the records

    def _fill(self) -> bool:
        if not self._front and self._next < len(self._records):
            self._front.append(self._make(self._records[self._next]))
            self._next += 1
        if not self._front and self._back:
            self._front.append(self._back.popleft())
        return bool(self._front)

    def __len__(self) -> int:
        return len(self._front) + (len(self._records) - self._next) + len(self._back)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __getitem__(self, i: int) -> Any:
        if i != 0 or not self._fill():
            raise IndexError("only the first task of the queue can be looked at")
        return self._front[0]

    def __setitem__(self, i: int, spec: Any) -> None:
        if i != 0 or not self._fill():
            raise IndexError("only the first task of the queue can be replaced")
        self._front[0] = spec

    def __iter__(self) -> Iterator[Any]:
        yield from self._front
        for rec in self._records[self._next:]:
            yield self._make(rec)
        yield from self._back

    def popleft(self) -> Any:
        if not self._fill():
            raise IndexError("pop from an empty queue")
        return self._front.popleft()

    def appendleft(self, spec: Any) -> None:
        self._front.appendleft(spec)

    def extendleft(self, specs: Iterable[Any]) -> None:
        self._front.extendleft(specs)

    def append(self, spec: Any) -> None:
        self._back.append(spec)

    def extend(self, specs: Iterable[Any]) -> None:
        self._back.extend(specs)

    def clear(self) -> None:
        self._front.clear()
        self._back.clear()
        self._next = len(self._records)
