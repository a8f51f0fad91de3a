"""What ``hsm sync`` sends for each W&B run of a sweep.

On the target, under ``paths.wandb``::

    offline-run-20251020_212836-3f9a2c0d1e2b/        every directory of the run, as on disk
    offline-run-20251020_224501-3f9a2c0d1e2b/        (a resumed run has several)
    artifacts/3f9a2c0d1e2b/model-ckpt/v2/ckpt.pt     artifact payloads from wandb's staging dir

With ``latest_only`` only the last version of each artifact (by logging order) is sent; older
versions already on the target stay there (nothing is ever deleted). ``--all-versions`` sends every
version. A finished run gets a fingerprint (its directories, their logs' sizes and what is sent of
its artifacts): with ``check_remote_first`` a target that has it skips the run. An unfinished run
has none and is sent every time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

from hsm_core.plugin import SyncItem
from hsm_plugin_wandb_sync.discovery import WandbRun, discover

KIND = "wandb_run"
OLDER = "older artifact versions not sent (latest_only)"
MISSING = "artifact files not on this machine"
ARTIFACTS_DIR = "artifacts"


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(dirpath, f)).st_size  # follows wandb.save links
            except OSError:
                pass
    return total


def _safe_part(text: str) -> str | None:
    parts = [p for p in text.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def run_item(run: WandbRun, *, latest_only: bool, used: set[str]) -> SyncItem:
    """The :class:`SyncItem` of one run."""
    entries: list[tuple[Path, str]] = []
    notes: list[str] = []
    details: dict[str, int] = {}
    size = 0
    for d in run.dirs:
        if d.path.name in used:
            notes.append(f"run {run.run_id}: {d.path} not sent: another run dir of this sync has the same name")
            continue
        used.add(d.path.name)
        entries.append((d.path, d.path.name))
        size += _tree_size(d.path)
    sent_versions: list[str] = []
    for name, versions in run.versions().items():
        chosen = versions[-1:] if latest_only else versions
        older = len(versions) - len(chosen)
        if older:
            details[OLDER] = details.get(OLDER, 0) + older
        safe_name = _safe_part(name)
        for v in chosen:
            for f in v.files:
                if f.ref and not f.local_path:
                    continue  # a reference artifact: the data lives elsewhere
                rel = _safe_part(f.path)
                if not f.local_path or safe_name is None or rel is None or not os.path.isfile(f.local_path):
                    details[MISSING] = details.get(MISSING, 0) + 1
                    continue
                entries.append((Path(f.local_path), f"{ARTIFACTS_DIR}/{run.run_id}/{safe_name}/v{v.number}/{rel}"))
                size += f.size or os.path.getsize(f.local_path)
            sent_versions.append(f"{v.label}:{v.digest}")
    fingerprint = None
    if run.finished:
        basis = {
            "dirs": [(d.path.name, d.summary.size) for d in run.dirs],
            "artifacts": sorted(sent_versions),
            "latest_only": latest_only,
        }
        digest = hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:16]
        fingerprint = f"{run.run_id}.{digest}"
    label = f"run {run.run_id}" + (f" ({len(run.dirs)} dirs)" if len(run.dirs) > 1 else "")
    return SyncItem(
        kind=KIND,
        label=label,
        dest_root="wandb",
        entries=entries,
        size=size,
        fingerprint=fingerprint,
        details=details,
        notes=notes,
        info={
            "run_id": run.run_id,
            "finished": run.finished,
            "dirs": [d.path.name for d in run.dirs],
            "artifacts": sent_versions,
        },
    )


def sync_items(
    sweep_id: str,
    sweep_dir: Path,
    project_root: Path,
    project_config: Mapping[str, Any],
    options: Mapping[str, Any],
) -> list[SyncItem]:
    """One item per run of the sweep."""
    runs = discover(sweep_id, Path(sweep_dir), Path(project_root), project_config)
    latest_only = bool(options.get("latest_only", True)) and not options.get("all_versions")
    used: set[str] = set()
    return [run_item(r, latest_only=latest_only, used=used) for r in runs]
