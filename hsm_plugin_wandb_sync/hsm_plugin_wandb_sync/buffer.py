"""``hsm worker --wandb-buffer``: the task logs to W&B offline; the worker uploads with ``wandb sync``.

The worker asks the ``hsm_worker_feature`` hook for ``wandb-buffer`` (see plugin.py) and runs this
:class:`~hsm_core.plugin.WorkerFeature` around every task it claims.

On a preemptible cluster a run that streams to W&B online loses (or duplicates) what it logged
after its last checkpoint when it is killed and resumed. With the buffer the task runs with
``WANDB_MODE=offline`` (and ``WANDB_DIR`` in its task dir unless you set one), and the worker
syncs the run's offline directories - found by the deterministic run id - when the task writes a
new checkpoint (at most every ``sync_interval`` seconds), when it ends, and before the worker exits
on a preemption signal. A failed upload is logged and retried at the next sync; it never fails
the task.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Mapping

from hsm_core.plugin import HsmError, WorkerFeature


def wandb_command() -> list[str]:
    """The argv prefix of the ``wandb`` CLI. Raises HsmError when wandb is not installed."""
    if importlib.util.find_spec("wandb") is not None:
        return [sys.executable, "-m", "wandb"]
    exe = shutil.which("wandb")
    if exe:
        return [exe]
    raise HsmError(
        "--wandb-buffer needs the wandb package, which is not installed for " + sys.executable,
        hint="pip install wandb, or run without --wandb-buffer",
    )


def offline_run_dirs(wandb_dir: Path, run_id: str) -> list[Path]:
    """The offline directories of run ``run_id`` under ``wandb_dir`` (``.../wandb/offline-run-*``),
    oldest first. A resumed run has one per start; the id comes from the ``run-<id>.wandb`` file
    name, never from splitting the directory name (ids may contain ``-``)."""
    root = wandb_dir / "wandb" if (wandb_dir / "wandb").is_dir() else wandb_dir
    found = [p.parent for p in root.glob(f"offline-run-*/run-{run_id}.wandb")]
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))


class WandbBuffer(WorkerFeature):
    """Offline logging plus ``wandb sync`` for the task a worker runs."""

    def __init__(
        self,
        log: Callable[[str], None],
        *,
        sync_interval: float = 300.0,
        timeout: float = 600.0,
        command: list[str] | None = None,
    ) -> None:
        self.command = command or wandb_command()
        self.log = log
        self.sync_interval = sync_interval
        self.timeout = timeout
        self._wandb_dir: Path | None = None
        self._run_id = ""
        self._checkpoints: Path | None = None
        self._last_mark: float = 0.0
        self._last_sync: float = 0.0
        self._background: subprocess.Popen | None = None

    def task_env(self, task_dir: Path, project_root: Path, inherited: Mapping[str, str]) -> dict[str, str]:
        """Environment for the task: offline mode, and its own ``WANDB_DIR`` unless one is set."""
        env = {"WANDB_MODE": "offline"}
        if inherited.get("WANDB_DIR"):
            p = Path(inherited["WANDB_DIR"]).expanduser()
            self._wandb_dir = p if p.is_absolute() else project_root / p
        else:
            self._wandb_dir = task_dir
            env["WANDB_DIR"] = str(task_dir)
        return env

    def task_started(self, task_dir: Path, checkpoint_dir: Path, environ: Mapping[str, str]) -> None:
        """A task starts: remember its run id (``WANDB_RUN_ID``, the same on every attempt) and
        watch its checkpoint dir."""
        self._run_id = str(environ.get("WANDB_RUN_ID") or "")
        self._checkpoints = checkpoint_dir
        self._last_mark = _newest_mtime(checkpoint_dir)
        self._last_sync = time.time()

    def heartbeat(self) -> None:
        """Called on every heartbeat: sync in the background when a new checkpoint appeared."""
        if self._checkpoints is None or time.time() - self._last_sync < self.sync_interval:
            return
        mark = _newest_mtime(self._checkpoints)
        if mark <= self._last_mark:
            return
        if self._background is not None and self._background.poll() is None:
            return  # the previous upload is still going
        dirs = self._dirs()
        if not dirs:
            return
        self._last_mark, self._last_sync = mark, time.time()
        self.log(f"wandb-buffer: new checkpoint, syncing {len(dirs)} offline dir(s) of {self._run_id}")
        self._background = subprocess.Popen(
            self._argv(dirs), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=_online_env(),
        )

    def task_ended(self, state: str, stopping: bool) -> None:
        """Upload the run now; when the worker is stopping (a preemption's SIGKILL follows), within 20 s."""
        self.finish(timeout=20.0 if stopping else None)

    def finish(self, timeout: float | None = None) -> bool:
        """The task ended (or the worker is being stopped): upload everything now. True on success."""
        if self._background is not None:
            try:
                self._background.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._background.kill()
            self._background = None
        dirs = self._dirs()
        self._checkpoints = None
        if not dirs:
            self.log(f"wandb-buffer: no offline run of {self._run_id} to sync under {self._wandb_dir}")
            return True
        argv = self._argv(dirs)
        try:
            proc = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=timeout if timeout is not None else self.timeout, env=_online_env(),
            )
        except subprocess.TimeoutExpired:
            self.log(f"wandb-buffer: wandb sync of {self._run_id} timed out; run it again by hand: {' '.join(argv)}")
            return False
        except OSError as exc:
            self.log(f"wandb-buffer: cannot run wandb sync: {exc}")
            return False
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:]
            self.log(f"wandb-buffer: wandb sync of {self._run_id} failed (exit {proc.returncode}): {' | '.join(tail)}; "
                     f"retry by hand: {' '.join(argv)}")
            return False
        self.log(f"wandb-buffer: synced {len(dirs)} offline dir(s) of {self._run_id}")
        return True

    def _dirs(self) -> list[Path]:
        if self._wandb_dir is None or not self._run_id:
            return []
        return offline_run_dirs(self._wandb_dir, self._run_id)

    def _argv(self, dirs: list[Path]) -> list[str]:
        # --include-synced: a dir synced at a checkpoint has grown since and must go up again.
        return [*self.command, "sync", "--include-synced", *(str(d) for d in dirs)]


def _online_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("WANDB_MODE", None)
    return env


def _newest_mtime(path: Path) -> float:
    newest = 0.0
    try:
        with os.scandir(path) as it:
            for entry in it:
                try:
                    newest = max(newest, entry.stat().st_mtime)
                except OSError:
                    pass
    except OSError:
        pass
    return newest
