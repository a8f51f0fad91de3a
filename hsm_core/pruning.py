"""Early stopping: the ``prune:`` setting, the trials' progress, decisions, and the watcher.

::

    prune:
      pruner: median            # median, asha, hyperband (hsm-plugin-optuna), or another plugin's
      metric: loss              # the intermediate value compared (default: search: metric:)
      goal: minimize            # (default: search:'s goal, else minimize)
      options: {n_warmup_steps: 2}   # the pruner's own settings

No server: the state of early stopping is in the task directories. A task's reports are its
``stdout.log`` and ``intermediate.jsonl`` (:mod:`hsm_core.intermediate`); what the pruner decided
about it, and the memo it keeps about it, are its ``pruning.json``, written by whoever judged it.
The decision to prune is written *before* the task is stopped, and every path that records the
end of a task (:func:`hsm_core.state.finalize_status`) reads it: a task stopped by its pruner is
recorded ``pruned`` even when the controller that stopped it was killed in the middle, and
``hsm complete`` leaves it alone.

:class:`PruneMonitor` watches the running tasks of one controller (or one worker) in a thread;
each new step of a task is judged once, and the owner is told which tasks to stop.
"""

from __future__ import annotations

import json
import math
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from hsm_core.atomic import atomic_write_json, read_json
from hsm_core.intermediate import ReportReader
from hsm_core.plugin import ConfigError, HsmError, PruneDecision, PrunerRecord, PrunerSettings, TrialProgress
from hsm_core.state import SweepDir, now_iso, read_status
from hsm_core.taskdir import metrics_path, pruning_path
from hsm_core.taskstate import TaskState

#: The sweep file's key.
SETTING = "prune"
_KEYS = ("pruner", "metric", "goal", "options")
_GOALS = {"minimize": "minimize", "min": "minimize", "maximize": "maximize", "max": "maximize"}
#: Seconds between two looks at the running tasks' reports.
INTERVAL = 1.0
#: Seconds a pruned task gets to exit after SIGTERM (to save a checkpoint) before SIGKILL, where
#: no source's ``kill_grace`` applies (under ``hsm worker``).
GRACE = 10.0


def parse_settings(section: Any, *, default_metric: str | None = None, default_goal: str | None = None,
                   study: str = "", where: str = SETTING) -> PrunerSettings:
    """Validate a ``prune:`` setting; a ConfigError names the key. ``default_metric`` and
    ``default_goal`` come from a ``search:`` section's metric."""
    if isinstance(section, str):
        section = {"pruner": section}
    if not isinstance(section, Mapping):
        raise ConfigError("'prune' must be a mapping: pruner, metric, goal, options", key=where,
                          hint="e.g. prune: {pruner: median, metric: loss}")
    unknown = [k for k in section if k not in _KEYS]
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in prune (keys: {', '.join(_KEYS)})", key=f"{where}.{unknown[0]}",
                          hint="the pruner's own settings go under 'options:'")
    pruner = section.get("pruner")
    if not isinstance(pruner, str) or not pruner:
        raise ConfigError(f"pruner must be a name (median, asha, hyperband ...), not {pruner!r}", key=f"{where}.pruner")
    metric = section.get("metric", default_metric)
    if not isinstance(metric, str) or not metric:
        raise ConfigError("metric must name the intermediate value the pruner compares, e.g. metric: loss",
                          key=f"{where}.metric", hint="the task reports it with lines like: METRIC loss=0.41 step=3")
    goal = _GOALS.get(str(section.get("goal", default_goal or "minimize")).lower())
    if goal is None:
        raise ConfigError(f"goal must be minimize or maximize, not {section.get('goal')!r}", key=f"{where}.goal")
    options = section.get("options") or {}
    if not isinstance(options, Mapping):
        raise ConfigError("options must be a mapping (the pruner's own settings)", key=f"{where}.options")
    return PrunerSettings(pruner, metric, goal, study, dict(options))


