"""Handing array jobs to the scheduler (part of the array-job toolkit of :mod:`hsm_core.plugin`).

:func:`launch` splits a batch into chunks of at most the array size limit, writes each chunk's
files (:mod:`.jobfiles`), marks its tasks ``submitted`` (:mod:`.manifest`), submits it with
retries of transient failures (:func:`submit`) and records it in the manifest; all or nothing per
call: a refusal cancels the chunks already accepted and puts every status back.
:func:`submit_workers` is ``hsm worker submit``'s array of pull-based workers.
"""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path
from typing import Any, Sequence

from hsm_core.errors import HsmError, SourceUnavailable
from hsm_core.plugin.arrayjob import late_dirs
from hsm_core.plugin.arrayjob.chunk_plan import lanes_of, plan_chunks  # noqa: F401 (lanes_of: imported from here before)
from hsm_core.plugin.arrayjob.directives import check_name
from hsm_core.plugin.arrayjob.manifest import SubmittedChunk, append_chunk, roll_back, write_submitted
from hsm_core.plugin.arrayjob.script import ArrayJob
from hsm_core.plugin.arrayjob.warning import warning_seconds
from hsm_core.plugin.values import CommandResult, WorkerArray, WorkersSubmitted

__all__ = ["launch", "submit", "submit_workers", "said"]


def said(result: CommandResult) -> str:
    """What a command printed, on one line."""
    text = " ".join((result.stderr.strip() + " " + result.stdout.strip()).split())
    return text[:500] or f"no output (exit {result.returncode})"


def launch(src: Any, tasks: Sequence[Any]) -> list[SubmittedChunk]:
    """Submit ``tasks`` as array jobs of source ``src`` (one per chunk) and follow them; all or
    nothing. Returns the chunks submitted."""
    tasks = list(tasks)
    if not tasks:
        return []
    files = src.job_files
    files.job_dir.mkdir(parents=True, exist_ok=True)
    (Path(src.context.sweep_dir) / "logs" / "jobs").mkdir(parents=True, exist_ok=True)
    src.staging.prepare(tasks, files.job_dir)
    submitted: list[tuple[SubmittedChunk, Sequence[Any], dict]] = []
    previous: dict = {}
    chunk: Sequence[Any] = ()
    # The plan the dry run shows too (.chunk_plan): per-task resource groups in array jobs of
    # their own, cut at the array size limit, placed in the throttle's lanes.
    plan = plan_chunks(src, tasks)
    job_ids: list[str] = []
    rows_for: list[tuple[Path, Sequence[Any]]] = []  # chunks whose elements make their dirs
    # A small submission without dirs: made here once the scheduler has the job (.late_dirs).
    late = late_dirs.wanted(files, tasks)
    late_chunks: list[tuple[Sequence[Any], Any, SubmittedChunk]] = []
    try:
        for planned in plan.chunks:
            chunk, slot = planned.tasks, planned.slot
            after = plan.after(planned, job_ids)
            written = files.write_chunk(chunk, src.render_script, planned.resources,
                                        parallelism=slot.parallelism, after=tuple(after))
            # Before the scheduler can start the job: the rows an element that starts before its
            # dir is made makes it from.
            texts = late_dirs.prepare_chunk(written.list_file, chunk) if late else None
            # 'submitted' before the scheduler can start the job: the runner writes over it.
            previous = write_submitted(chunk, source=src.name, per_element=src.per_element, script=written.script.name)
            job_id = submit(src, written.script.name, written.job)
            job_ids.append(job_id)
            sub = SubmittedChunk(job_id, written.name, written.script.name, written.list_file.name,
                                 [s.task_id for s in chunk], src.per_element)
            submitted.append((sub, chunk, previous))
            previous = {}
            append_chunk(files.job_dir, sub, src.name, scheduler=src.scheduler_name, after=after)
            src.watcher.follow_chunk(sub, chunk)
            if late:
                late_chunks.append((chunk, texts, sub))
            else:
                rows_for.append((written.list_file, chunk))
        # Tasks left to their elements: bash's rows, written while the scheduler starts them.
        files.write_fast_rows(rows_for, Path(src.context.sweep_dir) / "logs" / "jobs" / "fast_rows.log")
    except BaseException:
        if previous:
            roll_back(chunk, previous)  # the chunk the scheduler refused
        if submitted:
            # All or nothing: the engine puts the whole batch back in the queue.
            src.cancel_jobs([sub.job_id for sub, _, _ in submitted])
            for sub, specs, before in submitted:
                src.watcher.forget_chunk(sub)
                roll_back(specs, before)
            src.log("launch failed: cancelled the chunks already submitted: " + ", ".join(s.job_id for s, _, _ in submitted))
        raise
    # Small submissions: their dirs, while the scheduler starts the elements (after the all or
    # nothing above: the jobs stand, and an element whose dir could not be made here makes it).
    for chunk, texts, sub in late_chunks:
        late_dirs.make_dirs(chunk, texts, source=src.name, per_element=src.per_element, script=sub.script, log=src.log)
    src.after_jobs = ()  # waited for by this submission's heads; later ones wait for those
    src.watcher.query_soon()
    return [sub for sub, _, _ in submitted]


