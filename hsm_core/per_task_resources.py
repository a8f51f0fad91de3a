"""The sweep file's per-task resources: ``resources: {per_task: [RULE, ...]}`` read and checked.

A rule is ``{when: {PARAM: VALUE or [VALUES]}, RESOURCE: VALUE ...}`` (see
:mod:`hsm_core.plugin.arrayjob.per_task`, which applies the rules to each task's parameters and
groups the tasks into array jobs). Here every rule is checked: an unknown resource or a bad value
is a ConfigError naming the file, the line and the key (``resources.per_task[1].walltime``); a
parameter the sweep does not have is refused before a run starts
(:func:`hsm_core.resource_check.check_rule_parameters`: that needs the sweep's expanders).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from hsm_core.config.lines import line_of
from hsm_core.config.validation import did_you_mean
from hsm_core.errors import ConfigError

__all__ = ["read_rules", "RULE_KEYS"]

#: What a rule may set (per-sweep keys that make sense per task; the rest is the sweep's).
RULE_KEYS = ("walltime", "cpus", "memory", "memory_per_cpu", "gpus", "gpus_per_task", "nodes", "partition", "queue",
             "account", "qos", "constraint", "exclusive", "reservation")


def read_rules(spec: Any, registry: Any, value: Any, file: str | None,
               canonical: Callable[[str, Any, str], Any]) -> list[dict[str, Any]]:
    """The rules of ``resources.per_task``, each ``{"when": {...}, KEY: canonical value, "_where":
    "FILE:LINE resources.per_task[i]"}``. ``canonical(key, value, where)`` checks one value."""
    data = spec.settings
    base = ["resources", "per_task"]
    if not isinstance(value, list) or not value:
        raise ConfigError("expected a list of rules, e.g. - {when: {model: large}, walltime: 4h}", file=file,
                          line=line_of(data, base), key="resources.per_task")
    rules = []
    for i, item in enumerate(value):
        path = base + [i]
        where = f"resources.per_task[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("when"), Mapping) or not item["when"]:
            raise ConfigError("a rule needs when: {PARAM: VALUE or [VALUES]} and the resources it sets", file=file,
                              line=line_of(data, path), key=where, hint="e.g. - {when: {model: large}, walltime: 4h}")
        for name, accepted in item["when"].items():
            if isinstance(accepted, (Mapping, list)) and (isinstance(accepted, Mapping) or not accepted):
                raise ConfigError("expected a value or a list of values", file=file,
                                  line=line_of(data, path + ["when", name]), key=f"{where}.when.{name}")
        rule: dict[str, Any] = {"when": dict(item["when"])}
        for key, raw in item.items():
            if key == "when":
                continue
            if key not in RULE_KEYS:
                guess = did_you_mean(str(key), list(RULE_KEYS))
                raise ConfigError(f"a per-task rule cannot set {key!r}" + (f", did you mean {guess!r}?" if guess else ""),
                                  file=file, line=line_of(data, path + [key]), key=f"{where}.{key}",
                                  hint=None if guess else f"it may set {', '.join(RULE_KEYS)}")
            name = "partition" if key == "queue" else key
            try:
                rule[name] = canonical(name, raw, f"{where}.{key}")
            except ConfigError as exc:
                message = exc.message.split(f"{where}.{key}: ", 1)[-1]
                raise ConfigError(message, file=file, line=line_of(data, path + [key]), key=f"{where}.{key}",
                                  hint=exc.hint) from None
        if len(rule) == 1:
            raise ConfigError("the rule sets no resource", file=file, line=line_of(data, path), key=where,
                              hint="add e.g. walltime: 4h next to when:")
        line = line_of(data, path)
        rule["_where"] = f"{file}:{line} {where}" if file and line else where
        rules.append(rule)
    return rules
