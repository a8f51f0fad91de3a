"""The array-job compute source (part of the array-job toolkit of :mod:`hsm_core.plugin`).

:class:`ArrayJobSource` writes the list file and job script under ``<sweep>/scripts/job_scripts/``,
submits through a :class:`~hsm_core.plugin.Host` (the local machine, or the login node named by the
cluster's ``host:``), retries transient submission failures, polls all jobs of the sweep with ONE
scheduler call per poll (backoff 0, 2, 4, 8 ... s, capped; a failed query is tolerated), cancels,
attaches to jobs an earlier controller submitted, and lets tasks outlive the controller
(``--no-wait``). A subclass implements the scheduler's commands (``cancel_command`` among them, and
``render_worker_script`` for ``hsm worker submit``). Its job scripts export the job under hsm's
names (``HSM_ARRAY_INDEX``, ``HSM_JOB_ID``, ``HSM_JOB_RESTART``: see :mod:`hsm_core.jobenv`), which
the task runner reads; core never reads a scheduler's own variables.
"""

from __future__ import annotations

import abc
import time
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping, Sequence

from hsm_core.errors import ConfigError, HsmError
from hsm_core.install_hints import install_hint
from hsm_core.plugin.arrayjob import per_task, submission
from hsm_core.plugin.arrayjob.directives import check_line, check_name, scoped_directives
from hsm_core.plugin.arrayjob.jobfiles import JobFiles
from hsm_core.plugin.arrayjob.manifest import SubmittedChunk, read_manifest
from hsm_core.plugin.arrayjob.poll_pace import PollPace
from hsm_core.plugin.arrayjob.resources import Resources, positive_int, resources_from_options
from hsm_core.plugin.arrayjob.script import ArrayJob
from hsm_core.plugin.arrayjob.staging import Staging
from hsm_core.plugin.arrayjob.states import TRANSIENT_PATTERNS, JobInfo
from hsm_core.plugin.arrayjob.warning import element_resources, warning_seconds
from hsm_core.plugin.arrayjob.watcher import QueueWatcher
from hsm_core.plugin.components import ComputeSource, Host
from hsm_core.plugin.values import (
    CommandResult,
    HealthReport,
    SourceContext,
    TargetTest,
    TaskSpec,
    TaskState,
    TaskUpdate,
    WorkerArray,
    WorkersSubmitted,
)

__all__ = ["ArrayJobSource"]


