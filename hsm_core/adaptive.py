"""Adaptive search on the sweep directory: the trial log, asking for a trial, the best trial.

No server: the state of a ``search:`` sweep is its trial log, ``<sweep>/search/``:

* ``asks/000007.json``: trial 7 was asked, with these parameters. Written once and never changed:
  the file is created whole (:func:`hsm_core.whole_file.create_whole`: written under a temporary
  name and ``link``-ed to its final name, which fails when the name exists; atomic on local
  filesystems and on NFS, like the claims of :mod:`hsm_core.workers.claims`). A reader never sees
  half a file, and two processes asking for trial 7 at once get the same parameters: the second one
  reads what the first one linked.
* ``tells/000007.json``: trial 7 completed with this value of the metric (written atomically once
  its task completed; a failed trial is read from its task again each time, since a retry may
  still complete it).

The strategy is rebuilt from the log for every ask (:class:`~hsm_core.plugin.SearchStrategy`), so a
controller or worker killed at any moment loses nothing: a trial asked but never started is
started later with the parameters it was given.
"""

from __future__ import annotations

import json
import math
import os
import socket
from pathlib import Path
from typing import Any, Iterable, Mapping

from hsm_core.atomic import atomic_write_json, read_json
from hsm_core.plugin import ConfigError, ExpanderRecord, HsmError, SearchSettings, SearchStrategyRecord, TaskState, Trial
from hsm_core.state import SweepDir, TaskRecord, now_iso, read_status
from hsm_core.taskdir import METRICS_FILE, metrics_path
from hsm_core.whole_file import create_whole

SECTION = "search"
LOG_DIR = "search"


class TrialLog:
    """The asks and tells of one sweep (see the module's docstring)."""

    def __init__(self, sweep_path: Path) -> None:
        self.path = Path(sweep_path) / LOG_DIR
        self.asks = self.path / "asks"
        self.tells = self.path / "tells"

    def _name(self, number: int) -> str:
        return f"{number:06d}.json"

    def ask_of(self, number: int) -> dict[str, Any] | None:
        """The recorded ask of trial ``number``, or None."""
        try:
            return json.loads((self.asks / self._name(number)).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def record_ask(self, number: int, entry: Mapping[str, Any]) -> dict[str, Any]:
        """Record trial ``number``'s ask unless another process did first; returns the ask that holds."""
        self.asks.mkdir(parents=True, exist_ok=True)
        final = self.asks / self._name(number)
        # The first ask of a trial wins; a later one reads it below.
        create_whole(final, json.dumps(dict(entry), sort_keys=True).encode("utf-8"), fsync=True)
        held = self.ask_of(number)
        if held is None:  # pragma: no cover - the link just succeeded or the file existed
            raise OSError(f"cannot read the ask of trial {number} in {self.asks}")
        return held

    def asked(self) -> dict[int, dict[str, Any]]:
        """Every recorded ask, by trial number."""
        out: dict[int, dict[str, Any]] = {}
        try:
            names = sorted(p.name for p in self.asks.iterdir() if not p.name.startswith("."))
        except OSError:
            return out
        for name in names:
            entry = self.ask_of(int(name.split(".")[0]))
            if entry is not None:
                out[int(name.split(".")[0])] = entry
        return out

    def told(self) -> dict[int, dict[str, Any]]:
        """Every recorded result, by trial number."""
        out: dict[int, dict[str, Any]] = {}
        try:
            paths = [p for p in self.tells.iterdir() if not p.name.startswith(".")]
        except OSError:
            return out
        for p in paths:
            try:
                out[int(p.name.split(".")[0])] = read_json(p)
            except (OSError, ValueError):
                continue
        return out

    def record_tell(self, number: int, entry: Mapping[str, Any]) -> None:
        self.tells.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.tells / self._name(number), dict(entry))


