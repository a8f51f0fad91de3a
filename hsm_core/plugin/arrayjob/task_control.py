"""Hold, release and requeue single tasks of an array job (part of the array-job toolkit of
:mod:`hsm_core.plugin`).

:meth:`ArrayJobSource.control <hsm_core.plugin.ArrayJobSource.control>` names each task's array
element the way the scheduler's control commands accept it and runs the command once for all of
them (once per element only when that call fails, so that each task's line says what the
scheduler said about it). Which id is safe to give is the source's to say
(:meth:`~hsm_core.plugin.ArrayJobSource.control_keys`): Slurm's ``scontrol hold 12345_7`` names one
element, but Slurm's Torque front-end reads ``qhold 123[7]`` as ``qhold 123`` (another element, or
the whole array), so there only the element's own job id, recorded by the runner once it started,
is used, and a queued element it cannot name yet is refused with one line rather than acted on
wrongly.
"""

from __future__ import annotations

from typing import Any, Sequence

from hsm_core.errors import HsmError
from hsm_core.plugin.arrayjob.manifest import read_manifest
from hsm_core.plugin.values import TaskSpec

__all__ = ["ACTIONS", "control_tasks"]

#: What ``hsm hold|release|requeue`` ask a source to do.
ACTIONS = ("hold", "release", "requeue")


def control_tasks(source: Any, tasks: Sequence[TaskSpec], action: str) -> dict[str, str]:
    """Run the scheduler's ``action`` command on the elements of ``tasks``: task id -> ``""``
    when the scheduler accepted it, else one line saying why not."""
    if action not in ACTIONS:
        raise HsmError(f"unknown action {action!r}", hint=f"one of: {', '.join(ACTIONS)}")
    try:
        source.control_argv(action, ["0"])  # refuse up front what this scheduler cannot do
    except NotImplementedError as exc:
        raise HsmError(str(exc)) from None
    from hsm_core.plugin.arrayjob.watcher import QueueWatcher

    watcher = QueueWatcher(source, accounting=False)
    watcher.follow_submitted(tasks, read_manifest(source.job_dir, source.name))
    results: dict[str, str] = {}
    ids: dict[str, str] = {}
    for spec in tasks:
        t = watcher.tracked.get(spec.task_id)
        keys = source.control_keys(t) if t is not None else []
        if not keys:
            results[spec.task_id] = (f"{source.scheduler_name} has no id for this task's array element alone (a "
                                     "queued element not split off yet, or a front-end that cannot name one): act on the whole "
                                     "sweep, or try again once it runs")
            continue
        ids[spec.task_id] = keys[0]
    if not ids:
        return results
    from hsm_core.plugin.arrayjob.submission import said

    res = source.run(source.control_argv(action, sorted(set(ids.values()))), timeout=120)
    if res.returncode == 0:
        results.update({tid: "" for tid in ids})
        source.log(f"{action} of {' '.join(sorted(set(ids.values())))}: done")
        return results
    for tid, job in ids.items():
        one = source.run(source.control_argv(action, [job]), timeout=60)
        results[tid] = "" if one.returncode == 0 else f"{source.scheduler_name} refused to {action} {job}: {said(one)}"
        source.log(f"{action} of {job}: " + ("done" if one.returncode == 0 else results[tid]))
    return results
