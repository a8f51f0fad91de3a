"""The W&B environment of each task, and deterministic run ids.

For every task hsm writes (``hsm_task_env``):

``WANDB_DIR=${HSM_TASK_DIR}``
    the run's files land in ``<task dir>/wandb/`` (wandb puts ``wandb/`` under ``WANDB_DIR``), so a
    sweep's runs are found by path, come back with the task dir from remote hosts and array jobs,
    and two tasks never share a ``latest-run`` link. ``${HSM_TASK_DIR}`` is replaced by the task
    runner with the task dir *on the host that runs it*.
``WANDB_DATA_DIR=${HSM_TASK_DIR}/wandb/data``
    wandb's artifact staging copies (the payloads of ``log_artifact``) stay with the task too,
    instead of ``~/.local/share/wandb`` on whichever node ran it: ``hsm sync`` can send them.
``WANDB_RUN_GROUP=<sweep id>``, ``WANDB_TAGS=hsm,<sweep id>``
    W&B shows the sweep as one group; runs in a shared ``wandb/`` dir are recognised by them.
``WANDB_RUN_ID=<12 chars from sweep id and task id>``, ``WANDB_RESUME=allow``
    a retried or requeued task resumes *its* run instead of starting a new one; the same
    parameters in another sweep get another run.

A variable already set in hsm's own environment when the sweep starts is left to the user (their
``WANDB_DIR`` or ``WANDB_RUN_ID`` win; their ``WANDB_TAGS`` are kept and ours added). In
``hsm_config.yaml``, ``wandb.task_env: false`` turns all of this off, and ``wandb.project``,
``wandb.entity`` and ``wandb.mode`` are passed as ``WANDB_PROJECT``, ``WANDB_ENTITY``,
``WANDB_MODE``. The user's code still wins when it passes ``dir=``, ``group=``, ``id=`` ... to
``wandb.init``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Mapping

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
CONFIG_NAMES = ("hsm_config.yaml", "sweeps/hsm_config.yaml")


def run_id_for(sweep_id: str, task_id: str) -> str:
    """The W&B run id of a task: 12 lowercase letters and digits, the same on every host and every
    attempt, different for the same parameters in another sweep."""
    digest = hashlib.sha256(f"hsm:{sweep_id}:{task_id}".encode()).digest()
    n = int.from_bytes(digest[:10], "big")
    out = []
    for _ in range(12):
        n, r = divmod(n, 36)
        out.append(_ALPHABET[r])
    return "".join(out)


_settings_cache: dict[str, tuple[float, dict[str, Any]]] = {}


#: sweep dir -> the project config found above it: looked for once per sweep, not once per task
#: (a stat of every config name in every parent dir, for each of 10,000 tasks, was 2 s).
_config_of: dict[str, Path | None] = {}


def project_wandb_settings(sweep_dir: Path) -> dict[str, Any]:
    """The ``wandb:`` section of the project's ``hsm_config.yaml`` (found above the sweep dir)."""
    key = str(sweep_dir)
    path = _config_of.get(key)
    if path is not None:
        try:
            return _read_section(path, os.stat(path).st_mtime)  # (one stat per task: an edit is seen)
        except OSError:
            pass
    elif key in _config_of:
        return {}
    path = _config_of[key] = _find_config(sweep_dir)
    return _read_section(path) if path is not None else {}


def _find_config(sweep_dir: Path) -> Path | None:
    for parent in Path(sweep_dir).absolute().parents:
        for name in CONFIG_NAMES:
            path = parent / name
            if path.is_file():
                if name.startswith("sweeps/") and parent.name == "sweeps":
                    continue
                return path
    return None


def _read_section(path: Path, mtime: float | None = None) -> dict[str, Any]:
    key = str(path)
    mtime = path.stat().st_mtime if mtime is None else mtime
    hit = _settings_cache.get(key)
    if hit and hit[0] == mtime:
        return hit[1]
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        data = {}  # hsm itself reports a broken config before any task is written
    section = data.get("wandb") if isinstance(data, dict) else None
    section = dict(section) if isinstance(section, dict) else {}
    _settings_cache[key] = (mtime, section)
    return section


def task_env(
    sweep_id: str,
    task_id: str,
    settings: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The ``WANDB_*`` variables for one task (see the module docstring)."""
    environ = os.environ if environ is None else environ
    if settings.get("task_env", True) is False:
        return {}
    # What every task of the sweep shares, worked out once per sweep, settings and environment
    # (10,000 tasks submitted at once asked the same questions 10,000 times).
    cache_key = (sweep_id, *(settings.get(k) for k in _SETTINGS_READ), *(environ.get(k) for k in _ENVIRON_READ))
    shared = _shared_env.get(cache_key)
    if shared is None:
        _shared_env.clear()  # (one entry: the sweep being prepared)
        shared = _shared_env[cache_key] = _task_env(sweep_id, None, settings, environ)
    env = dict(shared)
    if "WANDB_RUN_ID" in env:
        env["WANDB_RUN_ID"] = run_id_for(sweep_id, task_id) if task_id is not None else ""  # (in its place: the keys keep their order)
    return env


#: The variables of hsm's own environment :func:`task_env` looks at.
_ENVIRON_READ = ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_RUN_GROUP", "WANDB_TAGS", "WANDB_RUN_ID", "WANDB_RESUME",
                 "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_MODE")

def environ_read() -> dict[str, str]:
    """The variables of hsm's own environment :func:`task_env` looks at, as they are now (to
    hand to it for many tasks: a dict's lookups cost a fraction of os.environ's)."""
    return {name: os.environ[name] for name in _ENVIRON_READ if name in os.environ}


#: The settings :func:`task_env` looks at.
_SETTINGS_READ = ("task_env", "data_dir_per_task", "run_id", "project", "entity", "mode")

#: (sweep id, settings, environment) -> the variables of its tasks (the run id a placeholder)
_shared_env: dict[tuple[Any, ...], dict[str, str]] = {}


def _task_env(sweep_id: str, task_id: str | None, settings: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    env: dict[str, str] = {}

    def put(name: str, value: str) -> None:
        if not environ.get(name):
            env[name] = value

    put("WANDB_DIR", "${HSM_TASK_DIR}")
    if settings.get("data_dir_per_task", True):
        put("WANDB_DATA_DIR", "${HSM_TASK_DIR}/wandb/data")
    put("WANDB_RUN_GROUP", sweep_id)
    tags = [t for t in (environ.get("WANDB_TAGS") or "").split(",") if t]
    for t in ("hsm", sweep_id):
        if t not in tags:
            tags.append(t)
    env["WANDB_TAGS"] = ",".join(tags)
    if settings.get("run_id", True) and not environ.get("WANDB_RUN_ID"):
        env["WANDB_RUN_ID"] = run_id_for(sweep_id, task_id) if task_id is not None else ""
        put("WANDB_RESUME", "allow")
    for key, var in (("project", "WANDB_PROJECT"), ("entity", "WANDB_ENTITY"), ("mode", "WANDB_MODE")):
        value = settings.get(key)
        if value:
            put(var, str(value))
    return env
