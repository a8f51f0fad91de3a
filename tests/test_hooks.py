"""Each hook does what docs/hooks.md says, shown with a small in-process plugin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hsm_project import Project
from hsm_core.lifecycle import ExecOptions, execute, plan_complete, plan_run
from hsm_core.plugin import (
    CollectorRecord,
    ComponentNotFound,
    HostProviderRecord,
    ResultCollector,
    SyncTransportRecord,
    TaskRegistryRecord,
    hookimpl,
)
from hsm_core.registry import build_registry


class Recorder:
    """A plugin that records events and customises ids, env and metrics."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    @hookimpl
    def hsm_make_task_id(self, params):
        return f"x{params['x']}"

    @hookimpl
    def hsm_task_env(self, task, sweep_config):
        return {"MY_PLUGIN_VAR": f"{task.sweep_id}/{task.index}"}

    @hookimpl
    def hsm_sweep_started(self, sweep_id, sweep_dir, total_tasks):
        self.events.append(("started", total_tasks))

    @hookimpl
    def hsm_task_finished(self, sweep_id, task_id, state, task_dir):
        self.events.append(("finished", (task_id, state, Path(task_dir).name)))

    @hookimpl
    def hsm_sweep_finished(self, sweep_id, sweep_dir, counts):
        self.events.append(("done", dict(counts)))

    @hookimpl
    def hsm_register_result_collectors(self):
        class LineCount(ResultCollector):
            def collect(self, task_dir: Path) -> dict[str, Any]:
                return {"stdout_lines": len((task_dir / "stdout.log").read_text().splitlines())}

        return [CollectorRecord("line_count", "lines of stdout", LineCount)]

    @hookimpl
    def hsm_register_sync_transports(self):
        return [SyncTransportRecord("carrier_pigeon", "slow but scenic", "builtins:object")]

    @hookimpl
    def hsm_register_task_registries(self):
        return [TaskRegistryRecord("ledger", "a paper ledger", "builtins:dict")]


NO_METRICS_SCRIPT = """
import os, sys
print("ARGV", sys.argv[1:])
print("VAR", os.environ.get("MY_PLUGIN_VAR"))
"""


@pytest.fixture
def recorder_registry():
    rec = Recorder()
    return rec, build_registry(entry_points=False, extra=[("recorder", rec)])


def test_ids_env_events_and_collectors(project: Project, recorder_registry) -> None:
    rec, registry = recorder_registry
    (project.root / "train.py").write_text(NO_METRICS_SCRIPT)
    cfg = project.write_sweep({"grid": {"x": [1, 2]}})
    plan = plan_run(cfg, registry, project_root=project.root, sweep_id="h1")
    counts = execute(plan, ExecOptions(sources="local:2"), registry)
    assert counts == {"completed": 2}
    # hsm_make_task_id: our ids were used and recorded
    assert sorted(plan.records) == ["x1", "x2"]
    task1 = project.outputs / "h1" / "tasks" / "task_001"
    assert "task_id: x1" in (task1 / "params.yaml").read_text()
    # hsm_task_env: the variable reached the task
    assert "VAR h1/1" in (task1 / "stdout.log").read_text()
    # hsm_register_result_collectors: the plugin's metric landed in metrics.json
    assert json.loads((task1 / "metrics.json").read_text()) == {"stdout_lines": 2}
    # events: started once, one finished per task, done with the counts
    assert rec.events[0] == ("started", 2)
    finished = sorted(e[1] for e in rec.events if e[0] == "finished")
    assert finished == [("x1", "completed", "task_001"), ("x2", "completed", "task_002")]
    assert rec.events[-1] == ("done", {"completed": 2})
    # complete of a finished sweep runs nothing and still reports
    plan = plan_complete("h1", registry, project_root=project.root)
    assert plan.to_run == [] and plan.skipped == {"already completed": 2}


