"""Per-sweep resources: the sweep file's ``resources:`` and ``hsm run --gpus/--walltime/...``.

One vocabulary, the array-job toolkit's (:mod:`hsm_core.plugin.arrayjob.resources` and
:mod:`~hsm_core.plugin.arrayjob.vocabulary`): ``walltime``, ``cpus``, ``memory``,
``memory_per_cpu``, ``gpus`` (``N`` or ``TYPE:N``), ``gpus_per_task``, ``nodes``, ``partition``
(or ``queue``), ``account``, ``qos``, ``exclusive``, ``constraint``, ``reservation``,
``mail_user``, ``mail_type`` and ``extra_directives``; raw directives for one scheduler go under
its own key (``resources: {slurm: {extra_directives: [...]}}`` or ``extra_directives: {slurm:
[...]}``), as in ``hpc:``. ``per_task`` rules (:mod:`hsm_core.per_task_resources`) give some
tasks other resources; whether each scheduler can express it all is checked before a run
(:mod:`hsm_core.resource_check`). Later wins: the project's
``hpc:`` / ``compute.<kind>`` / ``hpc.clusters.NAME`` settings, then the sweep file, then the
command line.

A batch scheduler source gets them as options (:func:`apply_resources`); a source that shares out
GPU slots (``local``, an ssh remote: its options schema has ``gpus_per_task``) takes ``gpus`` as
GPUs per task when it lists GPUs. Whatever no chosen source can honour is said in one line
(:func:`unused_resources`): an error when the command line asked for it, a warning when the sweep
file did (a sweep written for a cluster may well be tried locally first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from hsm_core.config.lines import display_path, line_of
from hsm_core.config.validation import did_you_mean
from hsm_core.plugin import ComputeSourceRecord, ConfigError, HsmError
from hsm_core.plugin.arrayjob.directives import check_line, check_name
from hsm_core.plugin.arrayjob.resources import format_memory, format_walltime, parse_memory, parse_walltime
from hsm_core.plugin.arrayjob.vocabulary import check_constraint, parse_bool, parse_gpus, parse_mail_type

__all__ = ["RESOURCE_KEYS", "RunResources", "from_sweep", "from_command_line", "run_resources", "overlay_options", "apply_resources", "unused_resources", "check_directives"]

#: The keys of ``resources:`` (and the options they set), in the order messages list them.
RESOURCE_KEYS = ("walltime", "cpus", "memory", "memory_per_cpu", "gpus", "gpus_per_task", "nodes", "partition", "queue",
                 "account", "qos", "exclusive", "constraint", "reservation", "mail_user", "mail_type", "extra_directives",
                 "per_task")
#: Scheduler options that say the same as one key: set by whoever wins, the others dropped, so a
#: project's ``queue:`` never outranks a sweep's ``partition:``.
_ALIASES = {
    "partition": ("partition", "queue", "default_partition", "default_queue"),
    "cpus": ("cpus", "cpus_per_task", "ncpus"),
    "memory": ("memory", "mem"),
    "walltime": ("walltime", "default_walltime"),
}
#: The command-line spelling of each key.
FLAGS = {"walltime": "--walltime", "cpus": "--cpus", "memory": "--mem", "gpus": "--gpus", "nodes": "--nodes",
         "partition": "--partition", "account": "--account", "qos": "--qos"}


@dataclass
class RunResources:
    """Resources of one run: canonical values (as scheduler options) and where each came from."""

    values: dict[str, Any] = field(default_factory=dict)  #: walltime "HH:MM:SS", memory "16G", gpus 2 ...
    directives: tuple[str, ...] = ()  #: ``extra_directives`` for every scheduler
    scoped: dict[str, tuple[str, ...]] = field(default_factory=dict)  #: scheduler key -> its directives
    origins: dict[str, str] = field(default_factory=dict)  #: key -> "--gpus" or "sweep.yaml:12"
    #: ``resources.per_task`` rules (hsm_core.per_task_resources), checked, in file order
    per_task: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.values or self.directives or self.scoped or self.per_task)

    def over(self, lower: "RunResources") -> "RunResources":
        """These resources over ``lower``'s (values replace; directives are added after). A value
        given here also wins over ``lower``'s per-task rules: ``--walltime 1h`` means every task."""
        scoped = {k: tuple(v) for k, v in lower.scoped.items()}
        for k, v in self.scoped.items():
            scoped[k] = scoped.get(k, ()) + tuple(v)
        rules = []
        for rule in lower.per_task:
            kept = {k: v for k, v in rule.items() if k not in self.values}
            if set(kept) - {"when", "_where"}:
                rules.append(kept)
        return RunResources({**lower.values, **self.values}, lower.directives + self.directives, scoped,
                            {**lower.origins, **self.origins}, rules + list(self.per_task))

    def to_json(self) -> dict[str, Any]:
        """What ``sweep_metadata.yaml`` and ``--dry-run --json`` record."""
        out: dict[str, Any] = dict(self.values)
        if self.directives:
            out["extra_directives"] = list(self.directives)
        for k, v in self.scoped.items():
            out[k] = {"extra_directives": list(v)}
        if self.per_task:
            out["per_task"] = [{k: v for k, v in rule.items() if not k.startswith("_")} for rule in self.per_task]
        return out