def settings_for(spec: Any, registry: Any, study: str) -> PrunerSettings | None:
    """The checked ``prune:`` setting of a sweep spec (None without one); a missing pruner or a
    bad option fails here, before anything runs."""
    section = (spec.settings or {}).get(SETTING)
    if section is None:
        return None
    default_metric = default_goal = None
    search = (spec.sections or {}).get("search")
    if isinstance(search, Mapping):
        m = search.get("metric")
        if isinstance(m, str):
            default_metric = m
        elif isinstance(m, Mapping):
            default_metric, default_goal = m.get("name"), m.get("goal")
    settings = parse_settings(section, default_metric=default_metric, default_goal=default_goal, study=study)
    make_pruner(settings, registry).check()
    return settings


def make_pruner(settings: PrunerSettings, registry: Any) -> Any:
    """A new pruner for ``settings`` (ComponentNotFound names the package to install)."""
    return registry.get(PrunerRecord.kind, settings.pruner).load()(settings)


# -- the trials as the pruner sees them -----------------------------------------------------------
def read_record(task_dir: Path) -> dict[str, Any]:
    """The task's ``pruning.json`` ({} when none)."""
    try:
        data = read_json(pruning_path(task_dir))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _final_value(task_dir: Path, metric: str, intermediate: Mapping[int, float]) -> float | None:
    try:
        metrics = read_json(metrics_path(task_dir))
        value = float(metrics[metric]) if isinstance(metrics, dict) and not isinstance(metrics.get(metric), bool) else None
    except (OSError, ValueError, KeyError, TypeError):
        value = None
    if value is None and intermediate:
        value = intermediate[max(intermediate)]
    return value if value is not None and math.isfinite(value) else None


_PROGRESS_STATES = {TaskState.COMPLETED.value: "completed", TaskState.PRUNED.value: "pruned",
                    TaskState.RUNNING.value: "running", TaskState.SUBMITTED.value: "running"}


class SweepProgress:
    """Every trial of a sweep with what it reported (reads only what was appended since last time)."""

    def __init__(self, sweep_path: Path, settings: PrunerSettings) -> None:
        self.sweep = SweepDir(Path(sweep_path))
        self.settings = settings
        self.reader = ReportReader()
        #: Trials that completed or were pruned: they change no more, and are not read again.
        self._done: dict[int, TrialProgress] = {}

    def own(self, task_dir: Path) -> dict[int, float]:
        """What one task reported so far."""
        return self.reader.values(task_dir, self.settings.metric)

    def trials(self) -> list[TrialProgress]:
        """Every started trial, by number (its task index)."""
        out = []
        for rec in sorted(self.sweep.load_index().values(), key=lambda r: r.index):
            if rec.index in self._done:
                out.append(self._done[rec.index])
                continue
            task_dir = self.sweep.record_dir(rec)
            status = read_status(task_dir)
            if status is None:
                continue  # not started
            state = _PROGRESS_STATES.get(str(status.get("state")), "failed")
            values = self.own(task_dir)
            value = _final_value(task_dir, self.settings.metric, values) if state == "completed" else None
            memo = read_record(task_dir).get("memo") or {}
            out.append(TrialProgress(rec.index, state, dict(values), value, dict(memo)))
            if state in ("completed", "pruned"):
                self._done[rec.index] = out[-1]
        return out


def judge(progress: SweepProgress, registry: Any, number: int, task_dir: Path,
          trials: list[TrialProgress] | None = None) -> PruneDecision | None:
    """Judge the running trial ``number`` if it reported a step not judged yet; the decision and
    its memo are written to the task's ``pruning.json`` before it is returned. None: nothing new."""
    own = progress.own(task_dir)
    if not own:
        return None
    record = read_record(task_dir)
    if record.get("pruned") is True:
        return PruneDecision(True, record.get("memo") or {}, str(record.get("reason") or ""))  # decided before: stop it
    step = max(own)
    if record.get("judged_step") == step:
        return None
    trials = trials if trials is not None else progress.trials()
    mine = next((t for t in trials if t.number == number), None)
    if mine is None or mine.state != "running":
        return None
    try:
        decision = make_pruner(progress.settings, registry).judge(mine, trials)
    except HsmError:
        raise
    except Exception as exc:  # a pruner's bug: said once per step, the trial runs on
        decision = PruneDecision(False, dict(mine.memo), f"pruner {progress.settings.pruner!r} failed: {exc!r}")
    entry = {"metric": progress.settings.metric, "pruner": progress.settings.pruner, "judged_step": step,
             "value": own[step], "memo": dict(decision.memo), "pruned": bool(decision.prune),
             "judged": now_iso(), "judged_epoch": round(time.time(), 3), "by": f"{socket.gethostname()}:{os.getpid()}"}
    if decision.prune:
        entry["step"] = decision.step if decision.step is not None else step
        entry["reason"] = decision.reason or f"{progress.settings.pruner} pruner at step {step}"
    atomic_write_json(pruning_path(task_dir), entry)
    return decision


