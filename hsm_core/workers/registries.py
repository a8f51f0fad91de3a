"""Task registries: "is this run finished elsewhere?" for workers without shared storage.

Workers on clusters that share the sweep directory coordinate through its locks. Clusters that do
not share storage can still split one sweep when a registry plugin knows which runs finished
anywhere (the wandb plugin answers from W&B run states): a worker asks before claiming, and skips
runs the registry calls finished. Registries are components of kind ``task_registry``
(:class:`hsm_core.plugin.TaskRegistryRecord`) whose factory is called as ``factory(options)``
(``sweep_id``, ``project_root``, ``project_config`` plus the registry's own settings) and returns
a :class:`hsm_core.plugin.TaskRegistry`. A run is asked about by the id the registry knows it by
(:meth:`~hsm_core.plugin.TaskRegistry.run_id`), which is also the ``WANDB_RUN_ID`` the wandb
plugin gives the task.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Mapping

from hsm_core.plugin import TaskRegistryRecord


def load_task_registry(
    registry: Any,
    name: str,
    options: Mapping[str, Any],
    *,
    sweep_id: str,
    project_root: Path,
    project_config: Mapping[str, Any],
) -> Any:
    """Create the task registry ``name`` (ComponentNotFound, naming the package, when missing)."""
    record = registry.get(TaskRegistryRecord.kind, name)
    full = {"sweep_id": sweep_id, "project_root": str(project_root), "project_config": dict(project_config)}
    full.update(options)
    return record.load()(full)


class RegistryView:
    """Caches a registry's answers: "finished" is final, other answers are asked again after
    ``recheck`` seconds; a registry that fails is reported once and treated as "don't know"."""

    def __init__(self, impl: Any, name: str, sweep_id: str, log: Callable[[str], None], recheck: float = 60.0) -> None:
        self.impl, self.name, self.sweep_id, self.log, self.recheck = impl, name, sweep_id, log, recheck
        self._finished: set[str] = set()
        self._asked: dict[str, float] = {}
        self._failed = False

    def finished(self, run_id: str) -> bool:
        """True when the registry says ``run_id`` finished somewhere."""
        if run_id in self._finished:
            return True
        last = self._asked.get(run_id)
        if last is not None and time.time() - last < self.recheck:
            return False
        self._asked[run_id] = time.time()
        try:
            known_as = self.impl.run_id(self.sweep_id, run_id) if hasattr(self.impl, "run_id") else run_id
            answer = self.impl.is_finished(known_as)
        except Exception as exc:  # a registry outage must not stop the workers
            if not self._failed:
                self.log(f"task registry {self.name!r} failed ({exc!r}); going on with local state only")
                self._failed = True
            return False
        if answer:
            self._finished.add(run_id)
            return True
        return False

    @property
    def known_finished(self) -> set[str]:
        """Run ids the registry called finished so far."""
        return set(self._finished)