def submit(src: Any, script_name: str, job: ArrayJob) -> str:
    """Submit with retries; the job id, or an error with what the scheduler printed."""
    argv = src.submit_argv(script_name, job)
    job_dir = src.job_files.job_dir
    cwd = src.exec_path(job_dir)
    delay = src.submit_backoff
    result = CommandResult(1, "", "")
    for attempt in range(src.submit_retries + 1):
        result = src.run(argv, cwd=cwd)
        if result.returncode == 0:
            try:
                return src.parse_job_id(result.stdout)
            except ValueError:
                raise HsmError(
                    f"{src.scheduler_name} accepted the job but printed no job id: {said(result)}",
                    hint="check the submission command with 'hsm test hpc'",
                ) from None
        if not src.is_transient(result):
            break
        # A timed-out submission may have gone through: never submit the same chunk twice.
        found = src.find_submitted(job.name)
        if found:
            src.log(f"submission of {job.name} timed out but the job exists: {found}")
            return found
        src.log(f"transient submission failure ({said(result)}); retry {attempt + 1}/{src.submit_retries} in {delay:.0f}s")
        if attempt < src.submit_retries:
            time.sleep(delay)
            delay *= 2
    cmd = " ".join(shlex.quote(a) for a in argv)
    if result.returncode == 127:
        raise HsmError(
            f"{argv[0]} is not available on {src.host.name}: {said(result)}",
            hint=f"install the {src.scheduler_name} client commands there, or run with --sources local",
        )
    if src.is_transient(result):
        raise SourceUnavailable(f"{src.scheduler_name} did not accept the job after {src.submit_retries + 1} tries: {said(result)}")
    raise HsmError(
        f"{src.scheduler_name} rejected the job ({cmd}, exit {result.returncode}): {said(result)}",
        # Not only resources: a client that cannot reach or configure itself is refused the same way.
        hint=(f"fix what it names: resources in hsm_config.yaml (hpc:), or the {src.scheduler_name} client here "
              f"('hsm test hpc' checks it); the job script is {job_dir / script_name}"),
    )


def submit_workers(src: Any, workers: WorkerArray, *, dry_run: bool = False) -> WorkersSubmitted:
    """``hsm worker submit``: one array job of ``workers.count`` elements, each running one
    worker (the source's ``render_worker_script``), submitted as the tasks' array jobs are."""
    from hsm_core.atomic import executable_mode
    from hsm_core.plugin.files import atomic_write_text

    if src.remote:
        raise HsmError(f"hsm worker submit submits from this machine, but source {src.name!r} submits through "
                       f"host {src.options.get('host')!r}", hint="run hsm worker submit on the cluster's login node")
    script_dir = Path(workers.script_dir)
    script_dir.mkdir(parents=True, exist_ok=True)
    Path(workers.log_dir).mkdir(parents=True, exist_ok=True)
    job = ArrayJob(
        name=check_name(workers.job_name, "job_name"),
        size=workers.count,
        list_file="",
        project_root=str(workers.project_root),
        runner=(),
        source=src.name,
        resources=src.resources,
        setup_commands=src.setup_commands,
        extra_directives=src.extra_directives,
        skip_directives=src.skip_directives,
        requeue=True,  # a preempted or requeued element restarts its worker, which resumes its task
        # Absolute: the script may be submitted (again, by hand) from any directory.
        log_dir=str(Path(workers.log_dir).resolve()),
        command=tuple(workers.command),
        # The warning before the walltime, as the tasks' array jobs get it (the worker passes
        # SIGUSR1 on to a task that handles it; hsm_core/workers/walltime_warning.py).
        signal_before=warning_seconds(src.options, src.resources.walltime),
    )
    script = script_dir / f"workers_{workers.stamp}{src.script_suffix}"
    atomic_write_text(script, src.render_worker_script(job))
    os.chmod(script, executable_mode(script))  # executable; readable by whom the umask says
    argv = src.submit_argv(script.name, job)
    if dry_run:
        return WorkersSubmitted(script, None, argv)
    result = src.run(argv, cwd=str(script_dir))
    if result.returncode != 0:
        raise HsmError(f"{src.scheduler_name} refused the workers job ({' '.join(argv)}, exit {result.returncode}): "
                       f"{said(result)}", hint=f"the job script is {script}")
    try:
        job_id = src.parse_job_id(result.stdout)
    except ValueError:
        raise HsmError(f"{src.scheduler_name} accepted the workers job but printed no job id: {said(result)}",
                       hint=f"the job script is {script}") from None
    return WorkersSubmitted(script, job_id, argv, src.cancel_argv([job_id]))
