"""Shared fixtures for hsm's own tests: a throw-away project and a way to run the real ``hsm``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from hsm_core.testing import SCRIPT


@dataclass
class Project:
    """A project directory with hsm_config.yaml, train.py and a sweep file."""

    root: Path

    def write_sweep(self, data: Any, name: str = "sweep.yaml") -> Path:
        path = self.root / "sweeps" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
        return path

    def hsm(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120, check: bool = False,
            input: str | None = None) -> subprocess.CompletedProcess:
        """Run the real ``hsm`` command in the project dir."""
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env.setdefault("HSM_COUNT_DIR", str(self.root))
        proc = subprocess.run(
            [sys.executable, "-m", "hsm_core", *args],
            cwd=self.root,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"hsm {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env.setdefault("HSM_COUNT_DIR", str(self.root))
        return subprocess.Popen(
            [sys.executable, "-m", "hsm_core", *args],
            cwd=self.root,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @property
    def outputs(self) -> Path:
        return self.root / "sweeps" / "outputs"

    def sweep_ids(self) -> list[str]:
        if not self.outputs.is_dir():
            return []
        return sorted(p.name for p in self.outputs.iterdir() if (p / "sweep_metadata.yaml").exists())

    def executions(self) -> list[str]:
        """Task ids in the order the test script ran them (one line per execution)."""
        path = self.root / "runs.log"
        return path.read_text().split() if path.exists() else []


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "train.py").write_text(SCRIPT)
    (root / "hsm_config.yaml").write_text(
        textwrap.dedent(
            f"""\
            project:
              name: testproj
            paths:
              python_interpreter: {sys.executable}
              train_script: train.py
            compute:
              local:
                max_parallel_jobs: 2
                kill_grace: 2
            """
        )
    )
    return Project(root)