class ArrayJobSource(ComputeSource):
    """A compute source submitting batches of tasks as array jobs to a batch scheduler.

    Subclasses implement the scheduler's commands; the rest is composed from the toolkit's parts:
    :mod:`.jobfiles` (list file and job script of each chunk), :mod:`.submission` (chunking,
    retries, all or nothing), :mod:`.manifest` (``jobs.jsonl`` and the ``submitted`` status),
    :mod:`.staging` (a login node's file system), :mod:`.watcher` (polling with backoff, verdicts)
    and :mod:`.states` (scheduler state -> task state). Options are the merged ``hpc:`` section and
    cluster entry (see :data:`COMMON_SCHEMA`).
    """

    #: Shown in messages ("Slurm", "PBS").
    scheduler_name: ClassVar[str] = "scheduler"
    #: Directive prefix of job scripts (``#SBATCH``, ``#PBS``).
    directive_prefix: ClassVar[str] = "#"
    #: Tasks per array job when neither the scheduler nor the config says.
    default_max_array_size: ClassVar[int] = 1000
    #: Tasks hsm keeps queued or running on this source unless ``max_parallel_jobs`` says.
    default_capacity: ClassVar[int] = 100_000
    #: True when the status query lists every array element on its own line (Slurm with -r).
    lists_array_elements: ClassVar[bool] = False
    #: The command (and fixed arguments) that cancels jobs given their ids: the default
    #: :meth:`cancel_argv`, and how ``hsm cancel`` says to stop workers ``hsm worker submit`` started.
    cancel_command: ClassVar[tuple[str, ...]] = ()
    #: Messages of this scheduler's commands that mean "try again", besides :data:`TRANSIENT_PATTERNS`.
    transient_patterns: ClassVar[tuple[str, ...]] = ()
    #: Keys of the options whose ``extra_directives`` only this scheduler reads (``slurm``: the
    #: project's ``hpc: {slurm: {extra_directives: [...]}}``), besides the section's own.
    directive_scopes: ClassVar[tuple[str, ...]] = ()
    #: Beginnings of an ``extra_directives`` entry written for another scheduler (``--`` for PBS,
    #: whose options have one dash): refused with a one-line error rather than put in a script
    #: the submission command rejects. A ``#`` prefix other than :attr:`directive_prefix` always is.
    foreign_directive_forms: ClassVar[tuple[str, ...]] = ()
    #: File name suffix of worker job scripts (``workers_<stamp><suffix>``).
    script_suffix: ClassVar[str] = ".sh"
    #: True when :meth:`submit_argv` honours ``job.after`` (an ``afterany`` dependency): the
    #: sweep-wide throttle over several array jobs and ``hsm run --after`` need it.
    supports_dependencies: ClassVar[bool] = False
    poll_interval = 1.0  # file checks are cheap; scheduler queries back off separately

    def __init__(self, name: str, options: Mapping[str, Any], context: SourceContext) -> None:
        super().__init__(name, options, context)
        self.resources = resources_from_options(self.options)
        self.per_task_rules = per_task.parse_rules(self.options)
        self.check_expressible()
        self.setup_commands = tuple(check_line(c, f"setup_commands[{i}]") for i, c in enumerate(self.options.get("setup_commands") or ()))
        project_file = Path(context.project_root) / "hsm_config.yaml"
        self.extra_directives = scoped_directives(
            self.options, prefix=self.directive_prefix, scopes=self.directive_scopes, foreign_forms=self.foreign_directive_forms,
            scheduler=self.scheduler_name, file=project_file if project_file.is_file() else None,
        )
        self.skip_directives = tuple(str(c) for c in self.options.get("skip_directives") or ())
        par = self.options.get("array_parallelism")
        self.array_parallelism = positive_int(par, "array_parallelism") if par not in (None, "") else None
        self.job_name = check_name(self.options.get("job_name") or f"hsm_{context.sweep_id}", "job_name")
        self.env = {str(k): str(v) for k, v in (self.options.get("env") or {}).items()}
        # File checks as often as they stay cheap, unless the config sets the interval.
        self.pace = PollPace(self.options.get("poll_interval"))
        self.poll_interval = self.pace.interval
        self.poll_interval_max = float(self.options.get("poll_interval_max") or 30.0)
        self.submit_retries = int(self.options.get("submit_retries", 3))
        self.submit_backoff = 1.0  # seconds before the first retry, doubled each time
        self._host: Host | None = None
        self._max_array_size: int | None = None
        self._capacity = int(self.options.get("max_parallel_jobs") or self.default_capacity)
        per = self.options.get("tasks_per_element")
        self.per_element = positive_int(per, "tasks_per_element") if per not in (None, "") else 1
        #: Seconds before the walltime at which tasks are warned with SIGUSR1 (None: not warned).
        self.warning_seconds = warning_seconds(self.options, element_resources(self.resources, self.per_element).walltime)
        # The parts, one concern each: the files of each chunk, the files on a login node, and
        # the queue watcher (tasks followed, polling, verdicts). Submission is submission.launch.
        self.job_files = JobFiles(self)
        self.staging = Staging(name, self.options, Path(context.project_root), Path(context.sweep_dir),
                               lambda: self.host, self.run, self.log)
        self.watcher = QueueWatcher(self, poll_interval_max=self.poll_interval_max)
        #: ``hsm run --after``: the jobs this sweep's first array jobs wait for (checked now, before
        #: anything is written or submitted: see :mod:`.dependencies`).
        self.after_jobs: tuple[str, ...] = ()
        if self.options.get("after") not in (None, "", ()):
            if not self.supports_dependencies:
                raise HsmError(f"--after: the {self.scheduler_name} plugin cannot submit jobs with dependencies")
            from hsm_core.plugin.arrayjob.dependencies import resolve_after

            self.after_jobs = resolve_after(self, self.options["after"])

    # ------------------------------------------------------------------ scheduler specifics
    @abc.abstractmethod
    def render_script(self, job: ArrayJob) -> str:
        """The job script for ``job`` (call the plugin's pure render function)."""

    @abc.abstractmethod
    def submit_argv(self, script_name: str, job: ArrayJob) -> list[str]:
        """The submission command, run in the job-scripts directory (``sbatch --parsable X``)."""

    @abc.abstractmethod
    def parse_job_id(self, stdout: str) -> str:
        """The job id in the submission command's output; raise ValueError if there is none."""

    @abc.abstractmethod
    def query(self, ids: Sequence[str]) -> dict[str, JobInfo]:
        """States of these jobs (array job ids and element ids) in ONE scheduler call.

        Keys: every id the scheduler prints for an element (ids it does not know are simply
        absent). Raise :class:`QueryFailed` when the command itself fails.
        """

    @classmethod
    def cannot_express(cls, resources: Resources, options: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(resource key, one line saying why) for each request of ``resources`` this scheduler
        cannot put in a job script (PBS Pro has no QoS ...). The run stops on the first, naming
        the key: a request is never silently dropped. Default: everything can be expressed."""
        return []

    def cancel_argv(self, ids: Sequence[str]) -> list[str]:
        """The command cancelling these jobs / elements (default: :attr:`cancel_command` + ids)."""
        if not self.cancel_command:
            raise NotImplementedError(f"{type(self).__name__} sets no cancel_command and has no cancel_argv")
        return [*self.cancel_command, *ids]

    def render_worker_script(self, job: ArrayJob) -> str:
        """The job script of ``hsm worker submit``: ``job.size`` elements, each running ``job.command``
        (a pull-based worker), requeued by the scheduler when preempted (``job.requeue``), output
        appended to a log in ``job.log_dir``. Default: not supported by this scheduler."""
        raise NotImplementedError(f"{self.scheduler_name} cannot run hsm workers (its plugin renders no worker script)")

    def element_keys(self, job_id: str, index: int) -> list[str]:
        """Ids naming element ``index`` of array job ``job_id`` (default: none known)."""
        return []

    def status_keys(self, status: Mapping[str, Any]) -> list[str]:
        """Ids naming a task's element found in its ``status.yaml`` (the runner's job_id)."""
        job_id = status.get("job_id")
        return [str(job_id)] if job_id not in (None, "") else []

    def accounting(self, ids: Sequence[str]) -> dict[str, JobInfo]:
        """Final states of jobs the queue forgot (Slurm: sacct). Default: no accounting."""
        return {}

    # -- the link back to the scheduler (task_link, task_control)
    def scheduler_id(self, job_id: str, index: int) -> str:
        """Element ``index`` of array job ``job_id`` as users write it (Slurm ``%A_%a``); default:
        ``job_id[index]``."""
        keys = self.element_keys(job_id, index)
        return keys[0] if keys else f"{job_id}[{index}]"

    def job_accounting(self, job_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Usage of the elements of these array jobs from the scheduler's accounting (Slurm:
        sacct), keyed like :meth:`scheduler_id`: ``elapsed``, ``max_rss``, ``cpu_efficiency``,
        ``nodes``. Raise :class:`QueryFailed` when there is no accounting. Default: none."""
        return {}

    def is_held(self, info: JobInfo) -> bool:
        """True when the scheduler holds this element (a user's or an admin's hold)."""
        return info.raw.strip().upper() == "H" or "held" in info.reason.lower() or "HOLD" in info.raw.upper()

    def control_argv(self, action: str, ids: Sequence[str]) -> list[str]:
        """The command that does ``action`` (hold, release, requeue) to these elements; raise
        NotImplementedError, saying so in one line, for what this scheduler cannot do."""
        raise NotImplementedError(f"{self.scheduler_name} sources cannot {action} single tasks")

    def control_keys(self, tracked: Any) -> list[str]:
        """Ids safe to give the control commands for a followed task (default: every id naming
        its element, the runner's own first)."""
        return self.watcher.keys_of(tracked)

    def describe_tasks(self, tasks: Sequence[TaskSpec], *, live: bool = False) -> dict[str, dict[str, Any]]:
        """Scheduler id, and with ``live`` state, pending reason and hold, plus accounting when the
        site keeps it (:mod:`hsm_core.plugin.arrayjob.task_link`)."""
        from hsm_core.plugin.arrayjob.task_link import describe_tasks

        return describe_tasks(self, tasks, live=live)

    def control(self, tasks: Sequence[TaskSpec], action: str) -> dict[str, str]:
        """Hold, release or requeue single tasks (:mod:`hsm_core.plugin.arrayjob.task_control`)."""
        from hsm_core.plugin.arrayjob.task_control import control_tasks

        return control_tasks(self, tasks, action)

    def scheduler_max_array_size(self) -> int | None:
        """The scheduler's array size limit, if it can be read (Slurm: MaxArraySize)."""
        return None

    def health_argv(self) -> list[str]:
        """A cheap command that succeeds when the scheduler answers."""
        raise NotImplementedError

    def queue_argv(self) -> list[str]:
        """The command listing the user's jobs (``hsm queue``)."""
        raise NotImplementedError

    def queue_listing(self, job_ids: Sequence[str] = (), *, ended: bool = False) -> CommandResult:
        """``hsm queue``: the scheduler's own listing of the user's jobs still queued or running
        (``ended``: also those that ended and the scheduler still remembers), only ``job_ids``
        and their elements when given (a sweep's array jobs). Default: :meth:`queue_argv` as it
        prints, whatever the states and ids (override to filter)."""
        return self.run(self.queue_argv(), timeout=60)

    def find_submitted(self, job_name: str) -> str | None:
        """After an ambiguous submission failure: the id of a job named ``job_name``, if any."""
        return None

    def is_transient(self, result: CommandResult) -> bool:
        """True when a failed command is worth retrying (timeouts, controller busy)."""
        text = (result.stdout + "\n" + result.stderr).lower()
        return result.returncode in (124, 255) or any(p in text for p in (*TRANSIENT_PATTERNS, *self.transient_patterns))

    # ------------------------------------------------------------------ plumbing
    @property
    def host(self) -> Host:
        """Where scheduler commands run: the cluster's ``host:`` or this machine."""
        if self._host is None:
            name = self.options.get("host")
            if name and name not in ("local", "localhost"):
                if self.context.get_host is None:
                    raise HsmError(f"source {self.name!r} has host: {name} but no host provider is available",
                                   hint=install_hint("hsm-plugin-ssh"))
                self._host = self.context.get_host(str(name))
            else:
                from hsm_core.plugin.local_host import LocalHost

                self._host = LocalHost()
        return self._host

    def run(self, argv: Sequence[str], *, cwd: str | None = None, input: str | None = None, timeout: float = 120.0) -> CommandResult:
        """Run a scheduler command on the host with the configured ``env``."""
        return self.host.run(list(argv), cwd=cwd, env=self.env or None, input=input, timeout=timeout)

    @property
    def remote(self) -> bool:
        """True when tasks run on a file system other than this machine's."""
        return self.staging.remote

    def exec_path(self, local: Path) -> str:
        """``local`` (inside the project) as the execution host sees it."""
        return self.staging.exec_path(local)

    @property
    def job_dir(self) -> Path:
        """``<sweep>/scripts/job_scripts`` on this machine."""
        return self.job_files.job_dir

    def runner_argv(self) -> tuple[str, ...]:
        """How the job script starts the task runner."""
        return self.job_files.runner_argv()

    def make_job(self, name: str, tasks: int, list_file: Path, resources: Resources | None = None) -> ArrayJob:
        """The :class:`ArrayJob` of a chunk of ``tasks`` tasks (paths as the execution host sees
        them); ``resources``: the chunk's own (per-task resources), default the source's."""
        return self.job_files.make_job(name, tasks, list_file, resources)

    def resource_groups(self, tasks: Sequence[TaskSpec]) -> list[tuple[Resources, list[TaskSpec]]]:
        """``tasks`` grouped by their resources (the per-task rules applied to each task's
        parameters), in order: each group goes to array jobs of its own."""
        return per_task.group_tasks(self.options, self.per_task_rules, tasks, resources_from_options)

    def check_expressible(self) -> None:
        """ConfigError when this scheduler cannot express the resources asked for, the
        source's own or those of a per-task rule (each over the source's)."""
        variants = [("", self.options)]
        variants += [(f"{rule.where}.", per_task.options_for(self.options, [rule], dict(
            (name, accepted[0]) for name, accepted in rule.when))) for rule in self.per_task_rules]
        for prefix, options in variants:
            problems = self.cannot_express(resources_from_options(options), options)
            if problems:
                key, why = problems[0]
                raise ConfigError(why, key=f"{prefix}{key}", hint=f"remove {key} for {self.scheduler_name}, or pass your "
                                  f"site's own directive with extra_directives")

    def log(self, line: str) -> None:
        """Append to the sweep's ``logs/sources/<name>.log``."""
        path = Path(self.context.sweep_dir) / "logs" / "sources" / f"{self.name}.log"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            from hsm_core.plugin.taskfiles import now_iso

            with open(path, "a", encoding="utf-8") as fh:
                fh.write(f"{now_iso()} {line}\n")
        except OSError:
            pass

    @property
    def chunks(self) -> Mapping[str, SubmittedChunk]:
        """The array jobs of this sweep this source follows, by job id."""
        return self.watcher.chunks

    @property
    def accounting_enabled(self) -> bool:
        """Whether polls ask :meth:`accounting` about jobs the queue forgot (set False when the
        site has none; it turns False by itself once accounting says it is unavailable)."""
        return self.watcher.accounting_ok

    @accounting_enabled.setter
    def accounting_enabled(self, value: bool) -> None:
        self.watcher.accounting_ok = bool(value)

    # ------------------------------------------------------------------ ComputeSource
    def capacity(self) -> int:
        return self._capacity

    def detach(self) -> bool:
        # Queued jobs belong to the scheduler: they run whether or not hsm is watching.
        return True

    @property
    def accepts_unmade_dirs(self) -> bool:
        """Whether tasks may be handed over before their dir exists, each element making its own
        (:mod:`.unmade`): task dirs on this machine's file system, one task per element, hsm's
        own runner (which makes the dir from the chunk's task file)."""
        return not self.remote and self.per_element == 1 and not self.options.get("runner")

    @property
    def makes_dirs_after_submission(self) -> bool:
        """Whether a small submission's task dirs are made right after the job is submitted, while
        the scheduler starts it (:mod:`.late_dirs`), rather than before: whenever the elements
        could make them (:attr:`accepts_unmade_dirs`)."""
        return self.accepts_unmade_dirs

    def max_array_size(self) -> int:
        """Tasks per array job: the smaller of ``max_array_size`` and the scheduler's limit."""
        if self._max_array_size is None:
            limits = []
            if self.options.get("max_array_size"):
                limits.append(positive_int(self.options["max_array_size"], "max_array_size"))
            try:
                sched = self.scheduler_max_array_size()
            except Exception:  # an unreadable config must not stop a sweep: fall back
                sched = None
            if sched:
                limits.append(int(sched))
            self._max_array_size = min(limits) if limits else self.default_max_array_size
        return self._max_array_size

    def launch(self, tasks: Sequence[TaskSpec]) -> None:
        """Submit ``tasks`` as array jobs (one per chunk); all or nothing per call."""
        submission.launch(self, tasks)

    def submit_workers(self, workers: WorkerArray, *, dry_run: bool = False) -> WorkersSubmitted:
        """``hsm worker submit``: one array job of ``workers.count`` elements, each running one
        worker (:meth:`render_worker_script`), submitted as the tasks' array jobs are."""
        return submission.submit_workers(self, workers, dry_run=dry_run)

    def poll(self) -> list[TaskUpdate]:
        """Report changed tasks: status files every poll, the scheduler on a backoff schedule."""
        updates = self.watcher.poll()
        self.poll_interval = self.pace.after_check(self.watcher.last_check_seconds)
        return updates

    def fetch_results(self, spec: TaskSpec) -> None:
        """Copy a finished task dir back from the cluster (no-op on a shared file system)."""
        self.staging.fetch_one(spec)

    # ------------------------------------------------------------------ cancel / attach / stop
    def cancel_jobs(self, ids: Sequence[str]) -> CommandResult | None:
        """Run the scheduler's cancel command on these job / element ids (logged if it fails)."""
        if not ids:
            return None
        res = self.run(self.cancel_argv(list(ids)))
        if res.returncode != 0:
            self.log(f"cancel of {' '.join(ids)} returned {res.returncode}: {submission.said(res)}")
        return res

    def cannot_cancel_alone(self, task_ids: Iterable[str]) -> list[str]:
        """Of these attached tasks, those whose array element this scheduler cannot stop without
        stopping others (``hsm cancel --tasks`` then leaves them alone and says so). Default: none."""
        return []

    def cancel(self, task_ids: Iterable[str], reason: TaskState = TaskState.CANCELLED) -> None:
        """Cancel the jobs of these tasks; polls then mark them ``reason`` once the jobs ended."""
        w = self.watcher
        wanted = [tid for tid in task_ids if tid in w.tracked]
        if not wanted:
            return
        wanted_set = set(wanted)
        ids: list[str] = []
        whole: set[str] = set()
        for chunk_id, chunk in w.chunks.items():
            remaining = [tid for tid in chunk.task_ids if tid in w.tracked]
            if remaining and set(remaining) <= wanted_set:
                whole.add(chunk_id)
                ids.append(chunk_id)
        for tid in wanted:
            t = w.tracked[tid]
            w.stopping[tid] = reason
            if t.chunk_id in whole:
                continue
            chunk = w.chunks.get(t.chunk_id or "")
            if chunk is not None and chunk.per_element > 1:
                element = chunk.element_of(tid)
                mates = [x for x in chunk.task_ids if x in w.tracked and chunk.element_of(x) == element]
                if not set(mates) <= wanted_set:
                    self.log(f"{t.spec.name}: shares its array element with tasks not being cancelled; left to run")
                    w.stopping.pop(tid, None)
                    continue
            keys = self.control_keys(t)  # Slurm ignores scancel of an element's own job id: 123_4
            if keys:
                ids.append(keys[0])
            else:
                # Cancelling the whole array would stop its other tasks too: the element is
                # cancelled as soon as its runner records the element's id (see the watcher).
                w.cancel_when_named.add(tid)
                self.log(f"{t.spec.name}: {self.scheduler_name} does not name this array element yet; "
                         "it is cancelled as soon as it starts")
        self.cancel_jobs(sorted(set(ids)))
        w.query_soon()

    def attach(self, tasks: Sequence[TaskSpec]) -> None:
        """Follow tasks an earlier controller submitted (job ids from status.yaml and jobs.jsonl)."""
        self.watcher.follow_submitted(tasks, read_manifest(self.job_dir, self.name))

    def settle(self, tasks: Sequence[TaskSpec]) -> dict[str, TaskState]:
        """How tasks ended that nobody watched end and whose runner recorded a signal (see
        :meth:`ComputeSource.settle <hsm_core.plugin.ComputeSource.settle>`): the queue, then the
        accounting, is asked, and the verdict written (``timeout``, ``cancelled``, ``preempted``,
        or ``preempted`` and ``unconfirmed`` when nobody can tell). SUBMITTED: the scheduler
        requeued the job (or could not be asked): watch it, do not run it again."""
        if not tasks:
            return {}
        watcher = QueueWatcher(self, poll_interval_max=self.poll_interval_max, accounting=self.accounting_enabled)
        watcher.follow_submitted(tasks, read_manifest(self.job_dir, self.name))
        states = watcher.settle()
        if not watcher.accounting_ok:
            self.accounting_enabled = False
        return states

    def interrupt(self, wait: float = 30.0) -> None:
        """Ctrl-C: cancel every job of this source and mark the tasks ``interrupted``."""
        w = self.watcher
        ids = list(w.tracked)
        if not ids:
            return
        self.cancel(ids, reason=TaskState.INTERRUPTED)
        deadline = time.monotonic() + wait
        collected: list[TaskUpdate] = []
        while w.tracked and time.monotonic() < deadline:
            w.query_soon()
            collected += w.poll()
            if w.tracked:
                time.sleep(0.5)
        # Whatever the scheduler still shows: hsm stopped it, so say so in the files.
        collected += w.interrupt_remaining()
        w.pending_updates += collected  # the engine's next poll reports them

    def test(self, check: TargetTest) -> bool:
        """``hsm test hpc``: the scheduler answers, the partition exists, a one-task array job
        completes (:mod:`hsm_core.plugin.arrayjob.selftest`)."""
        from hsm_core.plugin.arrayjob.selftest import check_array_source

        return check_array_source(self, check)

    def health(self) -> HealthReport:
        """Healthy when the scheduler answers its cheapest command."""
        try:
            argv = self.health_argv()
        except NotImplementedError:
            return HealthReport(True, "no health command")
        res = self.run(argv, timeout=60)
        if res.returncode != 0:
            return HealthReport(False, f"{' '.join(argv)} failed: {submission.said(res)}")
        w = self.watcher
        extra = f"; last status query failed: {w.last_query_error}" if w.query_failures else ""
        return HealthReport(True, f"{self.scheduler_name} answers ({len(w.tracked)} tasks followed){extra}")

    @property
    def followed(self) -> int:
        """Number of tasks this source is following."""
        return len(self.watcher.tracked)
