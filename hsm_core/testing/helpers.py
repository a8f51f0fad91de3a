"""Helpers shared by hsm's own tests and by plugin tests."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from hsm_core.plugin import ComputeSource, SourceContext, TaskSpec, TaskState
from hsm_core.registry import PluginRegistry, build_registry
from hsm_core.state import SweepDir, TaskRecord, read_status
from hsm_core.taskdir import METRICS_FILE

#: A test "training script": prints its argv, honours a few parameters, writes metrics.json.
#: Parameters (hydra style key=value): ``exit=N`` exits with N, ``sleep=S`` sleeps S seconds,
#: ``fail_once=1`` fails on the first attempt only (a marker file remembers it).
SCRIPT = f"METRICS_FILE = {METRICS_FILE!r}\n" + r'''
import json, os, sys, time
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
print("ARGV", json.dumps(sys.argv[1:]))
print("ENV", json.dumps({k: v for k, v in os.environ.items() if k.startswith("HSM_") or k == "CUDA_VISIBLE_DEVICES"}))
sys.stdout.flush()
task_dir = os.environ["HSM_TASK_DIR"]
marker = os.path.join(task_dir, "fail_once.marker")
if args.get("fail_once") == "1" and not os.path.exists(marker):
    open(marker, "w").close()
    sys.exit(3)
if "sleep" in args:
    time.sleep(float(args["sleep"]))
with open(os.path.join(os.environ.get("HSM_COUNT_DIR", task_dir), "runs.log"), "a") as fh:
    fh.write(os.environ["HSM_TASK_ID"] + "\n")
with open(os.path.join(task_dir, METRICS_FILE), "w") as fh:
    json.dump({"score": float(args.get("x", 1)) * 2}, fh)
print("METRIC loss=0.5")
print("error output", file=sys.stderr)
sys.exit(int(args.get("exit", 0)))
'''


def skip_if_not_applicable(suite: Any, request: Any) -> None:
    """For a contract suite's autouse fixture: skip the running check when the suite's
    ``not_applicable`` names it (``{"check_name": "why"}``, without ``test_``); a name given
    without a reason fails the check instead."""
    import pytest

    check = request.node.originalname
    check = check[5:] if check.startswith("test_") else check
    if check in suite.not_applicable:
        reason = str(suite.not_applicable[check] or "").strip()
        if not reason:
            pytest.fail(f"{type(suite).__name__}.not_applicable[{check!r}] must say why the check does not apply")
        pytest.skip(f"not applicable to {type(suite).__name__}: {reason}")


def fresh_registry(*, entry_points: bool = False, extra: Iterable[tuple[str, Any]] = ()) -> PluginRegistry:
    """A registry with the built-ins (and installed plugins when ``entry_points``)."""
    return build_registry(entry_points=entry_points, extra=extra)


def make_sweep(
    root: Path,
    params_list: Sequence[Mapping[str, Any]],
    *,
    script: str = SCRIPT,
    sweep_id: str = "sweep_test",
    python: str | None = None,
    registry: PluginRegistry | None = None,
    project_config: Mapping[str, Any] | None = None,
) -> tuple[SweepDir, list[TaskSpec], SourceContext]:
    """A project at ``root`` with ``train.py`` = ``script`` and a sweep dir holding one task per params."""
    from hsm_core.prepare import CommandPlan, materialize
    from hsm_core.sweep import default_task_id

    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.py").write_text(script)
    sweep = SweepDir(root / "sweeps" / "outputs" / sweep_id)
    sweep.path.mkdir(parents=True, exist_ok=True)
    sweep.create_layout()
    sweep.write_metadata({"sweep_id": sweep_id, "project_root": str(root)})
    records = [TaskRecord(i + 1, default_task_id(p), dict(p)) for i, p in enumerate(params_list)]
    plan = CommandPlan(None, python or sys.executable, "train.py", "hydra", root)
    specs = materialize(sweep, records, plan, registry or fresh_registry(), {})
    sweep.save_index(records)
    context = SourceContext(
        sweep_id=sweep_id,
        sweep_dir=sweep.path,
        project_root=root,
        project_config=dict(project_config or {}),
    )
    return sweep, specs, context


def read_task_status(spec: TaskSpec) -> dict[str, Any]:
    """The task's status.yaml (empty dict when missing)."""
    return read_status(spec.task_dir) or {}


def run_until_final(
    source: ComputeSource, specs: Sequence[TaskSpec], *, timeout: float = 120.0, launch: bool = True
) -> dict[str, TaskState]:
    """Launch ``specs`` on ``source`` and poll until every task reports a final state.

    Returns task_id -> final state. Raises AssertionError on timeout, listing what is unfinished.
    """
    if launch:
        source.launch(list(specs))
    final: dict[str, TaskState] = {}
    deadline = time.time() + timeout
    interval = 0.05
    while len(final) < len(specs):
        for upd in source.poll():
            if upd.state.finished:
                final[upd.task_id] = upd.state
        if len(final) >= len(specs):
            break
        if time.time() > deadline:
            missing = [s.name for s in specs if s.task_id not in final]
            raise AssertionError(f"tasks not final after {timeout}s: {missing}")
        time.sleep(interval)
        interval = min(interval * 1.5, max(0.05, min(source.poll_interval, 2.0)))
    return final
