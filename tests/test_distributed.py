"""Several sources in one sweep: strategies, the parallel limit, health, failover, redistribution.

The sources here are real local processes behind the ComputeSource interface; the "bad" ones
fail the way an unreachable host does (launch raises SourceUnavailable, or running tasks are
reported lost). Integration tests with a real sshd and a real Slurm live with those plugins.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pytest
import yaml

from hsm_project import Project
from hsm_core.builtin.local import LocalSource
from hsm_core.lifecycle import ExecOptions, execute, plan_run
from hsm_core.plugin import (
    ComputeSourceRecord,
    HealthReport,
    SourceContext,
    SourceUnavailable,
    TaskSpec,
    TaskState,
    TaskUpdate,
    hookimpl,
)
from hsm_core.plugins import build_registry


class DownSource(LocalSource):
    """A host that never answers."""

    def launch(self, tasks: Sequence[TaskSpec]) -> None:
        raise SourceUnavailable("connection refused")

    def health(self) -> HealthReport:
        return HealthReport(False, "connection refused")


class LosingSource(LocalSource):
    """Accepts tasks, then loses every one of them (node failure) without running it."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self._lost: list[str] = []

    def launch(self, tasks: Sequence[TaskSpec]) -> None:
        self._lost += [t.task_id for t in tasks]
        self.context.wake()

    def poll(self) -> list[TaskUpdate]:
        out = [TaskUpdate(t, TaskState.LOST, infrastructure_failure=True, message="node failure") for t in self._lost]
        self._lost = []
        return out


class HalfSource(LocalSource):
    """Starts the first task of a batch for real, then fails for the rest (the process table is
    full, a connection drops half-way through a batch), saying which one did start."""

    def launch(self, tasks: Sequence[TaskSpec]) -> None:
        super().launch(tasks[:1])
        if len(tasks) > 1:
            raise SourceUnavailable("cannot start a process: resource temporarily unavailable",
                                    started=[tasks[0].task_id])


class FlakySource(LocalSource):
    """Its tasks run, but its polls fail for ``OUTAGE`` seconds after its first launch (a scheduler
    or host that stops answering). Records when each failed poll came, and the outage file the
    controller had written by then."""

    OUTAGE = 4.0
    down_until: float | None = None
    failed_polls: list[float] = []
    files_seen: list[Any] = []

    def launch(self, tasks: Sequence[TaskSpec]) -> None:
        super().launch(tasks)
        if FlakySource.down_until is None:
            FlakySource.down_until = time.monotonic() + self.OUTAGE

    def poll(self) -> list[TaskUpdate]:
        from hsm_core.outages import read_outages

        if FlakySource.down_until is not None and time.monotonic() < FlakySource.down_until:
            FlakySource.failed_polls.append(time.monotonic())
            FlakySource.files_seen.append(read_outages(self.context.sweep_dir / "logs"))
            raise SourceUnavailable("not answering", lost_at=time.time() + 3600, lost_setting="flaky.lost_after")
        return super().poll()


class Sources:
    @hookimpl
    def hsm_register_compute_sources(self):
        return [
            ComputeSourceRecord("flaky", "stops answering for a while", FlakySource),
            ComputeSourceRecord("half", "starts one task per batch", HalfSource),
            ComputeSourceRecord("down", "never answers", DownSource),
            ComputeSourceRecord("losing", "loses tasks", LosingSource),
            ComputeSourceRecord("other", "a second local pool", LocalSource),
        ]


