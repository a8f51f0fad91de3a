"""The files an array job is submitted from (part of the array-job toolkit of :mod:`hsm_core.plugin`).

Each chunk of a sweep gets ``scripts/job_scripts/<source>_NNN.list`` (its task dirs, relative to
the list, line i for array index i) and ``<source>_NNN.sh`` (the job script, rendered by the
plugin's pure function from the :class:`~hsm_core.plugin.ArrayJob` built here from the source's
options). NNN counts on from the scripts already there, so a later ``hsm complete`` never
overwrites an earlier submission's script.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from hsm_core.plugin.arrayjob.script import ArrayJob
from hsm_core.plugin.arrayjob.unmade import unmade, unmade_flags, write_chunk_file
from hsm_core.plugin.arrayjob.warning import element_resources
from hsm_core.plugin.files import atomic_write_text

__all__ = ["ChunkFiles", "JobFiles"]


def _fastrun() -> Any:
    # Imported when job files are made, not with the plugin API: the fast path's generator pulls in
    # the task runner, which a plugin importing hsm_core.plugin must not pay for (test_plugin_package).
    from hsm_core import fastrun

    return fastrun


@dataclass(frozen=True)
class ChunkFiles:
    """One chunk's files, written and ready to submit."""

    name: str  #: the job name
    script: Path
    list_file: Path
    job: ArrayJob


def relative_paths(paths: Sequence[Any], start: Path) -> list[str]:
    """``os.path.relpath(p, start)`` of each path, with one relpath per distinct parent dir (the
    tasks of a chunk share theirs: 10,000 relpath calls were a fifth of a submission's files)."""
    parents: dict[str, str] = {}
    base = os.path.abspath(start) + os.sep
    out = []
    for p in paths:
        path = os.path.abspath(p)
        if base.startswith(path.rstrip(os.sep) + os.sep):  # (an ancestor of ``start``: "..", not "../../name")
            out.append(os.path.relpath(path, start))
            continue
        parent, _, name = path.rpartition(os.sep)
        rel = parents.get(parent)
        if rel is None:
            rel = parents[parent] = os.path.relpath(parent or os.sep, start)
        out.append(name if rel == os.curdir else f"{rel}{os.sep}{name}")
    return out


