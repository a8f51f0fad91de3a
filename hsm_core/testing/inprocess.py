"""Core driven in-process, for a plugin's tests that must reach inside a run.

``hsm run`` in a subprocess (:meth:`hsm_core.testing.project.Project.hsm`) is the usual way to test
a plugin end to end; a test that patches a plugin's class (a connection that drops at one chosen
moment) needs the run in its own process instead: :func:`run_sweep`. :func:`host_for` gives the
:class:`~hsm_core.plugin.Host` core hands a compute source for a host name
(:attr:`~hsm_core.plugin.SourceContext.get_host`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from hsm_core.plugin import Host


def run_sweep(
    sweep_file: str | Path,
    *,
    project_root: str | Path,
    sources: str = "local",
    sweep_id: str | None = None,
    registry: Any = None,
    **options: Any,
) -> dict[str, int]:
    """Plan and run the sweep of ``sweep_file`` as ``hsm run --config FILE --sources SOURCES`` would,
    in this process; returns the number of tasks per final state. ``options`` are further options
    of the run (``strategy``, ``verify_sync`` ...); ``registry`` defaults to a fresh one with the
    installed plugins."""
    from hsm_core.lifecycle import ExecOptions, execute, plan_run
    from hsm_core.testing.helpers import fresh_registry

    registry = registry if registry is not None else fresh_registry(entry_points=True)
    plan = plan_run(Path(sweep_file), registry, project_root=Path(project_root), sweep_id=sweep_id)
    return execute(plan, ExecOptions(sources=sources, **options), registry)


def host_for(name: str, project_config: Mapping[str, Any], registry: Any = None) -> Host:
    """The host named ``name`` (``local``, a ``distributed.remotes`` entry, or ``user@host:port``)
    as a source receives it from core; ``registry`` defaults to a fresh one with the installed plugins."""
    from hsm_core.hosts import get_host
    from hsm_core.testing.helpers import fresh_registry

    return get_host(name, project_config, registry if registry is not None else fresh_registry(entry_points=True))
