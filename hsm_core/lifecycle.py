"""Starting and completing sweeps: from a sweep file (or a sweep dir) to an engine run.

The CLI commands ``run``, ``sweep`` (v1) and ``complete`` are thin wrappers over
:func:`plan_run`, :func:`plan_complete` and :func:`execute`. A controller holds the sweep's lease
(:mod:`hsm_core.lease`) from before it plans until it ends: ``hsm run`` takes it right after
creating the sweep dir, ``hsm complete`` before reading what is left to do.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hsm_core import __version__
from hsm_core.config.checked_cache import load_checked_project_config, record_check
from hsm_core.config.project_config import ProjectConfig
from hsm_core.config.project_root import resolve_project_root
from hsm_core.engine import Engine, WakeEvent
from hsm_core.failfast import FailFast, fail_fast_limit
from hsm_core.cancel_request import cancel_requested, clear_cancel_request
from hsm_core.lease import ControllerLease, Holder, lease_timeout
from hsm_core.on_finish import ENDED, run_on_finish
from hsm_core.plugin import ComputeSourceRecord, HsmError, SourceContext, StrategyRecord, TaskSpec, TaskState
from hsm_core.prepare import EnvBlocks, command_plan, prepare_task
from hsm_core.retries import Retrier, due_for_retry, policy_from
from hsm_core.sources import create_sources, parse_sources
from hsm_core.spec_queue import SpecQueue
from hsm_core.state import SweepDir, TaskRecord, new_sweep_id, now_iso, task_dir_name, validate_sweep_id
from hsm_core.sweep import SweepSpec, count, expand, load_spec, spec_from_dict, task_id_maker
from hsm_core.taskstate import DONE


@dataclass
class Plan:
    """What a run or complete will do; ``execute`` carries it out."""

    project: ProjectConfig
    spec: SweepSpec
    sweep: SweepDir
    records: dict[str, TaskRecord]  #: every task of the sweep, by id
    to_run: list[TaskRecord]  #: tasks to launch
    to_adopt: list[TaskRecord] = field(default_factory=list)  #: still running locally: watch them
    skipped: dict[str, int] = field(default_factory=dict)  #: reason -> count
    new_sweep: bool = True
    config_text: str | None = None
    max_runs: int | None = None
    #: The id hsm chose (``sweep_YYYYMMDD_HHMMSS``): another free one is taken if a run started in
    #: the same second claims it first. None when the user named the sweep (``--sweep-id``).
    id_base: str | None = None
    #: The sweep's controller lease while this plan is carried out (see :mod:`hsm_core.lease`).
    lease: ControllerLease | None = None
    #: ``hsm complete --retry-failed``: failed and timed-out tasks run again too.
    retry_failed: bool = False

    def release_lease(self) -> None:
        """Give the sweep's lease back, if held (idempotent)."""
        if self.lease is not None:
            self.lease.release()


def _expand_records(spec: SweepSpec, registry: Any, max_runs: int | None, start_index: int = 1,
                    existing: dict[str, TaskRecord] | None = None) -> tuple[dict[str, TaskRecord], int]:
    """Records for every parameter set (existing ones reused by id); returns (records, duplicates)."""
    records: dict[str, TaskRecord] = dict(existing or {})
    next_index = start_index
    duplicates = 0
    seen: set[str] = set()
    task_id_of = task_id_maker(registry)
    for params in expand(spec, registry):
        if max_runs is not None and len(seen) >= max_runs:
            break
        task_id = task_id_of(params)
        if task_id in seen:
            duplicates += 1
            continue
        seen.add(task_id)
        if task_id not in records:
            records[task_id] = TaskRecord(next_index, task_id, params)
            next_index += 1
    return records, duplicates


MAX_TASKS = 1_000_000


def _empty_dir(path: Path) -> bool:
    """True when ``path`` holds nothing (or does not exist)."""
    try:
        with os.scandir(path) as entries:
            return next(entries, None) is None
    except FileNotFoundError:
        return True


