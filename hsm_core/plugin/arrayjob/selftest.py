"""``hsm test`` for an array-job scheduler (part of the array-job toolkit of :mod:`hsm_core.plugin`):
:meth:`ArrayJobSource.test`, which every scheduler built on the toolkit inherits.

The checks: the scheduler answers its health command, the configured partition exists (when the
source lists partitions), then a one-task array job is submitted and must complete within the
timeout. The test sweep lives in ``<project>/.hsm/hpc_test/`` and is removed when the job passed
(kept, and named, when it did not).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from hsm_core.errors import HsmError
from hsm_core.plugin.values import TargetTest, TaskState
from hsm_core.taskdir import stdout_path

if TYPE_CHECKING:  # pragma: no cover
    from hsm_core.plugin.arrayjob.source import ArrayJobSource

__all__ = ["check_array_source"]

#: What the test task prints; the check looks for it in the task's stdout.log.
PROBE_OUTPUT = "hsm test ok"


def check_array_source(source: "ArrayJobSource", check: TargetTest) -> bool:
    """Run the checks on ``source`` (created as ``--sources TARGET`` would), one line each through
    ``check.echo``; True when every check passed."""
    from hsm_core.plugin.taskfiles import now_iso

    echo = check.echo
    ok = True

    def verdict(name: str, passed: bool, detail: str = "") -> None:
        nonlocal ok
        ok = ok and passed
        echo(f"  [{'ok' if passed else 'FAILED'}] {name}" + (f": {detail}" if detail else ""))

    where = f" via {source.options['host']}" if source.options.get("host") else ""
    echo(f"Testing {check.target} -> {source.scheduler_name} source {source.name!r}{where}")
    health = source.health()
    verdict("scheduler answers", health.healthy, health.message)
    if not health.healthy:
        return False
    if hasattr(source, "partitions"):
        try:
            parts = source.partitions()
        except Exception as exc:  # listing partitions is informative only
            parts = []
            echo(f"  (cannot list partitions: {exc})")
        names = [p["name"].rstrip("*") for p in parts]
        if names:
            echo("  partitions: " + ", ".join(f"{p['name']} ({p.get('state', '?')}, limit {p.get('timelimit', '?')})" for p in parts))
        wanted = source.resources.partition
        if wanted and names:
            verdict(f"partition {wanted!r} exists", wanted in names, "" if wanted in names else "known: " + ", ".join(names))
    echo(f"  array jobs of up to {source.max_array_size()} tasks")
    if not ok:
        echo("  test job not submitted (fix the checks above first)")
        return False
    stamp = now_iso().replace(":", "").replace("+", "_")[:17]
    if check.make_probe_task is None:
        raise HsmError("this check runs a test task: its TargetTest needs make_probe_task (hsm test sets it)")
    root = Path(source.context.project_root)
    spec = check.make_probe_task(root / ".hsm" / "hpc_test" / f"test_{stamp}",
                                 f"import socket; print('{PROBE_OUTPUT} on', socket.gethostname())", task_id="hpc-test")
    # A source of the same kind and options, whose sweep is the test sweep (its job script, its
    # job name); it shares the connection to the cluster's login node.
    probe = type(source)(source.name, source.options,
                         dataclasses.replace(source.context, sweep_id=spec.sweep_id, sweep_dir=spec.sweep_dir))
    probe._host = source._host
    try:
        probe.launch([spec])
    except HsmError as exc:
        verdict("test job submitted", False, str(exc))
        return False
    job = spec.sweep_dir / "scripts" / "job_scripts"
    echo(f"  submitted a test job (script: {next(iter(sorted(job.glob('*.sh'))), job)})")
    deadline = time.monotonic() + check.timeout
    final = None
    while time.monotonic() < deadline and final is None:
        for upd in probe.poll():
            if upd.state.finished:
                final = upd
        if final is None:
            time.sleep(0.5)
    if final is None:
        probe.cancel([spec.task_id])
        verdict("test job finished", False, f"not finished after {check.timeout:g}s (queued? see 'hsm queue'); cancelled")
        return False
    log = stdout_path(spec.task_dir)
    out = log.read_text(errors="replace").strip() if log.exists() else ""
    passed = final.state == TaskState.COMPLETED and PROBE_OUTPUT in out
    verdict("test job completed", passed, out if passed else f"{final.state.value} {final.message} (files kept in {spec.sweep_dir})")
    if passed:
        shutil.rmtree(spec.sweep_dir, ignore_errors=True)
    return passed