def section_settings(spec_sections: Mapping[str, Any], registry: Any) -> SearchSettings | None:
    """The parsed ``search:`` section of a sweep (None when it has none). A ``search:`` section
    must be the sweep's only parameter section: its trials are chosen one by one."""
    if SECTION not in spec_sections:
        return None
    others = [name for name in spec_sections if name != SECTION]
    if others:
        raise ConfigError(f"a search: section cannot be combined with {others[0]}: (its trials are chosen one by one)",
                          key=others[0], hint="put every parameter under search: params:")
    expander = registry.get(ExpanderRecord.kind, SECTION).load()()
    settings: SearchSettings = expander.settings(spec_sections[SECTION])
    make_strategy(settings, registry).check()  # a missing strategy or an unsupported space: before anything runs
    return settings


def make_strategy(settings: SearchSettings, registry: Any) -> Any:
    """A new strategy instance for ``settings`` (ComponentNotFound names what to install)."""
    return registry.get(SearchStrategyRecord.kind, settings.strategy).load()(settings)


def metric_value(metrics: Mapping[str, Any], name: str) -> float | None:
    """The metric as a finite float, or None."""
    value = metrics.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
    value = float(value)
    return value if math.isfinite(value) else None


def _task_metrics(task_dir: Path) -> dict[str, Any]:
    try:
        data = read_json(metrics_path(task_dir))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _relative(path: Path, base: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(base).resolve()))
    except ValueError:
        return str(path)


def trial_dir(sweep: SweepDir, number: int, ask: Mapping[str, Any]) -> Path:
    """The task dir of trial ``number``: as its ask recorded it (``tasks/<run id>`` in a worker
    sweep), else ``tasks/task_NNN``."""
    recorded = ask.get("task_dir")
    return sweep.path / recorded if recorded else sweep.task_dir(number)