def _canonical(key: str, value: Any, where: str) -> Any:
    """``value`` of resource ``key`` as the scheduler option hsm passes on; ConfigError(key=where)."""
    if key == "walltime":
        return format_walltime(parse_walltime(value, key=where))
    if key == "memory":
        return format_memory(parse_memory(value, key=where))
    if key == "gpus" and isinstance(value, str) and not value.strip().isdigit():
        count, kind = parse_gpus(value, key=where)
        return f"{kind}:{count}"
    if key == "memory_per_cpu":
        return format_memory(parse_memory(value, key=where))
    if key == "exclusive":
        return parse_bool(value, key=where)
    if key == "constraint":
        return check_constraint(value, key=where)
    if key == "mail_type":
        return ",".join(parse_mail_type(value, key=where))
    if key in ("cpus", "nodes", "gpus", "gpus_per_task"):
        low = 0 if key == "gpus" else 1
        if isinstance(value, bool) or not isinstance(value, int) and not str(value).strip().isdigit():
            raise ConfigError(f"must be a whole number, got {value!r}", key=where)
        if int(value) < low:
            raise ConfigError(f"must be at least {low}, got {value!r}", key=where)
        return int(value)
    return check_name(value, where)


def _scheduler_keys(registry: Any) -> list[str]:
    """Keys under which one scheduler's directives may go: every installed batch scheduler's name,
    its aliases and its classes' ``directive_scopes`` (``pbs`` for Torque too)."""
    keys: list[str] = []
    for rec in registry.components(ComputeSourceRecord.kind).values():
        if not getattr(rec, "batch_scheduler", False):
            continue
        keys += [rec.name, *getattr(rec, "aliases", ())]
        try:
            keys += list(getattr(rec.load(), "directive_scopes", ()))
        except Exception:  # a broken plugin is reported where it is used
            pass
    return list(dict.fromkeys(keys))


def _directive_list(value: Any, file: str | None, data: Any, path: list[Any]) -> tuple[str, ...]:
    key = ".".join(map(str, path))
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError("expected a list of directives", file=file, line=line_of(data, path), key=key)
    out = []
    for i, item in enumerate(value):
        try:
            out.append(check_line(item, f"{key}[{i}]").strip())
        except ConfigError as exc:
            raise ConfigError(f"{item!r} must be a single line", file=file, line=line_of(data, path + [i]),
                              key=f"{key}[{i}]", hint=exc.hint) from None
    return tuple(x for x in out if x)


