"""A throw-away hsm project that runs the real ``hsm`` command (public test API).

Plugin authors and hsm's own tests use it the same way::

    project = make_project(tmp_path / "proj", config_extra="hpc:\\n  system: slurm\\n")
    sweep = project.write_sweep({"grid": {"lr": [0.1, 0.01]}})
    project.hsm("run", "--config", str(sweep), "--sources", "slurm", check=True)
    assert sorted(project.executions()) == sorted(set(project.executions()))

The project's ``train.py`` is :data:`hsm_core.testing.SCRIPT`: it appends its task id to
``$HSM_COUNT_DIR/runs.log`` on every execution (``HSM_COUNT_DIR`` defaults to the project root),
so a test can prove that every task ran exactly once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

import yaml

from hsm_core.taskdir import status_path
from hsm_core.testing.helpers import SCRIPT

T = TypeVar("T")


@dataclass
class Project:
    """A project directory with ``hsm_config.yaml`` and ``train.py``.

    ``env`` is added to this process's environment for every ``hsm`` run (e.g. ``SLURM_CONF``).
    """

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    def environ(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment ``hsm`` runs with: ours, then :attr:`env`, then ``extra``."""
        full = dict(os.environ)
        full.update(self.env)
        full.update(extra or {})
        full.setdefault("HSM_COUNT_DIR", str(self.root))
        return full

    def write_sweep(self, data: Any, name: str = "sweep.yaml") -> Path:
        """Write a sweep file under ``sweeps/`` (a dict is dumped as YAML, a str written as is)."""
        path = self.root / "sweeps" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
        return path

    def hsm(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        timeout: float = 180,
        check: bool = False,
        input: str | None = None,
    ) -> subprocess.CompletedProcess:
        """Run the real ``hsm`` in the project dir; ``check`` raises with its output on a non-zero exit."""
        proc = subprocess.run(
            [sys.executable, "-m", "hsm_core", *args],
            cwd=self.root,
            env=self.environ(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"hsm {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start the real ``hsm`` in the background (stdout and stderr piped, text)."""
        return subprocess.Popen(
            [sys.executable, "-m", "hsm_core", *args],
            cwd=self.root,
            env=self.environ(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @property
    def outputs(self) -> Path:
        """``sweeps/outputs``, where sweep directories are created."""
        return self.root / "sweeps" / "outputs"

    def sweep_ids(self) -> list[str]:
        """Ids of the sweeps created so far, sorted."""
        if not self.outputs.is_dir():
            return []
        return sorted(p.name for p in self.outputs.iterdir() if (p / "sweep_metadata.yaml").exists())

    def only_sweep(self) -> Path:
        """The directory of the one sweep of this project (fails if there are none or several)."""
        ids = self.sweep_ids()
        assert len(ids) == 1, f"expected one sweep, found {ids}"
        return self.outputs / ids[0]

    def statuses(self, sweep: Path) -> dict[str, dict[str, Any]]:
        """``status.yaml`` of every task dir of ``sweep`` by dir name (``{}`` where there is none;
        no entries while the sweep is still being created)."""
        out: dict[str, dict[str, Any]] = {}
        if not (sweep / "tasks").is_dir():
            return out
        for d in sorted((sweep / "tasks").iterdir()):
            path = status_path(d)
            out[d.name] = (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
        return out

    def executions(self) -> list[str]:
        """Task ids in the order the test script ran them (one line per execution)."""
        path = Path(self.environ()["HSM_COUNT_DIR"]) / "runs.log"
        return path.read_text().split() if path.exists() else []


def make_project(
    root: Path,
    *,
    name: str = "testproj",
    config_extra: str = "",
    env: dict[str, str] | None = None,
    script: str = SCRIPT,
) -> Project:
    """Create a project at ``root``: ``train.py`` (``script``) and an ``hsm_config.yaml``.

    The config runs ``train.py`` with this interpreter and gives the local source 2 slots;
    ``config_extra`` (YAML text) is appended to it, e.g. an ``hpc:`` or ``distributed:`` section.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.py").write_text(script)
    (root / "hsm_config.yaml").write_text(
        textwrap.dedent(
            f"""\
            project:
              name: {name}
            paths:
              python_interpreter: {sys.executable}
              train_script: train.py
            compute:
              local:
                max_parallel_jobs: 2
                kill_grace: 2
            """
        )
        + config_extra
    )
    return Project(root, dict(env or {}))


def wait_for(predicate: Callable[[], T], timeout: float = 60.0, interval: float = 0.2, what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy, and return that; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def assert_golden(text: str, path: Path) -> None:
    """Compare ``text`` with the golden file ``path``; ``HSM_UPDATE_GOLDEN=1`` (re)writes it.

    A missing golden file fails: create it with ``HSM_UPDATE_GOLDEN=1`` and check it by eye.
    """
    import pytest

    update = os.environ.get("HSM_UPDATE_GOLDEN") == "1"
    if update:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    if not path.exists():
        pytest.fail(f"golden file {path} is missing; create it with HSM_UPDATE_GOLDEN=1 and check it by eye")
    assert text == path.read_text(), f"{path.name} differs from the golden file (HSM_UPDATE_GOLDEN=1 rewrites it)"