class AdaptiveSearch:
    """Gives each trial of a ``search:`` sweep its parameters, asked from the strategy."""

    def __init__(self, sweep: SweepDir, settings: SearchSettings, registry: Any) -> None:
        self.sweep = sweep
        self.settings = settings
        self.registry = registry
        self.log = TrialLog(sweep.path)

    def write_settings(self) -> None:
        """Record the metric and goal for status and export (once per process)."""
        if not getattr(self, "_settings_written", False):
            write_settings(self.sweep, self.settings)
            self._settings_written = True

    def trials(self) -> list[Trial]:
        """Every asked trial with its state now (results read from the tasks, completed ones logged)."""
        told = self.log.told()
        out: list[Trial] = []
        for number, ask in sorted(self.log.asked().items()):
            if number in told:
                t = told[number]
                out.append(Trial(number, ask["params"], t.get("state", "completed"), t.get("value"), data=ask.get("data") or {}))
                continue
            task_dir = trial_dir(self.sweep, number, ask)
            state = (read_status(task_dir) or {}).get("state")
            if state == TaskState.COMPLETED.value:
                value = metric_value(_task_metrics(task_dir), self.settings.metric)
                if value is None:
                    # Completed without the metric: the strategy can learn nothing from it. Said
                    # once in the sweep's log (the tell is final), counted as failed.
                    why = f"trial {number} completed without a number for metric {self.settings.metric!r} in its {METRICS_FILE}"
                    self.log.record_tell(number, {"trial": number, "state": "failed", "reason": why, "told": now_iso()})
                    try:
                        self.sweep.log("sweep.log", f"search: {why}; check the metric's name in search: metric:")
                    except OSError:
                        pass
                    out.append(Trial(number, ask["params"], "failed", None, data=ask.get("data") or {}))
                    continue
                self.log.record_tell(number, {"trial": number, "state": "completed", "value": value, "told": now_iso()})
                out.append(Trial(number, ask["params"], "completed", value, data=ask.get("data") or {}))
            elif state in (TaskState.FAILED.value, TaskState.TIMEOUT.value):
                out.append(Trial(number, ask["params"], "failed", None, data=ask.get("data") or {}))
            elif state == TaskState.PRUNED.value:  # stopped early: what it reported is all there is
                from hsm_core.intermediate import ReportReader

                reported = ReportReader().values(task_dir, self.settings.metric)
                out.append(Trial(number, ask["params"], "pruned", None, reported, data=ask.get("data") or {}))
            else:
                out.append(Trial(number, ask["params"], "running", None, data=ask.get("data") or {}))
        return out

    def params_for(self, record: TaskRecord) -> dict[str, Any]:
        """The parameters of ``record``'s trial (its number is its index), set on the record."""
        record.params = self.params_of(record.index, record.task_id, self.sweep.task_dir(record.index))
        return record.params

    def params_of(self, number: int, task_id: str, task_dir: Path) -> dict[str, Any]:
        """The parameters of trial ``number`` (run as ``task_id`` in ``task_dir``): the recorded
        ask, or a new one from the strategy told every earlier trial."""
        held = self.log.ask_of(number)
        if held is None:
            from hsm_core.search_turn import ask_turn

            # One asker at a time: each sees every earlier ask as pending (search_turn's docstring).
            with ask_turn(self.log.path):
                held = self.log.ask_of(number) or self._ask(number, task_id, task_dir)
        return dict(held["params"])

    def _ask(self, number: int, task_id: str, task_dir: Path) -> dict[str, Any]:
        """Ask the strategy for trial ``number`` and record it (the caller holds the ask turn)."""
        strategy = make_strategy(self.settings, self.registry)
        known = self.trials()
        for trial in known:
            strategy.tell(trial)
        try:
            params = dict(strategy.ask(number))
        except HsmError:
            raise
        except Exception as exc:  # a strategy's bug: one line naming it, the trial stays unasked
            raise HsmError(f"search strategy {self.settings.strategy!r} failed to propose trial {number}: {exc!r}",
                           hint=f"the sweep continues from its log: hsm complete {self.sweep.sweep_id}") from exc
        missing = [p.name for p in self.settings.params if p.name not in params]
        if missing:
            raise HsmError(f"search strategy {self.settings.strategy!r} proposed trial {number} without {missing[0]!r}")
        data = dict(strategy.trial_data() or {})
        held = self.log.record_ask(number, {
            **({"data": data} if data else {}),
            "trial": number, "task_id": task_id, "params": params, "asked": now_iso(),
            "task_dir": _relative(task_dir, self.sweep.path),
            "by": f"{socket.gethostname()}:{os.getpid()}",
            # what the strategy knew: later readers can see how adaptive each ask was
            "completed_before": sum(1 for t in known if t.state == "completed"),
            "running_before": sum(1 for t in known if t.state == "running"),
        })
        return held


def best_trial(sweep_path: Path, records: Iterable[TaskRecord] | None = None) -> dict[str, Any] | None:
    """The best completed trial of an adaptive sweep: ``{trial, value, metric, goal, params}``,
    or None (not a search sweep, or nothing completed yet). Reads only the sweep's files."""
    log = TrialLog(sweep_path)
    if not log.path.is_dir():
        return None
    try:
        meta = read_json(log.path / "settings.json")
    except (OSError, ValueError):
        return None
    metric, goal = meta.get("metric"), meta.get("goal", "minimize")
    sweep = SweepDir(Path(sweep_path))
    best: dict[str, Any] | None = None
    told = log.told()
    for number, ask in log.asked().items():
        value = (told.get(number) or {}).get("value")
        if value is None:
            task_dir = trial_dir(sweep, number, ask)
            if (read_status(task_dir) or {}).get("state") != TaskState.COMPLETED.value:
                continue
            value = metric_value(_task_metrics(task_dir), metric)
        if value is None:
            continue
        better = best is None or (value < best["value"] if goal == "minimize" else value > best["value"])
        if better:
            best = {"trial": number, "value": value, "metric": metric, "goal": goal, "params": ask["params"]}
    return best


