"""The contract of a plugin's task environment hooks (``hsm_task_env``, ``hsm_task_env_batch``).

Call :func:`check_task_env_batch` from your plugin's tests with the plugin's hook module (or
object) and a few task specs of one sweep::

    from hsm_core.testing import check_task_env_batch

    def test_my_env_hooks(tmp_path):
        check_task_env_batch(my_plugin, [TaskSpec(...), TaskSpec(...)], {})

It checks what hsm relies on when it asks for a block of tasks at once: one answer per task, in
order; the same variables for a task whatever block it comes in (alone, or among others); and,
for a plugin implementing both hooks, the same variables through either.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from hsm_core.plugin import TaskSpec

__all__ = ["check_task_env_batch"]


def check_task_env_batch(plugin: Any, tasks: Sequence[TaskSpec], sweep_config: Mapping[str, Any]) -> None:
    """Fail (AssertionError) when ``plugin``'s ``hsm_task_env_batch`` breaks the contract above.
    ``tasks``: at least two specs; a plugin without the batch hook passes when its per-task
    answers are mappings of strings."""
    tasks = list(tasks)
    assert len(tasks) >= 2, "give at least two tasks: the check compares a block with each task alone"
    per_task = getattr(plugin, "hsm_task_env", None)
    batch = getattr(plugin, "hsm_task_env_batch", None)
    if batch is None:
        assert per_task is not None, f"{plugin!r} implements neither hsm_task_env nor hsm_task_env_batch"
        for task in tasks:
            _check_env(per_task(task=task, sweep_config=sweep_config), task)
        return
    answer = batch(tasks=tasks, sweep_config=sweep_config)
    if answer is None:
        return  # nothing for any task
    answer = list(answer)
    assert len(answer) == len(tasks), f"hsm_task_env_batch gave {len(answer)} answers for {len(tasks)} tasks"
    for task, env in zip(tasks, answer):
        _check_env(env, task)
        alone = batch(tasks=[task], sweep_config=sweep_config)
        alone_env = list(alone)[0] if alone is not None else None
        assert dict(env or {}) == dict(alone_env or {}), \
            f"{task.task_id}: hsm_task_env_batch gives other variables in a block than alone: {env} != {alone_env}"
        if per_task is not None:
            single = per_task(task=task, sweep_config=sweep_config)
            assert dict(env or {}) == dict(single or {}), \
                f"{task.task_id}: hsm_task_env and hsm_task_env_batch disagree: {single} != {env}"
    reversed_answer = batch(tasks=tasks[::-1], sweep_config=sweep_config)
    if reversed_answer is not None:
        assert [dict(e or {}) for e in list(reversed_answer)[::-1]] == [dict(e or {}) for e in answer], \
            "hsm_task_env_batch's answers depend on the order of the tasks"


def _check_env(env: Any, task: TaskSpec) -> None:
    if env is None:
        return
    assert isinstance(env, Mapping), f"{task.task_id}: the environment is a {type(env).__name__}, not a mapping"
    for key, value in env.items():
        assert isinstance(key, str) and isinstance(value, str), \
            f"{task.task_id}: {key!r}={value!r}: names and values of variables are strings"
