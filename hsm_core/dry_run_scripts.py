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
from hsm_core.plugin.arrayjob.chunk_plan import ChunkPlan, plan_chunks

__all__ = ["job_script_plans", "chunk_plan_of"]


def chunk_plan_of(src: Any, tasks: int, to_run: Sequence[Any] = ()) -> ChunkPlan:
    """The :class:`~hsm_core.plugin.arrayjob.chunk_plan.ChunkPlan` a dry run shows for ``tasks``
    tasks of source ``src``: made by the same function ``hsm run`` submits with, from the tasks
    themselves when they are known (``to_run``: per-task resources need their parameters), else
    from their count. A login node (``host:``) is not asked its array size limit: a dry run opens
    no connection."""
    limit = int(src.options["max_array_size"]) if src.remote and src.options.get("max_array_size") else (
        src.default_max_array_size if src.remote else None)
    if len(to_run) >= tasks:
        return plan_chunks(src, list(to_run[:tasks]), max_array_size=limit)
    return plan_chunks(src, count=tasks, max_array_size=limit)


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
            out.append(_plan_of(source, min(tasks_per_source, source.capacity()), list(plan.to_run)))
        finally:
            source.close()
    return out


def describe_resources(res: Any) -> str:
    """``walltime 04:00:00, gpus a100:2, memory 64G``: the resources set in ``res`` (a
    :class:`~hsm_core.plugin.Resources`), for the dry run's per-task groups."""
    from dataclasses import fields

    from hsm_core.plugin.arrayjob.resources import format_memory, format_walltime

    parts = []
    for f in fields(res):
        value = getattr(res, f.name)
        if value in (None, (), False) or f.name == "gpu_type":
            continue
        if f.name == "walltime":
            value = format_walltime(value)
        elif f.name.endswith("_mb"):
            value = format_memory(value)
        elif f.name == "gpus" and res.gpu_type:
            value = f"{res.gpu_type}:{value}"
        elif isinstance(value, tuple):
            value = ",".join(value)
        parts.append(f"{f.name.removesuffix('_mb')} {value}" if value is not True else f.name)
    return ", ".join(parts) or "the scheduler's defaults"


def _plan_of(src: Any, tasks: int, to_run: Sequence[Any] = ()) -> dict[str, Any]:
    plan = chunk_plan_of(src, tasks, to_run)
    limit, per = plan.max_array_size, plan.per_element
    chunks = []
    job_dir = src.job_dir
    for planned in plan.chunks:
        seq, resources, slot = planned.position + 1, planned.resources, planned.slot
        stem = f"{src.name}_{seq:03d}"  # as JobFiles names them (a first submission of the sweep)
        job = dataclasses.replace(src.make_job(f"{src.job_name}_{seq:03d}", planned.size, job_dir / f"{stem}.list", resources),
                                  parallelism=slot.parallelism)
        throttle = f"%{slot.parallelism}" if slot.parallelism else ""
        after = f", after {src.name}_{slot.after_chunk + 1:03d} ended" if slot.after_chunk is not None else ""
        # The others differ only in name, list and range (from the first and last of their group).
        same = [c for c in plan.chunks if c.group == planned.group]
        shown = planned is same[0] or planned is same[-1]
        chunk = {
            "script_file": str(Path("scripts") / "job_scripts" / f"{stem}.sh"),
            "job_name": job.name,
            "first_task": planned.first,
            "tasks": planned.size,
            "elements": job.size,
            "array": f"0-{job.size - 1}{throttle}",
            "resources": describe_resources(resources),
            "after": after,
            "script": src.render_script(job) if shown else None,
        }
        if planned.tasks and getattr(src, "per_task_rules", None):  # which tasks, when the groups pick them
            chunk["task_indices"] = [t.index for t in planned.tasks]
        chunks.append(chunk)
    lines = [
        f"{tasks} task(s) in {len(chunks)} array job(s) of at most {limit * per} task(s) "
        f"(array size limit {limit}{', tasks_per_element ' + str(per) if per > 1 else ''})",
        f"at most {src.array_parallelism} element(s) of the sweep at once (its array jobs run one after the "
        f"other in lanes whose %N add up to {src.array_parallelism})"
        if src.array_parallelism else "no throttle (set array_parallelism for %N)",
        f"{per} task(s) per array element, run one after the other" if per > 1 else "1 task per array element",
    ]
    if plan.groups > 1:
        lines.append(f"per-task resources: {plan.groups} sets of resources, each in array jobs of its own")
    if src.capacity() < src.default_capacity:
        lines.append(f"hsm keeps at most {src.capacity()} task(s) queued or running here; the rest follow as they end")
    for c in chunks:
        if "task_indices" in c:
            shown_ids = _ranges(c["task_indices"])
            lines.append(f"{c['script_file']}: task(s) {shown_ids}, array {c['array']}{c['after']}: {c['resources']}")
        else:
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


def _ranges(indices: Sequence[int]) -> str:
    """``1-3,7,9-10`` (task numbers as the task dirs have them)."""
    out: list[str] = []
    for i in sorted(indices):
        if out and "-" not in out[-1].split(",")[-1] and int(out[-1]) == i - 1:
            out[-1] = f"{out[-1]}-{i}"
        elif out and "-" in out[-1] and int(out[-1].split("-")[1]) == i - 1:
            out[-1] = f"{out[-1].split('-')[0]}-{i}"
        else:
            out.append(str(i))
    return ",".join(out)