def test_sync_transport_and_task_registry_records_are_found_by_name(recorder_registry) -> None:
    _, registry = recorder_registry
    assert registry.get(SyncTransportRecord.kind, "carrier_pigeon").load() is object
    assert registry.get(TaskRegistryRecord.kind, "ledger").distribution == "recorder"
    with pytest.raises(ComponentNotFound, match="unknown task registry 'wandb'.*hsm-plugin-wandb-sync"):
        registry.get(TaskRegistryRecord.kind, "wandb")


def test_local_host_provider_runs_argv_without_a_shell(tmp_path: Path) -> None:
    registry = build_registry(entry_points=False)
    host = registry.get(HostProviderRecord.kind, "local").load()("local", {})
    result = host.run(["echo", "$(touch pwned)", ";", "ls"], cwd=str(tmp_path))
    assert result.returncode == 0 and result.stdout.strip() == "$(touch pwned) ; ls"
    assert not (tmp_path / "pwned").exists()
    host.write_text(str(tmp_path / "a" / "b.txt"), "hello")
    host.get(str(tmp_path / "a"), tmp_path / "copy")
    assert (tmp_path / "copy" / "b.txt").read_text() == "hello"


class FakeSshProvider:
    """Stands in for the ssh plugin's host provider, to show how core routes host names."""

    @hookimpl
    def hsm_register_hosts(self):
        from hsm_core.plugin import LocalHost

        class Named(LocalHost):
            def __init__(self, name: str, config: dict) -> None:
                super().__init__(name)
                self.config = config

        return [HostProviderRecord("ssh", "pretend ssh", Named)]


def test_remote_host_names_go_to_the_ssh_provider() -> None:
    from hsm_core.hosts import get_host

    project = {"distributed": {"remotes": {"gpu1": {"host": "gpu1.example.org", "user": "me", "port": 2222}}}}
    with pytest.raises(ComponentNotFound, match="hsm-plugin-ssh"):
        get_host("gpu1", project, build_registry(entry_points=False))
    registry = build_registry(entry_points=False, extra=[("fake_ssh", FakeSshProvider())])
    host = get_host("gpu1", project, registry)
    assert host.name == "gpu1" and host.config == {"host": "gpu1.example.org", "user": "me", "port": 2222}
    adhoc = get_host("bob@login.example.org:2200", project, registry)
    assert adhoc.config == {"host": "login.example.org", "user": "bob", "port": 2200}
    assert get_host("local", project, registry).is_local


class _Say:
    """Collects what a check prints."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)


def _checked_source_class(calls: list[str]) -> type:
    from hsm_core.builtin.local import LocalSource

    class Checked(LocalSource):
        def before_run(self, run):
            calls.append(f"method {self.name} verify_sync={run.verify_sync} interactive={run.interactive}")

        def test(self, check):
            check.echo(f"method tests {check.target}")
            return True

    return Checked


class Legacy:
    """A plugin of plugin API 1.1: the deprecated hooks, and a source kind with the new methods."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.source_class = _checked_source_class(self.calls)

    @hookimpl
    def hsm_register_compute_sources(self):
        from hsm_core.plugin import ComputeSourceRecord

        return [ComputeSourceRecord("checked", "a local source with checks", self.source_class)]

    @hookimpl
    def hsm_before_run(self, sources, project_config, options):
        self.calls.append(f"hook {','.join(s.name for s in sources)} {options['sweep_id']} verify_sync={options['verify_sync']}")

    @hookimpl
    def hsm_test_target(self, target, project_root, timeout, echo):
        echo(f"hook tests {target}")
        return True