class PruneMonitor:
    """Judges the running tasks of one controller or worker in a background thread.

    The owner says which tasks it runs with :meth:`watch` (``{task id: (index, task dir)}``);
    ``on_prune(task_id, task_dir)`` is called from the thread for each task to stop (its decision
    is already on disk). The owner stops it as it stops any task (SIGTERM, grace, SIGKILL).
    """

    def __init__(self, sweep_path: Path, settings: PrunerSettings, registry: Any,
                 on_prune: Callable[[str, Path], None], *, interval: float = INTERVAL,
                 log: Callable[[str], None] | None = None) -> None:
        self.progress = SweepProgress(sweep_path, settings)
        self.registry = registry
        self.on_prune = on_prune
        self.interval = interval
        self._log = log
        self._watched: dict[str, tuple[int, Path]] = {}
        self._told: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error = ""

    def watch(self, tasks: Mapping[str, tuple[int, Path]]) -> None:
        """The tasks to judge from now on (replaces the earlier set; cheap to call often)."""
        self._watched = dict(tasks)  # one assignment: the thread sees the old set or the new

    def start(self) -> "PruneMonitor":
        self._thread = threading.Thread(target=self._run, name="hsm-pruner", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception as exc:  # never let a bad file stop early stopping for the whole run
                line = f"prune: could not judge the running tasks: {exc}"
                if line != self._last_error:  # said once, not every second
                    self._say(line)
                self._last_error = line

    def check(self) -> list[str]:
        """Judge every watched task that reported a new step; returns the ids told to stop."""
        stopped = []
        trials: list[TrialProgress] | None = None
        for task_id, (number, task_dir) in list(self._watched.items()):
            if task_id in self._told:
                continue
            if trials is None and self._has_news(task_dir):
                trials = self.progress.trials()  # read once per round, for every task judged in it
            if trials is None:
                continue
            decision = judge(self.progress, self.registry, number, task_dir, trials)
            if decision is None:
                continue
            if not decision.prune:
                if decision.reason:
                    self._say(f"prune: task {number}: {decision.reason}")
                continue
            self._told.add(task_id)
            self._say(f"prune: stopping task {number} ({task_dir.name}): {decision.reason or 'pruned'}")
            stopped.append(task_id)
            self.on_prune(task_id, task_dir)
        return stopped

    def _has_news(self, task_dir: Path) -> bool:
        own = self.progress.own(task_dir)
        if not own:
            return False
        record = read_record(task_dir)
        return record.get("pruned") is True or record.get("judged_step") != max(own)

    def _say(self, line: str) -> None:
        if self._log is not None:
            self._log(line)
            return
        try:
            self.progress.sweep.log("sweep.log", line)
        except OSError:
            pass


def describe(task_dir: Path) -> str | None:
    """``pruned at step 4: below the median`` for a pruned task (status and report), else None."""
    record = read_record(task_dir)
    if record.get("pruned") is not True:
        return None
    return f"pruned at step {record.get('step')}: {record.get('reason', '')}".rstrip(": ")


def summary(settings: PrunerSettings | None) -> str | None:
    """``median on loss (minimize), n_warmup_steps=2``: one line for ``--dry-run`` (None: no pruning)."""
    if settings is None:
        return None
    options = ", ".join(f"{k}={json.dumps(v)}" for k, v in settings.options.items())
    return f"{settings.pruner} on {settings.metric} ({settings.goal})" + (f", {options}" if options else "")
