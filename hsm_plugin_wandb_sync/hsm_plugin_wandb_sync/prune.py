"""``hsm wandb prune``: old artifact versions of a sweep's runs, on the W&B server and on disk.

Server (through ``wandb.Api``, the calls of wandb 0.31): ``api.runs(path, filters={"group":
sweep_id})``, then per run ``run.logged_artifacts()``; per artifact name the newest ``keep``
versions stay, and so does every version with an alias (``latest``, ``best`` or the user's own);
the others are deleted with ``artifact.delete(delete_aliases=False)`` (which refuses, server-side,
to drop a version that gained an alias meanwhile).

This machine: the payloads wandb copied into its staging dir (``.../artifacts/staging/``) for each
``log_artifact``. A run not yet uploaded (an offline run without ``wandb sync``'s ``.synced``
marker) still needs all of them; for uploaded runs the same rule as on the server applies.
Nothing outside a staging dir is ever deleted.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from hsm_plugin_wandb_sync.discovery import WandbRun


@dataclass
class ServerAction:
    """What prune did (or would do) to one artifact version on the server."""

    run_id: str
    artifact: str  #: ``name:vN``
    aliases: list[str]
    action: str  #: "delete", "keep" or "error"
    reason: str


@dataclass
class LocalAction:
    """What prune did (or would do) to one staging file."""

    path: str
    size: int
    run_id: str
    artifact: str
    action: str  #: "delete" or "keep"
    reason: str


def version_number(artifact: Any) -> int:
    """``3`` for version ``v3`` (from ``artifact.version``, else the name's ``:v3``)."""
    for text in (getattr(artifact, "version", None), str(getattr(artifact, "name", "")).rpartition(":")[2]):
        m = re.fullmatch(r"v(\d+)", str(text or ""))
        if m:
            return int(m.group(1))
    return -1


def prune_server(
    api: Any,
    path: str,
    sweep_id: str,
    *,
    keep: int = 1,
    dry_run: bool = False,
    types: Sequence[str] = (),
) -> list[ServerAction]:
    """Delete old artifact versions logged by the sweep's runs (group ``sweep_id``) in ``path``."""
    actions: list[ServerAction] = []
    for run in api.runs(path, filters={"group": sweep_id}):
        by_name: dict[str, list[Any]] = {}
        for art in run.logged_artifacts():
            if types and getattr(art, "type", None) not in types:
                continue
            by_name.setdefault(str(art.name).rpartition(":")[0] or str(art.name), []).append(art)
        for name, arts in sorted(by_name.items()):
            arts.sort(key=version_number)
            newest = {id(a) for a in arts[-keep:]} if keep > 0 else set()
            for art in arts:
                label = f"{name}:v{version_number(art)}"
                aliases = [str(a) for a in (art.aliases or [])]
                if id(art) in newest:
                    actions.append(ServerAction(str(run.id), label, aliases, "keep", f"newest {keep}"))
                elif aliases:
                    actions.append(ServerAction(str(run.id), label, aliases, "keep", "alias " + ", ".join(aliases)))
                elif dry_run:
                    actions.append(ServerAction(str(run.id), label, aliases, "delete", "older version"))
                else:
                    try:
                        art.delete(delete_aliases=False)
                        actions.append(ServerAction(str(run.id), label, aliases, "delete", "older version"))
                    except Exception as exc:  # one failure must not stop the others
                        actions.append(ServerAction(str(run.id), label, aliases, "error", " ".join(str(exc).split())[:200]))
    return actions


def _in_staging(path: str) -> bool:
    parts = Path(path).parts
    return any(parts[i] == "artifacts" and parts[i + 1] == "staging" for i in range(len(parts) - 1))


def prune_local(runs: Iterable[WandbRun], *, keep: int = 1, dry_run: bool = False) -> list[LocalAction]:
    """Delete staging payloads that no run still needs (see the module docstring)."""
    needed: dict[str, tuple[str, str, str]] = {}
    candidates: dict[str, tuple[str, str]] = {}
    for run in runs:
        for name, versions in run.versions().items():
            kept = {id(v) for v in versions[-keep:]} if keep > 0 else set()
            for v in versions:
                user_aliases = [a for a in v.aliases if a != "latest"]
                for f in v.files:
                    if not f.local_path:
                        continue
                    if not run.synced:
                        needed[f.local_path] = (run.run_id, v.label, "run not uploaded yet (no wandb sync)")
                    elif id(v) in kept:
                        needed[f.local_path] = (run.run_id, v.label, f"newest {keep}")
                    elif user_aliases:
                        needed[f.local_path] = (run.run_id, v.label, "alias " + ", ".join(user_aliases))
                    else:
                        candidates.setdefault(f.local_path, (run.run_id, v.label))
    actions: list[LocalAction] = []
    for path, (run_id, label, reason) in sorted(needed.items()):
        if os.path.isfile(path):
            actions.append(LocalAction(path, os.path.getsize(path), run_id, label, "keep", reason))
    for path, (run_id, label) in sorted(candidates.items()):
        if path in needed or not os.path.isfile(path):
            continue
        if not _in_staging(path):
            actions.append(LocalAction(path, os.path.getsize(path), run_id, label, "keep", "not in a wandb staging dir"))
            continue
        size = os.path.getsize(path)
        if not dry_run:
            try:
                os.unlink(path)
            except OSError as exc:
                actions.append(LocalAction(path, size, run_id, label, "keep", f"cannot delete: {exc.strerror}"))
                continue
        actions.append(LocalAction(path, size, run_id, label, "delete", "older version of an uploaded run"))
    return actions
