"""Resources in one generic vocabulary: walltime, cpus, memory, gpus, nodes, partition/queue,
account, qos (part of the array-job toolkit of :mod:`hsm_core.plugin`).

Read from a scheduler source's options (:func:`resources_from_options`, which also parses
``default_resources`` strings such as ``select=1:ncpus=4:mem=16gb``); each scheduler plugin maps
them to its own directives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from hsm_core.errors import ConfigError
from hsm_core.plugin.arrayjob.directives import check_line, check_name
from hsm_core.plugin.arrayjob.vocabulary import check_constraint, parse_bool, parse_gpus, parse_mail_type

__all__ = [
    "Resources",
    "parse_walltime",
    "format_walltime",
    "parse_memory",
    "format_memory",
    "parse_resource_string",
    "resources_from_options",
]

_WALLTIME = re.compile(r"^(?:(?P<d>\d+)-)?(?P<h>\d+)(?::(?P<m>\d{1,2}))?(?::(?P<s>\d{1,2}))?$")
_UNIT_TIME = re.compile(r"^(?P<n>\d+(?:\.\d+)?)\s*(?P<u>s|sec|m|min|h|hr|hours?|d|days?)$", re.I)


def parse_walltime(value: Any, *, key: str = "walltime") -> int:
    """Seconds from ``HH:MM:SS``, ``D-HH:MM:SS``, ``HH:MM``, ``90m``/``4h``/``2d``, or an integer
    number of minutes (Slurm's convention for a bare number). Raises ConfigError otherwise."""
    if isinstance(value, bool):
        raise ConfigError(f"invalid walltime {value!r}", key=key, hint="use HH:MM:SS, e.g. 04:00:00")
    if isinstance(value, int):
        if value <= 0:
            raise ConfigError(f"walltime must be positive, got {value}", key=key)
        return value * 60
    text = str(value).strip()
    m = _UNIT_TIME.match(text)
    if m:
        factor = {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group("u")[0].lower()]
        seconds = int(float(m.group("n")) * factor)
    elif text.isdigit():
        seconds = int(text) * 60
    else:
        m = _WALLTIME.match(text)
        if not m:
            raise ConfigError(f"invalid walltime {text!r}", key=key, hint="use HH:MM:SS or D-HH:MM:SS, e.g. 04:00:00")
        d, h = int(m.group("d") or 0), int(m.group("h"))
        mm, ss = int(m.group("m") or 0), int(m.group("s") or 0)
        if m.group("m") is not None and m.group("s") is None:
            # HH:MM (PBS accepts it; Slurm's MM:SS reading of two fields surprises people), and
            # Slurm's D-HH:MM, whose days count too
            seconds = d * 86400 + h * 3600 + mm * 60
        else:
            seconds = d * 86400 + h * 3600 + mm * 60 + ss
        if mm > 59 or ss > 59:
            raise ConfigError(f"invalid walltime {text!r} (minutes and seconds go up to 59)", key=key)
    if seconds <= 0:
        raise ConfigError(f"walltime must be positive, got {text!r}", key=key)
    return seconds


def format_walltime(seconds: int) -> str:
    """``HH:MM:SS`` (hours may exceed 24), understood by Slurm, PBS Pro and Torque alike."""
    h, rest = divmod(int(seconds), 3600)
    m, s = divmod(rest, 60)
    return f"{h:02d}:{m:02d}:{s:02d}"


_MEMORY = re.compile(r"^(?P<n>\d+(?:\.\d+)?)\s*(?P<u>[kmgt]?)(?:i?b)?$", re.I)
_MEM_FACTOR = {"k": 1 / 1024, "": 1, "m": 1, "g": 1024, "t": 1024 * 1024}


def parse_memory(value: Any, *, key: str = "memory") -> int:
    """Megabytes from ``16gb``, ``16G``, ``500mb``, ``500M``, ``2TB`` or a bare number of MB.

    Units are binary (1 GB = 1024 MB), as in Slurm and PBS."""
    if isinstance(value, bool):
        raise ConfigError(f"invalid memory {value!r}", key=key, hint="e.g. 16gb or 500mb")
    if isinstance(value, int):
        mb = value
    else:
        m = _MEMORY.match(str(value).strip())
        if not m:
            raise ConfigError(f"invalid memory {value!r}", key=key, hint="e.g. 16gb, 16G or 500mb")
        mb = int(float(m.group("n")) * _MEM_FACTOR[m.group("u").lower()])
    if mb <= 0:
        raise ConfigError(f"memory must be positive, got {value!r}", key=key)
    return mb


#: The style names format_memory took in plugin API 1.0, still accepted.
_LEGACY_MEMORY_STYLES = {"slurm": "G", "pbs": "gb"}


def format_memory(mb: int, style: str = "G") -> str:
    """``style`` ``"G"``: ``16G``/``500M`` (Slurm's form); ``"gb"``: ``16gb``/``500mb`` (PBS's)."""
    style = _LEGACY_MEMORY_STYLES.get(style, style)
    if mb % 1024 == 0:
        n, unit = mb // 1024, "g"
    else:
        n, unit = mb, "m"
    return f"{n}{unit.upper()}" if style == "G" else f"{n}{unit}b"


@dataclass(frozen=True)
class Resources:
    """What one task needs, in hsm's generic vocabulary (mapped per scheduler by the plugins).

    ``cpus``, ``memory_mb`` and ``gpus`` are per task (one array element); ``nodes`` is the number
    of nodes per task (1 unless a task is itself a multi-node job).
    """

    walltime: int | None = None  #: seconds
    cpus: int | None = None
    memory_mb: int | None = None
    gpus: int | None = None
    nodes: int | None = None
    partition: str | None = None  #: Slurm partition, PBS queue
    account: str | None = None
    qos: str | None = None
    # The richer vocabulary (hsm_core.plugin.arrayjob.vocabulary); a scheduler that cannot
    # express one says so through its source's cannot_express, never drops it.
    gpu_type: str | None = None  #: ``gpus: a100:2`` -> gpus 2, gpu_type "a100"
    gpus_per_task: int | None = None  #: GPUs for each process srun starts (Slurm --gpus-per-task)
    memory_per_cpu_mb: int | None = None
    exclusive: bool | None = None  #: whole nodes, shared with no other job
    constraint: str | None = None  #: node features, e.g. "a100&ib"
    reservation: str | None = None
    mail_user: str | None = None
    mail_type: tuple[str, ...] = ()  #: of vocabulary.MAIL_TYPES


# Keys of default_resources strings, PBS Pro ("select=1:ncpus=4:mem=16gb"), Torque
# ("nodes=1:ppn=4,mem=16gb") or generic ("cpus=4,mem=16G,gpus=1"), and the field they fill.
_RESOURCE_KEYS = {
    "select": "nodes",
    "nodes": "nodes",
    "ncpus": "cpus",
    "ppn": "cpus",
    "cpus": "cpus",
    "cpus_per_task": "cpus",
    "mem": "memory_mb",
    "memory": "memory_mb",
    "ngpus": "gpus",
    "gpus": "gpus",
    "walltime": "walltime",
    "time": "walltime",
    "partition": "partition",
    "queue": "partition",
    "account": "account",
    "qos": "qos",
}


def parse_resource_string(text: str, *, key: str = "default_resources") -> dict[str, Any]:
    """Generic resources from a PBS-style resource string.

    ``select=1:ncpus=4:mem=16gb`` (PBS Pro), ``nodes=1:ppn=4:gpus=1,mem=16gb,walltime=04:00:00``
    (Torque) and ``cpus=4,mem=16G`` all work. Returns the :class:`Resources` fields found; an
    unknown resource is a ConfigError pointing at ``extra_directives``.
    """
    out: dict[str, Any] = {}
    if not str(text).strip():
        return out
    check_line(str(text), key)
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        if item.startswith(("select=", "nodes=")):
            # PBS Pro chunk / Torque node spec: the first value is the count, then key=value by ':'
            head, *rest = item.split(":")
            parts = [head, *rest]
        else:
            parts = [item]
        for part in parts:
            name, sep, value = part.partition("=")
            name = name.strip().lower()
            if not sep or not value.strip():
                raise ConfigError(f"cannot read {part!r} in {text!r}", key=key, hint="use name=value, e.g. select=1:ncpus=4:mem=16gb")
            value = value.strip()
            target = _RESOURCE_KEYS.get(name)
            if target is None:
                raise ConfigError(
                    f"unknown resource {name!r} in {text!r}",
                    key=key,
                    hint="known: " + ", ".join(sorted(_RESOURCE_KEYS)) + "; pass anything else with extra_directives",
                )
            if target == "walltime":
                out[target] = parse_walltime(value, key=key)
            elif target == "memory_mb":
                out[target] = parse_memory(value, key=key)
            elif target in ("partition", "account", "qos"):
                out[target] = check_name(value, f"{key}.{name}")
            else:
                if not value.isdigit() or int(value) < 1:
                    raise ConfigError(f"{name} must be a positive number, got {value!r}", key=key)
                out[target] = int(value)
    return out


def _first(options: Mapping[str, Any], *names: str) -> Any:
    for n in names:
        v = options.get(n)
        if v not in (None, ""):
            return v
    return None


def positive_int(value: Any, key: str) -> int:
    """``value`` as an int of at least 1; else a ConfigError naming ``key``."""
    if isinstance(value, bool) or not str(value).isdigit() or int(value) < 1:
        raise ConfigError(f"must be a positive whole number, got {value!r}", key=key)
    return int(value)


def resources_from_options(options: Mapping[str, Any]) -> Resources:
    """The resources of an ``hpc:`` section / cluster entry (plus command-line overrides).

    Later wins: ``default_resources`` string, ``default_walltime`` / ``default_partition`` /
    ``default_queue``, the ``resources`` string, then the explicit keys (``walltime``, ``cpus``,
    ``memory``, ``gpus``, ``nodes``, ``partition``/``queue``, ``account``, ``qos``).
    """
    fields: dict[str, Any] = {}
    if options.get("default_resources"):
        fields.update(parse_resource_string(str(options["default_resources"]), key="default_resources"))
    if options.get("default_walltime") not in (None, ""):
        fields["walltime"] = parse_walltime(options["default_walltime"], key="default_walltime")
    default_part = _first(options, "default_partition", "default_queue")
    if default_part is not None:
        fields["partition"] = check_name(default_part, "default_partition")
    if options.get("resources"):
        fields.update(parse_resource_string(str(options["resources"]), key="resources"))
    if options.get("walltime") not in (None, ""):
        fields["walltime"] = parse_walltime(options["walltime"], key="walltime")
    cpus = _first(options, "cpus", "cpus_per_task", "ncpus")
    if cpus is not None:
        fields["cpus"] = positive_int(cpus, "cpus")
    mem = _first(options, "memory", "mem")
    if mem is not None:
        fields["memory_mb"] = parse_memory(mem, key="memory")
    gpus = options.get("gpus")
    if gpus not in (None, "", 0):
        count, kind = parse_gpus(gpus)
        if count:
            fields["gpus"], fields["gpu_type"] = count, kind
    if options.get("nodes") not in (None, ""):
        fields["nodes"] = positive_int(options["nodes"], "nodes")
    part = _first(options, "partition", "queue")
    if part is not None:
        fields["partition"] = check_name(part, "partition")
    for name in ("account", "qos"):
        if options.get(name) not in (None, ""):
            fields[name] = check_name(options[name], name)
    fields.update(_vocabulary_fields(options))
    return Resources(**fields)


def _vocabulary_fields(options: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`Resources` fields of the richer vocabulary (:mod:`.vocabulary`) set in
    ``options`` (an ``hpc:`` section, a cluster entry, with the sweep's ``resources:`` laid over)."""
    out: dict[str, Any] = {}

    def given(name: str) -> bool:
        return options.get(name) not in (None, "")

    if given("exclusive"):
        out["exclusive"] = parse_bool(options["exclusive"], key="exclusive") or None
    if given("constraint"):
        out["constraint"] = check_constraint(options["constraint"])
    for name in ("reservation", "mail_user"):
        if given(name):
            out[name] = check_name(options[name], name)
    if given("mail_type"):
        out["mail_type"] = parse_mail_type(options["mail_type"])
    if given("gpus_per_task"):
        out["gpus_per_task"] = positive_int(options["gpus_per_task"], "gpus_per_task")
    if given("memory_per_cpu"):
        out["memory_per_cpu_mb"] = parse_memory(options["memory_per_cpu"], key="memory_per_cpu")
    return out