def _check_size(spec: SweepSpec, registry: Any, max_runs: int | None) -> int:
    total = count(spec, registry)
    effective = min(total, max_runs) if max_runs is not None else total
    if effective > MAX_TASKS:
        raise HsmError(
            f"the sweep has {total:,} combinations; hsm runs at most {MAX_TASKS:,} tasks per sweep",
            hint="narrow the grid, or use --max-runs N",
        )
    return total


def plan_run(
    config_file: Path,
    registry: Any,
    *,
    project_root: Path | None = None,
    sweep_id: str | None = None,
    max_runs: int | None = None,
) -> Plan:
    """Plan a new sweep from ``config_file`` (nothing is written yet) in the project at ``project_root``
    (default: the project holding the current directory)."""
    project = load_checked_project_config(project_root or resolve_project_root(), registry, record=False)
    spec = load_spec(config_file, registry)
    _check_size(spec, registry, max_runs)
    records, dups = _expand_records(spec, registry, max_runs)
    base = None
    if sweep_id is None:
        sweep_id = base = new_sweep_id()
        n = 1
        while (project.output_dir / sweep_id).exists():
            n += 1
            sweep_id = f"{base}_{n}"
    else:
        validate_sweep_id(sweep_id)
        existing = project.output_dir / sweep_id
        if existing.exists() and not (existing / "sweep_metadata.yaml").exists():
            # hsm was killed while creating it: "hsm complete" cannot continue what has no metadata.
            raise HsmError(f"{existing} exists but is not a sweep (no sweep_metadata.yaml: its creation was interrupted)",
                           hint=f"remove it with rm -r {existing}, or choose another --sweep-id")
        if existing.exists():
            raise HsmError(f"sweep {sweep_id!r} already exists", hint=f"continue it with: hsm complete {sweep_id}")
    sweep = SweepDir(project.output_dir / sweep_id)
    plan = Plan(project, spec, sweep, records, sorted(records.values(), key=lambda r: r.index), max_runs=max_runs,
                id_base=base)
    if dups:
        plan.skipped["duplicate parameter sets"] = dups
    plan.config_text = Path(config_file).read_text(encoding="utf-8")
    return plan


def plan_complete(
    sweep_id: str | None,
    registry: Any,
    *,
    project_root: Path | None = None,
    retry_failed: bool = False,
    config_file: Path | None = None,
    take_lease: bool = True,
    wait: bool = False,
    on_wait: Callable[[Holder], None] | None = None,
) -> Plan:
    """Plan finishing an existing sweep (``sweep_id`` None or ``latest``: the latest one): run what
    has no completed task, adopt what still runs.

    With ``take_lease`` (not for ``--dry-run``) the sweep's controller lease is taken *before*
    anything is read, and held by the returned plan (:func:`execute` gives it back): a plan made
    while another controller runs would be stale. A held lease raises
    :class:`~hsm_core.lease.LeaseHeld`, or with ``wait`` is waited for (``on_wait(holder)`` once).
    """
    project = load_checked_project_config(project_root or resolve_project_root(), registry, record=False)
    from hsm_core.sweep_select import resolve_sweep
    from hsm_core.workers.layout import continue_command

    sweep = resolve_sweep(project, sweep_id)  # None or "latest": the latest sweep
    sweep_id = sweep.sweep_id
    meta = sweep.read_metadata()
    if meta.get("mode") == "workers":
        # Its configurations are claimed by pull-based workers through lock files: running them
        # here behind the workers' back could run one twice. More workers finish it.
        raise HsmError(
            f"sweep {sweep_id!r} is run by pull-based workers, not by hsm complete",
            hint=f"finish it with: {continue_command(meta, retry_failed=retry_failed)} (or hsm worker submit on a cluster)",
        )
    if meta.get("project_root") and Path(meta["project_root"]).is_dir() and project_root is None:
        project = load_checked_project_config(Path(meta["project_root"]), registry, record=False)
    lease = None
    if take_lease:
        lease = ControllerLease.acquire(sweep, command="hsm complete", timeout=lease_timeout(project.data),
                                        wait=wait, on_wait=on_wait)
        clear_cancel_request(sweep.path)  # an earlier hsm cancel: running the sweep again is asked now
    try:
        plan = _plan_complete(project, sweep, registry, retry_failed=retry_failed, config_file=config_file)
    except BaseException:
        if lease is not None:
            lease.release()
        raise
    plan.lease = lease
    return plan


