"""Per-task resources within one sweep (part of the array-job toolkit of :mod:`hsm_core.plugin`).

The sweep file's ``resources: {per_task: [...]}`` (or a source's ``per_task_resources`` option) is
a list of rules; a rule's ``when`` names parameter values, its other keys are resources::

    resources:
      walltime: 1h
      gpus: 1
      per_task:
        - when: {model: large}            # model == large
          walltime: 4h
          gpus: a100:2
        - when: {model: [xl, xxl], seed: 0}   # model is xl or xxl, and seed is 0
          memory: 64G

Every rule whose ``when`` holds applies, in order (a later one wins a key both set), over the
sweep's resources. Tasks that end up with equal resources share array jobs; each different set
is an array job (or several, past the array size limit) of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from hsm_core.errors import ConfigError

__all__ = ["OPTION", "ALIASES", "Rule", "parse_rules", "rule_matches", "options_for", "group_tasks"]

#: The source option holding the rules (the sweep file's ``resources.per_task`` lands here).
OPTION = "per_task_resources"
#: Options saying the same as one resource key: a rule's key replaces all of them.
ALIASES = {
    "partition": ("partition", "queue", "default_partition", "default_queue"),
    "cpus": ("cpus", "cpus_per_task", "ncpus"),
    "memory": ("memory", "mem"),
    "walltime": ("walltime", "default_walltime"),
}


@dataclass(frozen=True)
class Rule:
    """One rule: parameter name -> accepted values, and the resources it sets."""

    when: tuple[tuple[str, tuple[Any, ...]], ...]
    values: tuple[tuple[str, Any], ...]
    where: str  #: e.g. "resources.per_task[1]", for messages

    def describe(self) -> str:
        """``model=large`` / ``model in (xl, xxl)``, for the dry run."""
        parts = []
        for name, accepted in self.when:
            parts.append(f"{name}={accepted[0]}" if len(accepted) == 1 else f"{name} in ({', '.join(map(str, accepted))})")
        return ", ".join(parts)


def parse_rules(options: Mapping[str, Any]) -> list[Rule]:
    """The rules of ``options[OPTION]`` (already checked by the sweep file's reader; this checks
    the shape again for rules written in ``hsm_config.yaml``)."""
    raw = options.get(OPTION) or []
    if not isinstance(raw, list):
        raise ConfigError("expected a list of rules, each {when: {PARAM: VALUE}, RESOURCE: VALUE ...}", key=OPTION)
    rules = []
    for i, item in enumerate(raw):
        where = f"{OPTION}[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("when"), Mapping) or not item["when"]:
            raise ConfigError("a rule needs when: {PARAM: VALUE or [VALUES]} and the resources it sets", key=where)
        when = tuple((str(k), tuple(v) if isinstance(v, list) else (v,)) for k, v in item["when"].items())
        values = tuple((str(k), v) for k, v in item.items() if k != "when" and not str(k).startswith("_"))
        if not values:
            raise ConfigError("the rule sets no resource", key=where, hint="add e.g. walltime: 4h next to when:")
        rules.append(Rule(when, values, str(item.get("_where") or where)))
    return rules


def _lookup(params: Mapping[str, Any], name: str) -> tuple[bool, Any]:
    if name in params:
        return True, params[name]
    node: Any = params  # nested parameters: optimizer: {lr: ...} is optimizer.lr
    for part in name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _same(a: Any, b: Any) -> bool:
    # YAML reads 1e-3 in a sweep file and "1e-3" typed by hand differently: compare as written too.
    return a == b or str(a) == str(b)


def rule_matches(rule: Rule, params: Mapping[str, Any]) -> bool:
    """True when every parameter of ``rule.when`` has one of its values in ``params``."""
    for name, accepted in rule.when:
        found, value = _lookup(params, name)
        if not found or not any(_same(value, v) for v in accepted):
            return False
    return True


def options_for(options: Mapping[str, Any], rules: Sequence[Rule], params: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with the resources of every rule matching ``params`` laid over, in order."""
    out = dict(options)
    for rule in rules:
        if rule_matches(rule, params):
            for key, value in rule.values:
                for alias in ALIASES.get(key, (key,)):
                    out.pop(alias, None)
                out[key] = value
    return out


def group_tasks(options: Mapping[str, Any], rules: Sequence[Rule], tasks: Sequence[Any], resources_of: Any) -> list[tuple[Any, list[Any]]]:
    """``tasks`` (anything with ``params``) grouped by their resources, in order of first
    appearance: ``[(resources, [task, ...]), ...]``. ``resources_of(options)`` reads resources."""
    if not rules:
        return [(resources_of(options), list(tasks))] if tasks else []
    groups: dict[Any, list[Any]] = {}
    for task in tasks:
        res = resources_of(options_for(options, rules, task.params))
        groups.setdefault(res, []).append(task)
    return list(groups.items())
