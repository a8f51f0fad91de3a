"""A stand-in for ``wandb.Api`` with the calls hsm makes, as wandb 0.31 answers them.

No W&B server can run here (notes/wandb-on-disk.md), so the server side of pruning and of the task
registry is tested against this object. It mirrors the public API's shapes: ``Api.runs(path,
filters={"group": ...})`` yields runs with ``id``, ``group``, ``state``, ``logged_artifacts()``;
an artifact has ``name`` ("model:v3"), ``version`` ("v3"), ``type``, ``aliases`` and
``delete(delete_aliases=False)``, which refuses a version that has aliases (as the server does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ArtifactHasAliases(Exception):
    pass


@dataclass
class FakeArtifact:
    collection: str
    number: int
    aliases: list[str] = field(default_factory=list)
    type: str = "model"
    api: Any = None

    @property
    def name(self) -> str:
        return f"{self.collection}:v{self.number}"

    @property
    def version(self) -> str:
        return f"v{self.number}"

    def delete(self, delete_aliases: bool = False) -> None:
        if self.aliases and not delete_aliases:
            raise ArtifactHasAliases(f"artifact {self.name} has aliases {self.aliases}; pass delete_aliases=True")
        self.api.deleted.append(self.name)


@dataclass
class FakeRun:
    id: str
    group: str
    state: str = "finished"
    artifacts: list[FakeArtifact] = field(default_factory=list)

    def logged_artifacts(self, per_page: int = 100) -> list[FakeArtifact]:
        return list(self.artifacts)


class FakeApi:
    def __init__(self, runs: list[FakeRun]) -> None:
        self._runs = runs
        self.deleted: list[str] = []
        self.calls: list[tuple[str, Any]] = []
        for r in runs:
            for a in r.artifacts:
                a.api = self

    def runs(self, path: str, filters: dict[str, Any] | None = None, order: str = "+created_at", per_page: int = 50):
        self.calls.append(("runs", (path, filters)))
        group = (filters or {}).get("group")
        return [r for r in self._runs if group is None or r.group == group]

    def run(self, path: str) -> FakeRun:
        self.calls.append(("run", path))
        run_id = path.rsplit("/", 1)[-1]
        for r in self._runs:
            if r.id == run_id:
                return r
        raise ValueError(f"Could not find run {path}")