def from_sweep(spec: Any, registry: Any) -> RunResources:
    """The ``resources:`` of a sweep file, checked: a bad value or an unknown key is a ConfigError
    naming the file, the line and the key (``resources.walltime``), with a "did you mean"."""
    section = spec.settings.get("resources")
    if not section:
        return RunResources()
    file = display_path(spec.path) if spec.path else None
    data = spec.settings
    if not isinstance(section, Mapping):
        raise ConfigError("expected a mapping, e.g. resources: {walltime: '04:00:00', gpus: 1}", file=file,
                          line=line_of(data, ["resources"]), key="resources")
    out = RunResources()
    schedulers: list[str] | None = None
    for key, value in section.items():
        path = ["resources", key]
        where = f"resources.{key}"
        origin = f"{file}:{line_of(data, path)}" if file else where
        if key == "per_task":
            from hsm_core.per_task_resources import read_rules

            out.per_task = read_rules(spec, registry, value, file, _canonical)
            out.origins[key] = origin
        elif key in RESOURCE_KEYS and key != "extra_directives":
            if value in (None, ""):
                continue
            name = "partition" if key == "queue" else key
            try:
                out.values[name] = _canonical(name, value, where)
            except ConfigError as exc:
                message = exc.message.split(f"{where}: ", 1)[-1]
                raise ConfigError(message, file=file, line=line_of(data, path), key=where, hint=exc.hint) from None
            out.origins[name] = origin
        elif key == "extra_directives" and isinstance(value, Mapping):
            # extra_directives: {slurm: [...], pbs: [...]}: each list read by its scheduler only
            schedulers = _scheduler_keys(registry) if schedulers is None else schedulers
            for scope, entries in value.items():
                if scope not in schedulers:
                    guess = did_you_mean(str(scope), schedulers)
                    raise ConfigError(f"{scope!r} is not a batch scheduler" + (f", did you mean {guess!r}?" if guess else ""),
                                      file=file, line=line_of(data, path + [scope]), key=f"{where}.{scope}",
                                      hint=f"schedulers: {', '.join(schedulers) or 'no scheduler plugin installed'}")
                out.scoped[scope] = out.scoped.get(scope, ()) + _directive_list(entries or [], file, data, path + [scope])
                out.origins.setdefault(scope, f"{file}:{line_of(data, path + [scope])}" if file else where)
        elif key == "extra_directives":
            out.directives = _directive_list(value, file, data, path)
            out.origins[key] = origin
        else:
            schedulers = _scheduler_keys(registry) if schedulers is None else schedulers
            if key not in schedulers:
                guess = did_you_mean(key, [*RESOURCE_KEYS, *schedulers])
                hint = None if guess else (f"known: {', '.join(RESOURCE_KEYS)}; directives for one scheduler go "
                                           f"under its name ({', '.join(schedulers) or 'no scheduler plugin installed'})")
                raise ConfigError(f"unknown key {key!r}" + (f", did you mean {guess!r}?" if guess else ""), file=file,
                                  line=line_of(data, path), key=where, hint=hint)
            if not isinstance(value, Mapping) or set(value) - {"extra_directives"}:
                raise ConfigError(f"expected {{extra_directives: [...]}} (the {key} directives of this sweep)", file=file,
                                  line=line_of(data, path), key=where)
            out.scoped[key] = out.scoped.get(key, ()) + _directive_list(value.get("extra_directives") or [], file, data,
                                                                         path + ["extra_directives"])
            out.origins[key] = origin
    return out


def from_command_line(given: Mapping[str, Any]) -> RunResources:
    """``hsm run --walltime ... --gpus ...`` (None: not given), checked: HsmError naming the flag."""
    out = RunResources()
    for key, value in given.items():
        if value in (None, ""):
            continue
        flag = FLAGS.get(key, f"--{key}")
        try:
            out.values[key] = _canonical(key, value, flag)
        except ConfigError as exc:
            raise HsmError(exc.message, hint=exc.hint) from None
        out.origins[key] = flag
    return out


def run_resources(spec: Any, registry: Any, command_line: RunResources | None = None) -> RunResources:
    """The resources of a run: the command line's over the sweep file's."""
    sweep = from_sweep(spec, registry)
    return command_line.over(sweep) if command_line else sweep


def _gpu_slots(record: Any, options: Mapping[str, Any]) -> bool | None:
    """True: the source shares out listed GPUs; False: it could, but lists none; None: it cannot."""
    schema = getattr(record, "config_schema", None) or {}
    if "gpus_per_task" not in (schema.get("properties") or {}):
        return None
    return bool(options.get("gpus"))


