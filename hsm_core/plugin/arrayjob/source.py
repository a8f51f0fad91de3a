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
import json
import os
import re
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, Iterable, Mapping, Sequence

from hsm_core.errors import ConfigError, HsmError, SourceUnavailable
from hsm_core.install_hints import install_hint
from hsm_core.taskdir import STATUS_FILE, carry_kept, status_path
from hsm_core.plugin.arrayjob.directives import check_line, check_name
from hsm_core.plugin.arrayjob.resources import positive_int, resources_from_options
from hsm_core.plugin.arrayjob.script import ArrayJob, chunk_ranges
from hsm_core.plugin.arrayjob.states import (
    FINAL_BY_RUNNER,
    TRANSIENT_PATTERNS,
    JobInfo,
    QueryFailed,
    QueueState,
    Verdict,
    is_final_state,
    resolve_task_state,
    verdict_from_files,
)
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

__all__ = ["ArrayJobSource", "SubmittedChunk"]


@dataclass
class SubmittedChunk:
    """One array job of the sweep."""

    job_id: str
    name: str
    script: str
    list_file: str
    task_ids: list[str]
    per_element: int = 1

    def element_of(self, task_id: str) -> int:
        """The array index running ``task_id``."""
        return self.task_ids.index(task_id) // self.per_element

    def to_json(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "name": self.name, "script": self.script, "list": self.list_file,
                "per_element": self.per_element, "tasks": self.task_ids}


@dataclass
class _Tracked:
    spec: TaskSpec
    keys: list[str]  # scheduler ids that name this task's element, most specific first
    chunk_id: str | None = None
    reported: TaskState | None = None
    confirmations: int = 0
    stat_key: tuple[int, int] | None = None
    status: dict[str, Any] = field(default_factory=dict)


_LIST_READER = f"STATUS_FILE = {STATUS_FILE!r}\n" + r"""
import json, os, sys
out = {}
for line in sys.stdin:
    d = line.strip()
    if not d:
        continue
    try:
        with open(os.path.join(d, STATUS_FILE), encoding="utf-8") as fh:
            out[d] = fh.read()
    except OSError:
        out[d] = None
json.dump(out, sys.stdout)
"""


