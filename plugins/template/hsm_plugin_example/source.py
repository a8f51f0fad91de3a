"""A minimal compute source: one ``hsm-task`` subprocess per task.

This is the shape of every source: ``launch`` starts tasks somewhere, the task runner writes
``status.yaml`` where the task runs, ``poll`` reports what finished, ``cancel`` stops tasks. A
scheduler plugin would submit a job script instead of starting a process; an SSH plugin would start
the runner on another machine and copy the task dir back before reporting it final.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any, Iterable, Mapping, Sequence

from hsm_core.plugin import (
    RUNNER_MODULE,
    ComputeSource,
    SourceContext,
    SourceUnavailable,
    TaskSpec,
    TaskState,
    TaskUpdate,
    read_status,
    write_status,
)


def _final_state(task_dir: Any) -> TaskState:
    """The state the runner wrote in the task's ``status.yaml`` (lost when it wrote none)."""
    status = read_status(task_dir) or {}
    return TaskState(status.get("state", "lost"))


class ExampleSource(ComputeSource):
    """Each task is ``python -m hsm_core.runner TASK_DIR`` (:data:`RUNNER_MODULE`) in its own process group."""

    poll_interval = 0.2

    def __init__(self, name: str, options: Mapping[str, Any], context: SourceContext) -> None:
        super().__init__(name, options, context)
        self._capacity = int(options.get("max_parallel_jobs") or 2)
        self._procs: dict[str, tuple[subprocess.Popen, TaskSpec]] = {}

    def capacity(self) -> int:
        return self._capacity

    def launch(self, tasks: Sequence[TaskSpec]) -> None:
        for spec in tasks:
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-m", RUNNER_MODULE, "--source", self.name, str(spec.task_dir)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except OSError as exc:
                raise SourceUnavailable(f"cannot start hsm-task: {exc}") from exc
            self._procs[spec.task_id] = (proc, spec)

    def poll(self) -> list[TaskUpdate]:
        updates = []
        for task_id, (proc, spec) in list(self._procs.items()):
            if proc.poll() is not None:
                del self._procs[task_id]
                updates.append(TaskUpdate(task_id, _final_state(spec.task_dir)))
        return updates

    def cancel(self, task_ids: Iterable[str]) -> None:
        for task_id in task_ids:
            if task_id in self._procs:
                proc, _ = self._procs[task_id]
                try:
                    os.killpg(proc.pid, signal.SIGTERM)  # the runner records the task as preempted...
                except ProcessLookupError:
                    pass
                proc.wait()
                # ...but a cancel asked by hsm is recorded as cancelled.
                status = read_status(self._procs[task_id][1].task_dir) or {}
                status["state"] = TaskState.CANCELLED.value
                write_status(self._procs[task_id][1].task_dir, status)
