"""The ``ssh`` compute source: tasks run on a remote host under hsm's task runner.

Launch: the task dirs are copied to ``<remote project>/<sweep dir relative to the project>/tasks/``
and one detached runner per task is started there (own session, output in ``runner.log``), so a
dropped connection or a controller that goes away does not stop it. Poll: one remote command reads
every running task's ``status.yaml``, watching for up to ``long_poll_max`` seconds until one starts
or ends (so an end is seen within 0.1 s without a round trip per look); finished task dirs are copied back *before* they are reported
final. While the host is unreachable polls raise :class:`SourceUnavailable` (the engine counts them
against the source's health) and the tasks keep running; after ``lost_after`` seconds (default 600)
they are reported lost so that the engine runs them elsewhere.
"""

from __future__ import annotations

import json
import queue
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping, Sequence

from hsm_core.plugin import (
    SOURCE_DATA,
    ComputeSource,
    ConfigError,
    HealthReport,
    HsmError,
    RunStart,
    SourceContext,
    SourceUnavailable,
    TargetTest,
    TaskSpec,
    TaskState,
    TaskUpdate,
    atomic_write_text,
    now_iso,
    read_status,
    runner_log_path,
    source_data,
    source_log,
    stderr_path,
    with_source_data,
    write_status,
)

from hsm_plugin_ssh import remote_scripts
from hsm_plugin_ssh.discovery import RemoteProject, discover
from hsm_plugin_ssh.host import HostUnreachable, SshHost, shared_host

DEFAULT_CAPACITY = 4
MANIFEST = "scripts/ssh_remotes.json"


@dataclass
class RemoteTask:
    """One task this source runs (or watches)."""

    spec: TaskSpec
    remote_dir: str
    pid: int | None = None
    ticks: str | None = None
    slot: str | None = None
    attempt: int = 1  #: the attempt the runner there makes (previous attempt + 1)
    reported: str | None = None  #: last state reported to the engine
    last_status: dict[str, Any] = field(default_factory=dict)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join(ln.strip() for ln in text.strip().splitlines()[-lines:] if ln.strip())


#: Where hsm-plugin-ssh before source_data kept its data in a task's status (read by ``attach``
#: for sweeps started then, dropped when the status is next written).
LEGACY_KEY = "ssh"

