"""The hooks of hsm: :data:`hookimpl` and the hook specifications (part of :mod:`hsm_core.plugin`).

pluggy project ``"hsm"``; a plugin's entry-point module holds functions marked ``@hookimpl`` whose
names are hooks below. Registration hooks return a list of records (see
:mod:`hsm_core.plugin.records`); decision hooks are ``firstresult``; event hooks only notify. Hook
parameters never have defaults (pluggy does not pass defaulted arguments to implementations).
Every hook is documented in ``docs/hooks.md`` with this exact signature; ``tests/test_docs.py``
keeps the two in step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    import click

    from hsm_core.plugin.components import ComputeSource
    from hsm_core.plugin.records import (
        CollectorRecord,
        ComputeSourceRecord,
        ExpanderRecord,
        HostProviderRecord,
        StrategyRecord,
        SyncTransportRecord,
        TaskRegistryRecord,
        SearchStrategyRecord,
        PrunerRecord,
    )
    from hsm_core.plugin.components import WorkerFeature
    from hsm_core.plugin.values import SyncItem, TaskSpec

__all__ = ["PROJECT_NAME", "hookimpl"]

#: The pluggy project name: hooks are ``hsm_*``, entry points are of group ``hsm``.
PROJECT_NAME = "hsm"

#: Decorator marking a function as an implementation of an ``hsm_*`` hook.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

#: Marks the specifications below (core's own; plugins do not add hooks).
hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec
def hsm_register_expanders() -> list[ExpanderRecord]:
    """Register sweep-file sections that expand into parameter sets (``grid``, ``paired`` ...).

    Called once when the plugin manager is built.
    """


@hookspec
def hsm_register_dispatch_strategies() -> list[StrategyRecord]:
    """Register strategies choosing which source gets the next task (``round_robin`` ...).

    Called once when the plugin manager is built.
    """


@hookspec
def hsm_register_compute_sources() -> list[ComputeSourceRecord]:
    """Register kinds of compute source (``local``, ``ssh``, ``slurm``, ``pbs``).

    Called once when the plugin manager is built.
    """


@hookspec
def hsm_register_result_collectors() -> list[CollectorRecord]:
    """Register collectors that extract metrics from finished tasks.

    Called once when the plugin manager is built.
    """


@hookspec
def hsm_register_sync_transports() -> list[SyncTransportRecord]:
    """Register transports used by ``hsm sync`` (``rsync`` ...).

    Called once when the plugin manager is built.
    """


@hookspec
def hsm_sync_items(
    sweep_id: str, sweep_dir: str, project_root: str, project_config: Mapping[str, Any], options: Mapping[str, Any]
) -> list[SyncItem] | None:
    """Return what ``hsm sync`` copies for a sweep besides its own directory (W&B runs ...).

    Called once per target of a sync (``options``: that target's options after the command-line
    flags, e.g. ``latest_only``, ``target``). Results of all plugins are concatenated.
    """


@hookspec
def hsm_register_hosts() -> list[HostProviderRecord]:
    """Register host providers: factories ``(name, config) -> Host`` for a scheme (``ssh`` ...).

    Called once when the plugin manager is built.
    """


@hookspec
def hsm_register_task_registries() -> list[TaskRegistryRecord]:
    """Register task-state registries that pull-based workers ask before claiming a task.

    Called once when the plugin manager is built.
    """


@hookspec
def hsm_register_search_strategies() -> list[SearchStrategyRecord]:
    """Register adaptive search strategies for the ``search:`` sweep section (``random``, ``tpe`` ...).

    Called once when the plugin manager is built. Added in plugin API 1.3.
    """


@hookspec
def hsm_register_pruners() -> list[PrunerRecord]:
    """Register early-stopping pruners for the ``prune:`` sweep setting (``median``, ``asha`` ...).

    Called once when the plugin manager is built. Added in plugin API 1.4.
    """


@hookspec
def hsm_register_commands(cli: click.Group) -> None:
    """Add click commands or groups to the ``hsm`` command line.

    Called once when the CLI starts. ``cli`` is the top-level group.
    """


@hookspec(firstresult=True)
def hsm_make_task_id(params: Mapping[str, Any]) -> str | None:
    """Return the stable id of the task with these parameters.

    Called for every task when a sweep is expanded. The default is a hash of the canonical JSON
    of ``params``. Stops at the first non-None result.
    """


@hookspec(firstresult=True)
def hsm_test_target(target: str, project_root: str, timeout: float, echo: Callable[[str], None]) -> bool | None:
    """Deprecated since plugin API 1.2, removed in 2.0: implement :meth:`ComputeSource.test` instead.

    Check a compute target for ``hsm test TARGET`` (e.g. ``hpc:NAME``, ``ssh:NAME``). Asked only
    when the source the target names has no :meth:`~ComputeSource.test` (or the target names no
    installed source).

    Return None when ``target`` is not one of this plugin's kinds (the part before the first
    ``:``); otherwise run the checks (connect, find the commands, submit a tiny task within
    ``timeout`` seconds), print one line per check through ``echo`` and return True when every
    check passed, False when one failed (the command then exits 1). ``project_root`` is the
    project the command runs in. Stops at the first non-None result.
    """


@hookspec(firstresult=True)
def hsm_worker_feature(name: str, log: Callable[[str], None]) -> WorkerFeature | None:
    """Return the :class:`~hsm_core.plugin.WorkerFeature` that implements worker option ``name``
    (``"wandb-buffer"`` for ``hsm worker --wandb-buffer``), or None when it is not this plugin's.

    Called once per requested option when an ``hsm worker`` starts; ``log`` writes a line to the
    worker's log. A requested option that no plugin provides stops the worker (exit 2) before it
    claims anything. Stops at the first non-None result.
    """


@hookspec
def hsm_task_env(task: TaskSpec, sweep_config: Mapping[str, Any]) -> dict[str, str] | None:
    """Return extra environment variables for a task (merged over all plugins).

    Called when a task's ``command.json`` is written, before it is launched; not called for a
    plugin that implements :func:`hsm_task_env_batch` (the core asks that one instead).
    """


@hookspec
def hsm_task_env_batch(tasks: Sequence[TaskSpec], sweep_config: Mapping[str, Any]) -> Sequence[Mapping[str, str] | None] | None:
    """Since plugin API 1.5: :func:`hsm_task_env` for many tasks at once (one call for a block of
    up to 1,000 tasks of a big submission, instead of one call per task).

    Return one mapping (or None) per task of ``tasks``, in the same order, or None for none of
    them. A plugin implementing this hook (it declares ``HSM_PLUGIN_API = "1.5"``) is not asked
    :func:`hsm_task_env`; a plugin implementing both must give the same variables through each.
    :func:`hsm_core.testing.check_task_env_batch` checks a plugin's answers.
    """


@hookspec
def hsm_before_run(sources: Sequence[ComputeSource], project_config: Mapping[str, Any], options: Mapping[str, Any]) -> None:
    """Deprecated since plugin API 1.2, removed in 2.0: implement :meth:`ComputeSource.before_run` instead.

    Check or prepare the sources of a run before anything is written. Called once by ``hsm run`` /
    ``hsm sweep`` / ``hsm complete`` after the sources are created and each source's own
    :meth:`~ComputeSource.before_run` was called, before the sweep directory is written or a task
    is launched. ``options`` holds ``verify_sync`` (False with ``--no-verify-sync``), ``sweep_id``,
    ``project_root`` and ``interactive`` (a terminal is attached). Raise
    :class:`~hsm_core.plugin.HsmError` to stop the run (exit 2).
    """


@hookspec
def hsm_sweep_started(sweep_id: str, sweep_dir: str, total_tasks: int) -> None:
    """Notify that a sweep (or a ``complete`` of it) starts dispatching.

    Called once by the engine before the first task is launched.
    """


@hookspec
def hsm_task_finished(sweep_id: str, task_id: str, state: str, task_dir: str) -> None:
    """Notify that a task reached a final state (``completed``, ``failed`` ...).

    Called by the engine once per task when it sees the final state.
    """


@hookspec
def hsm_sweep_finished(sweep_id: str, sweep_dir: str, counts: Mapping[str, int]) -> None:
    """Notify that the engine stopped dispatching a sweep, with the count of tasks per state.

    Called once when the engine returns (also after an interrupt).
    """
