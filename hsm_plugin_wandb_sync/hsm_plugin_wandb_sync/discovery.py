"""A sweep's W&B runs on disk.

Where runs are looked for:

* each task's ``wandb/`` (hsm sets ``WANDB_DIR`` per task): every run there belongs to the sweep;
* the project's shared ``wandb/`` (and ``wandb.dir`` of ``hsm_config.yaml``, and ``$WANDB_DIR``):
  a run there belongs to the sweep when its group, one of its tags, or its ``config["sweep_id"]``
  *equals* the sweep id (``sweep_1`` never matches ``sweep_10``).

A run resumed N times has N directories (``offline-run-<time>-<id>``, ``-1``/``-2`` appended within
the same second); they are grouped by the id in the ``run-<id>.wandb`` file name and ordered by
start. A run is finished when the last directory's log holds the exit record (a running run and a
killed one look the same on disk: both are "unfinished").

Parsed logs are cached in ``<project>/.hsm/cache/wandb_logs.json`` by path, size and mtime, so a
second sync of an unchanged sweep reads no log (and does not even import wandb).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from hsm_core.plugin import RESULTS_DIR
from hsm_plugin_wandb_sync.runlog import ArtifactFile, LogSummary, read_log

_DIR = re.compile(r"^(offline-)?run-(\d{8}_\d{6})-(.+)$")
CACHE_REL = Path(".hsm") / "cache" / "wandb_logs.json"
CACHE_VERSION = 1


@dataclass
class RunDir:
    """One directory of a run (one start of it)."""

    path: Path
    run_id: str
    offline: bool
    stamp: str  #: YYYYmmdd_HHMMSS from the name (local time of the start)
    seq: int  #: the ``-N`` wandb appends for a second start within the same second
    log: Path
    summary: LogSummary
    in_task: bool  #: found in a task's own wandb dir

    @property
    def synced(self) -> bool:
        """Uploaded to W&B: an online run, or an offline one ``wandb sync`` marked."""
        return not self.offline or Path(str(self.log) + ".synced").exists()

    @property
    def sort_key(self) -> tuple[Any, ...]:
        return (self.stamp, self.seq, self.summary.start_time, self.path.name)


@dataclass
class ArtifactVersion:
    """One version of an artifact as logged by a run (numbered locally in logging order)."""

    name: str
    type: str
    number: int  #: 0, 1, 2 ... per distinct content of this name within the run
    digest: str
    aliases: list[str]
    files: list[ArtifactFile]
    run_dir: Path

    @property
    def label(self) -> str:
        return f"{self.name}:v{self.number}"


@dataclass
class WandbRun:
    """A run and all its directories, oldest first."""

    run_id: str
    dirs: list[RunDir] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return bool(self.dirs) and self.dirs[-1].summary.exited

    @property
    def exit_code(self) -> int | None:
        return self.dirs[-1].summary.exit_code if self.finished else None

    @property
    def in_task(self) -> bool:
        return any(d.in_task for d in self.dirs)

    @property
    def synced(self) -> bool:
        return all(d.synced for d in self.dirs)

    def matches(self, sweep_id: str) -> bool:
        """The run record names the sweep (exact group, tag, or config sweep_id)."""
        return any(_names_sweep(d.summary, sweep_id) for d in self.dirs)

    def versions(self) -> dict[str, list[ArtifactVersion]]:
        """Artifact versions by name, in logging order across the run's directories; the same
        content logged twice is one version (as on the server)."""
        out: dict[str, list[ArtifactVersion]] = {}
        for d in self.dirs:
            for art in d.summary.artifacts:
                versions = out.setdefault(art.name, [])
                same = next((v for v in versions if v.digest == art.digest and art.digest), None)
                if same is not None:
                    same.aliases = list(dict.fromkeys(same.aliases + art.aliases))
                    continue
                versions.append(ArtifactVersion(art.name, art.type, len(versions), art.digest, list(art.aliases),
                                                list(art.files), d.path))
        return out


def _names_sweep(s: LogSummary, sweep_id: str) -> bool:
    return s.group == sweep_id or sweep_id in s.tags or s.config_sweep_id == sweep_id


def parse_dir_name(name: str, run_id: str) -> tuple[bool, str, int] | None:
    """(offline, stamp, seq) of a run directory name whose log names ``run_id``."""
    m = _DIR.match(name)
    if not m:
        return None
    rest = m.group(3)
    if not rest.startswith(run_id):
        return None
    tail = rest[len(run_id) :]
    if tail and not re.fullmatch(r"-\d+", tail):
        return None
    return bool(m.group(1)), m.group(2), int(tail[1:]) if tail else 0


def find_run_dirs(root: Path) -> list[tuple[Path, Path, str]]:
    """(run dir, log file, run id) under a ``wandb/`` dir (or its parent, as ``WANDB_DIR``)."""
    root = Path(root)
    out = []
    for base in (root, root / "wandb"):
        try:
            entries = list(os.scandir(base))
        except OSError:
            continue
        for e in entries:
            # latest-run is a symlink to one of the run dirs: skip links, keep real dirs
            if not e.name.startswith(("run-", "offline-run-")) or e.is_symlink() or not e.is_dir():
                continue
            try:
                logs = [f for f in os.listdir(e.path) if f.startswith("run-") and f.endswith(".wandb")]
            except OSError:
                continue
            if len(logs) != 1:
                continue
            run_id = logs[0][len("run-") : -len(".wandb")]
            if parse_dir_name(e.name, run_id) is None:
                continue
            out.append((Path(e.path), Path(e.path) / logs[0], run_id))
    return out


class LogCache:
    """Parsed logs by path, reused while the file's size and mtime are unchanged."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, Any] = {}
        self.dirty = False
        if path is not None:
            try:
                data = json.loads(path.read_text())
                if data.get("version") == CACHE_VERSION:
                    self.entries = data.get("logs") or {}
            except (OSError, ValueError, AttributeError):
                pass

    def get(self, log: Path) -> LogSummary:
        try:
            st = log.stat()
        except OSError:
            return LogSummary(intact=False)
        key = str(log)
        hit = self.entries.get(key)
        if hit and hit.get("size") == st.st_size and hit.get("mtime_ns") == st.st_mtime_ns:
            try:
                return LogSummary.from_json(hit["summary"])
            except (KeyError, TypeError):
                pass
        summary = read_log(log)
        self.entries[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "summary": summary.to_json()}
        self.dirty = True
        return summary

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        from hsm_core.plugin import atomic_write_text

        # Forget logs that are gone, so the cache does not grow forever.
        self.entries = {k: v for k, v in self.entries.items() if os.path.exists(k)}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, json.dumps({"version": CACHE_VERSION, "logs": self.entries}), fsync=False)
        except OSError:
            pass  # a cache that cannot be written only costs time
        self.dirty = False


