"""A task directory's files, read and written the way core does (part of :mod:`hsm_core.plugin`).

``tasks/task_NNN/status.yaml``, written where the task ran, is the truth about a task. The task
runner (``python -m hsm_core.runner TASK_DIR``, see :data:`RUNNER_MODULE`) writes it as the task
starts and ends; a source writes it only for what the runner cannot know: ``submitted`` before the
task can start (a scheduler source), and the final state of a task it stopped or lost
(``cancelled``, ``interrupted``, ``lost``). Its keys: ``state`` (a :class:`~hsm_core.plugin.TaskState`
value), ``attempt`` and ``attempts`` (the history, one entry per ended attempt), ``source``,
``host``, ``process`` (the identity of the running task's wrapper, see
:mod:`~hsm_core.plugin.processes`), ``start_time``, ``end_time``, ``exit_code``, ``duration``.

A source keeps what it needs about a task (a job id, a runner's identity) under
``source_data: {SOURCE NAME: {...}}`` (:data:`SOURCE_DATA`), through :func:`keep_source_data` or
:func:`with_source_data`, and reads it back with :func:`source_data` (in ``attach`` after its
controller died, say). Every rewrite of the status keeps that mapping: the runner's, the engine's,
workers', :func:`finalize_status`; other keys a source adds are not kept.

The runner starts the task's command under a ``/bin/sh`` wrapper (``$0`` = :data:`WRAPPER_NAME`)
that writes its pid to :data:`PID_FILE` before the command starts and leaves the exit code in
:data:`EXIT_MARKER` when it ends, so a task that ends while nobody watches is still recorded
exactly (:func:`left_exit_code`, :func:`reconcile_status`).
"""

from __future__ import annotations

from hsm_core.state import (
    finalize_status,
    now_iso,
    reconcile_status,
    stop_orphaned_command,
)
from hsm_core.taskdir import (
    EXIT_MARKER,
    PID_FILE,
    RESULTS_DIR,
    SOURCE_DATA,
    STATUS_FILE,
    STDERR_LOG,
    RUNNER_LOG,
    STDOUT_LOG,
    WRAPPER_NAME,
    keep_source_data,
    left_exit_code,
    read_status,
    runner_log_path,
    source_data,
    started_process,
    status_path,
    stderr_path,
    stdout_path,
    with_source_data,
    write_status,
)

__all__ = [
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
]

#: The task runner's module: a source runs ``PYTHON -m hsm_core.runner [--source NAME] TASK_DIR``
#: (or the console script ``hsm-task``) wherever the task runs; ``import`` it there to check that
#: hsm-core is installed.
RUNNER_MODULE = "hsm_core.runner"
