"""Versions: of the plugin API, and of the hsm-core running it (part of :mod:`hsm_core.plugin`)."""

from __future__ import annotations

from hsm_core import __version__ as _core_version

__all__ = ["PLUGIN_API_VERSION", "CORE_VERSION"]

#: The version of this API, ``(major, minor)``. A plugin declares the version it was written for in
#: its entry-point module, ``HSM_PLUGIN_API = "1.0"``, and hsm loads it only when the majors are
#: equal and the plugin's minor is not newer than this one. The major grows when something a plugin
#: may use changes or goes away (plugins written for the old major are then listed as failed, "upgrade
#: the plugin"); the minor grows when something is only added (a plugin that needs the addition
#: declares the new minor, and an older core says "upgrade hsm-core"). A new major comes only with a
#: new hsm-core release line (0.1 -> 0.2), so a plugin for API 1.0 requires ``hsm-core>=0.1,<0.2``.
PLUGIN_API_VERSION: tuple[int, int] = (1, 6)
#: 1.1 added: ComputeSourceRecord.batch_scheduler, config_section, job_from_env; ComputeSource.submit_workers,
#: WorkerArray, WorkersSubmitted, WorkerFeature and the hsm_worker_feature hook.
#: 1.2 added: ComputeSource.test (with TargetTest) and ComputeSource.before_run (with RunStart), the
#: methods that replace the hooks hsm_test_target and hsm_before_run. Those hooks still work in 1.x,
#: deprecated (``hsm plugins`` names the plugins that use them: DEPRECATED_HOOKS); they go away in 2.0.
#: 1.3 added: adaptive search, SearchStrategy (ask/tell) with SearchSettings, SearchParam, Trial,
#: SearchStrategyRecord and the hsm_register_search_strategies hook.
#: 1.4 added: early stopping, Pruner (judge) with PrunerSettings, TrialProgress, PruneDecision,
#: PrunerRecord, the hsm_register_pruners hook and the task state ``pruned``.
#:     Also SearchStrategy.trial_data with Trial.data (state a strategy keeps across asks), and
#:     read_search_trials (an adaptive sweep's trials for views such as a dashboard).
#: 1.5 added: the hsm_task_env_batch hook (hsm_task_env for a block of tasks in one call).

#: The version of the hsm-core distribution (``"0.1.0"``), e.g. to compare with the hsm-core a
#: remote host has.
CORE_VERSION: str = _core_version

#: Hooks that still work in this major version but go away in the next one -> what replaces them.
#: The loader lists a plugin that implements one as loaded with a deprecation warning.
DEPRECATED_HOOKS: dict[str, str] = {
    "hsm_test_target": "ComputeSource.test",
    "hsm_before_run": "ComputeSource.before_run",
}