def shared_dirs(project_root: Path, project_config: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> list[Path]:
    """Shared wandb dirs of the project: ``<root>/wandb``, ``wandb.dir`` (str or list), ``$WANDB_DIR``."""
    environ = os.environ if environ is None else environ
    root = Path(project_root)
    out = [root]
    configured = (project_config.get("wandb") or {}).get("dir") if isinstance(project_config.get("wandb"), Mapping) else None
    if isinstance(configured, str):
        configured = [configured]
    for d in configured or []:
        p = Path(str(d)).expanduser()
        out.append(p if p.is_absolute() else root / p)
    if environ.get("WANDB_DIR") and "${" not in environ["WANDB_DIR"]:
        out.append(Path(environ["WANDB_DIR"]).expanduser())
    seen: list[Path] = []
    for p in out:
        p = p.absolute()
        if p not in seen:
            seen.append(p)
    return seen


#: Where a task's runs may be, relative to its dir: ``wandb/`` (the ``WANDB_DIR`` the plugin sets),
#: and the task's output dir (``HSM_OUTPUT_DIR``, ``results/``) and a Hydra app's run dir
#: (``hydra/``), for scripts that pass their output dir to ``wandb.init(dir=...)`` or run wandb
#: from Hydra's cwd. Each is looked at as a ``WANDB_DIR`` (itself and its ``wandb/``).
TASK_RUN_PLACES = ("wandb", RESULTS_DIR, "hydra")


def task_wandb_dirs(sweep_dir: Path) -> list[Path]:
    """The places of :data:`TASK_RUN_PLACES` in every task dir of a sweep (``tasks/*/wandb`` ...)."""
    tasks = Path(sweep_dir) / "tasks"
    try:
        task_dirs = sorted(Path(e.path) for e in os.scandir(tasks) if e.is_dir())
    except OSError:
        return []
    return [d / place for d in task_dirs for place in TASK_RUN_PLACES]


def discover(
    sweep_id: str,
    sweep_dir: Path,
    project_root: Path,
    project_config: Mapping[str, Any] | None = None,
    *,
    use_cache: bool = True,
    extra_dirs: Iterable[Path] = (),
) -> list[WandbRun]:
    """The sweep's runs, ordered by run id."""
    project_config = project_config or {}
    cache = LogCache(Path(project_root) / CACHE_REL if use_cache else None)
    found: dict[str, WandbRun] = {}
    seen_paths: set[str] = set()

    def add(root: Path, in_task: bool) -> None:
        for path, log, run_id in find_run_dirs(root):
            real = os.path.realpath(path)
            if real in seen_paths:
                continue
            seen_paths.add(real)
            parsed = parse_dir_name(path.name, run_id)
            assert parsed is not None
            summary = cache.get(log)
            run = found.setdefault(run_id, WandbRun(run_id))
            run.dirs.append(RunDir(path, run_id, parsed[0], parsed[1], parsed[2], log, summary, in_task))

    for d in task_wandb_dirs(sweep_dir):
        add(d, True)
    for d in [*shared_dirs(project_root, project_config), *extra_dirs]:
        add(d, False)
    cache.save()
    runs = []
    for run in found.values():
        if not (run.in_task or run.matches(sweep_id)):
            continue
        run.dirs.sort(key=lambda d: d.sort_key)
        runs.append(run)
    return sorted(runs, key=lambda r: r.run_id)
