"""Moving a sweep's files to and from a cluster whose file system is not this machine's (part of
the array-job toolkit of :mod:`hsm_core.plugin`).

A scheduler source that submits through a login node (``host:`` with ``project_dir:``) sees the
project at another path there: :class:`Staging` maps paths, copies task dirs out before the
submission and back once they ended (one transfer per ``tasks/`` dir: a copy costs a round trip),
reads the task statuses there in one command per poll, and writes a final status hsm decided
back there. On a shared file system (the usual cluster, or the local machine) all of it is a no-op.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Mapping, Sequence

from hsm_core.errors import ConfigError, HsmError, SourceUnavailable
from hsm_core.plugin.components import Host
from hsm_core.taskdir import STATUS_FILE, status_path

__all__ = ["Staging", "by_parent"]

# The task file's name comes from its owner (hsm_core.taskdir), as the script's first line.
_LIST_READER = f"STATUS_FILE = {STATUS_FILE!r}\n" + r"""
import json, os, sys
out = {}
for line in sys.stdin:
    d = line.strip()
    if not d:
        continue
    try:
        with open(os.path.join(d, STATUS_FILE), encoding="utf-8") as fh:
            out[d] = fh.read()
    except OSError:
        out[d] = None
json.dump(out, sys.stdout)
"""


def by_parent(specs: Iterable[Any]) -> dict[Path, list[str]]:
    """Task dir names grouped by their parent directory (the sweep's ``tasks/``)."""
    out: dict[Path, list[str]] = {}
    for spec in specs:
        out.setdefault(Path(spec.task_dir).parent, []).append(Path(spec.task_dir).name)
    return out


class Staging:
    """The files of one source's sweep, on this machine and where its tasks run.

    ``host`` is a callable giving the :class:`Host` (created on first use), ``run`` runs a command
    there, ``log`` writes to the source's log.
    """

    def __init__(self, source_name: str, options: Mapping[str, Any], project_root: Path, sweep_dir: Path,
                 host: Callable[[], Host], run: Callable[..., Any], log: Callable[[str], None]) -> None:
        self.source_name = source_name
        self.options = options
        self.project_root = Path(project_root)
        self.sweep_dir = Path(sweep_dir)
        self._host = host
        self._run = run
        self._log = log
        self._remote_root: PurePosixPath | None = None

    @property
    def remote(self) -> bool:
        """True when tasks run on a file system other than this machine's."""
        return not self._host().is_local

    def exec_path(self, local: Path) -> str:
        """``local`` (inside the project) as the execution host sees it."""
        local = Path(local)
        if not self.remote:
            return str(local)
        if self._remote_root is None:
            root = self.options.get("project_dir")
            if not root:
                raise ConfigError(
                    f"source {self.source_name!r} submits through host {self.options.get('host')!r} but has no project_dir",
                    key="hpc.clusters.*.project_dir",
                    hint="set project_dir to the project's path on the cluster",
                )
            self._remote_root = PurePosixPath(str(root))
        try:
            rel = local.resolve().relative_to(self.project_root.resolve())
        except ValueError:
            raise HsmError(f"{local} is outside the project; cannot map it to the cluster") from None
        return str(self._remote_root / PurePosixPath(*rel.parts))

    def put_text(self, local: Path, text: str) -> None:
        """Write ``text`` at ``local``'s place on the execution host (no-op when shared)."""
        if self.remote:
            self._host().write_text(self.exec_path(local), text)

    def prepare(self, tasks: Sequence[Any], job_dir: Path) -> None:
        """Before a submission: the sweep's job and log dirs there, and the tasks' dirs copied."""
        if not self.remote:
            return
        host = self._host()
        dirs = {self.exec_path(job_dir), self.exec_path(self.sweep_dir / "logs" / "jobs")}
        res = self._run(["mkdir", "-p", *sorted(dirs)])
        if res.returncode != 0:
            raise SourceUnavailable(f"cannot create the sweep directory on {host.name}: {res.stderr.strip()}")
        for parent, names in by_parent(tasks).items():
            try:
                host.put_many(parent, names, self.exec_path(parent))
            except Exception as exc:
                raise SourceUnavailable(f"cannot copy {len(names)} task dir(s) to {host.name}: {exc}") from exc

    def fetch(self, specs: Sequence[Any]) -> None:
        """Copy finished task dirs back, one transfer per ``tasks/`` dir (no-op when shared)."""
        if not self.remote or not specs:
            return
        host = self._host()
        for parent, names in by_parent(specs).items():
            try:
                host.get_many(self.exec_path(parent), names, parent)
            except Exception as exc:
                self._log(f"cannot copy {len(names)} task dir(s) back from {host.name}: {exc}")

    def fetch_one(self, spec: Any) -> None:
        """Copy one finished task dir back (no-op when shared)."""
        if self.remote:
            try:
                self._host().get(self.exec_path(spec.task_dir), spec.task_dir)
            except Exception as exc:
                self._log(f"cannot copy {spec.name} back from {self._host().name}: {exc}")

    def read_statuses(self, task_dirs: Sequence[Path]) -> dict[Path, dict[str, Any]]:
        """The ``status.yaml`` of each task dir as written there, in one command (remote only;
        missing, unreadable or stateless ones are left out)."""
        if not self.remote or not task_dirs:
            return {}
        import yaml

        by_dir = {self.exec_path(d): Path(d) for d in task_dirs}
        py = str(self.options.get("python_interpreter") or "python3")
        res = self._run([py, "-c", _LIST_READER], input="\n".join(by_dir) + "\n")
        if res.returncode != 0:
            self._log(f"cannot read task statuses on {self._host().name}: {res.stderr.strip()[:300]}")
            return {}
        try:
            found = json.loads(res.stdout or "{}")
        except ValueError:
            return {}
        out: dict[Path, dict[str, Any]] = {}
        for d, text in found.items():
            local = by_dir.get(d)
            if local is None or not text:
                continue
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError:
                continue
            if isinstance(data, dict) and data.get("state"):
                out[local] = data
        return out

    def push_status(self, task_dir: Path, status: Mapping[str, Any], name: str) -> None:
        """Write a status hsm decided into the task dir there too (no-op when shared)."""
        if not self.remote:
            return
        from hsm_core.plugin.files import dump_yaml

        try:
            self._host().write_text(self.exec_path(status_path(Path(task_dir))), dump_yaml(dict(status)))
        except Exception as exc:
            self._log(f"cannot write the final status of {name} on {self._host().name}: {exc}")
