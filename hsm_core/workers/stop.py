"""How to stop the workers of a pull-based sweep, for ``hsm cancel``.

hsm cancel does not stop workers itself: they may run on other hosts and clusters, and each one
stopped by a signal records its task for the next worker to resume. It says instead exactly what to
run: the scheduler jobs ``hsm worker submit`` recorded, and the live workers on this machine (from
those submissions and from the claims they hold).
"""

from __future__ import annotations

import json
import shlex
import socket
from pathlib import Path
from typing import Any, Iterator

from hsm_core.workers.claims import machine_id, process_alive

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


def _claim_holders(sweep_path: Path) -> Iterator[dict[str, Any]]:
    for lock in sorted((sweep_path / ".locks").glob("*.lock")):
        try:
            holder = json.loads(lock.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(holder, dict):
            yield holder


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
    here, me = socket.gethostname(), machine_id()
    for holder in _claim_holders(sweep_path):
        pid = holder.get("pid")
        on_this_machine = holder.get("machine") == me if holder.get("machine") else holder.get("host") == here
        if isinstance(pid, int) and on_this_machine and process_alive(pid, holder.get("pid_start")):
            pids.append(pid)
    out = [f"{cancel} {' '.join(shlex.quote(j) for j in ids)}" for cancel, ids in jobs.items()]
    if pids:
        out.append("kill " + " ".join(str(p) for p in sorted(set(pids))))
    return out