def _plan_complete(project: ProjectConfig, sweep: SweepDir, registry: Any, *, retry_failed: bool,
                   config_file: Path | None) -> Plan:
    """The plan of :func:`plan_complete`, read from the sweep's files."""
    meta = sweep.read_metadata()
    cfg = config_file or (sweep.path / "sweep_config.yaml")
    spec = load_spec(cfg, registry)
    max_runs = meta.get("max_runs")
    _check_size(spec, registry, max_runs)
    existing = sweep.records()
    start = max((r.index for r in existing.values()), default=0) + 1
    records, dups = _expand_records(spec, registry, max_runs, start, existing)
    wanted_ids = set()
    task_id_of = task_id_maker(registry)
    for params in expand(spec, registry):
        wanted_ids.add(task_id_of(params))
        if max_runs is not None and len(wanted_ids) >= max_runs:
            break
    plan = Plan(project, spec, sweep, records, [], new_sweep=False, retry_failed=retry_failed)
    retries = policy_from(spec.settings, project.data)
    from hsm_core.verdicts import RERUN_ONLY_WITH_RETRY, UNCONFIRMED_REASON, is_unconfirmed

    for rec in sorted(records.values(), key=lambda r: r.index):
        if rec.task_id not in wanted_ids:
            continue
        state = TaskState(rec.state)
        if state == TaskState.COMPLETED:
            plan.skipped["already completed"] = plan.skipped.get("already completed", 0) + 1
        elif state == TaskState.PRUNED:  # stopped early on purpose: even --retry-failed leaves it
            plan.skipped["pruned"] = plan.skipped.get("pruned", 0) + 1
        elif state.value in RERUN_ONLY_WITH_RETRY and not retry_failed and not due_for_retry(sweep, rec, retries):
            # (A transient failure with retries left runs again: its controller ended before it could.)
            # A timed-out task would most likely time out again: like a failure, on request only.
            reason = f"{state.value} (use --retry-failed)"
            plan.skipped[reason] = plan.skipped.get(reason, 0) + 1
        elif state == TaskState.PREEMPTED and not retry_failed and is_unconfirmed(_status(sweep, rec)):
            plan.skipped[UNCONFIRMED_REASON] = plan.skipped.get(UNCONFIRMED_REASON, 0) + 1
        elif state.active:
            status = _status(sweep, rec)
            if TaskState(status.get("state", rec.state)).active:
                # Still running (or queued) where an earlier controller put it: watch, don't re-run.
                plan.to_adopt.append(rec)
            elif TaskState(rec.state) == TaskState.COMPLETED:
                plan.skipped["already completed"] = plan.skipped.get("already completed", 0) + 1
            else:
                plan.to_run.append(rec)
        else:
            plan.to_run.append(rec)
    if config_file is not None:
        plan.config_text = Path(config_file).read_text(encoding="utf-8")
    return plan


def _status(sweep: SweepDir, rec: TaskRecord) -> dict[str, Any]:
    from hsm_core.state import STARTING, STARTING_GRACE, read_status, reconcile_status

    d = sweep.task_dir(rec.index)
    status = reconcile_status(d, read_status(d)) or {}
    # A local task its dead controller was starting ("process: starting") is decided now, not adopted
    # undecided: its wrapper shows up within moments (adopt it), or it never started (run it
    # here; adopted, it would only be found "interrupted" and left to the next hsm complete).
    deadline = time.monotonic() + STARTING_GRACE
    while (status.get("state") == TaskState.RUNNING.value and status.get("process") == STARTING
           and status.get("runner") == "local" and status.get("host") == socket.gethostname()
           and time.monotonic() < deadline):
        time.sleep(0.1)
        status = reconcile_status(d, read_status(d)) or {}
    if status.get("state"):
        rec.update_from_status(status)
    return status


