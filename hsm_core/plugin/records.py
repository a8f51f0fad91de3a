"""Registration records: what the ``hsm_register_*`` hooks return (part of :mod:`hsm_core.plugin`).

A record describes one component by name, one-line summary, JSON-Schema fragment for its options,
and a *lazy* factory ``"module:attr"``, so that heavy libraries are imported only when the
component is used and registering costs nothing at start-up.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

__all__ = [
    "load_object",
    "ComponentRecord",
    "ExpanderRecord",
    "StrategyRecord",
    "ComputeSourceRecord",
    "CollectorRecord",
    "SyncTransportRecord",
    "HostProviderRecord",
    "TaskRegistryRecord",
    "SearchStrategyRecord",
    "PrunerRecord",
]


def load_object(ref: str) -> Any:
    """Import ``"package.module:attr"`` and return the attribute (used for lazy factories)."""
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ValueError(f"factory reference must look like 'module:attr', got {ref!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class ComponentRecord:
    """What a registration hook returns for one component.

    ``factory`` is either a callable or a ``"module:attr"`` string imported on first use, so that
    registering a component costs nothing at start-up.
    """

    name: str
    summary: str
    factory: str | Callable[..., Any]
    #: JSON Schema (draft 2020-12) of the component's options; merged into ``hsm config schema``.
    config_schema: Mapping[str, Any] = field(default_factory=dict)
    #: Filled in by the plugin manager: the distribution that registered it.
    distribution: str | None = None

    kind: ClassVar[str] = "component"

    def load(self) -> Any:
        """Return the factory, importing it if it was given as a string."""
        return load_object(self.factory) if isinstance(self.factory, str) else self.factory


@dataclass(frozen=True)
class ExpanderRecord(ComponentRecord):
    """An expander turns one section of a sweep file (e.g. ``grid:``) into parameter sets."""

    #: The sweep-file key this expander handles (``grid``, ``paired``, ``random`` ...).
    section: str = ""
    kind: ClassVar[str] = "expander"


@dataclass(frozen=True)
class StrategyRecord(ComponentRecord):
    """A dispatch strategy: which source gets the next task."""

    kind: ClassVar[str] = "strategy"


@dataclass(frozen=True)
class ComputeSourceRecord(ComponentRecord):
    """A kind of compute source (``local``, ``ssh``, a batch scheduler ...).

    Core learns everything it needs about a kind from this record and its class (docs/hpc.md,
    "Scheduler plugins"): where its options live, whether it is a batch scheduler, its aliases,
    how to detect it, and how to recognise its own jobs from their environment.
    """

    #: Other spellings accepted in ``--sources`` and ``hpc.system``.
    aliases: tuple[str, ...] = ()
    #: Optional ``"module:attr"`` of a zero-argument callable returning True when this kind of
    #: source is usable on this machine (``--sources hpc`` asks every batch scheduler's record).
    detect: str | Callable[[], bool] | None = None
    #: Programs the source runs on this machine when its options name no login-node ``host:``
    #: (a scheduler's client commands, e.g. submit, query, cancel): ``hsm run``, ``--dry-run`` and
    #: ``hsm config validate`` refuse up front, naming the first one missing.
    local_commands: tuple[str, ...] = ()
    #: A batch scheduler (array jobs): ``hpc.system`` and ``--sources hpc[:CLUSTER]`` may name it, its
    #: options are also read from ``hpc:`` and ``hpc.clusters.NAME``, and ``hsm worker submit``,
    #: ``hsm queue`` and ``hsm test`` accept it (its class is a ``hsm_core.plugin.ArrayJobSource``).
    batch_scheduler: bool = False
    #: Where the kind's options live in ``hsm_config.yaml`` (dotted; ``config_schema`` validates them
    #: there). Default ``compute.<name>``. A section ending in ``.*`` holds one entry per instance,
    #: selected as ``KIND:NAME`` (the ssh plugin: ``distributed.remotes.*``).
    config_section: str = ""
    #: Optional ``"module:attr"`` of ``f(environ) -> dict | None``: when ``environ`` is that of one
    #: of this scheduler's jobs, the job as ``HSM_JOB_*`` variables (``hsm_core.jobenv``), else None.
    #: Pull-based workers started by hand inside a job (``sbatch run_worker.sh``) use it for claims.
    job_from_env: str | Callable[[Mapping[str, str]], Mapping[str, str] | None] | None = None
    kind: ClassVar[str] = "compute_source"

    def detected(self) -> bool:
        """True when ``detect`` says this source kind is available here."""
        if self.detect is None:
            return False
        fn = load_object(self.detect) if isinstance(self.detect, str) else self.detect
        return bool(fn())

    def options_section(self) -> str:
        """``config_section``, or ``compute.<name>`` when the record names none."""
        return self.config_section or f"compute.{self.name}"

    def running_job(self, environ: Mapping[str, str]) -> dict[str, str] | None:
        """The job of this scheduler that ``environ`` belongs to, as ``HSM_JOB_*`` variables, or None."""
        if self.job_from_env is None:
            return None
        fn = load_object(self.job_from_env) if isinstance(self.job_from_env, str) else self.job_from_env
        job = fn(environ)
        return {str(k): str(v) for k, v in job.items()} if job else None


@dataclass(frozen=True)
class CollectorRecord(ComponentRecord):
    """A result collector: extracts metrics from a finished task."""

    kind: ClassVar[str] = "result_collector"


@dataclass(frozen=True)
class SyncTransportRecord(ComponentRecord):
    """A sync transport (``rsync``...): moves a directory tree to or from a target."""

    kind: ClassVar[str] = "sync_transport"


@dataclass(frozen=True)
class HostProviderRecord(ComponentRecord):
    """Provides :class:`Host` objects for a scheme (``local``, ``ssh``)."""

    kind: ClassVar[str] = "host_provider"
    #: ``hsm config validate --check-sync`` (plugin API 1.2): ``sync_check(project_config, echo)``
    #: compares each remote of ``distributed.remotes`` (hosts of this provider) with this
    #: machine's project, one report per remote through ``echo``, and returns True when all are
    #: in sync. A callable or a ``"module:attr"`` string imported on first use; None: cannot tell.
    sync_check: str | Callable[[Any, Callable[[str], None]], bool] | None = None


@dataclass(frozen=True)
class TaskRegistryRecord(ComponentRecord):
    """A task-state registry: answers "is this run finished elsewhere" for pull-based workers."""

    kind: ClassVar[str] = "task_registry"


@dataclass(frozen=True)
class SearchStrategyRecord(ComponentRecord):
    """An adaptive search strategy (``search: {strategy: NAME}``): ``factory(settings)`` returns a
    :class:`~hsm_core.plugin.SearchStrategy` (plugin API 1.3)."""

    kind: ClassVar[str] = "search_strategy"


@dataclass(frozen=True)
class PrunerRecord(ComponentRecord):
    """An early-stopping pruner (``prune: {pruner: NAME}``): ``factory(settings)`` returns a
    :class:`~hsm_core.plugin.Pruner` (plugin API 1.4)."""

    kind: ClassVar[str] = "pruner"
