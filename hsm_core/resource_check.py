"""Before a run starts: can each chosen batch scheduler express the resources asked for?

The sweep's resources (and the command line's) over the project's ``hpc:`` settings, and each
per-task rule over those, are shown to the scheduler plugin (its source's ``cannot_express``):
what it cannot put in a job script (constraints on PBS Pro, a GPU type on Torque, QoS on PBS Pro
...) stops the run with one line naming where it was asked for (the sweep file's line, the flag,
or ``hsm_config.yaml``'s key), never silently dropped. ``extra_directives: {SCHEDULER: [...]}`` of
the project naming no installed scheduler is refused the same way (a typo would drop them).
"""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any, Iterable, Mapping

from hsm_core.config.validation import did_you_mean
from hsm_core.errors import ConfigError, HsmError
from hsm_core.plugin import ComputeSourceRecord

__all__ = ["check_expressible", "check_rule_parameters"]


def _where(origin: str | None) -> tuple[str | None, int | None]:
    if not origin:
        return None, None
    file, _, line = origin.rpartition(":")
    return (file or None), (int(line) if line.isdigit() else None)


def _refuse(why: str, key: str, origin: str | None, scope: str, project: Any, hpc_key: str) -> None:
    hint = f"ask only for what this scheduler can express, or put your site's directive under extra_directives: {{{scope}: [...]}}"
    if origin and origin.startswith("--"):
        raise HsmError(f"{origin}: {why}", hint=hint)
    file, line = _where(origin)
    if file is None:
        line = project.line_of(hpc_key) if project is not None else None
        raise ConfigError(why, file=project.file_of(hpc_key) if project is not None else None, line=line, key=hpc_key,
                          hint=hint)
    raise ConfigError(why, file=file, line=line, key=key, hint=hint)


def _check_scopes(options: Mapping[str, Any], registry: Any, project: Any) -> None:
    flat = options.get("extra_directives")
    if not isinstance(flat, Mapping):
        return
    from hsm_core.run_resources import _scheduler_keys

    known = _scheduler_keys(registry)
    for scope in flat:
        if scope not in known:
            guess = did_you_mean(str(scope), known)
            key = f"hpc.extra_directives.{scope}"
            raise ConfigError(f"{scope!r} is not a batch scheduler" + (f", did you mean {guess!r}?" if guess else ""),
                              file=project.file_of(key) if project is not None else None,
                              line=project.line_of(key) if project is not None else None, key=key,
                              hint=f"schedulers: {', '.join(known) or 'no scheduler plugin installed'}")


def check_expressible(requests: Iterable[Any], registry: Any, resources: Any, project: Any = None) -> None:
    """Raise ConfigError (HsmError for a flag) when a chosen batch scheduler cannot express the
    run's resources (``resources``: a :class:`~hsm_core.run_resources.RunResources`; ``project``:
    the :class:`~hsm_core.config.project_config.ProjectConfig`, for the file and line of its keys)."""
    from hsm_core.plugin.arrayjob.per_task import options_for, parse_rules
    from hsm_core.plugin.arrayjob.resources import resources_from_options
    from hsm_core.run_resources import apply_resources

    for req in requests:
        rec = registry.get(ComputeSourceRecord.kind, req.kind)
        if not getattr(rec, "batch_scheduler", False):
            continue
        cls = rec.load()
        cannot = getattr(cls, "cannot_express", None)
        if cannot is None:
            continue  # a scheduler plugin written for an older hsm: its renderer is the judge
        _check_scopes(req.options, registry, project)
        probe = SimpleNamespace(name=req.name, kind=req.kind, options=copy.deepcopy(dict(req.options)))
        apply_resources([probe], registry, resources)
        options = probe.options
        scheduler = (tuple(getattr(cls, "directive_scopes", ())) or (req.kind,))[0]
        for key, why in cannot(resources_from_options(options), options):
            _refuse(why, f"resources.{key}", resources.origins.get(key), scheduler, project, f"hpc.{key}")
        for i, rule in enumerate(parse_rules(options)):
            variant = options_for(options, [rule], {name: accepted[0] for name, accepted in rule.when})
            for key, why in cannot(resources_from_options(variant), variant):
                own = dict(rule.values)
                if key in own:  # the rule asked for it
                    where = rule.where.split(" ", 1)
                    origin = where[0] if len(where) == 2 else None
                    _refuse(f"{why} (per-task rule {rule.describe()})", f"{where[-1]}.{key}", origin, scheduler,
                            project, f"hpc.per_task_resources[{i}].{key}")
                _refuse(why, f"resources.{key}", resources.origins.get(key), scheduler, project, f"hpc.{key}")


def check_rule_parameters(spec: Any, registry: Any) -> None:
    """A per-task rule's ``when`` naming a parameter the sweep does not have would never match:
    ConfigError with the file, the line and a "did you mean"."""
    section = spec.settings.get("resources")
    rules = section.get("per_task") if isinstance(section, Mapping) else None
    if not isinstance(rules, list):
        return
    from hsm_core.config.lines import display_path, line_of
    from hsm_core.sweep import parameter_table

    try:
        names = [n for n, _ in parameter_table(spec, registry) if not n.startswith("(")]
    except Exception:  # a section that cannot describe itself: do not guess
        return
    if not names:
        return
    file = display_path(spec.path) if spec.path else None
    for i, rule in enumerate(rules):
        for name in (rule.get("when") or {}) if isinstance(rule, Mapping) else ():
            if str(name) in names:
                continue
            guess = did_you_mean(str(name), names)
            raise ConfigError(f"the sweep has no parameter {name!r}" + (f", did you mean {guess!r}?" if guess else ""),
                              file=file, line=line_of(spec.settings, ["resources", "per_task", i, "when", name]),
                              key=f"resources.per_task[{i}].when.{name}",
                              hint=None if guess else f"parameters: {', '.join(names)}")