def write_settings(sweep: SweepDir, settings: SearchSettings) -> None:
    """Record the metric and goal beside the log (for status and export, which parse no sweep file)."""
    (sweep.path / LOG_DIR).mkdir(parents=True, exist_ok=True)
    atomic_write_json(sweep.path / LOG_DIR / "settings.json",
                      {"strategy": settings.strategy, "metric": settings.metric, "goal": settings.goal,
                       "trials": settings.trials, "parallel": settings.parallel, "seed": settings.seed,
                       # the search space, for views of the study that parse no sweep file (a dashboard)
                       "params": [{"name": p.name, "distribution": p.distribution, "args": list(p.args), "q": p.q}
                                  for p in settings.params]})


def describe_best(best: Mapping[str, Any]) -> str:
    """``trial 7: loss=0.0123 (minimize) x=2.9 y=-1.1``: one line for ``hsm status``."""
    params = " ".join(f"{k}={v}" for k, v in best["params"].items())
    return f"trial {best['trial']}: {best['metric']}={best['value']:.6g} ({best['goal']}) {params}"


def best_record(sweep: SweepDir, records: Iterable[TaskRecord]) -> list[TaskRecord]:
    """The record of the best trial (``hsm export --best``): one, none while no trial completed;
    an HsmError for a sweep without a ``search:`` section."""
    from hsm_core.plugin import HsmError

    if not (sweep.path / LOG_DIR / "settings.json").exists():
        raise HsmError(f"sweep {sweep.sweep_id!r} is not an adaptive search (no search: section), so it has no best trial",
                       hint="sort the export instead, e.g. hsm export --format csv | sort")
    best = best_trial(sweep.path)
    return [r for r in records if best is not None and r.index == best["trial"]]


def with_trial_params(sweep_path: Path, records: Iterable[TaskRecord]) -> list[TaskRecord]:
    """``records`` with each asked trial's parameters (a worker sweep's index keeps the
    placeholder its tasks were expanded with; the trial log has what each was asked)."""
    asked = {a.get("task_id"): a.get("params") for a in TrialLog(sweep_path).asked().values()}
    if not asked:
        return list(records)  # not an adaptive sweep (a 100,000-task grid: no loop)
    out = []
    for rec in records:
        params = asked.get(rec.task_id)
        if isinstance(params, dict) and rec.params != params:
            rec.params = dict(params)
        out.append(rec)
    return out


def read_trials(sweep_path: Path) -> tuple[dict[str, Any], list[Trial]] | None:
    """An adaptive sweep's settings (``strategy``, ``metric``, ``goal``, ``trials`` ...) and every
    asked trial with its state now, read without writing anything (for viewers such as a
    dashboard on a read-only copy); None for a sweep without a trial log."""
    log = TrialLog(sweep_path)
    try:
        meta = read_json(log.path / "settings.json")
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    sweep = SweepDir(Path(sweep_path))
    told = log.told()
    out: list[Trial] = []
    for number, ask in sorted(log.asked().items()):
        data = ask.get("data") or {}
        if number in told:
            t = told[number]
            out.append(Trial(number, ask["params"], t.get("state", "completed"), t.get("value"), data=data))
            continue
        task_dir = trial_dir(sweep, number, ask)
        state = (read_status(task_dir) or {}).get("state")
        if state == TaskState.COMPLETED.value:
            value = metric_value(_task_metrics(task_dir), str(meta.get("metric")))
            out.append(Trial(number, ask["params"], "completed" if value is not None else "failed", value, data=data))
        elif state in (TaskState.FAILED.value, TaskState.TIMEOUT.value):
            out.append(Trial(number, ask["params"], "failed", None, data=data))
        elif state == TaskState.PRUNED.value:
            out.append(Trial(number, ask["params"], "pruned", None, data=data))
        else:
            out.append(Trial(number, ask["params"], "running", None, data=data))
    return meta, out
