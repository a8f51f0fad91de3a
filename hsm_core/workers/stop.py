"""How to stop the workers of a pull-based sweep, for ``hsm cancel``.

hsm cancel does not stop workers itself: they may run on other hosts and clusters, and each one
stopped by a signal records its task for the next worker to resume. It says instead exactly what to
run: the scheduler jobs ``hsm worker submit`` recorded, and the live workers on this machine (from
those submissions and from the claims they hold).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any, Iterator

from hsm_core.workers.claims import ClaimStore, process_alive
from hsm_core.workers.layout import LOCKS_DIR

#: The command that cancels a job of the program that submitted it.
_CANCEL_BY_SUBMITTER = {"sbatch": "scancel", "qsub": "qdel"}


def _submissions(sweep_path: Path) -> Iterator[dict[str, Any]]:
    try:
        lines = (sweep_path / "logs" / "workers" / "submissions.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            yield entry


def stop_commands(sweep_path: Path) -> list[str]:
    """Commands that stop the sweep's workers known here: scheduler jobs and local processes."""
    jobs: dict[str, list[str]] = {}
    pids: list[int] = []
    for entry in _submissions(sweep_path):
        if entry.get("job_id"):
            submitter = str(entry.get("submitter") or "")
            source = str(entry.get("source") or "")
            cancel = _CANCEL_BY_SUBMITTER.get(submitter) or ("qdel" if source in ("pbs", "torque") else "scancel")
            jobs.setdefault(cancel, []).append(str(entry["job_id"]))
        for pid in entry.get("pids") or []:
            if isinstance(pid, int) and process_alive(pid, None):
                pids.append(pid)
    store = ClaimStore(sweep_path / LOCKS_DIR)
    for view in store.locks().values():
        holder = view.holder or {}
        pid = holder.get("pid")
        # A holder on this machine whose process lives (the store judges the others by age only).
        if holder.get("machine") == store.me["machine"] and isinstance(pid, int) and process_alive(pid, holder.get("pid_start")):
            pids.append(pid)
    out = [f"{cancel} {' '.join(shlex.quote(j) for j in ids)}" for cancel, ids in jobs.items()]
    if pids:
        out.append("kill " + " ".join(str(p) for p in sorted(set(pids))))
    return out
