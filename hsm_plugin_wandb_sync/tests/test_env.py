"""The per-task W&B environment and deterministic run ids."""

from __future__ import annotations

import json
import re

from wandb_project import WandbProject

from hsm_plugin_wandb_sync.env import run_id_for, task_env


def test_run_ids_are_deterministic_short_and_distinct() -> None:
    a = run_id_for("sweep_1", "abc")
    assert a == run_id_for("sweep_1", "abc") and re.fullmatch(r"[0-9a-z]{12}", a)
    assert a != run_id_for("sweep_10", "abc") and a != run_id_for("sweep_1", "abd")


def test_defaults_and_what_the_user_set_wins() -> None:
    env = task_env("s1", "t1", {}, environ={})
    assert env == {
        "WANDB_DIR": "${HSM_TASK_DIR}",
        "WANDB_DATA_DIR": "${HSM_TASK_DIR}/wandb/data",
        "WANDB_RUN_GROUP": "s1",
        "WANDB_TAGS": "hsm,s1",
        "WANDB_RUN_ID": run_id_for("s1", "t1"),
        "WANDB_RESUME": "allow",
    }
    mine = {"WANDB_DIR": "/scratch/w", "WANDB_RUN_ID": "fixed", "WANDB_TAGS": "mine", "WANDB_RESUME": "must"}
    env = task_env("s1", "t1", {"project": "p", "entity": "e"}, environ=mine)
    assert "WANDB_DIR" not in env and "WANDB_RUN_ID" not in env and "WANDB_RESUME" not in env
    assert env["WANDB_TAGS"] == "mine,hsm,s1"
    assert env["WANDB_PROJECT"] == "p" and env["WANDB_ENTITY"] == "e"
    assert task_env("s1", "t1", {"task_env": False}, environ={}) == {}
    assert "WANDB_RUN_ID" not in task_env("s1", "t1", {"run_id": False}, environ={})


def test_tasks_of_a_sweep_got_it_and_wandb_honoured_it(wandb_project: WandbProject) -> None:
    """Through the real hook: command.json says ${HSM_TASK_DIR}, the runner expanded it, and wandb
    wrote each run in its task's own wandb/ dir under the deterministic id."""
    for task in sorted((wandb_project.sweep_dir / "tasks").iterdir()):
        command = json.loads((task / "command.json").read_text())
        env = command["env"]
        assert env["WANDB_DIR"] == "${HSM_TASK_DIR}" and env["WANDB_RUN_GROUP"] == "sweep_1"
        assert env["WANDB_RUN_ID"] == run_id_for("sweep_1", command["task_id"])
        dirs = list((task / "wandb").glob("offline-run-*"))
        assert dirs and all(d.name.endswith(env["WANDB_RUN_ID"]) for d in dirs)


def test_each_task_gets_its_own_run_id_and_a_changed_setting_or_environment_is_seen() -> None:
    # (what tasks share is worked out once per sweep: a new setting or variable must still count)
    a, b = task_env("s1", "t1", {}, environ={}), task_env("s1", "t2", {}, environ={})
    assert a["WANDB_RUN_ID"] != b["WANDB_RUN_ID"] and {**a, "WANDB_RUN_ID": ""} == {**b, "WANDB_RUN_ID": ""}
    assert list(a) == list(task_env("s1", "t1", {}, environ={}))
    assert task_env("s1", "t2", {"project": "p"}, environ={})["WANDB_PROJECT"] == "p"
    assert "WANDB_PROJECT" not in task_env("s1", "t2", {"project": "p"}, environ={"WANDB_PROJECT": "mine"})
    assert "WANDB_RUN_ID" not in task_env("s1", "t2", {}, environ={"WANDB_RUN_ID": "fixed"})
    assert task_env("s2", "t2", {}, environ={})["WANDB_RUN_GROUP"] == "s2"


def test_the_batch_hook_gives_each_task_what_the_per_task_hook_gives(tmp_path) -> None:
    from hsm_core.plugin import TaskSpec
    from hsm_core.testing import check_task_env_batch
    from hsm_plugin_wandb_sync import plugin

    (tmp_path / "hsm_config.yaml").write_text("wandb:\n  project: proj\n")
    sweep = tmp_path / "sweeps" / "outputs" / "s1"
    tasks = [TaskSpec(f"t{i}", i, {"x": i}, sweep / "tasks" / f"task_{i:03d}", "s1", sweep) for i in range(1, 6)]
    check_task_env_batch(plugin, tasks, {})
    envs = plugin.hsm_task_env_batch(tasks=tasks, sweep_config={})
    assert envs[0]["WANDB_PROJECT"] == "proj" and len({e["WANDB_RUN_ID"] for e in envs}) == 5