def test_before_run_asks_each_source_then_the_deprecated_hook(project: Project) -> None:
    from hsm_core.plugin import HsmError, RunStart, SourceUnavailable
    from hsm_core.run_start import prepare_sources
    from hsm_core.testing import make_sweep

    legacy = Legacy()
    registry = build_registry(entry_points=False, extra=[("legacy", legacy)])
    _, _, context = make_sweep(project.root, [{"x": 1}], sweep_id="s1")
    sources = [legacy.source_class("checked", {}, context), legacy.source_class("other", {}, context)]
    said = _Say()
    prepare_sources(sources, RunStart(verify_sync=False, interactive=False), registry, sweep_id="s1",
                    project_root=project.root, project_config={}, warn=said)
    assert legacy.calls == ["method checked verify_sync=False interactive=False",
                            "method other verify_sync=False interactive=False",
                            "hook checked,other s1 verify_sync=False"]
    assert said.lines == []

    class Down(legacy.source_class):  # type: ignore[name-defined, misc]
        def before_run(self, run):
            raise SourceUnavailable(f"cannot reach {self.name}", hint="is it on?")

    legacy.calls.clear()
    down = Down("down", {}, context)
    prepare_sources([down, sources[0]], RunStart(), registry, sweep_id="s1", project_root=project.root,
                    project_config={}, warn=said)
    assert said.lines == ["Warning: cannot reach down; continuing with the other sources (it is used once it answers)"]
    assert legacy.calls[-1] == "hook down,checked s1 verify_sync=True"  # the run goes on: the hook is asked too
    legacy.calls.clear()
    with pytest.raises(HsmError) as stopped:
        prepare_sources([down], RunStart(), registry, sweep_id="s1", project_root=project.root, project_config={}, warn=said)
    assert str(stopped.value) == "cannot reach down (is it on?)" and not isinstance(stopped.value, SourceUnavailable)
    assert legacy.calls == []  # stopped before the hook


def test_hsm_test_asks_the_source_first_and_the_deprecated_hook_only_without_a_test(project: Project) -> None:
    from hsm_core.plugin import HsmError
    from hsm_core.target_check import check_target

    legacy = Legacy()
    registry = build_registry(entry_points=False, extra=[("legacy", legacy)])
    said = _Say()
    assert check_target("checked", project.root, registry, timeout=5, echo=said) is True
    assert said.lines == ["method tests checked"]  # the hook, which answers everything, was not asked
    assert check_target("local", project.root, registry, timeout=5, echo=said) is True
    assert said.lines[-1] == "hook tests local"  # the local source has no test: the hook answers
    bare = build_registry(entry_points=False)
    with pytest.raises(HsmError, match="no installed plugin tests 'local'"):
        check_target("local", project.root, bare, timeout=5, echo=said)


def test_plugins_answering_per_task_and_in_blocks_both_reach_every_task(tmp_path) -> None:
    # hsm asks a big submission's environment in blocks (hsm_task_env_batch, API 1.5); a plugin
    # implementing only the per-task hook is still asked for each task, and a plugin implementing
    # both is asked once, through the batch.
    from hsm_core.plugin import TaskSpec, hookimpl
    from hsm_core.prepare import task_env, task_envs
    from hsm_core.testing import check_task_env_batch, fresh_registry

    class PerTask:
        @hookimpl
        def hsm_task_env(self, task, sweep_config):
            return {"PER_TASK": task.task_id}

    class Both:
        batch_calls = 0

        @hookimpl
        def hsm_task_env(self, task, sweep_config):
            raise AssertionError("a plugin with the batch hook is asked through it")

        @hookimpl
        def hsm_task_env_batch(self, tasks, sweep_config):
            Both.batch_calls += 1
            return [{"BATCH": t.task_id, "N": str(len(tasks))} for t in tasks]

    registry = fresh_registry(extra=[("per_task", PerTask()), ("both", Both())])
    tasks = [TaskSpec(f"t{i}", i, {}, tmp_path / f"task_{i}", "s", tmp_path) for i in range(3)]
    assert task_envs(registry, tasks, {}) == [{"PER_TASK": f"t{i}", "BATCH": f"t{i}", "N": "3"} for i in range(3)]
    assert Both.batch_calls == 1
    assert task_env(registry, tasks[1], {}) == {"PER_TASK": "t1", "BATCH": "t1", "N": "1"}
    check_task_env_batch(PerTask(), tasks, {})
    try:
        check_task_env_batch(Both(), tasks, {})  # (its answers depend on the block: the check says so)
    except AssertionError as exc:
        assert "in a block than alone" in str(exc)
    else:
        raise AssertionError("check_task_env_batch let a block-dependent answer pass")