def overlay_options(options: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """Set each resource of ``values`` (None: not given) in a scheduler's ``options``, dropping the
    options that say the same under another name (``queue`` when ``partition`` is set)."""
    for key, value in values.items():
        if value in (None, ""):
            continue
        for alias in _ALIASES.get(key, (key,)):
            options.pop(alias, None)
        options[key] = value
    return options


def _scoped_form(options: dict[str, Any]) -> None:
    """``extra_directives: {slurm: [...]}`` of the project moved to ``slurm: {extra_directives:
    [...]}``, the form the sweep's directives are added to (each scheduler reads its own)."""
    flat = options.get("extra_directives")
    if not isinstance(flat, Mapping):
        return
    for scope, entries in flat.items():
        section = dict(options.get(scope) or {}) if isinstance(options.get(scope), Mapping) else {}
        section["extra_directives"] = [*(section.get("extra_directives") or ()), *(entries or ())]
        options[scope] = section
    options["extra_directives"] = []


def apply_resources(requests: Iterable[Any], registry: Any, resources: RunResources) -> None:
    """Put ``resources`` into the options of each source request (``SourceRequest``), over the
    project's settings: a batch scheduler gets every key; a source sharing out GPU slots that
    lists GPUs gets ``gpus`` as ``gpus_per_task``."""
    if not resources:
        return
    for req in requests:
        rec = registry.get(ComputeSourceRecord.kind, req.kind)
        if getattr(rec, "batch_scheduler", False):
            overlay_options(req.options, resources.values)
            _scoped_form(req.options)
            if resources.directives:
                req.options["extra_directives"] = [*(req.options.get("extra_directives") or ()), *resources.directives]
            for scope, entries in resources.scoped.items():
                section = dict(req.options.get(scope) or {}) if isinstance(req.options.get(scope), Mapping) else {}
                section["extra_directives"] = [*(section.get("extra_directives") or ()), *entries]
                req.options[scope] = section
            if resources.per_task:
                req.options["per_task_resources"] = [*(req.options.get("per_task_resources") or ()), *resources.per_task]
        elif resources.values.get("gpus") and _gpu_slots(rec, req.options):
            # A GPU slot is a GPU: the type of "a100:2" is the scheduler's business.
            req.options["gpus_per_task"] = int(str(resources.values["gpus"]).rpartition(":")[2])


def unused_resources(requests: Iterable[Any], registry: Any, resources: RunResources) -> list[tuple[str, bool]]:
    """Lines saying which resources some chosen source ignores, and whether each is an error: a
    flag of the command line that no chosen source honours. The sweep file's are one warning
    line per source (a sweep written for a cluster is often tried locally first). Directives
    scoped to a scheduler that is not among the sources are not mentioned: that is what scoping
    is for."""
    requests = list(requests)
    kinds = {req.name: registry.get(ComputeSourceRecord.kind, req.kind) for req in requests}
    schedulers = [req for req in requests if getattr(kinds[req.name], "batch_scheduler", False)]
    keys = [k for k in resources.values if resources.values[k] not in (None, 0)]
    if resources.directives:
        keys.append("extra_directives")
    if resources.per_task:
        keys.append("per_task")
    notes: list[tuple[str, bool]] = []
    for req in requests:
        if req in schedulers:
            continue
        slots = _gpu_slots(kinds[req.name], req.options)
        ignored = [k for k in keys if not (k == "gpus" and slots)]
        flags = [resources.origins.get(k, k) for k in ignored if resources.origins.get(k, "").startswith("--")]
        swept = [k for k in ignored if not resources.origins.get(k, "").startswith("--")]
        gpu_note = ""
        if "gpus" in ignored and slots is False:
            where = kinds[req.name].options_section().replace(".*", f".{req.name}")
            gpu_note = f" (it has no GPU slots: list them in {where}.gpus, e.g. [0, 1])"
        for flag in flags:
            key = next(k for k in ignored if resources.origins.get(k) == flag)
            honoured = bool(schedulers) or (key == "gpus" and any(
                _gpu_slots(kinds[r.name], r.options) for r in requests if r not in schedulers))
            what = "batch schedulers and sources with GPU slots" if key == "gpus" else "batch schedulers"
            notes.append((f"{flag} applies to {what}; the {req.name} source ignores it"
                          f"{gpu_note if key == 'gpus' else ''}", not honoured))
        if swept:
            file = resources.origins[swept[0]].rsplit(":", 1)[0]
            notes.append((f"resources {', '.join(swept)} of {file} apply to batch schedulers; the {req.name} source "
                          f"ignores {'it' if len(swept) == 1 else 'them'}{gpu_note if 'gpus' in swept else ''}", False))
    return notes


def check_directives(requests: Iterable[Any], registry: Any, resources: RunResources) -> None:
    """Refuse a raw directive of the sweep file that would reach a scheduler in another's form
    (``#SBATCH ...`` or a ``--`` option in a PBS script), naming the sweep file, as the
    scheduler source does for hsm_config.yaml's (:func:`~hsm_core.plugin.arrayjob.directives.scoped_directives`)."""
    for req in requests:
        rec = registry.get(ComputeSourceRecord.kind, req.kind)
        if not getattr(rec, "batch_scheduler", False):
            continue
        cls = rec.load()
        prefix = getattr(cls, "directive_prefix", "#")
        forms = tuple(getattr(cls, "foreign_directive_forms", ()))
        scopes = tuple(getattr(cls, "directive_scopes", ()))
        places = [("extra_directives", resources.directives)]
        places += [(f"{scope}.extra_directives", resources.scoped.get(scope, ())) for scope in scopes]
        for key, entries in places:
            for i, text in enumerate(entries):
                if (text.startswith("#") and not text.startswith(prefix)) or text.startswith(forms):
                    origin = resources.origins.get(key.split(".")[0], "")
                    file, _, line = origin.rpartition(":")
                    own = f"resources.{scopes[0]}.extra_directives" if scopes else "resources.extra_directives"
                    raise ConfigError(f"{text!r} is not a {getattr(cls, 'scheduler_name', req.kind)} directive",
                                      file=file or None, line=int(line) if line.isdigit() else None,
                                      key=f"resources.{key}[{i}]",
                                      hint=f"put directives for one scheduler under resources.<scheduler>.extra_directives; "
                                           f"{getattr(cls, 'scheduler_name', req.kind)} directives go under {own}")