@pytest.fixture(autouse=True)
def count_executions(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test script appends each execution to <project>/runs.log."""
    monkeypatch.setenv("HSM_COUNT_DIR", str(project.root))


@pytest.fixture
def registry():
    return build_registry(entry_points=False, extra=[("test_sources", Sources())])


def _run(project: Project, registry: Any, grid: Mapping[str, Any], sources: str, **opts: Any):
    cfg = project.write_sweep({"grid": dict(grid)})
    plan = plan_run(cfg, registry, project_root=project.root, sweep_id="d1")
    counts = execute(plan, ExecOptions(sources=sources, **opts), registry)
    return plan, counts


def _no_fail_fast(project: Project) -> None:
    """compute.fail_fast: 0, so that a test whose tasks all fail runs them all."""
    from hsm_core.config import set_config_value

    set_config_value(project.root / "hsm_config.yaml", "compute.fail_fast", "0")


def _by_source(project: Project) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in (project.outputs / "d1" / "tasks").iterdir():
        status = yaml.safe_load((d / "status.yaml").read_text())
        out[status["source"]] = out.get(status["source"], 0) + 1
    return out


def test_round_robin_spreads_tasks_over_sources(project: Project, registry: Any) -> None:
    _, counts = _run(project, registry, {"x": list(range(8))}, "local:2,other:2")
    assert counts == {"completed": 8}
    assert set(_by_source(project)) == {"local", "other"}
    assignments = (project.outputs / "d1" / "logs" / "task_assignments.log").read_text().splitlines()
    assert len(assignments) == 8
    # The first round, with every slot free, takes turns: two tasks each.
    assert sorted(ln.rsplit(" ", 1)[1] for ln in assignments[:4]) == ["local", "local", "other", "other"]


def test_least_loaded_prefers_the_bigger_free_pool(project: Project, registry: Any) -> None:
    _, counts = _run(project, registry, {"x": list(range(6)), "sleep": [0.3]}, "local:1,other:5", strategy="least_loaded")
    assert counts == {"completed": 6}
    spread = _by_source(project)
    assert spread["other"] > spread["local"]


def test_parallel_limit_caps_tasks_running_at_once(project: Project, registry: Any) -> None:
    _run(project, registry, {"x": list(range(6)), "sleep": [0.3]}, "local:4,other:4", parallel_limit=2)
    spans = []
    for d in (project.outputs / "d1" / "tasks").iterdir():
        s = yaml.safe_load((d / "status.yaml").read_text())
        spans.append((s["start_epoch"], s["start_epoch"] + s["duration"]))
    most = max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)
    assert most <= 2


def test_an_unreachable_source_is_disabled_and_the_sweep_completes_elsewhere(project: Project, registry: Any) -> None:
    _, counts = _run(project, registry, {"x": list(range(6))}, "down:4,local:2")
    assert counts == {"completed": 6}
    assert _by_source(project) == {"local": 6}
    health = (project.outputs / "d1" / "logs" / "health_status.log").read_text()
    assert "down unhealthy: connection refused" in health and "down disabled after 3 consecutive failures" in health
    assert "launch failed: connection refused" in (project.outputs / "d1" / "logs" / "sources" / "down.log").read_text()
    assert sorted(project.executions()) == sorted(set(project.executions())) and len(project.executions()) == 6


def test_lost_tasks_are_redistributed_and_run_exactly_once(project: Project, registry: Any) -> None:
    _, counts = _run(project, registry, {"x": list(range(6))}, "losing:3,local:2")
    assert counts == {"completed": 6}
    runs = project.executions()
    assert len(runs) == 6 and len(set(runs)) == 6
    assert _by_source(project) == {"local": 6}
    assert "lost: node failure" in (project.outputs / "d1" / "logs" / "sources" / "losing.log").read_text()


def test_a_launch_failing_part_way_runs_the_started_tasks_once(project: Project, registry: Any) -> None:
    # Every batch of 3 starts one task and fails for two: the one started is not started again.
    _, counts = _run(project, registry, {"x": list(range(6)), "sleep": [0.2]}, "half:3,local:1")
    assert counts == {"completed": 6}
    runs = project.executions()
    assert len(runs) == 6 and len(set(runs)) == 6, runs
    assert "half" in _by_source(project)
    assert "launch failed: cannot start a process" in (project.outputs / "d1" / "logs" / "sources" / "half.log").read_text()


def test_script_failures_do_not_disable_a_source(project: Project, registry: Any) -> None:
    _no_fail_fast(project)  # every task is to run, and fail
    _, counts = _run(project, registry, {"x": list(range(6)), "exit": [1]}, "local:2,other:2")
    assert counts == {"failed": 6}
    assert set(_by_source(project)) == {"local", "other"}
    health = project.outputs / "d1" / "logs" / "health_status.log"
    assert "disabled" not in (health.read_text() if health.exists() else "")


def test_cross_mode_complete_uses_other_sources(project: Project, registry: Any) -> None:
    from hsm_core.lifecycle import plan_complete

    _no_fail_fast(project)  # every task is to run, and fail
    plan, counts = _run(project, registry, {"x": list(range(4)), "fail_once": [1]}, "local:2")
    assert counts == {"failed": 4}
    plan = plan_complete("d1", registry, project_root=project.root, retry_failed=True)
    counts = execute(plan, ExecOptions(sources="other:2"), registry)
    assert counts == {"completed": 4}
    for d in (project.outputs / "d1" / "tasks").iterdir():
        s = yaml.safe_load((d / "status.yaml").read_text())
        assert [a["source"] for a in s["attempts"]] == ["local", "other"]


def test_a_source_whose_polls_fail_is_polled_at_the_backoff_pace_and_logged_twice(project: Project, registry: Any) -> None:
    """Tasks ending on the other source wake the engine all the time: the failing source is still
    polled no faster than the backoff (0.5 s, 1 s, 2 s ...), its log says when it stopped and when
    it answered again, and the outage file says which tasks wait on it until when."""
    from hsm_core.outages import BACKOFF

    FlakySource.down_until, FlakySource.failed_polls, FlakySource.files_seen = None, [], []
    _, counts = _run(project, registry, {"x": list(range(12))}, "flaky:2,local:1")
    assert counts == {"completed": 12}
    runs = project.executions()
    assert len(runs) == 12 and len(set(runs)) == 12, runs
    polls = FlakySource.failed_polls
    gaps = [b - a for a, b in zip(polls, polls[1:])]
    assert 2 <= len(polls) <= 5, gaps  # 0, 0.5, 1.5, 3.5 s into a 4 s outage (+1 for timing)
    assert all(gap >= 0.9 * BACKOFF[i] for i, gap in enumerate(gaps)), gaps
    log = (project.outputs / "d1" / "logs" / "sources" / "flaky.log").read_text().splitlines()
    assert len(log) <= 4, log  # capacity line, down, first failed health check at most, back
    assert sum("not answering: further failures are counted" in ln for ln in log) == 1, log
    (back,) = [ln for ln in log if "answering again after" in ln]
    assert f"{len(polls)} failed poll" in back, (back, len(polls))
    # What another terminal saw meanwhile: the tasks waiting on it, and when they run elsewhere.
    seen = [f for f in FlakySource.files_seen[1:] if f]
    assert seen, FlakySource.files_seen
    (outage,) = seen[-1]["sources"]
    assert outage["source"] == "flaky" and len(outage["tasks"]) == 2 and outage["lost_setting"] == "flaky.lost_after"
    assert outage["run_elsewhere_epoch"] > time.time() + 3000
    assert not (project.outputs / "d1" / "logs" / "source_outages.json").exists()
