"""How to stop the workers of a pull-based sweep, for ``hsm cancel``.

hsm cancel does not stop workers itself: they may run on other hosts and clusters, and each one
stopped by a signal records its task for the next worker to resume. It says instead exactly what to
run: the scheduler jobs ``hsm worker submit`` recorded (each with the command its scheduler's
plugin gave for stopping it), and the live workers on this machine (from those submissions and from
the claims they hold).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any, Iterator

from hsm_core.workers.claims import ClaimStore, process_alive
from hsm_core.workers.layout import LOCKS_DIR


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


def _cancel_command(entry: dict[str, Any], registry: Any) -> tuple[tuple[str, ...], bool] | None:
    """``(command, takes the id)`` cancelling the entry's job: as recorded at submission (the job id
    split off its end, so that jobs of one scheduler share a line), else, for an entry written by an
    older hsm, the ``cancel_command`` of the scheduler that submitted it."""
    job_id = str(entry["job_id"])
    recorded = entry.get("cancel")
    if isinstance(recorded, list) and recorded and all(isinstance(a, str) for a in recorded):
        return (tuple(recorded[:-1]), True) if recorded[-1] == job_id else (tuple(recorded), False)
    if registry is None:
        return None
    from hsm_core.plugins import scheduler_records

    schedulers = scheduler_records(registry)
    source, submitter = str(entry.get("source") or ""), str(entry.get("submitter") or "")
    candidates = [r for n, r in schedulers.items() if source == n or source in getattr(r, "aliases", ())]
    candidates += [r for r in schedulers.values() if submitter and submitter in getattr(r, "local_commands", ())]
    for record in candidates:
        try:
            command = tuple(getattr(record.load(), "cancel_command", ()) or ())
        except Exception:  # a broken plugin: say what was submitted instead
            continue
        if command:
            return command, True
    return None


def stop_commands(sweep_path: Path, registry: Any = None) -> list[str]:
    """Commands that stop the sweep's workers known here: scheduler jobs and local processes.

    ``registry`` (default: the process-wide one) names the cancel command of submissions recorded
    without one."""
    if registry is None:
        from hsm_core.plugins import get_registry

        registry = get_registry()
    jobs: dict[tuple[str, ...], list[str]] = {}
    unknown: list[str] = []
    pids: list[int] = []
    for entry in _submissions(sweep_path):
        if entry.get("job_id"):
            found = _cancel_command(entry, registry)
            if found is None:
                unknown.append(f"cancel job {entry['job_id']} of {entry.get('source') or 'the scheduler'}")
            else:
                ids = jobs.setdefault(found[0], [])
                if found[1]:
                    ids.append(str(entry["job_id"]))
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
    out = []
    for command, ids in jobs.items():
        out.append(" ".join(shlex.quote(a) for a in (*command, *ids)))
    out += unknown
    if pids:
        out.append("kill " + " ".join(str(p) for p in sorted(set(pids))))
    return out
