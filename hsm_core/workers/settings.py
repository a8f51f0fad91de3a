"""Worker settings: where the sweep lives and how claims are timed, from flags, env and config.

``hsm_config.yaml``::

    workers:
      storage_root: /shared/experiments     # default for every cluster
      heartbeat_interval: 30                 # seconds between lock refreshes
      stale_timeout: 300                     # a lock not refreshed for this long is taken over
      registry: wandb                        # task registry asked "is this run done elsewhere"
      clusters:
        slurm: {storage_root: /nobackup/me/experiments}

Precedence (first set wins): command-line flag, environment (``HSM_STORAGE_ROOT``,
``HSM_WORKER_HEARTBEAT``, ``HSM_WORKER_STALE_TIMEOUT``, ``HSM_WORKER_REGISTRY``),
``workers.clusters.<cluster>.<key>``, ``workers.<key>``, built-in default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from hsm_core.plugin import ConfigError

DEFAULT_HEARTBEAT = 30.0
DEFAULT_STALE_TIMEOUT = 300.0

ENV_STORAGE_ROOT = "HSM_STORAGE_ROOT"
ENV_HEARTBEAT = "HSM_WORKER_HEARTBEAT"
ENV_STALE = "HSM_WORKER_STALE_TIMEOUT"
ENV_REGISTRY = "HSM_WORKER_REGISTRY"


@dataclass
class WorkerSettings:
    """Resolved settings of one worker (or of ``--status``)."""

    cluster: str = "local"
    #: Explicit storage root (None: the project's own output dir is used).
    storage_root: Path | None = None
    heartbeat_interval: float = DEFAULT_HEARTBEAT
    stale_timeout: float = DEFAULT_STALE_TIMEOUT
    registry: str | None = None
    registry_options: dict[str, Any] = field(default_factory=dict)
    #: Where each value came from, for messages ("flag", "env HSM_STORAGE_ROOT", a config key).
    origins: dict[str, str] = field(default_factory=dict)


def _lookup(
    key: str,
    cluster: str,
    config: Mapping[str, Any],
    env: Mapping[str, str],
    env_var: str | None,
    flag: Any,
) -> tuple[Any, str | None]:
    if flag is not None:
        return flag, "flag"
    if env_var and env.get(env_var):
        return env[env_var], f"env {env_var}"
    workers = config.get("workers") or {}
    per_cluster = ((workers.get("clusters") or {}).get(cluster) or {}) if isinstance(workers, Mapping) else {}
    if isinstance(per_cluster, Mapping) and per_cluster.get(key) is not None:
        return per_cluster[key], f"workers.clusters.{cluster}.{key}"
    if isinstance(workers, Mapping) and workers.get(key) is not None:
        return workers[key], f"workers.{key}"
    return None, None


def _seconds(value: Any, where: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"expected a number of seconds, got {value!r}", key=where) from None
    if out <= 0:
        raise ConfigError(f"must be more than 0 seconds, got {value!r}", key=where)
    return out


def resolve_settings(
    project_root: Path,
    project_config: Mapping[str, Any],
    *,
    cluster: str = "local",
    storage_root: str | Path | None = None,
    registry: str | None = None,
    heartbeat_interval: float | None = None,
    stale_timeout: float | None = None,
    env: Mapping[str, str] | None = None,
) -> WorkerSettings:
    """Settings for a worker on ``cluster`` (flags given as keyword arguments win)."""
    env = os.environ if env is None else env
    out = WorkerSettings(cluster=cluster)
    value, origin = _lookup("storage_root", cluster, project_config, env, ENV_STORAGE_ROOT, storage_root)
    if value:
        p = Path(os.path.expandvars(str(value))).expanduser()
        out.storage_root = p if p.is_absolute() else (Path(project_root) / p)
        out.origins["storage_root"] = origin or ""
    value, origin = _lookup("heartbeat_interval", cluster, project_config, env, ENV_HEARTBEAT, heartbeat_interval)
    if value is not None:
        out.heartbeat_interval = _seconds(value, origin or "heartbeat_interval")
        out.origins["heartbeat_interval"] = origin or ""
    value, origin = _lookup("stale_timeout", cluster, project_config, env, ENV_STALE, stale_timeout)
    if value is not None:
        out.stale_timeout = _seconds(value, origin or "stale_timeout")
        out.origins["stale_timeout"] = origin or ""
    if out.stale_timeout < 2 * out.heartbeat_interval:
        raise ConfigError(
            f"stale_timeout ({out.stale_timeout:g}s) must be at least twice heartbeat_interval "
            f"({out.heartbeat_interval:g}s), or live workers lose their claims",
            key="workers.stale_timeout",
        )
    value, origin = _lookup("registry", cluster, project_config, env, ENV_REGISTRY, registry)
    if value:
        if isinstance(value, Mapping):  # registry: {name: wandb, project: ...}
            opts = dict(value)
            name = opts.pop("name", None)
            if not name:
                raise ConfigError("a registry mapping needs 'name:'", key=origin or "workers.registry")
            out.registry, out.registry_options = str(name), opts
        else:
            out.registry = str(value)
        out.origins["registry"] = origin or ""
    extra = (project_config.get("workers") or {}).get("registry_options")
    if isinstance(extra, Mapping):
        out.registry_options = {**dict(extra), **out.registry_options}
    return out