@dataclass
class ExecOptions:
    """How to execute a plan."""

    sources: str = "local"
    strategy: str = "round_robin"
    parallel_limit: int | None = None
    show_output: bool = False
    no_wait: bool = False
    command_line: str = ""
    #: Options given on the command line for scheduler sources (v1 ``--walltime``).
    source_overrides: dict[str, Any] = field(default_factory=dict)
    #: Let plugins verify that remote projects match this one before running (``--no-verify-sync``).
    verify_sync: bool = True
    #: ``hsm run --gpus/--walltime/...`` (a :class:`~hsm_core.run_resources.RunResources`), over
    #: the sweep file's ``resources:``, over hsm_config.yaml.
    resources: Any = None


def _claim_sweep_dir(plan: Plan) -> None:
    """Create the new sweep's directory, atomically: ``mkdir`` fails if it exists, so two runs
    started in the same second never share one; the second takes the next free id
    (``sweep_..._2``). A name the user chose that exists by now is an error."""
    output_dir = plan.sweep.path.parent
    for n in range(1, 10_000):
        if plan.id_base is None:
            candidate = plan.sweep.path
        else:
            candidate = output_dir / (plan.id_base if n == 1 else f"{plan.id_base}_{n}")
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
            candidate.mkdir()
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise HsmError(f"no space left on device to create sweep {candidate.name} in {output_dir}; nothing was created",
                               hint="free some space, then run the same command again") from exc
            if not isinstance(exc, FileExistsError):
                raise
            if plan.id_base is None:
                raise HsmError(f"sweep {plan.sweep.sweep_id!r} already exists (another run just created it)",
                               hint=f"choose another --sweep-id, or continue it with: hsm complete {plan.sweep.sweep_id}") from None
            continue
        plan.sweep = SweepDir(candidate)
        return
    raise HsmError(f"no free sweep id left for {plan.id_base} in {output_dir}", hint="pass --sweep-id NAME")


def _release_sweep_dir(plan: Plan, exc: BaseException) -> None:
    """Undo :func:`_claim_sweep_dir` for a run refused or failed before its sweep was written
    (no ``sweep_metadata.yaml`` yet): this run made everything in the directory, and a half-made
    sweep can be neither completed nor trusted. A full disk says so, and what to run next."""
    path = plan.sweep.path
    full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    try:
        shutil.rmtree(path)
    except OSError:
        if full:
            raise HsmError(
                f"no space left on device while creating sweep {plan.sweep.sweep_id}; its directory is incomplete",
                hint=f"remove it (rm -r {path}), free some space, then run the same command again",
            ) from exc
        return
    if full:
        raise HsmError(
            f"no space left on device while creating sweep {plan.sweep.sweep_id}; nothing was created",
            hint="free some space, then run the same command again",
        ) from exc


def _user_name() -> str:
    """Who started the sweep: $USER, $LOGNAME, else the account of this process (cron jobs,
    containers and some batch jobs set neither variable)."""
    name = os.environ.get("USER") or os.environ.get("LOGNAME")
    if name:
        return name
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return ""


def _write_new_sweep(plan: Plan, opts: ExecOptions, total: int) -> None:
    sweep = plan.sweep
    # The lease first (the directory is ours: _claim_sweep_dir made it): once the metadata
    # exists, "hsm complete" can find the sweep.
    plan.lease = ControllerLease.acquire(sweep, command=_controller_name(opts), timeout=lease_timeout(plan.project.data))
    sweep.create_layout()
    from hsm_core.atomic import atomic_write_text

    atomic_write_text(sweep.path / "sweep_config.yaml", plan.config_text or "")
    sweep.write_metadata(
        {
            "sweep_id": sweep.sweep_id,
            "created": now_iso(),
            "hsm_version": __version__,
            "host": socket.gethostname(),
            "user": _user_name(),
            "project_root": str(plan.project.root.resolve()),
            "config_file": str(plan.spec.path.resolve()) if plan.spec.path else None,
            "sources": opts.sources,
            "strategy": opts.strategy,
            "total_combinations": total,
            "total_tasks": len(plan.records),
            "max_runs": plan.max_runs,
            "metadata": plan.spec.metadata,
            "status": "running",
            "command_line": opts.command_line,
            # hsm run --gpus/--walltime/...: hsm complete asks for the same unless told otherwise.
            **({"command_line_resources": opts.resources.to_json()} if opts.resources else {}),
        }
    )


