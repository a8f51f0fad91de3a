"""``hsm collect-results SWEEP_ID``: bring finished task dirs back from the remotes, on demand.

Useful after ``hsm run --no-wait``, after a controller was killed, or to refresh results. A task
whose local copy is already ``completed``, or that finished on another source since, is never
overwritten by a remote copy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from hsm_core.plugin import HsmError, SweepLocation, TaskState, read_status, refresh_sweep_index

from hsm_plugin_ssh import remote_scripts
from hsm_plugin_ssh.source import MANIFEST

_FINAL = {s.value for s in TaskState if s.finished}


def _remotes_of(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    """Remote name -> where the sweep lives there (recorded when tasks were launched)."""
    try:
        data = json.loads((sweep_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): dict(v) for k, v in data.items() if isinstance(v, dict) and v.get("sweep_dir")}


def collect_sweep(loc: SweepLocation, *, only: str | None = None, echo: Callable[[str], None] = print) -> int | None:
    """Copy back the finished remote task dirs of a sweep; the number copied (None: no remotes)."""
    from hsm_plugin_ssh.host import shared_host

    tasks_dir = Path(loc.sweep_dir) / "tasks"
    remotes = _remotes_of(Path(loc.sweep_dir))
    if only:
        if only not in remotes:
            raise HsmError(f"sweep {loc.sweep_id} did not run on {only!r}",
                           hint=f"it ran on: {', '.join(sorted(remotes)) or 'no remote'}")
        remotes = {only: remotes[only]}
    if not remotes:
        return None
    configured = dict(((loc.project_config.get("distributed") or {}).get("remotes")) or {})
    total = 0
    for name, info in sorted(remotes.items()):
        if name not in configured:
            echo(f"{name}: not in distributed.remotes any more; skipped (add it back with hsm remote add)")
            continue
        host = shared_host(name, configured[name], loc.project_config.get("ssh") or {})
        python = str(info.get("python") or configured[name].get("python_interpreter") or "python3")
        res = host.run([python, "-c", remote_scripts.LIST], input=json.dumps({"sweep_dir": info["sweep_dir"]}), timeout=300)
        try:
            states: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else {}
        except (ValueError, IndexError):
            states = {}
        if res.returncode != 0:
            echo(f"{name}: cannot list {info['sweep_dir']}: {(res.stderr or res.stdout).strip()[-300:]}")
            continue
        to_copy, running, skipped = [], 0, 0
        for task, state in sorted(states.items()):
            local = read_status(tasks_dir / task) or {}
            if state not in _FINAL:
                running += state in ("running", "submitted")
                continue
            if local.get("state") == TaskState.COMPLETED.value or (
                local.get("state") in _FINAL and local.get("source") not in (None, name)
            ):
                skipped += 1
                continue
            to_copy.append(task)
        host.get_many(f"{info['sweep_dir']}/tasks", to_copy, tasks_dir)
        by_state: dict[str, int] = {}
        for task in to_copy:
            st = str((read_status(tasks_dir / task) or {}).get("state"))
            by_state[st] = by_state.get(st, 0) + 1
        detail = ", ".join(f"{v} {k}" for k, v in sorted(by_state.items()))
        echo(f"{name}: copied {len(to_copy)} task dir(s) from {host.settings.describe()}:{info['sweep_dir']}"
             + (f" ({detail})" if detail else "") + f"; {running} still running; {skipped} already here")
        total += len(to_copy)
    refresh_sweep_index(loc.sweep_dir)
    return total
