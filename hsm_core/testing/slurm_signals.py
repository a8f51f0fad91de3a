"""What a Slurm cluster does to running array elements, done to an hsm sweep's tasks on the real
local cluster: the warning signal, a requeue, a cancel (for the tests of scheduler plugins and of
the task runner, which must record each of them as the Python runner does).

:func:`poke_tasks` finds the array element that runs each named task (from the sweep's
``scripts/job_scripts``: the submitted array's id in ``jobs.jsonl``, the element's position in
the chunk's ``.list`` file), then, in this order:

* ``warn``: ``scancel --signal=USR1 --batch``, the warning Slurm sends the batch shell at the time
  ``--signal=B:USR1@N`` asks for (a training script's handler checkpoints and exits);
* ``requeue``: ``scontrol requeue`` (the element is stopped and queued again: a second attempt);
* ``cancel``: ``scancel``, a cancel from outside hsm, ``settle`` seconds after the others so that
  Slurm has acted on them first.

Every command runs against the cluster given (:class:`hsm_core.testing.services.SlurmCluster`)
and must succeed. Tests that use it hold the shared cluster (``flock /work/cluster.lock`` where
several checkouts share one) and wait for the tasks to be running first: a task whose element has
not started yet is requeued or cancelled before it ran at all.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

from hsm_core.testing.services import SlurmCluster

#: The warning signal Slurm sends the batch shell (``--signal=B:USR1@N``).
WARNING_SIGNAL = "USR1"


def array_element(sweep: Path, task: str, chunk: int = 1) -> str:
    """The Slurm id (``JOBID_INDEX``) of the array element that runs ``task`` (a task dir name,
    ``task_003``) in ``chunk`` (the N of ``slurm_00N.sh``, the Nth array job the sweep
    submitted). Raises ValueError when the chunk does not list the task."""
    job_dir = Path(sweep) / "scripts" / "job_scripts"
    stem = f"slurm_{chunk:03d}"
    jobs = [json.loads(line) for line in (job_dir / "jobs.jsonl").read_text().splitlines() if line.strip()]
    job_id = next(str(j["job_id"]) for j in jobs if j.get("script") in (f"{stem}.sh", None))
    listed = (job_dir / f"{stem}.list").read_text().split()
    return f"{job_id}_{listed.index('../../tasks/' + task)}"


def poke_tasks(cluster: SlurmCluster, sweep: Path, *, warn: Sequence[str] = (), requeue: Sequence[str] = (),
               cancel: Sequence[str] = (), settle: float = 1.0, chunk: int = 1) -> dict[str, str]:
    """Send the warning signal to the tasks in ``warn``, requeue those in ``requeue``, then
    (``settle`` seconds later) cancel those in ``cancel``: task dir names of the sweep's array
    job ``chunk``, each running (see the module's docstring). Returns each task's element id."""
    elements = {task: array_element(sweep, task, chunk) for task in (*warn, *requeue, *cancel)}
    for task in warn:
        cluster.run(["scancel", f"--signal={WARNING_SIGNAL}", "--batch", elements[task]])
    for task in requeue:
        cluster.run(["scontrol", "requeue", elements[task]])
    if cancel:
        if warn or requeue:
            time.sleep(settle)
        for task in cancel:
            cluster.run(["scancel", elements[task]])
    return elements
