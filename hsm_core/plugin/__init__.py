"""The contract between hsm and its plugins: everything a plugin may use, in one package.

Plugins import from here (and from :mod:`hsm_core.testing` in their tests) and from nowhere else
in ``hsm_core``; ``tests/test_plugin_boundary.py`` holds every distribution of hsm's repository to
it, and ``docs/plugin-api.md`` documents every name below. The contract is versioned
(:data:`PLUGIN_API_VERSION`; a plugin declares the version it was written for and the loader
checks it). The names are grouped by the submodule that defines them, one concern each:

* :mod:`~hsm_core.plugin.version`: the plugin-API version and hsm-core's.
* :mod:`~hsm_core.plugin.hooks`: :data:`hookimpl` and the hook specifications.
* :mod:`~hsm_core.plugin.records`: what registration hooks return (:class:`ComputeSourceRecord` ...).
* :mod:`~hsm_core.plugin.components`: the ABCs a plugin implements (:class:`ComputeSource` ...).
* :mod:`~hsm_core.plugin.values`: the value types core and components pass each other.
* :mod:`~hsm_core.plugin.errors`: :class:`HsmError` and its kinds.
* :mod:`~hsm_core.plugin.taskfiles`: a task directory's files (``status.yaml``, the markers).
* :mod:`~hsm_core.plugin.sweepdir`: a sweep directory's logs and index.
* :mod:`~hsm_core.plugin.files`: atomic file writes.
* :mod:`~hsm_core.plugin.process_identity`: :mod:`processes`, is this still *that* process.
* :mod:`~hsm_core.plugin.local_host`: :class:`LocalHost`, the :class:`Host` of this machine.
* :mod:`~hsm_core.plugin.project`: the project and its sweeps, for a plugin's own commands.
* :mod:`~hsm_core.plugin.arrayjob`: the toolkit for array-job schedulers (:class:`ArrayJobSource` ...).

Each name is imported from its submodule on first use (PEP 562), so that a light user (a script
the ssh plugin runs on a remote host once per poll, which needs only the task files) does not pay
for the rest, and ``hsm --help`` does not load the array-job toolkit.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - what the lazy loading below resolves, for type checkers
    from hsm_core.plugin.arrayjob.directives import check_line, check_name, directive_path, finish_directives
    from hsm_core.plugin.arrayjob.vocabulary import MAIL_TYPES, check_constraint, parse_bool, parse_gpus, parse_mail_type
    from hsm_core.plugin.arrayjob.resources import (
        Resources,
        format_memory,
        format_walltime,
        parse_memory,
        parse_resource_string,
        parse_walltime,
        resources_from_options,
    )
    from hsm_core.plugin.arrayjob.schema import COMMON_SCHEMA
    from hsm_core.plugin.arrayjob.warning import timer_lines
    from hsm_core.plugin.arrayjob.script import LAUNCHER_VARIABLE, ArrayJob, ScriptRenderer, chunk_ranges, script_body
    from hsm_core.plugin.arrayjob.manifest import SubmittedChunk
    from hsm_core.plugin.arrayjob.source import ArrayJobSource
    from hsm_core.plugin.arrayjob.states import (
        TRANSIENT_PATTERNS,
        JobInfo,
        QueryFailed,
        QueueState,
        Verdict,
        resolve_task_state,
    )
    from hsm_core.plugin.components import (
        ComputeSource,
        DispatchStrategy,
        Expander,
        Host,
        ResultCollector,
        SyncTransport,
        TaskRegistry,
        WorkerFeature,
    )
    from hsm_core.plugin.errors import ComponentNotFound, ConfigError, HsmError, NotInCharge, SourceUnavailable
    from hsm_core.plugin.files import (
        atomic_write_bytes,
        atomic_write_json,
        atomic_write_text,
        atomic_write_yaml,
        dump_yaml,
        read_json,
        read_yaml,
    )
    from hsm_core.plugin.hooks import PROJECT_NAME, hookimpl
    from hsm_core.plugin.local_host import LocalHost
    from hsm_core.plugin.process_identity import processes
    from hsm_core.plugin.project import (
        ProjectLocation,
        SweepLocation,
        locate_project,
        locate_sweep,
        make_probe_task,
        read_search_trials,
        set_project_setting,
    )
    from hsm_core.plugin.records import (
        CollectorRecord,
        ComponentRecord,
        ComputeSourceRecord,
        ExpanderRecord,
        HostProviderRecord,
        StrategyRecord,
        SyncTransportRecord,
        TaskRegistryRecord,
        SearchStrategyRecord,
        PrunerRecord,
        load_object,
    )
    from hsm_core.plugin.pruning import PruneDecision, Pruner, PrunerSettings, TrialProgress
    from hsm_core.plugin.search import SearchParam, SearchSettings, SearchStrategy, Trial
    from hsm_core.plugin.sweepdir import refresh_sweep_index, source_log
    from hsm_core.plugin.taskfiles import (
        EXIT_MARKER,
        PID_FILE,
        RUNNER_LOG,
        RUNNER_MODULE,
        SOURCE_DATA,
        STATUS_FILE,
        STDERR_LOG,
        STDOUT_LOG,
        WRAPPER_NAME,
        RESULTS_DIR,
        finalize_status,
        keep_source_data,
        left_exit_code,
        now_iso,
        read_status,
        reconcile_status,
        runner_log_path,
        source_data,
        started_process,
        status_path,
        stderr_path,
        stdout_path,
        stop_orphaned_command,
        with_source_data,
        write_status,
    )
    from hsm_core.plugin.values import (
        CommandResult,
        HealthReport,
        SourceContext,
        SourceSlot,
        SyncItem,
        TaskSpec,
        TaskState,
        TaskUpdate,
        TransferResult,
        WorkerArray,
        WorkersSubmitted,
        RunStart,
        TargetTest,
    )
    from hsm_core.plugin.version import CORE_VERSION, PLUGIN_API_VERSION


def _names(submodule: str, *names: str) -> dict[str, str]:
    return dict.fromkeys(names, submodule)


#: Each exported name -> the module of this package that defines it (or re-exports it).
_SUBMODULE: dict[str, str] = {
    **_names("version", "PLUGIN_API_VERSION", "CORE_VERSION"),
    **_names("hooks", "PROJECT_NAME", "hookimpl"),
    **_names(
        "records",
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
    ),
    **_names("search", "SearchStrategy", "SearchSettings", "SearchParam", "Trial"),
    **_names("pruning", "Pruner", "PrunerSettings", "TrialProgress", "PruneDecision"),
    **_names(
        "components",
        "ComputeSource",
        "DispatchStrategy",
        "Expander",
        "ResultCollector",
        "SyncTransport",
        "TaskRegistry",
        "Host",
        "WorkerFeature",
    ),
    **_names(
        "values",
        "TaskState",
        "TaskSpec",
        "TaskUpdate",
        "HealthReport",
        "SourceContext",
        "SourceSlot",
        "CommandResult",
        "TransferResult",
        "SyncItem",
        "WorkerArray",
        "WorkersSubmitted",
        "RunStart",
        "TargetTest",
    ),
    **_names("errors", "HsmError", "ConfigError", "ComponentNotFound", "SourceUnavailable", "NotInCharge"),
    **_names(
        "taskfiles",
        "RUNNER_MODULE",
        "read_status",
        "write_status",
        "finalize_status",
        "reconcile_status",
        "left_exit_code",
        "started_process",
        "stop_orphaned_command",
        "now_iso",
        "status_path",
        "stdout_path",
        "stderr_path",
        "SOURCE_DATA",
        "source_data",
        "with_source_data",
        "keep_source_data",
        "STATUS_FILE",
        "STDOUT_LOG",
        "STDERR_LOG",
        "RUNNER_LOG",
        "runner_log_path",
        "EXIT_MARKER",
        "PID_FILE",
        "WRAPPER_NAME",
        "RESULTS_DIR",
    ),
    **_names("sweepdir", "source_log", "refresh_sweep_index"),
    **_names(
        "files",
        "atomic_write_bytes",
        "atomic_write_text",
        "atomic_write_yaml",
        "atomic_write_json",
        "dump_yaml",
        "read_yaml",
        "read_json",
    ),
    **_names("process_identity", "processes"),
    **_names("local_host", "LocalHost"),
    **_names(
        "project",
        "ProjectLocation",
        "locate_project",
        "set_project_setting",
        "SweepLocation",
        "locate_sweep",
        "make_probe_task",
        "read_search_trials",
    ),
    **_names("arrayjob.source", "ArrayJobSource"),
    **_names("arrayjob.manifest", "SubmittedChunk"),
    **_names("arrayjob.script", "ArrayJob", "ScriptRenderer", "script_body", "chunk_ranges", "LAUNCHER_VARIABLE"),
    **_names("arrayjob.vocabulary", "MAIL_TYPES", "check_constraint", "parse_gpus", "parse_mail_type", "parse_bool"),
    **_names(
        "arrayjob.resources",
        "Resources",
        "resources_from_options",
        "parse_resource_string",
        "parse_walltime",
        "format_walltime",
        "parse_memory",
        "format_memory",
    ),
    **_names("arrayjob.directives", "check_name", "check_line", "finish_directives", "directive_path"),
    **_names("arrayjob.schema", "COMMON_SCHEMA"),
    **_names("arrayjob.warning", "timer_lines"),
    **_names(
        "arrayjob.states", "QueueState", "JobInfo", "Verdict", "QueryFailed", "TRANSIENT_PATTERNS", "resolve_task_state"
    ),
}

__all__ = [
    # version
    "PLUGIN_API_VERSION",
    "CORE_VERSION",
    # hooks
    "PROJECT_NAME",
    "hookimpl",
    # records
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
    # early stopping (API 1.4)
    "Pruner",
    "PrunerSettings",
    "TrialProgress",
    "PruneDecision",
    # search (API 1.3)
    "SearchStrategy",
    "SearchSettings",
    "SearchParam",
    "Trial",
    # components
    "ComputeSource",
    "DispatchStrategy",
    "Expander",
    "ResultCollector",
    "SyncTransport",
    "TaskRegistry",
    "Host",
    "WorkerFeature",
    # values
    "TaskState",
    "TaskSpec",
    "TaskUpdate",
    "HealthReport",
    "SourceContext",
    "SourceSlot",
    "CommandResult",
    "TransferResult",
    "SyncItem",
    "WorkerArray",
    "WorkersSubmitted",
    "RunStart",
    "TargetTest",
    # errors
    "HsmError",
    "ConfigError",
    "ComponentNotFound",
    "SourceUnavailable",
    "NotInCharge",
    # taskfiles
    "RUNNER_MODULE",
    "read_status",
    "write_status",
    "finalize_status",
    "reconcile_status",
    "left_exit_code",
    "started_process",
    "stop_orphaned_command",
    "now_iso",
    "status_path",
    "stdout_path",
    "stderr_path",
    "SOURCE_DATA",
    "source_data",
    "with_source_data",
    "keep_source_data",
    "STATUS_FILE",
    "STDOUT_LOG",
    "STDERR_LOG",
    "RUNNER_LOG",
    "runner_log_path",
    "EXIT_MARKER",
    "PID_FILE",
    "WRAPPER_NAME",
    "RESULTS_DIR",
    # sweepdir
    "source_log",
    "refresh_sweep_index",
    # files
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_yaml",
    "atomic_write_json",
    "dump_yaml",
    "read_yaml",
    "read_json",
    # process_identity
    "processes",
    # local_host
    "LocalHost",
    # project
    "ProjectLocation",
    "locate_project",
    "set_project_setting",
    "SweepLocation",
    "locate_sweep",
    "make_probe_task",
    "read_search_trials",
    # arrayjob
    "ArrayJobSource",
    "SubmittedChunk",
    "ArrayJob",
    "ScriptRenderer",
    "script_body",
    "chunk_ranges",
    "Resources",
    "resources_from_options",
    "parse_resource_string",
    "parse_walltime",
    "format_walltime",
    "parse_memory",
    "format_memory",
    "check_name",
    "check_line",
    "finish_directives",
    "directive_path",
    "LAUNCHER_VARIABLE",
    "MAIL_TYPES",
    "check_constraint",
    "parse_gpus",
    "parse_mail_type",
    "parse_bool",
    "COMMON_SCHEMA",
    "timer_lines",
    "QueueState",
    "JobInfo",
    "Verdict",
    "QueryFailed",
    "TRANSIENT_PATTERNS",
    "resolve_task_state",
]


def __getattr__(name: str) -> Any:
    """Import an exported name from its submodule on first use, then keep it here."""
    submodule = _SUBMODULE.get(name)
    if submodule is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{submodule}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
