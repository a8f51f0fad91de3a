"""The ``wandb`` task registry: "is run X finished?" for pull-based workers.

Asked before a worker claims a task, so that workers on clusters without shared storage do not
repeat a run another cluster finished. The answer comes from, in order:

1. this machine's disk (``local_dirs``: wandb dirs to look in; an offline run whose last directory
   has an exit record with code 0 is finished, one with another code is not);
2. the W&B server: one ``Api().runs("entity/project", filters={"group": sweep_id})`` query for all
   runs of the sweep (cached until :meth:`refresh`), else one ``Api().run(path)`` per run id.
   ``state == "finished"`` is finished; ``running``, ``crashed``, ``failed``, ``killed`` are not.

Anything the registry cannot know (no such run, no network, no API key) is ``None``: the worker
then decides from its own locks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from hsm_core.plugin import TaskRegistry

FINISHED_STATES = {"finished"}
NOT_FINISHED_STATES = {"running", "crashed", "failed", "killed", "preempting", "preempted", "pending"}


class WandbTaskRegistry(TaskRegistry):
    """W&B run states behind :class:`hsm_core.plugin.TaskRegistry`.

    Options: ``entity``, ``project`` (default: ``project_config["wandb"]``), ``sweep_id`` (one
    query per sweep), ``local_dirs``; ``api`` may be given an object with wandb.Api's methods.
    """

    def __init__(self, options: Mapping[str, Any] | None = None, *, api: Any = None) -> None:
        super().__init__(options)
        wcfg = (self.options.get("project_config") or {}).get("wandb") or {}
        self.entity = self.options.get("entity") or wcfg.get("entity")
        self.project = self.options.get("project") or wcfg.get("project")
        self.sweep_id = self.options.get("sweep_id")
        self.local_dirs = [Path(p) for p in self.options.get("local_dirs") or []]
        self._api = api if api is not None else self.options.get("api")
        self._states: dict[str, str] | None = None
        self._local: dict[str, bool] | None = None

    def run_id(self, sweep_id: str, task_id: str) -> str:
        """The W&B run id hsm gives the task (``WANDB_RUN_ID``)."""
        from hsm_plugin_wandb_sync.env import run_id_for

        return run_id_for(sweep_id, task_id)

    # -- local disk -------------------------------------------------------------------------
    def _local_states(self) -> dict[str, bool]:
        if self._local is None:
            from hsm_plugin_wandb_sync.discovery import find_run_dirs, parse_dir_name
            from hsm_plugin_wandb_sync.runlog import read_log

            runs: dict[str, list[tuple[Any, ...]]] = {}
            for root in self.local_dirs:
                for path, log, run_id in find_run_dirs(root):
                    parsed = parse_dir_name(path.name, run_id)
                    runs.setdefault(run_id, []).append((parsed[1], parsed[2], log))  # type: ignore[index]
            self._local = {}
            for run_id, dirs in runs.items():
                last = sorted(dirs)[-1][2]
                s = read_log(last)
                if s.exited:
                    self._local[run_id] = s.exit_code == 0
        return self._local

    # -- server -----------------------------------------------------------------------------
    def _path(self) -> str | None:
        if not self.project:
            return None
        return f"{self.entity}/{self.project}" if self.entity else str(self.project)

    def _get_api(self) -> Any:
        if self._api is None:
            import wandb

            self._api = wandb.Api(timeout=20)
        return self._api

    def _server_states(self) -> dict[str, str] | None:
        if self._states is None and self.sweep_id and self._path():
            try:
                runs = self._get_api().runs(self._path(), filters={"group": self.sweep_id})
                self._states = {str(r.id): str(r.state) for r in runs}
            except Exception:  # no network, no key, no project: "unknown", never a crash
                return None
        return self._states

    def _server_state(self, run_id: str) -> str | None:
        states = self._server_states()
        if states is not None:
            return states.get(run_id)
        if not self._path():
            return None
        try:
            return str(self._get_api().run(f"{self._path()}/{run_id}").state)
        except Exception:
            return None

    def is_finished(self, run_id: str) -> bool | None:
        local = self._local_states().get(run_id) if self.local_dirs else None
        if local:
            return True
        state = self._server_state(run_id)
        if state in FINISHED_STATES:
            return True
        if state in NOT_FINISHED_STATES:
            return False
        return local  # False for a run that ended with an error here, None when unknown

    def finished(self, run_ids: Iterable[str]) -> dict[str, bool | None]:
        return {r: self.is_finished(r) for r in run_ids}

    def refresh(self) -> None:
        self._states = None
        self._local = None