def settle_sweep_status(plan: Plan) -> str:
    """For a controller with nothing to run: record how the sweep stands (``completed`` or
    ``incomplete``, or ``running`` while tasks it watches run elsewhere). The controller before
    it may have been killed, or replaced after losing its lease, before it could say so.
    Only the lease holder writes it; returns the state."""
    every = [r.state for r in plan.records.values()]
    if all(s in DONE for s in every):
        state = "completed"
    elif any(TaskState(s).active for s in every):
        state = "running"
    else:
        state = "incomplete"
    if plan.lease is not None and plan.lease.may_launch():
        try:
            before = plan.sweep.read_metadata().get("status")
            plan.sweep.update_metadata(status=state, updated=now_iso())
        except OSError:
            return state  # a read-only or full disk: the task dirs remain the truth
        if state in ENDED and before not in ENDED:
            # Its tasks ended with nobody watching (--no-wait, a killed controller): it ends now.
            run_on_finish(plan.project.data, plan.project.root, plan.sweep, plan.records.values(), state)
    return state


#: Task states that make ``hsm run`` / ``hsm complete`` exit 1.
FAILED_OUTCOMES = (TaskState.FAILED.value, TaskState.TIMEOUT.value, TaskState.LOST.value)


def exit_code(plan: Plan, counts: dict[str, int]) -> int:
    """The exit code of ``hsm run`` / ``hsm complete`` once ``plan`` was carried out (``counts``:
    this run's tasks per state, see :func:`execute`): 1 when a task of this run failed, timed out
    or was lost; for ``hsm complete`` also when the sweep keeps such tasks it did not run again
    (no ``--retry-failed``) or tasks stopped by a signal nobody could name; 1 when every task of
    this run was cancelled (nothing ran to its end); else 0. (2: bad input, 130: Ctrl-C, raised
    elsewhere.)"""
    if any(counts.get(s) for s in FAILED_OUTCOMES):
        return 1
    if counts and set(counts) == {TaskState.CANCELLED.value}:
        return 1
    if not plan.new_sweep:
        from hsm_core.verdicts import UNCONFIRMED_REASON

        if any(r.state in FAILED_OUTCOMES for r in plan.records.values()) or plan.skipped.get(UNCONFIRMED_REASON):
            return 1
    return 0


def _controller_name(opts: ExecOptions) -> str:
    """``hsm run`` / ``hsm sweep``: what the lease says holds the sweep."""
    words = opts.command_line.split()
    return " ".join(words[:2]) if len(words) >= 2 and words[0] == "hsm" else "hsm run"


def execute(plan: Plan, opts: ExecOptions, registry: Any, **kw: Any) -> dict[str, int]:
    """Run a plan (see :func:`_execute`); a full disk becomes a clear error naming the sweep.
    The sweep's lease is given back when it ends, however it ends."""
    try:
        return _execute(plan, opts, registry, **kw)
    except KeyboardInterrupt:
        # Ctrl-C after the sweep was written but before its engine ran (a 100,000-task sweep
        # spends a second there writing its manifest): it said "running" for ever.
        if not _record_interrupted(plan):
            raise
        from hsm_core.engine import Interrupted

        raise Interrupted("interrupted", hint=f"continue with: hsm complete {plan.sweep.sweep_id}") from None
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise HsmError(
                f"no space left on device while running sweep {plan.sweep.sweep_id}",
                hint=f"free some space, then continue with: hsm complete {plan.sweep.sweep_id}",
            ) from exc
        raise
    finally:
        plan.release_lease()