class JobFiles:
    """Writes the list file and job script of each chunk of one source."""

    def __init__(self, source: Any) -> None:
        self.source = source  # an ArrayJobSource: options, staging, render_script
        self._seq: int | None = None

    @property
    def job_dir(self) -> Path:
        """``<sweep>/scripts/job_scripts`` on this machine."""
        return Path(self.source.context.sweep_dir) / "scripts" / "job_scripts"

    def runner_argv(self) -> tuple[str, ...]:
        """How the job script starts the task runner."""
        options = self.source.options
        if options.get("runner"):
            return tuple(shlex.split(str(options["runner"])))
        if self.source.remote:
            py = options.get("python_interpreter")
            return (str(py), "-m", "hsm_core.runner") if py else ("hsm-task",)
        return (sys.executable, "-m", "hsm_core.runner")

    def make_job(self, name: str, tasks: int, list_file: Path, resources: Any = None) -> ArrayJob:
        """The :class:`ArrayJob` of a chunk of ``tasks`` tasks (paths as the execution host sees
        them); ``resources``: the chunk's own (per-task resources), default the source's."""
        src = self.source
        remote = src.remote
        return ArrayJob(
            name=name,
            size=-(-tasks // src.per_element),
            per_element=src.per_element,
            list_file=src.exec_path(list_file),
            project_root=src.exec_path(Path(src.context.project_root)) if remote else str(src.context.project_root),
            runner=self.runner_argv(),
            source=src.name,
            # An element running tasks_per_element tasks asks for that many times a task's walltime.
            resources=element_resources(src.resources if resources is None else resources, src.per_element),
            parallelism=src.array_parallelism,
            signal_before=getattr(src, "warning_seconds", None),
            # Absolute: the script may be submitted (again, by hand) from any directory.
            log_dir=src.exec_path(Path(src.context.sweep_dir) / "logs" / "jobs"),
            setup_commands=src.setup_commands,
            extra_directives=src.extra_directives,
            skip_directives=src.skip_directives,
            requeue=src.options.get("requeue"),
            python=str(src.options["python_interpreter"]) if remote and src.options.get("python_interpreter") else None,
            pass_project_root=remote,
            fast_runner=str(self.job_dir / _fastrun().PROGRAM_NAME) if self.fast_path() else None,
        )

    def fast_path(self) -> bool:
        """Whether the job scripts source the task runner's shell fast path (:mod:`hsm_core.fastrun`):
        one task per element, hsm's own runner, task dirs on this machine's file system."""
        src = self.source
        return src.per_element == 1 and not src.options.get("runner") and not src.remote

    def write_fast_path(self, chunk: Sequence[Any], missing: Sequence[bool] | None = None) -> None:
        """The fast path's program and each task's ``command.sh`` (from its ``command.json``);
        ``missing``: :func:`.unmade.unmade` of each task of ``chunk``, when known."""
        fastrun = _fastrun()
        program = self.job_dir / fastrun.PROGRAM_NAME
        text = fastrun.program()
        try:
            same = program.read_text(encoding="utf-8") == text
        except OSError:
            same = False
        if not same:
            atomic_write_text(program, text, fsync=False)
        missing = unmade_flags(chunk) if missing is None else missing
        for spec, dirless in zip(chunk, missing):
            if not dirless:  # (a dir its element makes: the Python runner's, which makes it)
                fastrun.write_for_task(spec.task_dir)  # none without a command.json: the Python runner's

    def write_fast_rows(self, chunks: Sequence[tuple[Path, Sequence[Any]]], log: Path) -> None:
        """For the fast path's bash, the rows the elements of these submitted chunks (list file,
        specs) make their task dirs from (see :mod:`hsm_core.fastrun_rows`), by a process of their
        own: they cost about 0.1 ms a task (10,000: 1 s) that the submission need not wait for; an
        element that starts before its page is written makes its dir through the Python runner,
        as without them."""
        if not self.fast_path():
            return
        wanted = [list_path for list_path, chunk in chunks if any(unmade(s) for s in chunk)]
        if wanted:
            from hsm_core.fastrun_rows import start_writer

            start_writer(wanted, log)

    def next_seq(self) -> int:
        """The next free chunk number of this sweep (1 after no script)."""
        if self._seq is None:
            seen = [0]
            if self.job_dir.is_dir():
                for p in self.job_dir.glob("*.sh"):
                    m = re.search(r"_(\d+)\.sh$", p.name)
                    if m:
                        seen.append(int(m.group(1)))
            self._seq = max(seen)
        self._seq += 1
        return self._seq

    def write_chunk(self, chunk: Sequence[Any], render: Callable[[ArrayJob], str], resources: Any = None,
                    **job_fields: Any) -> ChunkFiles:
        """Write the list file and script of ``chunk`` (task specs, in array order), here and,
        for a login node, there; ``resources``: the chunk's own, default the source's.
        ``job_fields`` replace those of the :class:`ArrayJob` built from the options (a chunk's own
        throttle and dependencies: see :mod:`.throttle`)."""
        src = self.source
        seq = self.next_seq()
        stem = f"{src.name}_{seq:03d}"
        name = f"{src.job_name}_{seq:03d}"
        job_dir = self.job_dir
        list_path = job_dir / f"{stem}.list"
        script_path = job_dir / f"{stem}.sh"
        missing = unmade_flags(chunk)  # (one listing of the tasks dir, for the files below)
        if self.fast_path():
            self.write_fast_path(chunk, missing)
        # Relative to the list file: the list stays valid on a cluster with another root.
        text_list = "\n".join(relative_paths([s.task_dir for s in chunk], job_dir)) + "\n"
        atomic_write_text(list_path, text_list, fsync=False)
        write_chunk_file(list_path, chunk, missing)  # what the elements make their task dirs from, if they do
        job = self.make_job(name, len(chunk), list_path, resources)
        if job_fields:
            job = dataclasses.replace(job, **job_fields)
        text = render(job)
        atomic_write_text(script_path, text, fsync=False)
        src.staging.put_text(list_path, text_list)
        src.staging.put_text(script_path, text)
        return ChunkFiles(name, script_path, list_path, job)
