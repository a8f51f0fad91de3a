"""The :class:`Host` of this machine (part of :mod:`hsm_core.plugin`).

Core registers it as the ``local`` host provider; a scheduler source without a login node
(``host:``) runs its commands through it, and a plugin's tests may subclass it (a host "elsewhere"
on this same machine).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any, Mapping, Sequence

from hsm_core.atomic import atomic_write_text
from hsm_core.plugin.components import Host
from hsm_core.plugin.values import CommandResult

__all__ = ["LocalHost"]


class LocalHost(Host):
    """This machine: commands through ``subprocess`` (argv, no shell), copies through ``shutil``."""

    name = "local"

    def __init__(self, name: str = "local", config: Mapping[str, Any] | None = None) -> None:
        self.name = name

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        import os

        full_env = None
        if env:
            full_env = dict(os.environ)
            full_env.update(env)
        try:
            proc = subprocess.run(
                list(argv), cwd=cwd, env=full_env, input=input, capture_output=True, text=True, timeout=timeout
            )
        except FileNotFoundError as exc:
            return CommandResult(127, "", f"{argv[0]}: command not found ({exc})")
        except subprocess.TimeoutExpired as exc:
            return CommandResult(124, str(exc.stdout or ""), f"timed out after {timeout}s")
        return CommandResult(proc.returncode, proc.stdout, proc.stderr)

    def put(self, local: Path, remote: str) -> None:
        _copy(Path(local), Path(remote))

    def get(self, remote: str, local: Path) -> None:
        _copy(Path(remote), Path(local))

    def write_text(self, remote: str, text: str) -> None:
        Path(remote).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(remote), text)

    @property
    def is_local(self) -> bool:
        return True


def _copy(src: Path, dst: Path) -> None:
    if src.resolve() == dst.resolve():
        return
    if src.is_dir():
        shutil.copytree(src, dst, dirs_exist_ok=True)
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
