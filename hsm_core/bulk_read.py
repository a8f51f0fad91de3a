"""Reading a whole sweep at once without Python's cycle collector running through it (issue 19).

``hsm status`` and ``hsm export`` of a 100,000-task sweep make a few hundred thousand objects in a
fraction of a second (decoded index columns, one record and one metrics dict per task). Every 700
new container objects the cyclic garbage collector runs, and each of its older generations
re-walks everything made so far: 0.1 s of a 0.9 s export, none of which can free anything (these
objects form no cycles and live until the command ends; reference counting frees the rest as
usual). A short read-only command turns the collector off while it reads and prints, and back on
after, so an in-process caller (a test, the Python API) keeps its collector.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def without_cycle_collection() -> Iterator[None]:
    """Turn the cyclic garbage collector off for the block (or the decorated function), and
    back on after it when it was on."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
