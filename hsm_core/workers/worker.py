"""The worker loop: expand the sweep, pick work (resume first, then new), claim it, run it, repeat.

Every worker is identical and stateless: what to do next is read from the sweep directory each
time (the lock files and the markers of unfinished work, :mod:`hsm_core.workers.pick_queue`; the
task dirs once, at start-up), so workers can be started, killed and restarted in any number and
order. A worker exits when every configuration is finished (completed,
failed, or finished elsewhere according to the task registry); while other workers still hold
claims it waits, so that a claim whose worker dies is taken over (``--idle-exit`` leaves instead).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hsm_core.config.project_config import ProjectConfig
from hsm_core.jobenv import claim_job, current_job, status_fields
from hsm_core.metrics import collect_metrics, load_collectors
from hsm_core.plugin import HsmError, TaskState
from hsm_core.prepare import command_plan, task_env
from hsm_core.retries import decide_for, policy_from
from hsm_core.state import now_iso, read_status
from hsm_core.sweep import SweepSpec, load_spec
from hsm_core.taskdir import METRICS_FILE, results_dir
from hsm_core.workers.claims import Claim, ClaimStore, machine_id
from hsm_core.workers.execute import Session, Signals, run_task, settle_previous
from hsm_core.workers.pick_queue import FAILED as FAILED_MARK
from hsm_core.workers.pick_queue import PRUNED as PRUNED_MARK
from hsm_core.workers.pick_queue import RESUME, PickQueue
from hsm_core.workers.layout import (
    WorkerSweep,
    WorkTask,
    expand_tasks,
    sweep_group,
    sweep_location,
    task_spec,
    write_task_files,
)
from hsm_core.workers.registries import RegistryView, load_task_registry
from hsm_core.workers.settings import WorkerSettings

COMPLETED = TaskState.COMPLETED.value
FAILED = TaskState.FAILED.value
PRUNED = TaskState.PRUNED.value
DONE_ELSEWHERE = "done elsewhere"


@dataclass
class WorkerOptions:
    """Command-line choices of one worker."""

    #: Worker options plugins provide (``wandb-buffer`` for ``--wandb-buffer``: the
    #: ``hsm_worker_feature`` hook), each run around every task.
    features: tuple[str, ...] = ()
    max_tasks: int | None = None
    idle_exit: bool = False
    retry_failed: bool = False
    #: Seconds between looks for work while every open task is claimed (default from stale timeout).
    poll: float | None = None
    quiet: bool = False


@dataclass
class WorkerReport:
    """What one worker did."""

    ran: int = 0
    states: dict[str, int] = field(default_factory=dict)
    stop_signal: int | None = None
    exit_code: int = 0


def expand_paths(env: dict[str, str], task_dir: Path, sweep_dir: Path) -> dict[str, str]:
    """``env`` with ``${HSM_TASK_DIR}``, ``${HSM_OUTPUT_DIR}``, ``${HSM_SWEEP_DIR}`` replaced, as the
    task runner does for plugin variables (e.g. the wandb plugin's ``WANDB_DIR``)."""
    values = {"HSM_TASK_DIR": str(task_dir), "HSM_OUTPUT_DIR": str(results_dir(task_dir)), "HSM_SWEEP_DIR": str(sweep_dir)}
    out = {}
    for key, value in env.items():
        for var, path in values.items():
            value = str(value).replace("${" + var + "}", path)
        out[key] = value
    return out


def has_checkpoint(path: Path) -> bool:
    """True when the task's checkpoint dir holds anything."""
    try:
        with os.scandir(path) as it:
            return any(True for _ in it)
    except OSError:
        return False


def load_feature(registry: Any, name: str, log: Callable[[str], None]) -> Any:
    """The :class:`~hsm_core.plugin.WorkerFeature` a plugin provides for worker option ``name``
    (``hsm_worker_feature`` hook); an option no installed plugin provides is a one-line error."""
    feature = registry.hook.hsm_worker_feature(name=name, log=log)
    if feature is None:
        from hsm_core.install_hints import install_hint
        from hsm_core.registry import PACKAGE_HINTS, WORKER_FEATURE

        dists = PACKAGE_HINTS.get((WORKER_FEATURE, name))
        if dists is None:  # not a name any plugin we know provides: most likely a typo of one
            from difflib import get_close_matches

            known = [n for (kind, n) in PACKAGE_HINTS if kind == WORKER_FEATURE]
            close = get_close_matches(name, known, n=1)
            if close:
                raise HsmError(f"unknown worker option {name!r}, did you mean {close[0]!r}?",
                               hint=f"--feature {close[0]}" + (", or --wandb-buffer" if close[0] == "wandb-buffer" else ""))
        raise HsmError(f"the worker option {name!r} needs a plugin that provides it, and none of the installed plugins does",
                       hint=install_hint(*dists) if dists else "`hsm plugins` lists what is installed")
    return feature


@dataclass
class WorkerSweepSetup:
    """Everything a worker or the status table needs about one sweep file."""

    project: ProjectConfig
    sweep_file: Path
    spec: SweepSpec
    group: str
    tasks: list[WorkTask]
    sweep: WorkerSweep
    store: ClaimStore
    settings: WorkerSettings


def open_sweep(project: ProjectConfig, sweep_file: Path, registry: Any, settings: WorkerSettings) -> WorkerSweepSetup:
    """Load and expand ``sweep_file`` and locate its worker sweep dir (nothing is written)."""
    spec = load_spec(sweep_file, registry)
    group = sweep_group(spec, sweep_file)
    tasks = expand_tasks(spec, registry)
    path = sweep_location(project.output_dir, project.name, group, settings.storage_root)
    sweep = WorkerSweep(path)
    store = ClaimStore(sweep.locks_dir, cluster=settings.cluster, stale_timeout=settings.stale_timeout,
                       job=claim_job(current_job(os.environ, registry)))
    return WorkerSweepSetup(project, Path(sweep_file), spec, group, tasks, sweep, store, settings)


class Worker:
    """One ``hsm worker`` process."""

    def __init__(
        self,
        setup: WorkerSweepSetup,
        registry: Any,
        options: WorkerOptions,
        *,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.setup = setup
        self.registry = registry
        self.options = options
        self.sweep, self.store, self.settings = setup.sweep, setup.store, setup.settings
        self.tasks = setup.tasks
        #: Open work without looking at the whole sweep on each pick (hsm_core.workers.pick_queue).
        self.queue = PickQueue(self.sweep.path, self.tasks)
        self.plan = command_plan(setup.project, setup.spec.settings)
        self.signals = Signals()
        self.final: dict[str, str] = {}  #: run id -> final state seen
        self.tried_failed: set[str] = set()  #: failed under this worker: not retried by it again
        #: Run id -> when a transient failure under this worker may run again (``retries:``).
        self.retry_at: dict[str, float] = {}
        self.retries = policy_from(setup.spec.settings, setup.project.data)
        self.report = WorkerReport()
        self._lost_races = 0  #: claims other workers won during the last pick
        self._echo = echo if echo is not None else (lambda line: print(line, file=sys.stderr, flush=True))
        self._log_path = self.sweep.worker_log()
        self._log_file: Any = None
        self.task_registry: RegistryView | None = None
        if self.settings.registry:
            impl = load_task_registry(registry, self.settings.registry, self.settings.registry_options,
                                      sweep_id=self.sweep.sweep_id, project_root=setup.project.root,
                                      project_config=setup.project.data)
            self.task_registry = RegistryView(impl, self.settings.registry, self.sweep.sweep_id, self.log)
        self.collectors = load_collectors(registry)
        from hsm_core.adaptive import AdaptiveSearch, section_settings

        search = section_settings(setup.spec.sections, registry)  # a search: sweep: trials asked as claimed
        self.search = AdaptiveSearch(self.sweep, search, registry) if search is not None else None
        from hsm_core.pruning import settings_for

        #: The sweep's early stopping (prune:): the running task judged in a thread (hsm_core.pruning).
        self.pruning = settings_for(setup.spec, registry, self.sweep.sweep_id)
        self._pruner: Any = None
        self.features = [load_feature(registry, name, self.log) for name in options.features]
        #: The scheduler job this worker runs in, under hsm's names (recorded with each task).
        self.job = current_job(os.environ, registry)
        if options.poll is not None:
            self.poll = options.poll
        else:
            self.poll = max(0.2, min(5.0, self.settings.stale_timeout / 4))

    # -- logging -------------------------------------------------------------------------------
    def log(self, line: str) -> None:
        """A line in ``logs/workers/<host>-<pid>.log`` (and on stderr unless quiet)."""
        try:
            if self._log_file is None:
                self._log_path.parent.mkdir(parents=True, exist_ok=True)
                self._log_file = open(self._log_path, "a", encoding="utf-8", buffering=1)
            self._log_file.write(f"{now_iso()} {line}\n")
        except OSError:
            pass
        if not self.options.quiet:
            self._echo(f"hsm worker: {line}")

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> WorkerReport:
        """Work until nothing is left (or a signal, or ``max_tasks``). Returns the report."""
        setup = self.setup
        from hsm_core.bulk_read import without_cycle_collection

        with without_cycle_collection():  # (start-up at 100,000 tasks: 0.4 s of collector passes)
            if self.tasks:
                from hsm_core.preflight import check_command

                # A bad command (unknown placeholder, missing script, too long for exec) fails here,
                # before anything is created or claimed.
                check_command(setup.project, setup.spec, ((t.name, t.params) for t in self.tasks))
            self.sweep.ensure(project_root=setup.project.root, sweep_file=setup.sweep_file, tasks=self.tasks,
                              cluster=self.settings.cluster)
        self.log(
            f"started on {socket.gethostname()} pid {os.getpid()} cluster {self.settings.cluster}: "
            f"{len(self.tasks)} configurations in {self.sweep.path}"
        )
        marked = self.queue.load(self.store.locked_ids(), self._state_of)
        if marked:
            self.log(f"marked {marked} started task(s) of a sweep made by an earlier hsm for picking")
        self.signals.install()
        from hsm_core.workers import walltime_warning

        warn_in = walltime_warning.arm()  # (PBS/Torque worker jobs; Slurm's send the signal themselves)
        if warn_in is not None:
            self.log(f"warning before the walltime: SIGUSR1 in {warn_in:.0f} s (passed on to a task that handles it)")
        if self.pruning is not None:
            from hsm_core.pruning import PruneMonitor
            from hsm_core.workers.execute import stop_pruned

            self._pruner = PruneMonitor(self.sweep.path, self.pruning, self.registry, stop_pruned, log=self.log).start()
        try:
            self._loop()
        finally:
            if self._pruner is not None:
                self._pruner.close()
            self.signals.restore()
            if self.signals.stop_signal is None:
                self._housekeeping()
        sig = self.signals.stop_signal
        self.report.stop_signal = sig
        if sig is not None:
            self.report.exit_code = 128 + sig
            self.log(f"stopped by {signal.Signals(sig).name} after {self.report.ran} task(s); exit {self.report.exit_code}")
        else:
            self.report.exit_code = 1 if self.report.states.get(FAILED) else 0
            self.log(f"done after {self.report.ran} task(s): {self._summary()}")
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return self.report

    def _summary(self) -> str:
        return ", ".join(f"{v} {k}" for k, v in sorted(self.report.states.items())) or "nothing to do"

    def _loop(self) -> None:
        idle_since: float | None = None
        while self.signals.stop_signal is None:
            if self.options.max_tasks is not None and self.report.ran >= self.options.max_tasks:
                self.log(f"--max-tasks {self.options.max_tasks} reached")
                return
            started = time.perf_counter()
            picked, busy = self._claim_next()
            if picked is not None:
                idle_since = None
                self._run_claimed(*picked, started=started)
                continue
            if busy == 0:
                self._mark_sweep_finished()
                return
            if self.options.idle_exit and not self.retry_at:
                self.log(f"nothing to claim ({busy} held by other workers); --idle-exit")
                return
            if idle_since is None:
                idle_since = time.time()
                self.log(f"nothing to claim now; {busy} task(s) held by other workers or waiting to be retried")
            nap = self.poll * random.uniform(0.8, 1.2)
            if self.retry_at:
                nap = min(nap, max(0.05, min(self.retry_at.values()) - time.time()))
            self._sleep(nap)

    def _sleep(self, seconds: float) -> None:
        # Monotonic: a clock step must not stretch a nap into an hour of not watching claims.
        end = time.monotonic() + seconds
        while self.signals.stop_signal is None and time.monotonic() < end:
            time.sleep(min(0.1, max(0.0, end - time.monotonic())))

    # -- picking -------------------------------------------------------------------------------
    def _is_final(self, state: str | None) -> bool:
        return state in (COMPLETED, PRUNED) or (state == FAILED and not self.options.retry_failed)

    def _state_of(self, t: WorkTask) -> str | None:
        status = read_status(self.sweep.path_of(t))
        return status.get("state") if status else None

    def _claim_next(self) -> tuple[tuple[WorkTask, Claim] | None, int]:
        """Claim the next task: resumable ones first, then new ones. Returns (claimed, busy) where
        busy counts unfinished tasks other workers hold (or that wait for their retry).

        The cost does not grow with the sweep: it lists the locks and the markers of unfinished
        work, then walks this worker's queue of never-started tasks (hsm_core.workers.pick_queue).
        Markers are listed after every lock was looked at: a claim released meanwhile wrote its
        marker before it went, so a task is never missed by both looks."""
        by_id = self.queue.by_id
        locked = self.store.locked_ids()
        busy = 0
        candidates: dict[str, WorkTask] = {}
        now = time.time()
        for run_id in locked:
            t = by_id.get(run_id)
            if t is None or run_id in self.final or run_id in self.tried_failed:
                continue
            view = self.store.inspect(run_id)
            if view is None:
                continue  # released since the listing: its marker, if any, is in the listing below
            if not view.takeable:
                busy += 1
                continue
            candidates[run_id] = t
        marked = self.queue.marked(RESUME)
        if self.options.retry_failed:
            marked += self.queue.marked(FAILED_MARK)
        for run_id in marked:
            if run_id not in self.final and run_id not in self.tried_failed and run_id not in self.retry_at:
                candidates.setdefault(run_id, by_id[run_id])
        for run_id, when in self.retry_at.items():
            if now < when:
                busy += 1  # its backoff is not over: wait for it rather than call the sweep done
                candidates.pop(run_id, None)
            elif run_id in by_id:
                candidates.setdefault(run_id, by_id[run_id])
        # File order, resumable work first. Workers after the same next task cost each other one
        # failed lock create (measured: under one lost race per pick with 8 workers), far less
        # than giving up the order users expect.
        lost = 0
        for t in sorted(candidates.values(), key=lambda t: t.index):
            if self.signals.stop_signal is not None:
                return None, busy
            claim = self._try_claim(t)
            if claim is not None:
                self._lost_races = lost
                return (t, claim), busy
            if t.run_id not in self.final:
                busy += 1  # someone claimed it between our look and our try
                lost += 1
        while self.signals.stop_signal is None:
            t = self.queue.next_fresh()
            if t is None:
                break
            if t.run_id in self.final or t.run_id in self.tried_failed:
                self.queue.drop(t)
                continue
            claim = self._try_claim(t)
            self.queue.drop(t)  # claimed, or another worker's now: its lock or marker stands for it
            if claim is not None:
                self._lost_races = lost
                return (t, claim), busy
            if t.run_id not in self.final:
                busy += 1
                lost += 1
        return None, busy

    def _try_claim(self, t: WorkTask) -> Claim | None:
        """Claim ``t`` unless the task registry says it finished elsewhere."""
        if self.task_registry is not None and self.task_registry.finished(t.run_id):
            self.final[t.run_id] = DONE_ELSEWHERE
            return None
        return self.store.acquire(t.run_id)

    def _leave_marker(self, t: WorkTask) -> None:
        """Before the claim of ``t`` is given up: the marker that says what is left to do."""
        state = self._state_of(t) if self.sweep.path_of(t).is_dir() else None
        try:
            self.queue.note(t.run_id, state)
        except OSError as exc:
            self.log(f"{t.name}: cannot write its marker in {self.queue.root} ({exc}); "
                     "its claim is kept and goes stale, then another worker takes it over")
            raise

    # -- running -------------------------------------------------------------------------------
    def _run_claimed(self, t: WorkTask, claim: Claim, started: float | None = None) -> None:
        """Run a claimed task; ``started`` is when the worker began looking for it (the time up to
        the task's start is the worker's overhead per task, logged as "picked in")."""
        task_dir = self.sweep.path_of(t)
        with Session(self.store, claim, self.settings.heartbeat_interval,
                     on_tick=self._heartbeat if self.features else None,
                     before_release=lambda: self._leave_marker(t)) as session:
            status = settle_previous(task_dir, self.store, session, self.signals, self.log) if task_dir.is_dir() else None
            if session.lost or self.signals.stop_signal is not None:
                return
            state = status.get("state") if status else None
            retrying = self.retry_at.pop(t.run_id, None) is not None and state == FAILED
            if self._is_final(state) and not retrying:
                # Finished by the worker that held it before us (it released just now).
                self.final[t.run_id] = str(state)
                return
            attempt = int((status or {}).get("attempt") or 0) + 1
            resuming = attempt > 1 or has_checkpoint(self.sweep.checkpoint_dir(t))
            extra_env, status_extra = self._prepare(t, claim, attempt)
            picked = ""
            if started is not None:
                picked = f"; picked in {(time.perf_counter() - started) * 1000:.1f} ms"
                if self._lost_races:
                    picked += f" after {self._lost_races} lost race(s)"
            self.log(f"{'resume' if resuming else 'start'} {t.name} (run {t.run_id}, attempt {attempt}{picked})")
            for feature in self.features:
                feature.task_started(task_dir.resolve(), self.sweep.checkpoint_dir(t), {**os.environ, **extra_env})
            if self._pruner is not None:
                self._pruner.watch({t.run_id: (t.index, task_dir)})
            try:
                outcome = run_task(task_dir, session, self.signals, source=f"worker:{self.settings.cluster}",
                                   extra_env=extra_env, status_extra=status_extra)
            finally:
                if self._pruner is not None:
                    self._pruner.watch({})
            if outcome.claim_lost:
                self.log(f"{t.name}: claim taken over by another worker; "
                         + ("it records how our copy ended" if session.handed_over else "stopped our copy"))
                return
            self.report.ran += 1
            self.report.states[outcome.state] = self.report.states.get(outcome.state, 0) + 1
            for feature in self.features:
                # Stopping: a preempted job's SIGKILL comes soon (30 s after SIGTERM by default on Slurm).
                self._call(feature.task_ended, outcome.state, self.signals.stop_signal is not None)
            if outcome.state == COMPLETED:
                self.final[t.run_id] = COMPLETED
                try:
                    collect_metrics(task_dir, self.collectors)  # as the engine does for every source
                except OSError as exc:
                    self.log(f"{t.name}: cannot write its {METRICS_FILE} ({exc})")
            elif outcome.state == FAILED and self._retry_later(t, task_dir):
                self.report.states[FAILED] -= 1
                self.report.states["retried"] = self.report.states.get("retried", 0) + 1
            elif outcome.state == FAILED:
                self.tried_failed.add(t.run_id)
                if not self.options.retry_failed:
                    self.final[t.run_id] = FAILED
            # Event plugins hear of worker tasks as of tasks a controller ran (docs/hooks.md). A
            # plugin's bug must not stop an unattended worker: the task itself is recorded already.
            try:
                self.registry.hook.hsm_task_finished(sweep_id=self.sweep.sweep_id, task_id=t.run_id,
                                                     state=outcome.state, task_dir=str(task_dir))
            except Exception as exc:
                self.log(f"{t.name}: a plugin's hsm_task_finished failed: {exc!r}")
            code = outcome.status.get("exit_code")
            extra = f" by {signal.Signals(outcome.signal).name}" if outcome.signal else ""
            self.log(f"{t.name}: {outcome.state}{extra} (exit code {code}, {outcome.status.get('duration')}s)")
        # Leaving the session released the claim (a preempted task is resumed by the next worker).

    def _retry_later(self, t: WorkTask, task_dir: Path) -> bool:
        """After a failure: True when it was transient and ``retries:`` allows another attempt,
        which this worker then makes once the backoff is over (hsm_core.retries)."""
        if self.retries.max_retries <= 0:
            return False
        try:
            decision = decide_for(task_dir, FAILED, self.retries)
        except OSError:
            return False
        if not decision.retry:
            return False
        self.retry_at[t.run_id] = time.time() + decision.delay
        self.log(f"{t.name}: retry {decision.number}/{self.retries.max_retries} in {decision.delay:g}s: {decision.reason}")
        return True

    def _prepare(self, t: WorkTask, claim: Claim, attempt: int) -> tuple[dict[str, str], dict[str, Any]]:
        """Write the task's files; return its extra environment and status fields."""
        if self.search is not None:  # an adaptive sweep's trial gets its parameters once claimed
            self.search.write_settings()
            t.params = self.search.params_of(t.index, t.run_id, self.sweep.path_of(t))
        argv, python_arg0 = self.plan.argv(t.params)
        spec = task_spec(self.sweep, t)
        plugin_env = task_env(self.registry, spec, self.setup.spec.settings)
        task_dir = write_task_files(self.sweep, t, argv, python_arg0, self.plan.cwd, plugin_env)
        checkpoints = self.sweep.checkpoint_dir(t)
        env: dict[str, str] = {
            "HSM_RUN_ID": t.run_id,
            "HSM_RUN_DIR": str(task_dir.resolve()),
            "HSM_CHECKPOINT_DIR": str(checkpoints.resolve()),
            "HSM_ATTEMPT": str(attempt),
            "HSM_WORKER_CLUSTER": self.settings.cluster,
            # The wandb plugin's per-sweep run id when it gave one (its task registry asks W&B by
            # that id), else the run id itself: the same on every worker and every attempt.
            "WANDB_RUN_ID": plugin_env.get("WANDB_RUN_ID") or t.run_id,
            "WANDB_RESUME": "allow",
        }
        if not os.environ.get("WANDB_RUN_GROUP") and "WANDB_RUN_GROUP" not in plugin_env:
            env["WANDB_RUN_GROUP"] = self.setup.group
        if self.features:
            inherited = {**os.environ, **expand_paths(plugin_env, task_dir.resolve(), self.sweep.path.resolve()), **env}
            for feature in self.features:
                env.update(feature.task_env(task_dir.resolve(), self.setup.project.root, inherited))
        status_extra: dict[str, Any] = {
            "run_id": t.run_id,
            "cluster": self.settings.cluster,
            "machine": machine_id(),
            "worker": {"host": socket.gethostname(), "pid": os.getpid(), "claim": claim.token[:12]},
        }
        status_extra.update(status_fields(self.job))  # job_id, array_index, restart_count
        return env, status_extra

    def _heartbeat(self) -> None:
        for feature in self.features:
            self._call(feature.heartbeat)

    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        """A plugin's feature must not stop an unattended worker: its failure is logged."""
        try:
            fn(*args)
        except Exception as exc:
            self.log(f"a plugin's worker feature failed ({getattr(fn, '__qualname__', fn)}): {exc!r}")

    # -- end -----------------------------------------------------------------------------------
    def _mark_sweep_finished(self) -> None:
        # Nothing is held, marked to resume or left unstarted: every task is finished. Failed and
        # pruned ones have their marker (or this worker saw them end so).
        if not self.queue.fresh and not self.queue.marked(RESUME):
            done = not any(s in (FAILED, PRUNED) for s in self.final.values()) and not (
                self.queue.marked(FAILED_MARK) or self.queue.marked(PRUNED_MARK))
            try:
                self.sweep.update_metadata(status="completed" if done else "incomplete", updated=now_iso())
            except OSError:
                pass

    def _housekeeping(self) -> None:
        """Remove what killed workers left: locks of finished tasks, tombstones, temp files."""
        try:
            for run_id, view in self.store.locks().items():
                if view.takeable and run_id in self.final:
                    self.store.clear(run_id)
            self.store.sweep_leftovers()
        except OSError as exc:
            self.log(f"cleanup of {self.store.locks_dir} failed: {exc}")
