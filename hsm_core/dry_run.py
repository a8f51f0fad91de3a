"""What ``hsm run --dry-run`` shows, as data: the parameters, the execution plan and the first
command, for the rich table and for ``--json`` alike (one computation, two renderings)."""

from __future__ import annotations

import shlex
from typing import Any


def describe_plan(plan: Any, registry: Any, sources: str, strategy: str, total: int) -> dict[str, Any]:
    """The dry run of ``plan`` (a :class:`~hsm_core.lifecycle.Plan` of a new sweep) on ``sources``.

    Keys: ``config_file``, ``total_combinations``, ``tasks_to_run``, ``skipped`` (reason -> count),
    ``parameters`` (name and the values as the table shows them), ``sources`` (name and kind),
    ``strategy``, ``tasks_per_source``, ``first_command`` (argv and its shell spelling),
    ``working_directory``, ``hydra_app`` (why the command is taken for a Hydra app, or None),
    ``early_stopping`` (the ``prune:`` setting in one line, or None; a missing pruner fails here)
    and ``tasks`` (index, task id and parameters of every task to run).
    """
    from hsm_core.pruning import settings_for, summary
    from hsm_core.sources import parse_sources
    from hsm_core.sweep import parameter_table

    requests = parse_sources(sources, plan.project.data, registry)
    n = len(plan.to_run)
    first: dict[str, Any] | None = None
    hydra: str | None = None
    if plan.to_run:
        from hsm_core.prepare import command_plan

        cmd = command_plan(plan.project, plan.spec.settings)
        params = plan.to_run[0].params
        if "search" in plan.spec.sections:  # an adaptive trial's values are chosen when it starts
            params = {name: f"<{name}>" for name, _ in parameter_table(plan.spec) if not name.startswith("(")}
        argv, _ = cmd.argv(params)
        first = {"argv": list(argv), "shell": shlex.join(argv)}
        if cmd.hydra is not None:
            from hsm_core.hydra_app import describe

            hydra = describe(cmd.hydra)
    return {
        "config_file": str(plan.spec.path) if plan.spec.path else None,
        "total_combinations": total,
        "tasks_to_run": n,
        "skipped": dict(plan.skipped),
        "parameters": [{"name": name, "values": values} for name, values in parameter_table(plan.spec)],
        "sources": [{"name": r.name, "kind": r.kind} for r in requests],
        "strategy": strategy,
        "tasks_per_source": -(-n // max(1, len(requests))),
        "first_command": first,
        "working_directory": str(plan.project.root),
        "hydra_app": hydra,
        "early_stopping": summary(settings_for(plan.spec, registry, plan.sweep.sweep_id)),
        "tasks": [{"index": r.index, "task_id": r.task_id, "params": r.params} for r in plan.to_run],
    }
