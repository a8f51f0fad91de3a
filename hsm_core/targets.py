"""A compute target named on the command line (``hsm test TARGET``, ``hsm queue``, ``hsm cancel``):
the source that ``--sources TARGET`` would create, made outside a run.

Such a source is given a context that names the project and a sweep (the sweep to cancel, or a
placeholder: the project's output directory), with the project's hosts (``host:`` of a cluster).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from hsm_core.plugin import ArrayJobSource, ComputeSource, HsmError, SourceContext


def source_context(project: Any, registry: Any, sweep_id: str, sweep_dir: Path) -> SourceContext:
    """The context a source of ``project`` is created with, outside a run of the engine."""
    from hsm_core.hosts import get_host

    ctx = SourceContext(
        sweep_id=sweep_id,
        sweep_dir=sweep_dir.resolve(),
        project_root=project.root.resolve(),
        project_config=project.data,
    )
    ctx.get_host = lambda name: get_host(name, project.data, registry)
    return ctx


def scheduler_hint(registry: Any) -> str:
    """The targets a batch scheduler can be named by (``hpc, hpc:NAME, slurm, ...``)."""
    from hsm_core.registry import scheduler_names

    return ", ".join(["hpc", "hpc:NAME", *scheduler_names(registry)])


def target_source(target: str, project: Any, registry: Any, sweep_dir: Path | None = None,
                  sweep_id: str = "hsm_test") -> ComputeSource:
    """The one source ``--sources TARGET`` would create (``local``, ``ssh:NAME``, ``hpc:NAME`` ...)."""
    from hsm_core.sources import create_sources, parse_sources

    requests = parse_sources(target, project.data, registry)
    if len(requests) != 1:
        raise HsmError(f"give one target, not {target!r}")
    context = source_context(project, registry, sweep_id, sweep_dir or project.output_dir)
    return create_sources(requests, registry, context)[0]


def scheduler_source(target: str, project: Any, registry: Any, sweep_dir: Path | None = None,
                     sweep_id: str = "hsm_test") -> ArrayJobSource:
    """The batch-scheduler source ``--sources TARGET`` would create (``hpc``, ``hpc:NAME``, a
    scheduler's name); anything else is refused, saying which targets are schedulers."""
    from hsm_core.sources import create_sources, parse_sources

    requests = parse_sources(target, project.data, registry)
    if len(requests) != 1:
        raise HsmError(f"give one scheduler, not {target!r}")
    context = source_context(project, registry, sweep_id, sweep_dir or project.output_dir)
    source = create_sources(requests, registry, context)[0]
    if not isinstance(source, ArrayJobSource):
        raise HsmError(f"{target!r} is a {type(source).__name__}, not a batch scheduler", hint="use " + scheduler_hint(registry))
    return source


def queue_listing(source: ArrayJobSource, job_ids: Sequence[str] = (), *, ended: bool = False) -> str:
    """The scheduler's own listing (``squeue``, ``qstat`` ...) of the user's jobs still queued or
    running (``ended``: also those it remembers that ended), only ``job_ids`` when given."""
    res = source.queue_listing(job_ids, ended=ended)
    if res.returncode != 0:
        # One line: the scheduler's last word (squeue without a controller prints three errors).
        said = [ln.strip() for ln in (res.stderr or res.stdout or "").splitlines() if ln.strip()]
        raise HsmError(f"{' '.join(source.queue_argv())} failed (exit {res.returncode}): {said[-1] if said else 'no output'}",
                       hint="is this machine a submit host of the cluster? hsm test hpc checks it")
    return res.stdout


def sweep_job_ids(sweep_dir: Path, source: ArrayJobSource) -> tuple[str, ...]:
    """The array jobs the sweep in ``sweep_dir`` submitted to ``source``'s scheduler (from its
    ``jobs.jsonl``); a sweep with none is one line, exit 2."""
    from hsm_core.plugin.arrayjob.dependencies import sweep_jobs

    ids, others = sweep_jobs(Path(sweep_dir), source.scheduler_name, {source.name})
    if not ids:
        where = f"its jobs went to {', '.join(sorted(others))}" if others else "it submitted no array jobs"
        raise HsmError(f"sweep {Path(sweep_dir).name} has no {source.scheduler_name} jobs ({where})",
                       hint="give --cluster NAME for another cluster of hpc.clusters")
    return tuple(ids)
