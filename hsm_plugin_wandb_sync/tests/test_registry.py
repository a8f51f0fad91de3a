"""The ``wandb`` task registry that pull-based workers ask before claiming a task."""

from __future__ import annotations

from fake_wandb_api import FakeApi, FakeRun
from wandb_project import WandbProject

from hsm_core.plugin import TaskRegistry, TaskRegistryRecord
from hsm_core.testing import fresh_registry
from hsm_plugin_wandb_sync.env import run_id_for
from hsm_plugin_wandb_sync.registry import WandbTaskRegistry


def test_registered_through_the_plugin_hook() -> None:
    rec = fresh_registry(entry_points=True).get(TaskRegistryRecord.kind, "wandb")
    assert rec.distribution == "hsm-plugin-wandb-sync"
    reg = rec.load()({"sweep_id": "s", "project": "p"})
    assert isinstance(reg, TaskRegistry) and reg.run_id("s", "t") == run_id_for("s", "t")


def test_server_states_with_one_query_per_sweep() -> None:
    api = FakeApi([FakeRun("a", "s1", "finished"), FakeRun("b", "s1", "running"), FakeRun("c", "s1", "crashed"),
                   FakeRun("d", "s2", "finished")])
    reg = WandbTaskRegistry({"sweep_id": "s1", "entity": "me", "project": "p"}, api=api)
    assert reg.finished(["a", "b", "c", "d", "zz"]) == {"a": True, "b": False, "c": False, "d": None, "zz": None}
    assert api.calls == [("runs", ("me/p", {"group": "s1"}))]  # one query answered them all
    api._runs[1].state = "finished"
    assert reg.is_finished("b") is False  # cached ...
    reg.refresh()
    assert reg.is_finished("b") is True  # ... until refresh()


def test_without_a_sweep_each_run_is_asked_and_failures_are_unknown() -> None:
    api = FakeApi([FakeRun("a", "s1", "finished")])
    reg = WandbTaskRegistry({"project_config": {"wandb": {"project": "p"}}}, api=api)
    assert reg.is_finished("a") is True and reg.is_finished("nope") is None
    assert api.calls == [("run", "p/a"), ("run", "p/nope")]
    assert WandbTaskRegistry({}, api=api).is_finished("a") is None  # no project: cannot tell


def test_runs_on_this_machine_answer_first(wandb_project: WandbProject) -> None:
    p = wandb_project
    dirs = [str(d / "wandb") for d in sorted((p.sweep_dir / "tasks").iterdir())]
    api = FakeApi([FakeRun(p.task_runs["crash"], "sweep_1", "running")])
    reg = WandbTaskRegistry({"sweep_id": "sweep_1", "project": "hsmtest", "local_dirs": dirs}, api=api)
    assert reg.is_finished(p.task_runs["ckpt"]) is True
    assert reg.is_finished(p.task_runs["resume"]) is True  # the last start finished
    assert reg.is_finished(p.task_runs["crash"]) is False  # not on disk: the server says running
