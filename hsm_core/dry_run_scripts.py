"""What ``hsm run --dry-run`` shows of each batch scheduler source: the job scripts it would
submit and its array plan (chunks of at most the array size limit, the ``%N`` throttle, tasks per
element), rendered by the source's own plugin from the options and resources the run would use.
Nothing is written and nothing submitted; the scheduler may be asked its array size limit.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

from hsm_core.plugin import ComputeSourceRecord, SourceContext
from hsm_core.plugin.arrayjob.script import chunk_ranges
from hsm_core.plugin.arrayjob.submission import lanes_of

__all__ = ["job_script_plans"]


def job_script_plans(plan: Any, registry: Any, requests: Sequence[Any], resources: Any, tasks_per_source: int) -> list[dict[str, Any]]:
    """One entry per batch scheduler source of ``requests``: ``source``, ``scheduler``, ``tasks``,
    ``max_array_size``, ``throttle``, ``tasks_per_element``, ``plan`` (lines saying it) and
    ``chunks`` (``script_file``, ``job_name``, ``tasks``, ``elements``, ``array`` and ``script``)."""
    from hsm_core.run_resources import apply_resources
    from hsm_core.sources import create_sources

    wanted = [r for r in requests if getattr(registry.get(ComputeSourceRecord.kind, r.kind), "batch_scheduler", False)]
    if not wanted:
        return []
    apply_resources(wanted, registry, resources)
    context = SourceContext(
        sweep_id=plan.sweep.sweep_id,
        sweep_dir=plan.sweep.path.resolve(),
        project_root=plan.project.root.resolve(),
        project_config=plan.project.data,
    )
    from hsm_core.hosts import get_host

    context.get_host = lambda name: get_host(name, plan.project.data, registry)  # a login node (host:)
    out = []
    for source in create_sources(wanted, registry, context):
        try:
            out.append(_plan_of(source, min(tasks_per_source, source.capacity())))
        finally:
            source.close()
    return out


def _plan_of(src: Any, tasks: int) -> dict[str, Any]:
    # A login node (host:) is not asked its limit: a dry run opens no connection.
    limit = int(src.options["max_array_size"]) if src.remote and src.options.get("max_array_size") else (
        src.default_max_array_size if src.remote else src.max_array_size())
    per = src.per_element
    chunks = []
    job_dir = src.job_files.job_dir
    ranges = chunk_ranges(tasks, limit * per)
    slots, _ = lanes_of(src, [-(-size // per) for _, size in ranges])
    for seq, ((start, size), slot) in enumerate(zip(ranges, slots), start=1):
        stem = f"{src.name}_{seq:03d}"  # as JobFiles names them (a first submission of the sweep)
        job = dataclasses.replace(src.make_job(f"{src.job_name}_{seq:03d}", size, job_dir / f"{stem}.list"),
                                  parallelism=slot.parallelism)
        throttle = f"%{slot.parallelism}" if slot.parallelism else ""
        after = f", after {src.name}_{slot.after_chunk + 1:03d} ended" if slot.after_chunk is not None else ""
        shown = seq == 1 or seq == len(ranges)  # the others differ only in name, list and range
        chunks.append({
            "script_file": str(Path("scripts") / "job_scripts" / f"{stem}.sh"),
            "job_name": job.name,
            "first_task": start,
            "tasks": size,
            "elements": job.size,
            "array": f"0-{job.size - 1}{throttle}",
            "after": after,
            "script": src.render_script(job) if shown else None,
        })
    lines = [
        f"{tasks} task(s) in {len(chunks)} array job(s) of at most {limit * per} task(s) "
        f"(array size limit {limit}{', tasks_per_element ' + str(per) if per > 1 else ''})",
        f"at most {src.array_parallelism} element(s) of the sweep at once (its array jobs run one after the "
        f"other in lanes whose %N add up to {src.array_parallelism})"
        if src.array_parallelism else "no throttle (set array_parallelism for %N)",
        f"{per} task(s) per array element, run one after the other" if per > 1 else "1 task per array element",
    ]
    if src.capacity() < src.default_capacity:
        lines.append(f"hsm keeps at most {src.capacity()} task(s) queued or running here; the rest follow as they end")
    for c in chunks:
        lines.append(f"{c['script_file']}: tasks {c['first_task']}-{c['first_task'] + c['tasks'] - 1}, array {c['array']}{c['after']}")
    return {
        "source": src.name,
        "scheduler": src.scheduler_name,
        "tasks": tasks,
        "max_array_size": limit,
        "throttle": src.array_parallelism,
        "tasks_per_element": per,
        "plan": lines,
        "chunks": chunks,
    }