class ArrayJobSource(ComputeSource):
    """A compute source submitting batches of tasks as array jobs to a batch scheduler.

    Subclasses implement the scheduler's commands; everything else (files, chunking, retries,
    polling with backoff, state mapping, cancel, attach, interrupt, remote login nodes) is here.
    Options are the merged ``hpc:`` section and cluster entry (see :data:`COMMON_SCHEMA`).
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
    #: File name suffix of worker job scripts (``workers_<stamp><suffix>``).
    script_suffix: ClassVar[str] = ".sh"
    poll_interval = 1.0  # file checks are cheap; scheduler queries back off separately

    def __init__(self, name: str, options: Mapping[str, Any], context: SourceContext) -> None:
        super().__init__(name, options, context)
        self.resources = resources_from_options(self.options)
        self.setup_commands = tuple(check_line(c, f"setup_commands[{i}]") for i, c in enumerate(self.options.get("setup_commands") or ()))
        self.extra_directives = tuple(check_line(c, f"extra_directives[{i}]") for i, c in enumerate(self.options.get("extra_directives") or ()))
        self.skip_directives = tuple(str(c) for c in self.options.get("skip_directives") or ())
        par = self.options.get("array_parallelism")
        self.array_parallelism = positive_int(par, "array_parallelism") if par not in (None, "") else None
        self.job_name = check_name(self.options.get("job_name") or f"hsm_{context.sweep_id}", "job_name")
        self.env = {str(k): str(v) for k, v in (self.options.get("env") or {}).items()}
        self.poll_interval = float(self.options.get("poll_interval") or type(self).poll_interval)
        self.poll_interval_max = float(self.options.get("poll_interval_max") or 30.0)
        self.submit_retries = int(self.options.get("submit_retries", 3))
        self.submit_backoff = 1.0  # seconds before the first retry, doubled each time
        self._host: Host | None = None
        self._tracked: dict[str, _Tracked] = {}
        self._chunks: dict[str, SubmittedChunk] = {}
        self._stopping: dict[str, TaskState] = {}
        self._query_delay = 0.0
        self._next_query = 0.0
        self._query_failures = 0
        self._last_query_error = ""
        self._accounting_ok = True
        self._max_array_size: int | None = None
        self._seq: int | None = None
        self._remote_root: PurePosixPath | None = None
        self._capacity = int(self.options.get("max_parallel_jobs") or self.default_capacity)
        per = self.options.get("tasks_per_element")
        self.per_element = positive_int(per, "tasks_per_element") if per not in (None, "") else 1
        self._pending_updates: list[TaskUpdate] = []

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

    def scheduler_max_array_size(self) -> int | None:
        """The scheduler's array size limit, if it can be read (Slurm: MaxArraySize)."""
        return None

    def health_argv(self) -> list[str]:
        """A cheap command that succeeds when the scheduler answers."""
        raise NotImplementedError

    def queue_argv(self) -> list[str]:
        """The command listing the user's jobs (``hsm queue``)."""
        raise NotImplementedError

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
        return not self.host.is_local

    def exec_path(self, local: Path) -> str:
        """``local`` (inside the project) as the execution host sees it."""
        local = Path(local)
        if not self.remote:
            return str(local)
        if self._remote_root is None:
            root = self.options.get("project_dir")
            if not root:
                raise ConfigError(
                    f"source {self.name!r} submits through host {self.options.get('host')!r} but has no project_dir",
                    key="hpc.clusters.*.project_dir",
                    hint="set project_dir to the project's path on the cluster",
                )
            self._remote_root = PurePosixPath(str(root))
        try:
            rel = local.resolve().relative_to(Path(self.context.project_root).resolve())
        except ValueError:
            raise HsmError(f"{local} is outside the project; cannot map it to the cluster") from None
        return str(self._remote_root / PurePosixPath(*rel.parts))

    @property
    def job_dir(self) -> Path:
        """``<sweep>/scripts/job_scripts`` on this machine."""
        return Path(self.context.sweep_dir) / "scripts" / "job_scripts"

    def runner_argv(self) -> tuple[str, ...]:
        """How the job script starts the task runner."""
        if self.options.get("runner"):
            return tuple(shlex.split(str(self.options["runner"])))
        if self.remote:
            py = self.options.get("python_interpreter")
            return (str(py), "-m", "hsm_core.runner") if py else ("hsm-task",)
        return (sys.executable, "-m", "hsm_core.runner")

    def log(self, line: str) -> None:
        """Append to the sweep's ``logs/sources/<name>.log``."""
        path = Path(self.context.sweep_dir) / "logs" / "sources" / f"{self.name}.log"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            from hsm_core.state import now_iso

            with open(path, "a", encoding="utf-8") as fh:
                fh.write(f"{now_iso()} {line}\n")
        except OSError:
            pass

    # ------------------------------------------------------------------ ComputeSource
    def capacity(self) -> int:
        return self._capacity

    def detach(self) -> bool:
        # Queued jobs belong to the scheduler: they run whether or not hsm is watching.
        return True

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

    def make_job(self, name: str, tasks: int, list_file: Path) -> ArrayJob:
        """The :class:`ArrayJob` of a chunk of ``tasks`` tasks (paths as the execution host sees them)."""
        return ArrayJob(
            name=name,
            size=-(-tasks // self.per_element),
            per_element=self.per_element,
            list_file=self.exec_path(list_file),
            project_root=self.exec_path(Path(self.context.project_root)) if self.remote else str(self.context.project_root),
            runner=self.runner_argv(),
            source=self.name,
            resources=self.resources,
            parallelism=self.array_parallelism,
            setup_commands=self.setup_commands,
            extra_directives=self.extra_directives,
            skip_directives=self.skip_directives,
            requeue=self.options.get("requeue"),
            python=str(self.options["python_interpreter"]) if self.remote and self.options.get("python_interpreter") else None,
            pass_project_root=self.remote,
        )

    def _next_seq(self) -> int:
        if self._seq is None:
            seen = [0]
            if self.job_dir.is_dir():
                for p in self.job_dir.glob("*.sh"):
                    m = re.search(r"_(\d+)\.sh$", p.name)
                    if m:
                        seen.append(int(m.group(1)))
            self._seq = max(seen)
        self._seq += 1
        return self._seq

    def launch(self, tasks: Sequence[TaskSpec]) -> None:
        """Submit ``tasks`` as array jobs (one per chunk); all or nothing per call."""
        tasks = list(tasks)
        if not tasks:
            return
        from hsm_core.atomic import atomic_write_text

        self.job_dir.mkdir(parents=True, exist_ok=True)
        log_dir = Path(self.context.sweep_dir) / "logs" / "jobs"
        log_dir.mkdir(parents=True, exist_ok=True)
        if self.remote:
            self._prepare_remote(tasks)
        submitted: list[SubmittedChunk] = []
        try:
            for start, size in chunk_ranges(len(tasks), self.max_array_size() * self.per_element):
                chunk = tasks[start : start + size]
                seq = self._next_seq()
                stem = f"{self.name}_{seq:03d}"
                name = f"{self.job_name}_{seq:03d}"
                list_path = self.job_dir / f"{stem}.list"
                script_path = self.job_dir / f"{stem}.sh"
                # Relative to the list file: the list stays valid on a cluster with another root.
                lines = [os.path.relpath(s.task_dir, self.job_dir) for s in chunk]
                atomic_write_text(list_path, "\n".join(lines) + "\n", fsync=False)
                job = self.make_job(name, len(chunk), list_path)
                text = self.render_script(job)
                atomic_write_text(script_path, text, fsync=False)
                if self.remote:
                    self.host.write_text(self.exec_path(list_path), list_path.read_text())
                    self.host.write_text(self.exec_path(script_path), text)
                job_id = self._submit(script_path.name, job)
                sub = SubmittedChunk(job_id, name, script_path.name, list_path.name, [s.task_id for s in chunk], self.per_element)
                submitted.append(sub)
                self._record_submission(sub, chunk)
        except BaseException:
            if submitted:
                # All or nothing: the engine puts the whole batch back in the queue.
                self._cancel_ids([c.job_id for c in submitted])
                for c in submitted:
                    self._forget_chunk(c)
                self.log("launch failed: cancelled the chunks already submitted: " + ", ".join(c.job_id for c in submitted))
            raise
        self._query_delay = 0.0
        self._next_query = 0.0

    def submit_workers(self, workers: WorkerArray, *, dry_run: bool = False) -> WorkersSubmitted:
        """``hsm worker submit``: one array job of ``workers.count`` elements, each running one
        worker (:meth:`render_worker_script`), submitted as the tasks' array jobs are."""
        from hsm_core.atomic import atomic_write_text, executable_mode

        if self.remote:
            raise HsmError(f"hsm worker submit submits from this machine, but source {self.name!r} submits through "
                           f"host {self.options.get('host')!r}", hint="run hsm worker submit on the cluster's login node")
        script_dir = Path(workers.script_dir)
        script_dir.mkdir(parents=True, exist_ok=True)
        Path(workers.log_dir).mkdir(parents=True, exist_ok=True)
        job = ArrayJob(
            name=check_name(workers.job_name, "job_name"),
            size=workers.count,
            list_file="",
            project_root=str(workers.project_root),
            runner=(),
            source=self.name,
            resources=self.resources,
            setup_commands=self.setup_commands,
            extra_directives=self.extra_directives,
            skip_directives=self.skip_directives,
            requeue=True,  # a preempted or requeued element restarts its worker, which resumes its task
            # Relative to the submission dir: user paths (spaces ...) stay out of directives.
            log_dir=os.path.relpath(workers.log_dir, script_dir),
            command=tuple(workers.command),
        )
        script = script_dir / f"workers_{workers.stamp}{self.script_suffix}"
        atomic_write_text(script, self.render_worker_script(job))
        os.chmod(script, executable_mode(script))  # executable; readable by whom the umask says
        argv = self.submit_argv(script.name, job)
        if dry_run:
            return WorkersSubmitted(script, None, argv)
        result = self.run(argv, cwd=str(script_dir))
        if result.returncode != 0:
            raise HsmError(f"{self.scheduler_name} refused the workers job ({' '.join(argv)}, exit {result.returncode}): "
                           f"{_said(result)}", hint=f"the job script is {script}")
        try:
            job_id = self.parse_job_id(result.stdout)
        except ValueError:
            raise HsmError(f"{self.scheduler_name} accepted the workers job but printed no job id: {_said(result)}",
                           hint=f"the job script is {script}") from None
        return WorkersSubmitted(script, job_id, argv, self.cancel_argv([job_id]))

    def _prepare_remote(self, tasks: Sequence[TaskSpec]) -> None:
        dirs = {self.exec_path(self.job_dir), self.exec_path(Path(self.context.sweep_dir) / "logs" / "jobs")}
        res = self.run(["mkdir", "-p", *sorted(dirs)])
        if res.returncode != 0:
            raise SourceUnavailable(f"cannot create the sweep directory on {self.host.name}: {res.stderr.strip()}")
        # One transfer per tasks/ dir, not one per task: a copy costs a round trip (or a process).
        for parent, names in _by_parent(tasks).items():
            try:
                self.host.put_many(parent, names, self.exec_path(parent))
            except Exception as exc:
                raise SourceUnavailable(f"cannot copy {len(names)} task dir(s) to {self.host.name}: {exc}") from exc

    def _submit(self, script_name: str, job: ArrayJob) -> str:
        """Submit with retries; the job id, or an error with what the scheduler printed."""
        argv = self.submit_argv(script_name, job)
        cwd = self.exec_path(self.job_dir)
        delay = self.submit_backoff
        result = CommandResult(1, "", "")
        for attempt in range(self.submit_retries + 1):
            result = self.run(argv, cwd=cwd)
            if result.returncode == 0:
                try:
                    return self.parse_job_id(result.stdout)
                except ValueError:
                    raise HsmError(
                        f"{self.scheduler_name} accepted the job but printed no job id: {_said(result)}",
                        hint="check the submission command with 'hsm test hpc'",
                    ) from None
            if not self.is_transient(result):
                break
            # A timed-out submission may have gone through: never submit the same chunk twice.
            found = self.find_submitted(job.name)
            if found:
                self.log(f"submission of {job.name} timed out but the job exists: {found}")
                return found
            self.log(f"transient submission failure ({_said(result)}); retry {attempt + 1}/{self.submit_retries} in {delay:.0f}s")
            if attempt < self.submit_retries:
                time.sleep(delay)
                delay *= 2
        cmd = " ".join(shlex.quote(a) for a in argv)
        if result.returncode == 127:
            raise HsmError(
                f"{argv[0]} is not available on {self.host.name}: {_said(result)}",
                hint=f"install the {self.scheduler_name} client commands there, or run with --sources local",
            )
        if self.is_transient(result):
            raise SourceUnavailable(f"{self.scheduler_name} did not accept the job after {self.submit_retries + 1} tries: {_said(result)}")
        raise HsmError(
            f"{self.scheduler_name} rejected the job ({cmd}, exit {result.returncode}): {_said(result)}",
            hint=f"fix the resources in hsm_config.yaml (hpc:); the job script is {self.job_dir / script_name}",
        )

    def _record_submission(self, sub: SubmittedChunk, chunk: Sequence[TaskSpec]) -> None:
        from hsm_core.state import now_iso, read_status, write_status

        self._chunks[sub.job_id] = sub
        with open(self.job_dir / "jobs.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps({**sub.to_json(), "source": self.name, "submitted": now_iso()}) + "\n")
        stamp = now_iso()
        for i, spec in enumerate(chunk):
            previous = read_status(spec.task_dir) or {}
            element = i // sub.per_element
            keys = self.element_keys(sub.job_id, element)
            status: dict[str, Any] = {
                "task_id": spec.task_id,
                "index": spec.index,
                "state": TaskState.SUBMITTED.value,
                "source": self.name,
                "runner": "batch",
                "attempt": int(previous.get("attempt") or 0),
                "job_id": keys[0] if keys else sub.job_id,
                "array_job_id": sub.job_id,
                "array_index": element,
                "submit_time": stamp,
            }
            if not keys:
                del status["job_id"]  # the element's own id is known once it runs (the runner records it)
            if previous.get("attempts"):
                status["attempts"] = previous["attempts"]
            # 10,000 tasks at once: no fsync per file (a crash here leaves 'pending', which is safe).
            status = carry_kept(previous, status)  # what sources keep (source_data) survives
            write_status(spec.task_dir, status, fsync=False)
            self._tracked[spec.task_id] = _Tracked(spec, keys, chunk_id=sub.job_id, status=status)

    def _forget_chunk(self, sub: SubmittedChunk) -> None:
        from hsm_core.state import read_status, write_status

        self._chunks.pop(sub.job_id, None)
        for tid in sub.task_ids:
            t = self._tracked.pop(tid, None)
            if t is not None:
                status = read_status(t.spec.task_dir) or {}
                if status.get("state") == TaskState.SUBMITTED.value:
                    status["state"] = TaskState.PENDING.value
                    write_status(t.spec.task_dir, status)

    # ------------------------------------------------------------------ polling
    def _read_statuses(self, fetch_remote: bool) -> None:
        """Bring each tracked task's status up to date (local: only files whose stat changed)."""
        from hsm_core.state import read_status

        if not self.remote:
            for t in self._tracked.values():
                path = status_path(t.spec.task_dir)
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                key = (st.st_mtime_ns, st.st_size)
                if key != t.stat_key:
                    t.stat_key = key
                    t.status = read_status(t.spec.task_dir) or t.status
            return
        if not fetch_remote or not self._tracked:
            return
        import yaml

        by_dir = {self.exec_path(t.spec.task_dir): t for t in self._tracked.values()}
        py = str(self.options.get("python_interpreter") or "python3")
        res = self.run([py, "-c", _LIST_READER], input="\n".join(by_dir) + "\n")
        if res.returncode != 0:
            self.log(f"cannot read task statuses on {self.host.name}: {res.stderr.strip()[:300]}")
            return
        try:
            found = json.loads(res.stdout or "{}")
        except ValueError:
            return
        for d, text in found.items():
            t = by_dir.get(d)
            if t is None or not text:
                continue
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError:
                continue
            if isinstance(data, dict) and data.get("state"):
                t.status = data

    def _query_ids(self) -> list[str]:
        ids = {t.chunk_id for t in self._tracked.values() if t.chunk_id}
        for t in self._tracked.values():
            if not t.chunk_id:
                ids.update(t.keys)
            ids.update(self.status_keys(t.status))
        return sorted(i for i in ids if i)

    def _schedule_query(self, now: float) -> None:
        # 0 (right after a launch, cancel or attach), then 2, 4, 8 ... s, capped.
        self._query_delay = min(max(2.0, self._query_delay * 2), self.poll_interval_max)
        self._next_query = now + self._query_delay

    def poll(self) -> list[TaskUpdate]:
        """Report changed tasks: status files every poll, the scheduler on a backoff schedule."""
        updates, self._pending_updates = self._pending_updates, []
        if not self._tracked:
            return updates
        now = time.monotonic()
        queue: dict[str, JobInfo] | None = None
        query_due = now >= self._next_query
        self._read_statuses(fetch_remote=query_due)
        if query_due:
            self._schedule_query(now)
            try:
                queue = self.query(self._query_ids())
                self._query_failures = 0
            except QueryFailed as exc:
                self._query_failures += 1
                self._last_query_error = str(exc)
                self.log(f"status query failed ({self._query_failures} in a row): {exc}")
        gone: list[_Tracked] = []
        decided: list[tuple[_Tracked, Verdict, JobInfo | None]] = []
        for task_id, t in list(self._tracked.items()):
            status_state = t.status.get("state")
            if queue is None:
                # No fresh word from the scheduler: report only what the files say.
                verdict = verdict_from_files(status_state)
                if verdict is not None:
                    decided.append((t, verdict, None))
                continue
            known = verdict_from_files(status_state)
            if known is not None and known.final:
                decided.append((t, known, None))
                continue
            info = self._lookup(t, queue)
            if info is None and self._accounting_ok:
                gone.append(t)
                continue
            verdict = resolve_task_state(status_state, info.state if info else None, stopping=self._stopping.get(task_id))
            decided.append((t, verdict, info))
        if gone:
            acct = self._ask_accounting(gone)
            for t in gone:
                info = next((acct[k] for k in self._keys_of(t) if k in acct), None)
                verdict = resolve_task_state(t.status.get("state"), info.state if info else None, stopping=self._stopping.get(t.spec.task_id))
                decided.append((t, verdict, info))
        self._fetch_finished(decided)
        for t, verdict, info in decided:
            self._apply_verdict(t, verdict, info, updates, fetched=True)
        return updates

    def _keys_of(self, t: _Tracked) -> list[str]:
        return [*self.status_keys(t.status), *t.keys]

    def _lookup(self, t: _Tracked, queue: Mapping[str, JobInfo]) -> JobInfo | None:
        for k in self._keys_of(t):
            if k in queue:
                info = queue[k]
                chunk = self._chunks.get(t.chunk_id or "")
                if (chunk is not None and chunk.per_element > 1 and info.state is QueueState.RUNNING
                        and t.status.get("state") in (None, TaskState.SUBMITTED.value, TaskState.PENDING.value)):
                    return JobInfo(QueueState.PENDING, info.raw, "waiting for its turn in a packed element")
                return info
        if self.lists_array_elements or not t.chunk_id or t.chunk_id not in queue:
            return None
        # Schedulers that show a pending array as one line (PBS, Slurm's qsub front-end): the
        # array's own line speaks for tasks whose element id is not known yet.
        info = queue[t.chunk_id]
        if not info.state.active:
            return None
        if t.status.get("state") in (None, TaskState.SUBMITTED.value, TaskState.PENDING.value):
            return JobInfo(QueueState.PENDING, info.raw, info.reason)
        if not self.status_keys(t.status):
            return JobInfo(QueueState.RUNNING, info.raw, info.reason)
        return None

    def _ask_accounting(self, gone: Sequence[_Tracked]) -> dict[str, JobInfo]:
        ids = sorted({k for t in gone for k in self._keys_of(t)})
        if not ids:
            return {}
        try:
            return self.accounting(ids)
        except QueryFailed as exc:
            # No accounting (sacct missing or disabled) is normal: do not ask again.
            self._accounting_ok = False
            self.log(f"accounting not available ({exc}); final states come from the queue and the task files")
            return {}

    def _apply_verdict(self, t: _Tracked, verdict: Verdict, info: JobInfo | None, updates: list[TaskUpdate],
                       fetched: bool = False) -> None:
        if verdict.confirm:
            t.confirmations += 1
            if t.confirmations < 2:
                return  # decided from an absence: look once more before writing anything
        else:
            t.confirmations = 0
        if verdict.final and not fetched:
            self.fetch_results(t.spec)
        if verdict.write:
            self._write_final(t, verdict, info)
        if verdict.final:
            self._tracked.pop(t.spec.task_id, None)
            self._stopping.pop(t.spec.task_id, None)
            updates.append(TaskUpdate(t.spec.task_id, verdict.state, infrastructure_failure=verdict.infrastructure, message=verdict.message))
        elif t.status.get("state") == TaskState.PREEMPTED.value:
            # The runner recorded a preempted attempt and the scheduler requeued the element: say
            # nothing until the next attempt starts (the engine would take 'preempted' as the end).
            return
        elif verdict.state != t.reported:
            t.reported = verdict.state
            updates.append(TaskUpdate(t.spec.task_id, verdict.state))

    def _write_final(self, t: _Tracked, verdict: Verdict, info: JobInfo | None) -> None:
        from hsm_core.state import now_iso, read_status, write_status

        status = read_status(t.spec.task_dir) or dict(t.status)
        current = status.get("state", TaskState.SUBMITTED.value)
        if current in FINAL_BY_RUNNER or (current != TaskState.PREEMPTED.value and is_final_state(current)):
            return  # the runner (or an earlier decision) already said how it ended
        new = dict(status)
        new.update(state=verdict.state.value, end_time=now_iso(), message=verdict.message)
        attempts = list(new.get("attempts") or [])
        if (current == TaskState.PREEMPTED.value and t.spec.task_id in self._stopping and attempts
                and isinstance(attempts[-1], dict) and attempts[-1].get("state") == TaskState.PREEMPTED.value):
            # The SIGTERM the runner saw was hsm's own scancel/qdel, not the scheduler preempting:
            # the attempt ended the way hsm asked (cancelled, interrupted).
            attempts[-1] = {**attempts[-1], "state": verdict.state.value}
            new["attempts"] = attempts
        if info is not None and info.raw:
            new["scheduler_state"] = info.raw
        new.pop("process", None)
        write_status(t.spec.task_dir, new)
        t.status = new
        if self.remote:
            try:
                from hsm_core.atomic import dump_yaml

                self.host.write_text(self.exec_path(status_path(t.spec.task_dir)), dump_yaml(new))
            except Exception as exc:
                self.log(f"cannot write the final status of {t.spec.name} on {self.host.name}: {exc}")
        self.log(f"{t.spec.name} {verdict.state.value}: {verdict.message}")

    # ------------------------------------------------------------------ bringing results back
    def fetch_results(self, spec: TaskSpec) -> None:
        """Copy a finished task dir back from the cluster (no-op on a shared file system)."""
        if self.remote:
            try:
                self.host.get(self.exec_path(spec.task_dir), spec.task_dir)
            except Exception as exc:
                self.log(f"cannot copy {spec.name} back from {self.host.name}: {exc}")

    def _fetch_finished(self, decided: Sequence[tuple[_Tracked, Verdict, JobInfo | None]]) -> None:
        """Copy back, in one transfer per tasks/ dir, every task that ``_apply_verdict`` will
        report final in this poll (one copy per task would cost a round trip each)."""
        if not self.remote:
            return
        specs = [t.spec for t, v, _ in decided if v.final and (not v.confirm or t.confirmations >= 1)]
        for parent, names in _by_parent(specs).items():
            try:
                self.host.get_many(self.exec_path(parent), names, parent)
            except Exception as exc:
                self.log(f"cannot copy {len(names)} task dir(s) back from {self.host.name}: {exc}")

    # ------------------------------------------------------------------ cancel / attach / stop
    def _cancel_ids(self, ids: Sequence[str]) -> CommandResult | None:
        if not ids:
            return None
        res = self.run(self.cancel_argv(list(ids)))
        if res.returncode != 0:
            self.log(f"cancel of {' '.join(ids)} returned {res.returncode}: {_said(res)}")
        return res

    def cancel(self, task_ids: Iterable[str], reason: TaskState = TaskState.CANCELLED) -> None:
        """Cancel the jobs of these tasks; polls then mark them ``reason`` once the jobs ended."""
        wanted = [tid for tid in task_ids if tid in self._tracked]
        if not wanted:
            return
        wanted_set = set(wanted)
        ids: list[str] = []
        whole: set[str] = set()
        for chunk_id, chunk in self._chunks.items():
            remaining = [tid for tid in chunk.task_ids if tid in self._tracked]
            if remaining and set(remaining) <= wanted_set:
                whole.add(chunk_id)
                ids.append(chunk_id)
        for tid in wanted:
            t = self._tracked[tid]
            self._stopping[tid] = reason
            if t.chunk_id in whole:
                continue
            chunk = self._chunks.get(t.chunk_id or "")
            if chunk is not None and chunk.per_element > 1:
                element = chunk.element_of(tid)
                mates = [x for x in chunk.task_ids if x in self._tracked and chunk.element_of(x) == element]
                if not set(mates) <= wanted_set:
                    self.log(f"{t.spec.name}: shares its array element with tasks not being cancelled; left to run")
                    self._stopping.pop(tid, None)
                    continue
            keys = self._keys_of(t)
            if keys:
                ids.append(keys[0])
            else:
                # Cancelling the whole array would stop its other tasks too.
                self.log(f"{t.spec.name}: {self.scheduler_name} does not name this array element yet; "
                         "it is marked cancelled once its job ends")
        self._cancel_ids(sorted(set(ids)))
        self._query_delay = 0.0
        self._next_query = 0.0

    def attach(self, tasks: Sequence[TaskSpec]) -> None:
        """Follow tasks an earlier controller submitted (job ids from status.yaml and jobs.jsonl)."""
        from hsm_core.state import read_status

        chunks = self._read_manifest()
        owner = {tid: c for c in chunks.values() for tid in c.task_ids}
        for spec in tasks:
            status = read_status(spec.task_dir) or {}
            # The latest submission of the task: its status, else the last manifest line naming it.
            chunk_id = str(status["array_job_id"]) if status.get("array_job_id") else None
            chunk = chunks.get(chunk_id) if chunk_id else owner.get(spec.task_id)
            if chunk is not None:
                chunk_id = chunk.job_id
            keys: list[str] = []
            if chunk is not None:
                self._chunks.setdefault(chunk.job_id, chunk)
                keys = self.element_keys(chunk.job_id, chunk.element_of(spec.task_id))
            elif status.get("array_index") is not None and chunk_id:
                keys = self.element_keys(chunk_id, int(status["array_index"]))
            if not keys and not chunk_id and not self.status_keys(status):
                # Nothing names its job: the scheduler cannot know it either, so polls record it
                # as lost (after the usual second look) rather than waiting for it forever.
                self.log(f"{spec.name}: no job id in {STATUS_FILE}")
            self._tracked[spec.task_id] = _Tracked(spec, keys, chunk_id=chunk_id, status=status)
        self._query_delay = 0.0
        self._next_query = 0.0

    def _read_manifest(self) -> dict[str, SubmittedChunk]:
        out: dict[str, SubmittedChunk] = {}
        path = self.job_dir / "jobs.jsonl"
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            return out
        for line in lines:
            try:
                d = json.loads(line)
            except ValueError:
                continue
            if d.get("source") not in (None, self.name):
                continue
            out[str(d["job_id"])] = SubmittedChunk(
                str(d["job_id"]), d.get("name", ""), d.get("script", ""), d.get("list", ""), list(d.get("tasks") or []),
                int(d.get("per_element") or 1),
            )
        return out

    def interrupt(self, wait: float = 30.0) -> None:
        """Ctrl-C: cancel every job of this source and mark the tasks ``interrupted``."""
        ids = list(self._tracked)
        if not ids:
            return
        self.cancel(ids, reason=TaskState.INTERRUPTED)
        deadline = time.monotonic() + wait
        collected: list[TaskUpdate] = []
        while self._tracked and time.monotonic() < deadline:
            self._next_query = 0.0
            collected += self.poll()
            if self._tracked:
                time.sleep(0.5)
        # Whatever the scheduler still shows: hsm stopped it, so say so in the files.
        for t in list(self._tracked.values()):
            verdict = Verdict(TaskState.INTERRUPTED, final=True, write=True, message="interrupted (Ctrl-C): the job was cancelled")
            self._write_final(t, verdict, None)
            collected.append(TaskUpdate(t.spec.task_id, TaskState.INTERRUPTED, message=verdict.message))
        self._tracked.clear()
        self._stopping.clear()
        self._pending_updates += collected  # the engine's next poll reports them

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
            return HealthReport(False, f"{' '.join(argv)} failed: {_said(res)}")
        extra = f"; last status query failed: {self._last_query_error}" if self._query_failures else ""
        return HealthReport(True, f"{self.scheduler_name} answers ({len(self._tracked)} tasks followed){extra}")

    @property
    def followed(self) -> int:
        """Number of tasks this source is following."""
        return len(self._tracked)


def _by_parent(specs: Iterable[TaskSpec]) -> dict[Path, list[str]]:
    """Task dir names grouped by their parent directory (the sweep's ``tasks/``)."""
    out: dict[Path, list[str]] = {}
    for spec in specs:
        out.setdefault(Path(spec.task_dir).parent, []).append(Path(spec.task_dir).name)
    return out


def _said(result: CommandResult) -> str:
    """What a command printed, on one line."""
    text = " ".join((result.stderr.strip() + " " + result.stdout.strip()).split())
    return text[:500] or f"no output (exit {result.returncode})"
