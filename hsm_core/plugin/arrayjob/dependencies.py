"""``hsm run --after SWEEP_ID|JOB_ID``: a sweep whose jobs start once another sweep's jobs ended
(part of the array-job toolkit of :mod:`hsm_core.plugin`).

:func:`resolve_after` turns the option into the scheduler's job ids, checked before anything is
submitted: a sweep id is looked up beside this sweep (``sweeps/outputs/<id>``) and its array jobs
read from its manifest (``jobs.jsonl``), only those submitted to the same scheduler; a raw job id
must be one the scheduler knows. Jobs that already ended are dropped (nothing to wait for); the
rest become an ``afterany`` dependency of the new sweep's first array jobs (every later chunk
waits for one of those through the sweep's throttle lanes, :mod:`.throttle`, or directly).
Anything else is one line and exit 2 (:class:`~hsm_core.errors.HsmError`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from hsm_core.errors import HsmError
from hsm_core.plugin.arrayjob.manifest import MANIFEST
from hsm_core.plugin.arrayjob.states import QueryFailed

__all__ = ["resolve_after", "active_ids", "sweep_jobs"]

#: A scheduler job id as users type it: ``123``, ``123_4`` (Slurm element), ``123[]`` /
#: ``123[4].server`` (PBS).
_JOB_ID = re.compile(r"^\d+(?:_\d+)?(?:\[\d*\])?(?:\.[\w.-]+)?$")


def _same_id(key: str, job_id: str) -> bool:
    """True when ``key`` (an id in the scheduler's answer) names job ``job_id`` or one of its
    array elements (``123_4``, ``123[4].server``)."""
    short = job_id.split(".", 1)[0].replace("[]", "")
    k = key.split(".", 1)[0]
    return k == short or k == short + "[]" or k.startswith((short + "_", short + "["))


def active_ids(src: Any, ids: Sequence[str]) -> tuple[list[str], list[str]]:
    """(still active, unknown) among ``ids``, in ONE scheduler query. An id the scheduler knows
    but that ended is in neither list. When the query fails, every id counts as active (the
    scheduler then judges the dependency itself)."""
    if not ids:
        return [], []
    try:
        answer = src.query(list(ids))
    except QueryFailed as exc:
        src.log(f"could not ask which jobs are still active ({exc}); waiting for all of {' '.join(ids)}")
        return list(ids), []
    active, unknown = [], []
    for job_id in ids:
        infos = [info for key, info in answer.items() if _same_id(key, job_id)]
        if not infos:
            unknown.append(job_id)
        elif any(info.state.active for info in infos):
            active.append(job_id)
    return active, unknown


def sweep_jobs(sweep_dir: Path, scheduler: str, source_names: Iterable[str]) -> tuple[list[str], set[str]]:
    """The array job ids in a sweep's manifest submitted to ``scheduler`` (lines without a
    scheduler name: by one of ``source_names``), and the other schedulers named there."""
    import json

    ids: list[str] = []
    others: set[str] = set()
    try:
        lines = (sweep_dir / "scripts" / "job_scripts" / MANIFEST).read_text(encoding="utf-8").splitlines()
    except OSError:
        return ids, others
    names = set(source_names)
    for line in lines:
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if not isinstance(d, dict) or not d.get("job_id"):
            continue
        sched = d.get("scheduler")
        mine = sched == scheduler if sched else d.get("source") in names
        if mine:
            ids.append(str(d["job_id"]))
        else:
            others.add(str(sched or d.get("source")))
    return list(dict.fromkeys(ids)), others


def resolve_after(src: Any, value: Any) -> tuple[str, ...]:
    """The job ids of ``src``'s scheduler that ``--after VALUE`` names and that are still active.

    ``value``: one sweep id or job id, or several separated by commas. Raises HsmError (exit 2)
    for a sweep that does not exist, a sweep with no jobs on this scheduler, a job id the
    scheduler does not know, and anything that is neither.
    """
    if value in (None, "", ()):
        return ()
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    outputs = Path(src.context.sweep_dir).parent
    wanted: list[str] = []
    raw: list[str] = []
    told: list[str] = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        sweep_dir = outputs / item
        if "/" not in item and ".." not in item and (sweep_dir / "sweep_metadata.yaml").is_file():
            if sweep_dir.resolve() == Path(src.context.sweep_dir).resolve():
                raise HsmError(f"--after {item}: a sweep cannot wait for itself")
            ids, others = sweep_jobs(sweep_dir, src.scheduler_name, {src.name})
            if not ids:
                where = f"its jobs went to {', '.join(sorted(others))}" if others else "it submitted no array jobs (a local or SSH sweep)"
                raise HsmError(f"--after {item}: sweep {item} has no {src.scheduler_name} jobs to wait for ({where})",
                               hint=f"--after waits for a sweep run on the same scheduler as this one ({src.name})")
            wanted += ids
            told.append(f"sweep {item} ({len(ids)} job(s))")
        elif _JOB_ID.match(item):
            raw.append(item)
            wanted.append(item)
            told.append(f"job {item}")
        else:
            raise HsmError(f"--after {item}: no sweep {item} in {outputs}, and not a {src.scheduler_name} job id",
                           hint="give a sweep id (hsm status lists them) or a job id (hsm queue)")
    active, unknown = active_ids(src, wanted)
    missing = [i for i in unknown if i in raw]
    if missing:
        raise HsmError(f"--after {','.join(missing)}: {src.scheduler_name} does not know job {', '.join(missing)} "
                       "(it never existed, or ended long ago)", hint="check the id with hsm queue --all")
    src.log(f"waits for {', '.join(told)}: {len(active)} job(s) still active" if active
            else f"--after {', '.join(told)}: already ended, nothing to wait for")
    return tuple(active)
