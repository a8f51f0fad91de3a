"""Built-in plugin: ``hsm test`` for scheduler targets (hpc, hpc:NAME, slurm, pbs, torque).

The checks live in :mod:`hsm_core.cli.hpc_cmd` with the other scheduler commands; other plugins
answer ``hsm test`` for their own targets through the same hook (the ssh plugin: ``ssh:NAME``).
"""

from __future__ import annotations

from typing import Callable

from hsm_core.plugin import hookimpl

SCHEDULER_TARGETS = ("hpc", "slurm", "pbs", "torque")


@hookimpl
def hsm_test_target(target: str, project_root: str, timeout: float, echo: Callable[[str], None]) -> bool | None:
    if target.split(":")[0].lower() not in SCHEDULER_TARGETS:
        return None
    from hsm_core.cli.hpc_cmd import _project, _registry, test_hpc

    registry = _registry()
    return test_hpc(target, _project(str(project_root), registry), registry, timeout=timeout, echo=echo)
