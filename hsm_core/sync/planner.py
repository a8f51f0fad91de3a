"""What ``hsm sync`` sends to one target.

Two sources of :class:`~hsm_core.plugin.SyncItem`:

* the sweep directory itself (``sync_sweep_metadata``), limited to ``max_depth`` directory levels,
  without the tasks' ``wandb/`` directories (W&B runs travel as their own items);
* every plugin's ``hsm_sync_items`` (``sync_wandb_runs``): the wandb plugin returns one item per
  run of the sweep, with its artifact payloads.

With ``check_remote_first`` the target is asked once (one listing of ``<root>/.hsm-sync/``) which
finished items it already received; those are skipped. An item without a fingerprint (a run still
writing) is always sent again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from hsm_core.install_hints import install_hint
from hsm_core.plugin import HsmError, SweepLocation, SyncItem
from hsm_core.sync.config import MARKER_DIR, SyncTarget

SWEEP_KIND = "sweep"
#: What the paths of a target are for, in error messages.
ROOT_PURPOSE = {
    "sweeps": "for the sweep directory (or use --wandb-only)",
    "wandb": "for W&B runs (or use --sweep-only)",
    "project_root": "for this item",
}


@dataclass
class TargetPlan:
    """The items for one target, after ``check_remote_first``."""

    target: SyncTarget
    options: dict[str, Any]
    items: list[SyncItem] = field(default_factory=list)
    skipped: list[tuple[SyncItem, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: dest_root key -> path on the target
    roots: dict[str, str] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(i.size for i in self.items)


def sweep_dest(sweep_dir: Path, project_root: Path, target: SyncTarget) -> tuple[str, str]:
    """(dest_root key, relative path) of the sweep dir on the target.

    With the default layout ``sweeps/outputs/<id>`` goes to ``<paths.sweeps>/outputs/<id>``, so the
    target's project looks like this one; a sweep dir outside ``sweeps/`` goes to
    ``<paths.sweeps>/<id>``. Without ``paths.sweeps``, ``paths.project_root`` receives the sweep dir
    at its place relative to the project.
    """
    sweep_dir = Path(sweep_dir).absolute()
    root = Path(project_root).absolute()
    if target.paths.get("sweeps"):
        try:
            return "sweeps", sweep_dir.relative_to(root / "sweeps").as_posix()
        except ValueError:
            return "sweeps", sweep_dir.name
    if target.paths.get("project_root"):
        try:
            return "project_root", sweep_dir.relative_to(root).as_posix()
        except ValueError:
            return "project_root", f"sweeps/outputs/{sweep_dir.name}"
    target.path("sweeps", why=ROOT_PURPOSE["sweeps"])  # raises the error naming the file
    raise AssertionError("unreachable")


def depth_excludes(rel: str, max_depth: int | None) -> tuple[str, ...]:
    """Exclude patterns keeping files at most ``max_depth`` directory levels below ``rel``."""
    if max_depth is None:
        return ()
    return (f"/{rel}/" + "/".join(["*"] * (max_depth + 2)),)


def _tree_size(path: Path, max_depth: int | None, skip_task_wandb: bool) -> int:
    total = 0
    base = len(path.parts)
    for dirpath, dirnames, filenames in os.walk(path):
        depth = len(Path(dirpath).parts) - base
        if skip_task_wandb and depth == 2 and Path(dirpath).parent.name == "tasks" and "wandb" in dirnames:
            dirnames.remove("wandb")
        if max_depth is not None and depth >= max_depth:
            dirnames[:] = []
        for f in filenames:
            try:
                total += os.stat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def sweep_item(loc: SweepLocation, target: SyncTarget, max_depth: int | None) -> SyncItem:
    """The sweep directory as one item."""
    root_key, rel = sweep_dest(loc.sweep_dir, loc.project_root, target)
    excludes = (
        f"/{rel}/tasks/*/wandb/",  # W&B runs are items of their own
        ".*.tmp",  # hsm's atomic writes in flight
        f"/{rel}/.controller/",  # the controller lease names a process on this machine (hsm_core.lease)
        *depth_excludes(rel, max_depth),
    )
    return SyncItem(
        kind=SWEEP_KIND,
        label=f"sweep {loc.sweep_id}",
        dest_root=root_key,
        entries=[(loc.sweep_dir, rel)],
        size=_tree_size(loc.sweep_dir, max_depth, True),
        excludes=excludes,
        prune_empty_dirs=max_depth is not None,
        info={"dest": rel},
    )


def plugin_items(loc: SweepLocation, options: Mapping[str, Any], registry: Any) -> tuple[list[SyncItem], bool]:
    """Items of every plugin's ``hsm_sync_items``, and whether any plugin implements the hook."""
    hook = registry.hook.hsm_sync_items
    if not hook.get_hookimpls():
        return [], False
    results = hook(
        sweep_id=loc.sweep_id,
        sweep_dir=str(loc.sweep_dir),
        project_root=str(loc.project_root),
        project_config=dict(loc.project_config),
        options=dict(options),
    )
    items: list[SyncItem] = []
    for part in results:
        items.extend(part or [])
    return items, True


def plan_target(
    loc: SweepLocation,
    target: SyncTarget,
    options: Mapping[str, Any],
    registry: Any,
    transport: Any | None = None,
) -> TargetPlan:
    """Everything to send to ``target``. Only this machine is looked at, unless ``transport`` (opened)
    is given: then :func:`check_remote` is applied too."""
    plan = TargetPlan(target, dict(options))
    candidates: list[SyncItem] = []
    if not options.get("sync_sweep_metadata", True) and not options.get("sync_wandb_runs", True):
        raise HsmError(f"nothing to sync to {target.name!r}: sync_sweep_metadata and sync_wandb_runs are both off",
                       hint="turn one on in .hsm/sync_config.yaml, or drop --sweep-only/--wandb-only")
    if options.get("sync_sweep_metadata", True):
        candidates.append(sweep_item(loc, target, options.get("max_depth")))
    if options.get("sync_wandb_runs", True):
        items, implemented = plugin_items(loc, options, registry)
        if not implemented:
            plan.notes.append(f"W&B runs not synced: no plugin provides them ({install_hint('hsm-plugin-wandb-sync')})")
        candidates.extend(items)
    for item in candidates:
        if item.skip_reason:
            plan.skipped.append((item, item.skip_reason))
            continue
        if item.dest_root not in plan.roots:
            plan.roots[item.dest_root] = target.path(item.dest_root, why=ROOT_PURPOSE.get(item.dest_root, f"for {item.label}"))
        plan.items.append(item)
    if transport is not None:
        plan.items = check_remote(plan, transport, plan.items)
    return plan


def check_remote(plan: TargetPlan, transport: Any, items: list[SyncItem]) -> list[SyncItem]:
    """``check_remote_first``: of ``items``, those the target does not have yet (the others are
    added to ``plan.skipped``). One listing per destination directory, only when needed."""
    if not plan.options.get("check_remote_first", True):
        return list(items)
    remaining: list[SyncItem] = []
    listings: dict[str, set[str]] = {}
    for item in items:
        if item.fingerprint is None:
            remaining.append(item)
            continue
        root = plan.roots[item.dest_root]
        if root not in listings:
            listings[root] = set(transport.list_remote(f"{root.rstrip('/')}/{MARKER_DIR}"))
        if item.fingerprint in listings[root]:
            plan.skipped.append((item, "already on target"))
        else:
            remaining.append(item)
    return remaining
