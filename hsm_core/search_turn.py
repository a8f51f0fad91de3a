"""One ask at a time per adaptive sweep: every new ask sees every earlier one as pending.

Without it, two workers (or a worker and a controller) that ask for trials 7 and 8 at the same
moment each rebuild the strategy from a log holding neither: both strategies are told the same
history, neither hears of the other's pending trial, and a model-based sampler may well propose
the same configuration twice. Holding the sweep's *ask turn* while reading the log, asking and
recording the ask makes the second asker see trial 7 as ``running``.

The turn is a lock file, ``<sweep>/search/.locks/ask.lock``, claimed with the protocol of the
workers' task claims (:mod:`hsm_core.workers.claims`: created whole, never left empty by a kill; a lock
whose holder died on this machine is taken over at once, one on another machine once it is older
than :data:`STALE_AFTER`). An ask takes milliseconds to a few seconds, so a lock that old was
left by a dead process.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from hsm_core.workers.claims import ClaimStore

#: Seconds after which a turn held on another machine is taken over (no ask takes this long).
STALE_AFTER = 120.0
#: Seconds between two tries for a turn someone holds.
POLL = 0.02
_TURN = "ask"


@contextmanager
def ask_turn(search_dir: Path, wait: float = 2 * STALE_AFTER) -> Iterator[bool]:
    """Hold the ask turn of the sweep whose trial log is ``search_dir`` while the block runs.

    Yields True when held. After ``wait`` seconds without it (a live holder stuck for longer
    than any ask takes, or an unwritable directory) yields False and the block runs anyway:
    a duplicate proposal is better than a sweep that stops."""
    store = ClaimStore(Path(search_dir) / ".locks", stale_timeout=STALE_AFTER)
    deadline = time.monotonic() + wait
    claim = None
    while claim is None:
        try:
            claim = store.acquire(_TURN)
        except OSError:
            break
        if claim is None:
            if time.monotonic() > deadline:
                break
            time.sleep(POLL)
    try:
        yield claim is not None
    finally:
        if claim is not None:
            try:
                store.release(claim)
            except OSError:
                pass