class SshSource(ComputeSource):
    """Runs tasks on one SSH host (``--sources ssh:NAME[:N]``)."""

    #: Polls come quickly after a launch or a change (0.5 s), then less often up to this
    #: (``poll_interval:`` of the remote, else ``compute.result_collection_interval``).
    default_max_poll = 5.0
    #: A poll watches the tasks on the host for up to this long (of each poll interval) and
    #: returns as soon as one starts or ends: a task's end is seen within 0.1 s, in one SSH
    #: command. Kept short because a call in flight delays a Ctrl-C by up to this much.
    long_poll_max = 2.0

    def __init__(self, name: str, options: Mapping[str, Any], context: SourceContext) -> None:
        super().__init__(name, options, context)
        self.options.setdefault("host", name)  # ssh:HOST with no distributed.remotes entry of that name
        gpus = [str(g) for g in options.get("gpus") or []]
        per_task = int(options.get("gpus_per_task") or (1 if gpus else 0))
        if gpus and per_task > len(gpus):
            raise ConfigError(f"gpus_per_task={per_task} but only {len(gpus)} GPUs listed",
                              key=f"distributed.remotes.{name}.gpus_per_task")
        self._gpu_slots = [",".join(gpus[i:i + per_task]) for i in range(0, len(gpus) - per_task + 1, per_task)] if gpus else []
        self._free_slots = list(self._gpu_slots)
        requested = options.get("max_parallel_jobs")
        self._configured_capacity = int(requested) if requested else None
        project_config = context.project_config or {}
        compute = project_config.get("compute") or {}
        self.max_poll_interval = float(options.get("poll_interval") or compute.get("result_collection_interval")
                                       or self.default_max_poll)
        self._interval = min(0.5, self.max_poll_interval)
        self._gap = 0.05
        self.lost_after = float(options.get("lost_after", 600.0))
        self.kill_grace = float(options.get("kill_grace", 10.0))
        self.env = {str(k): str(v) for k, v in (options.get("env") or {}).items()}
        host_cfg = {k: v for k, v in self.options.items() if k not in ("max_parallel_jobs",)}
        self.host: SshHost = shared_host(name, host_cfg, project_config.get("ssh") or {})
        self.remote: RemoteProject | None = None
        self._tasks: dict[str, RemoteTask] = {}
        self._abandoned: list[RemoteTask] = []
        self._updates: "queue.SimpleQueue[TaskUpdate]" = queue.SimpleQueue()

    # -- set-up -------------------------------------------------------------------------------
    def before_run(self, run: RunStart) -> None:
        """Before a run: reach the host, find the project, Python and hsm-core there, verify the
        project matches this one (:mod:`hsm_plugin_ssh.preflight`)."""
        from hsm_plugin_ssh.preflight import before_run

        before_run(self, run)

    def test(self, check: TargetTest) -> bool:
        """``hsm test ssh:NAME``: connect, find the project, Python and hsm there, check sync, run a
        test task (the checks of ``hsm remote test NAME``, plus the task)."""
        from hsm_core.plugin import locate_project

        from hsm_plugin_ssh.commands import test_remote

        project = locate_project(self.context.project_root)
        return test_remote(self.name, project, run_task=True, timeout=check.timeout, echo=check.echo)

    def prepare(self) -> RemoteProject:
        """Connect and discover the remote project, Python and hsm-core (once).

        Raises HostUnreachable/HostKeyError/AuthFailed, or HsmError naming what is missing there.
        """
        if self.remote is None:
            rp = discover(self.host, self.options, Path(self.context.project_root))
            rp.raise_if_not_ready()
            self.remote = rp
            self._write_manifest()
        return self.remote

    @property
    def remote_sweep_dir(self) -> str:
        """The sweep directory on the remote (same place relative to the project as here)."""
        rp = self.prepare()
        sweep = Path(self.context.sweep_dir)
        try:
            rel = sweep.resolve().relative_to(Path(self.context.project_root).resolve())
        except ValueError:
            rel = Path("sweeps") / "outputs" / self.context.sweep_id
        return str(PurePosixPath(rp.project_dir, *rel.parts))

    def _write_manifest(self) -> None:
        """Remember where this sweep lives on the remote (``hsm collect-results`` reads it)."""
        path = Path(self.context.sweep_dir) / MANIFEST
        if not Path(self.context.sweep_dir).is_dir():
            return  # the sweep dir is written after the sources are prepared; launch writes it
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        assert self.remote is not None
        entry = {
            "host": self.host.settings.describe(),
            "project_dir": self.remote.project_dir,
            "sweep_dir": self.remote_sweep_dir,
            "python": self.remote.python,
        }
        if data.get(self.name) != entry:
            data[self.name] = entry
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True))

    @property  # type: ignore[override]
    def poll_interval(self) -> float:
        """Seconds between two polls: the part of the interval a poll does not spend watching the
        host (the interval is short after a change and grows while nothing happens)."""
        return self._gap

    def _poll_soon(self) -> None:
        self._interval = min(0.5, self.max_poll_interval)
        self._gap = self._gap_for(self._interval)

    def _gap_for(self, interval: float) -> float:
        return max(0.05, interval - min(interval, self.long_poll_max))

    def capacity(self) -> int:
        if self._configured_capacity:
            cap = self._configured_capacity
        elif self._gpu_slots:
            cap = len(self._gpu_slots)
        elif self.remote is not None and self.remote.cpus:
            cap = self.remote.cpus
        else:
            cap = DEFAULT_CAPACITY
        return min(cap, len(self._gpu_slots)) if self._gpu_slots else cap

    def detach(self) -> bool:
        # Remote runners are detached: they finish whether or not a controller watches.
        return True

    def wants_poll(self) -> bool:
        """Poll out of turn only when cancel/launch queued an update (each poll is an SSH round trip)."""
        return not self._updates.empty()

    # -- local bookkeeping --------------------------------------------------------------------
    def _log(self, line: str) -> None:
        source_log(Path(self.context.sweep_dir), self.name, line)

    def _ssh_info(self, t: RemoteTask) -> dict[str, Any]:
        """What ``attach`` needs, kept in the status's ``source_data`` under this source's name
        (a ``None`` removes what an earlier attempt's runner left)."""
        return {"remote": self.name, "host": self.host.settings.describe(), "dir": t.remote_dir,
                "runner_pid": t.pid or None, "runner_ticks": str(t.ticks) if t.ticks else None}

    def _write_local(self, t: RemoteTask, status: Mapping[str, Any]) -> None:
        new = {k: v for k, v in status.items() if k != LEGACY_KEY}
        write_status(t.spec.task_dir, with_source_data(new, self.name, self._ssh_info(t)))

    def _release(self, t: RemoteTask) -> None:
        if t.slot is not None:
            self._free_slots.append(t.slot)
            t.slot = None

    # -- launch -------------------------------------------------------------------------------
    def launch(self, tasks: Sequence[TaskSpec]) -> None:
        rp = self.prepare()
        self._write_manifest()
        self._kill_abandoned()
        self._poll_soon()
        remote_tasks = f"{self.remote_sweep_dir}/tasks"
        batch: list[RemoteTask] = []
        for spec in tasks:
            t = RemoteTask(spec, f"{remote_tasks}/{spec.name}")
            if self._gpu_slots:
                if not self._free_slots:
                    raise SourceUnavailable(f"{self.name}: no free GPU slot")
                t.slot = self._free_slots.pop(0)
            previous = read_status(spec.task_dir) or {}
            t.attempt = int(previous.get("attempt") or 0) + 1
            # "submitted", keeping the attempt counter (the runner there counts on from it) and what
            # sources keep in the status (source_data).
            status = {k: previous[k] for k in ("task_id", "index", "attempt", "attempts", SOURCE_DATA) if k in previous}
            status.update(task_id=spec.task_id, index=spec.index, state=TaskState.SUBMITTED.value,
                          source=self.name, runner="ssh")
            self._write_local(t, status)
            batch.append(t)
        try:
            local_parents = {t.spec.task_dir.parent for t in batch}
            for parent in local_parents:
                self.host.put_many(parent, [t.spec.name for t in batch if t.spec.task_dir.parent == parent], remote_tasks)
        except BaseException:
            # Nothing was started there yet: the engine may run these anywhere.
            for t in batch:
                self._release(t)
            raise
        request = {
            "python": rp.python,
            "project_root": rp.project_dir,
            "source": self.name,
            "tasks": [{"dir": t.remote_dir, "env": self._task_env(t)} for t in batch],
        }
        try:
            res = self.host.run([rp.python, "-c", remote_scripts.LAUNCH], input=json.dumps(request), timeout=120)
        except HostUnreachable as exc:
            # The connection dropped while the runners were being started: some may run there now.
            # Running these elsewhere could run them twice, so they stay here with their pids
            # unknown: the next poll that reaches the host finds each runner by its task dir, or
            # reports the task lost when none started (and after lost_after, as for any task here).
            for t in batch:
                self._tasks[t.spec.task_id] = t
            self._log(f"launch of {len(batch)} task(s) cut off ({exc.message}); "
                      "they are looked up there when the host answers")
            raise SourceUnavailable(f"launch on {self.name} cut off: {exc.message}",
                                    started=[t.spec.task_id for t in batch]) from exc
        except BaseException:
            for t in batch:
                self._release(t)
            raise
        try:
            started = json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else None
        except (ValueError, IndexError):
            started = None
        if not isinstance(started, dict):
            for t in batch:
                self._release(t)
            raise SourceUnavailable(f"cannot start tasks on {self.name} (exit {res.returncode}): "
                                    f"{(res.stderr or res.stdout).strip()[-300:]}")
        failed = []
        for t in batch:
            got = started.get(t.remote_dir) or {}
            if not got.get("pid"):
                failed.append(f"{t.spec.name}: {got.get('error', 'not started')}")
                self._release(t)
                continue
            t.pid, t.ticks = int(got["pid"]), got.get("ticks")
            self._tasks[t.spec.task_id] = t
            self._write_local(t, {**(read_status(t.spec.task_dir) or {}), "state": TaskState.SUBMITTED.value})
        if failed:
            # The others run; these go back to the engine's queue through a lost report.
            for t in batch:
                if t.spec.task_id not in self._tasks:
                    self._updates.put(TaskUpdate(t.spec.task_id, TaskState.LOST, infrastructure_failure=True,
                                                 message="; ".join(failed)))
            self._log("could not start: " + "; ".join(failed))

    def _task_env(self, t: RemoteTask) -> dict[str, str]:
        env = dict(self.env)
        # The grace the runner there gives what a task that ended left running (hsm_core/ended_task_processes.py).
        env["HSM_KILL_GRACE"] = f"{self.kill_grace:g}"
        if t.slot is not None:
            env["CUDA_VISIBLE_DEVICES"] = t.slot
        return env

    # -- poll -----------------------------------------------------------------------------------
    def _drain(self) -> list[TaskUpdate]:
        out = []
        while True:
            try:
                out.append(self._updates.get_nowait())
            except queue.Empty:
                return out

    def poll(self) -> list[TaskUpdate]:
        updates = self._drain()
        if not self._tasks:
            return updates
        try:
            self._kill_abandoned()
            # Watch the host for a while, unless there is news to report already.
            wait = 0.0 if updates else min(self._interval, self.long_poll_max)
            found = self._read_remote(list(self._tasks.values()), wait=wait)
        except HostUnreachable as exc:
            down = self.host.down_since
            if down is not None and time.time() - down >= self.lost_after:
                return updates + self._give_up(exc)
            if updates:
                return updates
            # Poll again when the reconnect backoff allows a new attempt (the engine never polls
            # sooner than its own backoff either); the tasks here are run elsewhere at lost_at.
            exc.retry_after = self.host.retry_in()
            exc.lost_at = (down if down is not None else time.time()) + self.lost_after
            exc.lost_setting = f"distributed.remotes.{self.name}.lost_after"
            raise
        finished: list[tuple[RemoteTask, dict[str, Any], str]] = []
        for t in list(self._tasks.values()):
            r = found.get(t.remote_dir) or {}
            if t.pid is None and r.get("runner"):
                # A runner found by its task dir (launch cut off, or attached without a pid).
                t.pid, t.ticks = int(r["runner"][0]), r["runner"][1]
            status = self._parse(r.get("status"))
            state = str(status.get("state") or "")
            if state and TaskState(state).finished:
                finished.append((t, status, r.get("note") or ""))
            elif state == TaskState.RUNNING.value and t.reported != state:
                t.reported = state
                t.last_status = status
                self._write_local(t, status)
                updates.append(TaskUpdate(t.spec.task_id, TaskState.RUNNING))
        if finished:
            updates += self._collect(finished)
        if updates:
            self._poll_soon()
        else:
            self._interval = min(self.max_poll_interval, self._interval * 1.5)
            self._gap = self._gap_for(self._interval)
        return updates

    @staticmethod
    def _parse(text: str | None) -> dict[str, Any]:
        import yaml

        if not text:
            return {}
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            return {}
        if not isinstance(data, dict) or data.get("state") not in {s.value for s in TaskState}:
            return {}
        return data

    def _read_remote(self, tasks: Sequence[RemoteTask], wait: float = 0.0) -> dict[str, Any]:
        """The remote files of ``tasks``, once one of them starts or ends or ``wait`` s have passed."""
        rp = self.prepare()
        request = {"wait": wait, "linger": min(wait, 0.3), "tasks": [{"dir": t.remote_dir, "pid": t.pid, "ticks": t.ticks, "known": t.reported}
                                           for t in tasks]}
        res = self.host.run([rp.python, "-c", remote_scripts.READ], input=json.dumps(request), timeout=120 + wait)
        try:
            data = json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else None
        except (ValueError, IndexError):
            data = None
        if not isinstance(data, dict):
            raise SourceUnavailable(f"cannot read task statuses on {self.name} (exit {res.returncode}): "
                                    f"{(res.stderr or res.stdout).strip()[-300:]}")
        return data

    def _collect(self, finished: Sequence[tuple[RemoteTask, dict[str, Any], str]]) -> list[TaskUpdate]:
        """Copy finished task dirs back, then report them (a failed copy is retried next poll)."""
        by_parent: dict[tuple[str, Path], list[RemoteTask]] = {}
        for t, _, _ in finished:
            key = (str(PurePosixPath(t.remote_dir).parent), t.spec.task_dir.parent)
            by_parent.setdefault(key, []).append(t)
        for (remote_parent, local_parent), group in by_parent.items():
            self.host.get_many(remote_parent, [PurePosixPath(t.remote_dir).name for t in group], local_parent)
        updates = []
        for t, status, note in finished:
            state = TaskState(status["state"])
            del self._tasks[t.spec.task_id]
            self._release(t)
            message = ""
            infra = False
            if state == TaskState.LOST:
                infra = True
                message = f"{note or 'lost'} on {self.name}"
            elif state != TaskState.COMPLETED:
                tail = _tail(stderr_path(t.spec.task_dir)) or _tail(runner_log_path(t.spec.task_dir))
                message = f"exit code {status.get('exit_code')}" + (f": {tail}" if tail else "")
                if status.get("error"):
                    message = f"{status['error']}; {message}"
                self._log(f"{t.spec.name} {state.value} on {self.name}: {message}")
            updates.append(TaskUpdate(t.spec.task_id, state, infrastructure_failure=infra, message=message))
        return updates

    def _give_up(self, exc: HsmError) -> list[TaskUpdate]:
        """The host stayed unreachable for lost_after seconds: hand its tasks back to the engine."""
        updates = []
        down = time.time() - (self.host.down_since or time.time())
        message = f"{self.name} unreachable for {down:.0f}s ({exc.message})"
        for t in list(self._tasks.values()):
            status = dict(read_status(t.spec.task_dir) or {})
            status.update(state=TaskState.LOST.value, end_time=now_iso(), error=message)
            status.pop("process", None)
            # The runner there counted this attempt: keep it (and its loss) in the history the
            # next runner continues from.
            status["attempt"] = max(int(status.get("attempt") or 0), t.attempt)
            status.setdefault("host", self.host.settings.hostname)
            status["source"] = self.name
            entry = {k: status.get(k) for k in ("attempt", "state", "host", "source", "start_time", "end_time")}
            status["attempts"] = [*(status.get("attempts") or []), {**entry, "exit_code": None}]
            self._write_local(t, status)
            self._abandoned.append(t)
            self._release(t)
            del self._tasks[t.spec.task_id]
            updates.append(TaskUpdate(t.spec.task_id, TaskState.LOST, infrastructure_failure=True, message=message))
        self._log(f"{len(updates)} task(s) reported lost: {message}")
        return updates

    def _kill_abandoned(self) -> None:
        """Stop runners of tasks given up on (they run elsewhere now), once the host answers."""
        if not self._abandoned:
            return
        try:
            self._kill(self._abandoned, TaskState.LOST.value, grace=self.kill_grace)
        except HostUnreachable:
            return
        self._log(f"stopped {len(self._abandoned)} abandoned task(s) on {self.name}")
        self._abandoned = []

    # -- cancel / attach / interrupt -----------------------------------------------------------
    def _kill(self, tasks: Sequence[RemoteTask], state: str, grace: float) -> dict[str, str]:
        if not tasks:
            return {}
        rp = self.prepare()
        request = {"grace": grace, "state": state,
                   "tasks": [{"dir": t.remote_dir, "pid": t.pid, "ticks": t.ticks} for t in tasks]}
        res = self.host.run([rp.python, "-c", remote_scripts.KILL], input=json.dumps(request), timeout=grace + 120)
        if res.returncode != 0:
            raise SourceUnavailable(f"cannot stop tasks on {self.name}: {(res.stderr or res.stdout).strip()[-300:]}")
        try:
            return dict(json.loads(res.stdout.strip().splitlines()[-1]))
        except (ValueError, IndexError):
            return {}

    def cancel(self, task_ids: Iterable[str], reason: TaskState = TaskState.CANCELLED) -> None:
        targets = [self._tasks[t] for t in task_ids if t in self._tasks]
        if targets:
            self._kill(targets, reason.value, grace=self.kill_grace)

    def interrupt(self) -> None:
        """Ctrl-C: stop the remote tasks as ``interrupted`` (if the host cannot be reached they
        keep running there, and ``hsm complete`` picks them up)."""
        try:
            self.cancel(list(self._tasks), reason=TaskState.INTERRUPTED)
        except HsmError:
            pass

    def attach(self, tasks: Sequence[TaskSpec]) -> None:
        """Watch tasks an earlier controller started here (remote dir and pid from status.yaml)."""
        for spec in tasks:
            status = read_status(spec.task_dir) or {}
            info = source_data(status, self.name) or status.get(LEGACY_KEY) or {}
            if not info.get("dir"):
                self._log(f"{spec.name}: no remote dir recorded; not watched")
                continue
            pid = info.get("runner_pid")
            self._tasks[spec.task_id] = RemoteTask(spec, str(info["dir"]), int(pid) if pid else None,
                                                   info.get("runner_ticks"))

    def health(self) -> HealthReport:
        try:
            self.host.check()
        except HsmError as exc:
            return HealthReport(False, exc.message)
        # The host is back: stop the runners of tasks given up on now, even when no task of ours
        # runs there any more (then nothing polls it, and they would finish a second time).
        self._stop_abandoned_quietly()
        return HealthReport(True, f"{len(self._tasks)}/{self.capacity()} running on {self.host.settings.describe()}")

    def _stop_abandoned_quietly(self) -> None:
        try:
            self._kill_abandoned()
        except HsmError as exc:
            self._log(f"could not stop abandoned task(s): {exc.message}")

    def close(self) -> None:
        if self._abandoned:
            # Last chance for runners given up on: one real connection attempt, whatever the
            # reconnect backoff says (a host still down refuses at once, or after connect_timeout).
            try:
                self.host.connect()
            except HsmError as exc:
                names = ", ".join(t.spec.name for t in self._abandoned)
                self._log(f"could not stop {len(self._abandoned)} abandoned task(s) ({names}): {exc.message}; "
                          f"their runners may still be going on {self.host.settings.describe()}")
            else:
                self._stop_abandoned_quietly()
        self.host.close()

    @property
    def active(self) -> int:
        """Tasks launched here and not yet reported final."""
        return len(self._tasks)
