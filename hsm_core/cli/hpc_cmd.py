"""``hsm cancel``, ``hsm queue`` and ``hsm test hpc[:NAME]``.

``cancel`` works for every source that can attach to running tasks (local processes, scheduler
jobs ...): it rebuilds the sweep's sources from ``sweep_metadata.yaml``, attaches to the active
tasks, cancels them and marks them cancelled. ``queue`` and ``test`` talk to a batch scheduler
through the source that ``--sources hpc[:NAME]`` would use.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path
from typing import Any

import click

from hsm_core.plugin import HsmError


def _registry() -> Any:
    from hsm_core.plugins import get_registry

    return get_registry()


def _project(project_dir: str | None, registry: Any) -> Any:
    from hsm_core.config.project_config import load_project_config
    from hsm_core.config.project_root import resolve_project_root

    return load_project_config(resolve_project_root(project_dir), registry)


def _context(project: Any, registry: Any, sweep_id: str, sweep_dir: Path) -> Any:
    from hsm_core.hosts import get_host
    from hsm_core.plugin import SourceContext

    ctx = SourceContext(
        sweep_id=sweep_id,
        sweep_dir=sweep_dir.resolve(),
        project_root=project.root.resolve(),
        project_config=project.data,
    )
    ctx.get_host = lambda name: get_host(name, project.data, registry)
    return ctx


# ---------------------------------------------------------------------------------------------
# hsm cancel
# ---------------------------------------------------------------------------------------------


def cancel_sweep(project: Any, sweep: Any, registry: Any, *, wait: float = 60.0, echo: Any = print) -> dict[str, int]:
    """Cancel every queued or running task of ``sweep``; returns counts of the resulting states.

    Tasks are grouped by the source recorded in their ``status.yaml``; each source is created from
    the sweep's ``sources`` (or from that name alone), attaches to its tasks and cancels them.
    Tasks whose final state is anything but completed are then recorded as ``cancelled``.
    """
    from hsm_core.plugin import TaskSpec, TaskState
    from hsm_core.sources import create_sources, parse_sources
    from hsm_core.state import read_status, write_status, now_iso

    records = sweep.records()
    active = []
    for rec in records.values():
        d = sweep.record_dir(rec)
        status = read_status(d) or {}
        state = status.get("state") or rec.state
        if state in (TaskState.SUBMITTED.value, TaskState.RUNNING.value):
            active.append((rec, d, status))
    if not active:
        sweep.update_metadata(status="cancelled", updated=now_iso())
        return {}
    context = _context(project, registry, sweep.sweep_id, sweep.path)
    meta = sweep.read_metadata()
    sources: dict[str, Any] = {}
    try:
        for src in create_sources(parse_sources(str(meta.get("sources") or "local"), project.data, registry), registry, context):
            sources[src.name] = src
    except HsmError as exc:
        echo(f"warning: cannot recreate the sweep's sources ({exc}); trying each task's own source")
    groups: dict[str, list[tuple[Any, Path, dict]]] = collections.defaultdict(list)
    for item in active:
        groups[str(item[2].get("source") or item[0].source or "local")].append(item)
    followed: dict[str, Any] = {}
    unreachable = 0
    for name, items in groups.items():
        src = sources.get(name)
        if src is None:
            try:
                src = create_sources(parse_sources(name, project.data, registry), registry, context)[0]
            except HsmError as exc:
                echo(f"cannot cancel {len(items)} task(s) on {name!r}: {exc}")
                unreachable += len(items)
                continue
        specs = [TaskSpec(r.task_id, r.index, r.params, d.resolve(), sweep.sweep_id, sweep.path.resolve()) for r, d, _ in items]
        try:
            src.attach(specs)
        except NotImplementedError as exc:
            echo(f"cannot cancel {len(items)} task(s) on {name!r}: {exc}")
            unreachable += len(items)
            continue
        try:
            src.cancel([s.task_id for s in specs])
        except HsmError as exc:
            # A host that is down: its tasks cannot be stopped now, and are not marked cancelled
            # (they may still run there; hsm complete follows them once it answers).
            echo(f"cannot cancel {len(items)} task(s) on {name!r}: {exc}")
            unreachable += len(items)
            try:
                src.close()
            except Exception:
                pass
            continue
        followed[name] = (src, {s.task_id: s for s in specs})
        echo(f"{name}: cancel requested for {len(specs)} task(s)")
    # Wait for the sources to see the tasks end (jobs leave the queue, processes exit).
    deadline = time.monotonic() + wait
    remaining = {tid for _, specs in followed.values() for tid in specs}
    while remaining and time.monotonic() < deadline:
        for src, specs in followed.values():
            try:
                for upd in src.poll():
                    if upd.state.finished:
                        remaining.discard(upd.task_id)
            except HsmError:
                pass
        if remaining:
            time.sleep(0.3)
    counts: dict[str, int] = {}
    for src, specs in followed.values():
        for tid, spec in specs.items():
            status = read_status(spec.task_dir) or {}
            if status.get("state") != TaskState.COMPLETED.value:
                if status.get("state") != TaskState.CANCELLED.value:
                    status.update(state=TaskState.CANCELLED.value, end_time=status.get("end_time") or now_iso())
                    status.setdefault("message", "cancelled by hsm cancel")
                    status.pop("process", None)
                    write_status(spec.task_dir, status)
            counts[status["state"]] = counts.get(status["state"], 0) + 1
        try:
            src.close()
        except Exception:
            pass
    if unreachable:
        counts["not cancelled"] = unreachable
    records = sweep.records()
    sweep.save_index(records.values(), mapping=True)
    sweep.update_metadata(status="cancelled", updated=now_iso())
    return counts


def _refuse_worker_sweep(sweep: Any, meta: dict[str, Any]) -> None:
    """Pull-based workers are stopped where they run (a stopped worker's task is resumed by the
    next one); say exactly how, instead of cancelling tasks behind their back."""
    from hsm_core.workers.layout import continue_command
    from hsm_core.workers.stop import stop_commands

    commands = stop_commands(sweep.path, _registry())
    how = "; ".join(commands) if commands else "stop each hsm worker where it runs (Ctrl-C, kill, or its scheduler job)"
    raise HsmError(
        f"sweep {sweep.sweep_id!r} is run by pull-based workers: stop them with: {how}",
        hint=f"each stopped worker's task is resumed by the next: {continue_command(meta)}",
    )


@click.command("cancel")
@click.argument("sweep_id", required=False)
@click.option("--wait", type=float, default=60.0, show_default=True, help="Seconds to wait for the tasks to stop.")
@click.option("--project-dir", type=click.Path(file_okay=False))
def cancel_command(sweep_id: str | None, wait: float, project_dir: str | None) -> None:
    """Cancel the queued and running tasks of SWEEP_ID (default: the latest sweep; scheduler jobs are cancelled through the scheduler)."""
    from hsm_core.sweep_select import resolve_sweep

    registry = _registry()
    project = _project(project_dir, registry)
    sweep = resolve_sweep(project, sweep_id)
    sweep_id = sweep.sweep_id
    meta = sweep.read_metadata()
    if meta.get("mode") == "workers":
        _refuse_worker_sweep(sweep, meta)
    counts = cancel_sweep(project, sweep, registry, wait=wait, echo=click.echo)
    if not counts:
        click.echo(f"Sweep {sweep_id}: nothing queued or running; marked cancelled.")
        return
    parts = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    click.echo(f"Sweep {sweep_id}: {parts}. Continue later with: hsm complete {sweep_id}")


# ---------------------------------------------------------------------------------------------
# hsm queue / hsm test hpc
# ---------------------------------------------------------------------------------------------


def scheduler_source(target: str, project: Any, registry: Any, sweep_dir: Path | None = None, sweep_id: str = "hsm_test") -> Any:
    """The scheduler source ``--sources TARGET`` would create (``hpc``, ``hpc:NAME``, a scheduler's name)."""
    from hsm_core.plugin import ArrayJobSource
    from hsm_core.plugins import scheduler_names
    from hsm_core.sources import create_sources, parse_sources

    requests = parse_sources(target, project.data, registry)
    if len(requests) != 1:
        raise HsmError(f"give one scheduler, not {target!r}")
    context = _context(project, registry, sweep_id, sweep_dir or project.output_dir)
    source = create_sources(requests, registry, context)[0]
    if not isinstance(source, ArrayJobSource):
        raise HsmError(f"{target!r} is a {type(source).__name__}, not a batch scheduler",
                       hint="use " + ", ".join(["hpc", "hpc:NAME", *scheduler_names(registry)]))
    return source


@click.command("queue")
@click.option("--cluster", help="A cluster from hpc.clusters (default: the hpc section / detected scheduler).")
@click.option("--watch", is_flag=True, help="Refresh until Ctrl-C.")
@click.option("--interval", type=float, default=5.0, show_default=True, help="Seconds between refreshes with --watch.")
@click.option("--project-dir", type=click.Path(file_okay=False))
def queue_command(cluster: str | None, watch: bool, interval: float, project_dir: str | None) -> None:
    """Show your jobs in the batch scheduler's queue (hpc.system, or the one found here)."""
    registry = _registry()
    project = _project(project_dir, registry)
    source = scheduler_source(f"hpc:{cluster}" if cluster else "hpc", project, registry)
    argv = source.queue_argv()
    try:
        while True:
            res = source.run(argv, timeout=60)
            if res.returncode != 0:
                raise HsmError(f"{' '.join(argv)} failed (exit {res.returncode}): {(res.stderr or res.stdout).strip()}")
            if watch:
                click.clear()
                click.echo(f"{source.scheduler_name} queue ({' '.join(argv)}), every {interval:g}s; Ctrl-C to stop  {time.strftime('%H:%M:%S')}")
            click.echo(res.stdout.rstrip() or "(no jobs)")
            if not watch:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        return


def test_hpc(target: str, project: Any, registry: Any, *, timeout: float = 120.0, echo: Any = print) -> bool:
    """Check a scheduler: its commands answer, partitions, and a one-task array job completes."""
    import shutil
    import sys

    from hsm_core.plugin import TaskState
    from hsm_core.prepare import CommandPlan, write_task
    from hsm_core.state import SweepDir, TaskRecord, now_iso

    ok = True

    def check(name: str, passed: bool, detail: str = "") -> None:
        nonlocal ok
        ok = ok and passed
        echo(f"  [{'ok' if passed else 'FAILED'}] {name}" + (f": {detail}" if detail else ""))

    stamp = now_iso().replace(":", "").replace("+", "_")[:17]
    test_root = project.root / ".hsm" / "hpc_test"
    sweep = SweepDir(test_root / f"test_{stamp}")
    source = scheduler_source(target, project, registry, sweep.path, sweep.sweep_id)
    where = f" via {source.options['host']}" if source.options.get("host") else ""
    echo(f"Testing {target} -> {source.scheduler_name} source {source.name!r}{where}")
    health = source.health()
    check("scheduler answers", health.healthy, health.message)
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
            check(f"partition {wanted!r} exists", wanted in names, "" if wanted in names else "known: " + ", ".join(names))
    echo(f"  array jobs of up to {source.max_array_size()} tasks")
    if not ok:
        echo("  test job not submitted (fix the checks above first)")
        return False
    sweep.path.mkdir(parents=True, exist_ok=True)
    sweep.create_layout()
    rec = TaskRecord(1, "hpc-test", {})
    python = str(project.python_interpreter or sys.executable)
    plan = CommandPlan(["{python}", "-c", "import socket; print('hsm test ok on', socket.gethostname())"], python, None, "hydra", project.root)
    spec = write_task(sweep, rec, plan, {})
    try:
        source.launch([spec])
    except HsmError as exc:
        check("test job submitted", False, str(exc))
        return False
    job = (sweep.path / "scripts" / "job_scripts")
    echo(f"  submitted a test job (script: {next(iter(sorted(job.glob('*.sh'))), job)})")
    deadline = time.monotonic() + timeout
    final = None
    while time.monotonic() < deadline and final is None:
        for upd in source.poll():
            if upd.state.finished:
                final = upd
        if final is None:
            time.sleep(0.5)
    if final is None:
        source.cancel([spec.task_id])
        check("test job finished", False, f"not finished after {timeout:g}s (queued? see 'hsm queue'); cancelled")
        return False
    from hsm_core.taskdir import stdout_path

    out = stdout_path(spec.task_dir).read_text(errors="replace").strip() if stdout_path(spec.task_dir).exists() else ""
    passed = final.state == TaskState.COMPLETED and "hsm test ok" in out
    check("test job completed", passed, out if passed else f"{final.state.value} {final.message} (files kept in {sweep.path})")
    if passed:
        shutil.rmtree(sweep.path, ignore_errors=True)
    return passed


@click.command("test")
@click.argument("target")
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Seconds to wait for the test job.")
@click.option("--project-dir", type=click.Path(file_okay=False))
def test_command(target: str, timeout: float, project_dir: str | None) -> None:
    """Check a compute target: hpc, hpc:NAME, an installed scheduler, or what a plugin adds (ssh:NAME).

    Each installed plugin answers for its own targets through the hsm_test_target hook.
    """
    from hsm_core.config.project_root import resolve_project_root

    registry = _registry()
    root = resolve_project_root(project_dir)
    passed = registry.hook.hsm_test_target(target=target, project_root=str(root), timeout=timeout, echo=click.echo)
    if passed is None:
        from hsm_core.plugins import scheduler_names

        raise HsmError(f"no installed plugin tests {target!r}",
                       hint="targets: " + ", ".join(["hpc", "hpc:NAME", *scheduler_names(registry)]) + "; other kinds with their plugins")
    if not passed:
        click.echo(f"{target}: some checks failed (see above).", err=True)
        click.get_current_context().exit(1)
    click.echo("All checks passed.")


def register(cli: click.Group) -> None:
    """Add cancel, queue and test."""
    cli.add_command(cancel_command)
    cli.add_command(queue_command)
    cli.add_command(test_command)
