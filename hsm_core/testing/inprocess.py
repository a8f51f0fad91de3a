"""Core driven in-process, for a plugin's tests that must reach inside a run.

``hsm run`` in a subprocess (:meth:`hsm_core.testing.project.Project.hsm`) is the usual way to test
a plugin end to end; a test that patches a plugin's class (a connection that drops at one chosen
moment) needs the run in its own process instead: :func:`run_sweep`. :func:`host_for` gives the
:class:`~hsm_core.plugin.Host` core hands a compute source for a host name
(:attr:`~hsm_core.plugin.SourceContext.get_host`). :func:`before_run` is the step core takes with
a run's sources before it writes anything (each source's ``before_run``, what stops the run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from hsm_core.plugin import ComputeSource, Host


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


def before_run(sources: list[ComputeSource], *, verify_sync: bool = True, interactive: bool = False,
               registry: Any = None, warn: Any = None) -> None:
    """What core does with a run's sources before the run writes anything: each source's
    :meth:`~hsm_core.plugin.ComputeSource.before_run`; an :class:`~hsm_core.plugin.HsmError` when
    the run must stop (every source unavailable, or a source refused), a warning line through
    ``warn`` (default: stderr) for each unavailable source the run goes on without. The sources'
    context names the sweep and the project."""
    from hsm_core.plugin import RunStart
    from hsm_core.run_start import prepare_sources
    from hsm_core.testing.helpers import fresh_registry

    registry = registry if registry is not None else fresh_registry(entry_points=True)
    context = sources[0].context
    kwargs = {} if warn is None else {"warn": warn}
    prepare_sources(sources, RunStart(verify_sync=verify_sync, interactive=interactive), registry,
                    sweep_id=context.sweep_id, project_root=Path(context.project_root),
                    project_config=context.project_config, **kwargs)