def _record_interrupted(plan: Plan) -> bool:
    """Record ``interrupted`` for a sweep written by this controller that its Ctrl-C left saying
    ``running``. False when there is no such sweep (a new one not written yet is removed)."""
    sweep = getattr(plan, "sweep", None)
    if sweep is None or not (sweep.path / "sweep_metadata.yaml").is_file():
        return False
    if plan.lease is None or not plan.lease.may_launch():
        return False
    try:
        if sweep.read_metadata().get("status") == "running":
            sweep.update_metadata(status="interrupted", updated=now_iso())
    except OSError:
        pass  # a read-only or full disk: the hint below still says how to go on
    return True


def _execute(
    plan: Plan,
    opts: ExecOptions,
    registry: Any,
    *,
    on_update: Callable[[TaskRecord], None] | None = None,
    engine_hook: Callable[[Engine], None] | None = None,
    on_ready: Callable[[Plan], None] | None = None,
    on_outage: Callable[[str, Any], None] | None = None,
    on_fail_fast: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Create sources, write task dirs, run the engine. Returns the count of this run's tasks per state.
    ``on_ready(plan)`` is called once the sweep exists (its id final), before any task starts;
    ``on_fail_fast(line)`` when the first finished tasks all failed alike (hsm_core.failfast)."""
    wake = WakeEvent()
    # What needs no sweep directory is checked before one is made.
    requests = parse_sources(opts.sources, plan.project.data, registry)
    strategy = registry.get(StrategyRecord.kind, opts.strategy).load()()
    from hsm_core.adaptive import AdaptiveSearch, section_settings

    search = section_settings(plan.spec.sections, registry)  # a search: sweep's strategy and space
    from hsm_core.pruning import settings_for

    pruning = settings_for(plan.spec, registry, plan.sweep.sweep_id)  # prune: a missing pruner fails here
    cmd = command_plan(plan.project, plan.spec.settings)
    if plan.to_run:
        cmd.argv(plan.to_run[0].params)  # fail on a bad command before anything is written
    if plan.new_sweep:
        _claim_sweep_dir(plan)  # released below if the run stops before the sweep is written
    context = SourceContext(
        sweep_id=plan.sweep.sweep_id,
        sweep_dir=plan.sweep.path.resolve(),
        project_root=plan.project.root.resolve(),
        project_config=plan.project.data,
        wake=wake.set,
        show_output=opts.show_output,
        # Asked when a start is made: a new sweep's lease is taken later, with its directory.
        may_launch=lambda: plan.lease is None or plan.lease.may_launch(),
    )
    from hsm_core.hosts import get_host

    context.get_host = lambda name: get_host(name, plan.project.data, registry)
    for req in requests:
        # --walltime and the like are batch-scheduler resources.
        if getattr(registry.get(ComputeSourceRecord.kind, req.kind), "batch_scheduler", False):
            req.options.update(opts.source_overrides)
    from hsm_core.run_resources import apply_resources, run_resources

    apply_resources(requests, registry, run_resources(plan.spec, registry, opts.resources))
    try:
        sources = create_sources(requests, registry, context)
        _before_run(sources, plan, opts, registry)  # closes the sources if a plugin stops the run
    except BaseException as exc:
        if plan.new_sweep:  # a refused run leaves no sweep directory behind
            _release_sweep_dir(plan, exc)
        raise

    if not plan.new_sweep:
        # Tasks whose runner saw a signal that nobody watched: their scheduler says what it was
        # (a requeued job is watched, a timeout waits for --retry-failed) before anything reruns.
        from hsm_core.verdicts import settle_unconfirmed

        settle_unconfirmed(plan, sources, retry_failed=plan.retry_failed)
    if plan.new_sweep:
        try:
            _write_new_sweep(plan, opts, count(plan.spec, registry))
        except BaseException as exc:
            _close(sources)
            plan.release_lease()  # its heartbeat must not outlive the directory removed next
            _release_sweep_dir(plan, exc)
            raise
    else:
        if plan.config_text is not None:
            # A complete with an edited config: keep the old file beside the new one, never lose it.
            old = plan.sweep.path / "sweep_config.yaml"
            backup = plan.sweep.path / f"sweep_config.{now_iso().replace(':', '')}.yaml"
            shutil.copy2(old, backup)
            from hsm_core.atomic import atomic_write_text

            atomic_write_text(old, plan.config_text)
        plan.sweep.create_layout()
        plan.sweep.update_metadata(status="running", last_complete=now_iso(), total_tasks=len(plan.records))

    record_check(plan.project)  # the run is accepted: its configuration passed (config.checked_cache)
    if on_ready is not None:
        on_ready(plan)
    sweep_path = plan.sweep.path.resolve()
    tasks_path = sweep_path / plan.sweep.tasks_dir.name  # resolved once: 100,000 resolve() calls took seconds
    to_run = list(plan.to_run)
    # Each spec made when the engine reaches its task: 100,000 specs and paths up front took a
    # second before the first task could start.
    def make_spec(r: TaskRecord) -> TaskSpec:
        return TaskSpec(r.task_id, r.index, r.params, tasks_path / task_dir_name(r.index), plan.sweep.sweep_id, sweep_path)

    adaptive = AdaptiveSearch(plan.sweep, search, registry) if search is not None else None
    if adaptive is not None:
        adaptive.write_settings()
        if opts.parallel_limit is None and search.parallel is not None:
            opts.parallel_limit = search.parallel

    # A large submission to array jobs leaves each task dir to its element (plugin.arrayjob.unmade).
    from hsm_core.plugin.arrayjob.unmade import wanted as unmade_wanted
    from hsm_core.prepare import prepare_unmade

    unmade_dirs = adaptive is None and unmade_wanted(sources, len(to_run))
    # A sweep this run made has no task dir yet (hsm complete's may have some: each is looked for).
    fresh_sweep = plan.new_sweep and _empty_dir(plan.sweep.tasks_dir)

    envs = EnvBlocks(to_run, make_spec, registry, plan.spec.settings)
    # (The queue takes the specs a block of environments was asked for with: made once.)
    specs = SpecQueue(to_run, envs.spec if unmade_dirs else make_spec)

    def prepare(spec: TaskSpec) -> TaskSpec:
        if unmade_dirs:
            return prepare_unmade(plan.sweep, plan.records[spec.task_id], cmd, registry, plan.spec.settings, spec,
                                  new_sweep=fresh_sweep, env=envs.env(spec))
        if adaptive is not None:  # a search trial gets its parameters now, from the results so far
            adaptive.params_for(plan.records[spec.task_id])
        return prepare_task(plan.sweep, plan.records[spec.task_id], cmd, registry, plan.spec.settings)

    for rec in plan.to_run:
        if rec.state != TaskState.PENDING.value:
            rec.state = TaskState.PENDING.value
    # Task dirs are made when each task starts (the engine's prepare): the manifest says which
    # tasks the sweep has until then. The index follows; task_mapping.yaml, for people, is
    # written by the engine's first save, after the first tasks started.
    from hsm_core.task_manifest import ensure_manifest

    ensure_manifest(plan.sweep.path, plan.records.values(), new_sweep=plan.new_sweep)
    if not plan.new_sweep:  # (a new sweep's index: the engine's first save; readers meanwhile rebuild it from the manifest)
        plan.sweep.save_index(plan.records.values(), mapping=True)
    adopted = [
        TaskSpec(r.task_id, r.index, r.params, tasks_path / task_dir_name(r.index), plan.sweep.sweep_id, sweep_path)
        for r in plan.to_adopt
    ]
    health_interval = float((plan.project.data.get("compute") or {}).get("health_check_interval", 300))
    max_failures = int((plan.project.data.get("compute") or {}).get("max_consecutive_failures", 3))
    local_options = (plan.project.data.get("compute") or {}).get("local") or {}
    kill_grace = float(local_options.get("kill_grace", 10.0)) if isinstance(local_options, dict) else 10.0
    engine = Engine(
        plan.sweep,
        plan.records,
        sources,
        strategy,
        registry,
        parallel_limit=opts.parallel_limit,
        health_interval=health_interval,
        max_failures=max_failures,
        wake_event=wake,
        on_update=on_update,
        detach=opts.no_wait,
        prepare=prepare,
        on_outage=on_outage,
        kill_grace=kill_grace,
        may_launch=plan.lease.may_launch if plan.lease is not None else None,
        retry=Retrier(plan.sweep, policy_from(plan.spec.settings, plan.project.data)),
        fail_fast=FailFast(plan.sweep, fail_fast_limit(plan.project.data), on_fail_fast),
        pruning=pruning,
        cancel_requested=lambda: cancel_requested(plan.sweep.path),
    )
    if engine_hook:
        engine_hook(engine)
    final_state = "interrupted"
    plan.sweep.log(
        "sweep.log",
        f"{'start' if plan.new_sweep else 'complete'}: {len(specs)} to run, {len(adopted)} to watch, "
        f"sources={opts.sources} strategy={opts.strategy} parallel_limit={opts.parallel_limit}",
    )
    try:
        engine.run(specs, adopted)
        mine = [plan.records[r.task_id] for r in to_run] + [plan.records[a.task_id] for a in adopted]
        counts: dict[str, int] = {}
        for r in mine:
            counts[r.state] = counts.get(r.state, 0) + 1
        every = [r.state for r in plan.records.values()]
        if opts.no_wait and any(TaskState(s).active for s in every):
            final_state = "submitted"
        elif all(s in DONE for s in every):
            final_state = "completed"
        elif any(TaskState(s).active for s in every):
            final_state = "running"
        else:
            final_state = "incomplete"
        return counts
    finally:
        if plan.lease is not None and not plan.lease.may_launch():
            # The sweep is another controller's now (asked again: a replaced controller whose
            # tasks all ended may not have looked since): its status is not ours to write.
            final_state = "lease lost"
            try:
                plan.sweep.log("sweep.log", f"end of the controller that lost its lease (pid {os.getpid()})")
            except OSError:
                pass
        else:
            if engine.cancel_seen and final_state not in ("completed", "submitted"):
                final_state = "cancelled"  # hsm cancel ran next to this controller: the sweep stays cancelled
            try:
                plan.sweep.update_metadata(status=final_state, updated=now_iso())
                plan.sweep.log("sweep.log", f"end: {final_state}")
            except OSError:
                pass  # the disk may still be full; the task dirs remain the truth
        if final_state in ("completed", "incomplete"):
            from hsm_core.monitor.report import write_reports

            write_reports(plan.sweep)  # never raises: a report must not fail a finished sweep
            run_on_finish(plan.project.data, plan.project.root, plan.sweep, plan.records.values(), final_state)


def _before_run(sources: list[Any], plan: Plan, opts: ExecOptions, registry: Any) -> None:
    """Each source's ``before_run`` (remote checks, :mod:`hsm_core.run_start`); the sources are
    closed if one stops the run."""
    import sys

    from hsm_core.plugin import RunStart
    from hsm_core.run_start import prepare_sources

    run = RunStart(verify_sync=opts.verify_sync, interactive=sys.stdin.isatty() and sys.stdout.isatty())
    try:
        prepare_sources(sources, run, registry, sweep_id=plan.sweep.sweep_id, project_root=plan.project.root.resolve(),
                        project_config=plan.project.data)
    except BaseException:
        _close(sources)
        raise


def _close(sources: list[Any]) -> None:
    for source in sources:
        try:
            source.close()
        except Exception:  # closing must not hide why the run stopped
            pass


def spec_from_text(text: str, registry: Any) -> SweepSpec:
    """A spec from YAML text (tests and tools)."""
    import yaml

    return spec_from_dict(yaml.safe_load(text), registry)
