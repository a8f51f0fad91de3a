"""Before a run writes anything: each source checks or prepares itself (:meth:`ComputeSource.before_run`).

A source that cannot be reached now (:class:`SourceUnavailable`) stops the run only when no other
source of the run could work meanwhile; otherwise the run starts with a warning and the engine
uses that source once it answers. Any other :class:`HsmError` stops the run. Plugins written for
plugin API 1.0/1.1 are asked through the deprecated ``hsm_before_run`` hook afterwards.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from hsm_core.plugin import ComputeSource, HsmError, RunStart, SourceUnavailable


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def prepare_sources(
    sources: Sequence[ComputeSource],
    run: RunStart,
    registry: Any,
    *,
    sweep_id: str,
    project_root: Path,
    project_config: Mapping[str, Any],
    warn: Callable[[str], None] = _stderr,
) -> None:
    """Call every source's :meth:`~ComputeSource.before_run`, then the deprecated hook; raise
    :class:`HsmError` for what stops the run (the caller closes the sources)."""
    unavailable: list[SourceUnavailable] = []
    for source in sources:
        try:
            source.before_run(run)
        except SourceUnavailable as exc:
            unavailable.append(exc)
    if unavailable and len(unavailable) == len(sources):
        first = unavailable[0]
        raise HsmError(first.message, hint=first.hint or "check the host, or run elsewhere with --sources local")
    for exc in unavailable:
        warn(f"Warning: {exc.message}; continuing with the other sources (it is used once it answers)")
    options = {
        "verify_sync": run.verify_sync,
        "sweep_id": sweep_id,
        "project_root": str(project_root),
        "interactive": run.interactive,
    }
    registry.hook.hsm_before_run(sources=list(sources), project_config=project_config, options=options)
