"""A scheduler made of plain commands that keeps every array job it was handed: for tests of what
:class:`hsm_core.plugin.ArrayJobSource` submits (chunks cut at the array size limit, ``%N``
throttles, lanes and the job ids each array job waits for, per-task resource groups), without a
cluster.

Each submission runs a real command (the interpreter printing the next job id, from 100 up), so
the source's own submission path (scripts and task lists written, the id parsed from the
command's output, ``jobs.jsonl``) runs as it does with ``sbatch`` or ``qsub``::

    source = RecordingArrayJobSource("rec", {"max_array_size": 2, "array_parallelism": 3}, ctx)
    source.launch(specs)
    assert [(job_id, job.after) for job_id, job in source.handed] == [("100", ()), ...]

Nothing runs the tasks: ``query`` knows no job and ``cancel`` does nothing.
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

from hsm_core.plugin import ArrayJob, ArrayJobSource, JobInfo


class RecordingArrayJobSource(ArrayJobSource):
    """An array-job source whose submission command prints the next job id; ``handed`` keeps
    ``(job id, array job)`` of every submission, in order."""

    scheduler_name = "Rec"
    supports_dependencies = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handed: list[tuple[str, ArrayJob]] = []

    def render_script(self, job: ArrayJob) -> str:
        """A script that names what it was made from (a dry run shows the scripts it would write)."""
        return f"#!/bin/sh\n# {job.name} {job.size} {job.parallelism} {job.after} {job.resources}\n"

    def submit_argv(self, script_name: str, job: ArrayJob) -> list[str]:
        """Record ``job`` and return a command that prints its id (``100``, ``101`` ...)."""
        job_id = str(100 + len(self.handed))
        self.handed.append((job_id, job))
        return [sys.executable, "-c", f"print({job_id!r})"]

    def parse_job_id(self, stdout: str) -> str:
        return stdout.strip()

    def query(self, ids: Sequence[str]) -> dict[str, JobInfo]:
        return {}

    def cancel_argv(self, ids: Sequence[str]) -> list[str]:
        return ["true"]
