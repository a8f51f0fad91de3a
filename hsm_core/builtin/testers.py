"""Built-in plugin: ``hsm test`` for batch-scheduler targets (``hpc``, ``hpc:NAME``, and every
installed scheduler by name, ``KIND[:CLUSTER]``).

The checks live in :mod:`hsm_core.cli.hpc_cmd` with the other scheduler commands; other plugins
answer ``hsm test`` for their own targets through the same hook (the ssh plugin: ``ssh:NAME``).
"""

from __future__ import annotations

from typing import Callable

from hsm_core.plugin import hookimpl


@hookimpl
def hsm_test_target(target: str, project_root: str, timeout: float, echo: Callable[[str], None]) -> bool | None:
    from hsm_core.cli.hpc_cmd import _project, _registry, test_hpc
    from hsm_core.plugins import scheduler_names
    from hsm_core.sources import HPC

    registry = _registry()
    if target.split(":")[0].lower() not in (HPC, *scheduler_names(registry)):
        return None
    return test_hpc(target, _project(str(project_root), registry), registry, timeout=timeout, echo=echo)
