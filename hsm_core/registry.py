"""The plugin manager: built-ins first, then entry points of group ``hsm``, one failure at a time.

A plugin that fails to import (even with ``SystemExit``), implements a hook that does not exist, or
was written for another plugin-API version (:data:`~hsm_core.plugin.PLUGIN_API_VERSION`, declared as
``HSM_PLUGIN_API`` in its entry-point module) is reported as one warning line and listed as failed
by ``hsm plugins``; it never breaks ``hsm --help``. Components are looked up by kind and name; a
missing one is an error that lists what is available, what failed to load, and what to install. A
plugin's component whose lazy factory fails to import when first used is a one-line
:class:`~hsm_core.plugin.HsmError` too; ``hsm plugins --check`` imports them all up front.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from importlib import import_module
from types import ModuleType
from typing import Any, Iterable

import pluggy

from hsm_core import __version__
from hsm_core.plugin import hooks as hookspecs
from hsm_core.install_hints import install_hint
from hsm_core.plugin import (
    PROJECT_NAME,
    CollectorRecord,
    ComponentNotFound,
    ComponentRecord,
    ComputeSourceRecord,
    ExpanderRecord,
    HostProviderRecord,
    HsmError,
    StrategyRecord,
    SyncTransportRecord,
    TaskRegistryRecord,
    SearchStrategyRecord,
    PrunerRecord,
    load_object,
)
from hsm_core.plugin_compat import API_ATTRIBUTE, api_incompatibility, api_text, deprecation_warnings, describe_failure

ENTRY_POINT_GROUP = "hsm"

#: Built-in plugins, registered exactly like external ones (in this order, before them).
BUILTIN_PLUGINS: tuple[str, ...] = (
    "hsm_core.builtin.expanders",
    "hsm_core.builtin.random_search",
    "hsm_core.builtin.search",
    "hsm_core.builtin.strategies",
    "hsm_core.builtin.local",
    "hsm_core.builtin.collectors",
    "hsm_core.builtin.hosts",
    "hsm_core.builtin.transports",
)
# (Core's own commands are the plugin ``core.commands`` too; the command line registers it when it
# starts, PluginRegistry.add_builtin, since the library below it never imports hsm_core.cli.)

#: Registration hook per component kind.
KIND_HOOKS: dict[str, str] = {
    ExpanderRecord.kind: "hsm_register_expanders",
    StrategyRecord.kind: "hsm_register_dispatch_strategies",
    ComputeSourceRecord.kind: "hsm_register_compute_sources",
    CollectorRecord.kind: "hsm_register_result_collectors",
    SyncTransportRecord.kind: "hsm_register_sync_transports",
    HostProviderRecord.kind: "hsm_register_hosts",
    TaskRegistryRecord.kind: "hsm_register_task_registries",
    SearchStrategyRecord.kind: "hsm_register_search_strategies",
    PrunerRecord.kind: "hsm_register_pruners",
}

#: The kind of ``hsm worker`` options plugins provide through the ``hsm_worker_feature`` hook.
WORKER_FEATURE = "worker_feature"

#: Which of hsm's own distributions provides a component nobody provides here (a catalog of the
#: plugins shipped in hsm's repository, for install hints: core itself never uses these names).
PACKAGE_HINTS: dict[tuple[str, str], tuple[str, ...]] = {
    (ComputeSourceRecord.kind, "slurm"): ("hsm-plugin-slurm",),
    (ComputeSourceRecord.kind, "pbs"): ("hsm-plugin-pbs",),
    (ComputeSourceRecord.kind, "torque"): ("hsm-plugin-pbs",),
    (ComputeSourceRecord.kind, "hpc"): ("hsm-plugin-slurm", "hsm-plugin-pbs"),
    (ComputeSourceRecord.kind, "ssh"): ("hsm-plugin-ssh",),
    (ComputeSourceRecord.kind, "remote"): ("hsm-plugin-ssh",),
    (HostProviderRecord.kind, "ssh"): ("hsm-plugin-ssh",),
    (TaskRegistryRecord.kind, "wandb"): ("hsm-plugin-wandb-sync",),
    (SearchStrategyRecord.kind, "tpe"): ("hsm-plugin-optuna",),
    (PrunerRecord.kind, "median"): ("hsm-plugin-optuna",),
    (PrunerRecord.kind, "asha"): ("hsm-plugin-optuna",),
    (PrunerRecord.kind, "hyperband"): ("hsm-plugin-optuna",),
    (WORKER_FEATURE, "wandb-buffer"): ("hsm-plugin-wandb-sync",),
}

KIND_LABELS: dict[str, str] = {
    ExpanderRecord.kind: "sweep section",
    StrategyRecord.kind: "dispatch strategy",
    ComputeSourceRecord.kind: "compute source",
    CollectorRecord.kind: "result collector",
    SyncTransportRecord.kind: "sync transport",
    HostProviderRecord.kind: "host provider",
    TaskRegistryRecord.kind: "task registry",
    SearchStrategyRecord.kind: "search strategy",
    PrunerRecord.kind: "pruner",
    WORKER_FEATURE: "worker option",
}


@dataclass
class PluginInfo:
    """One plugin as ``hsm plugins`` lists it."""

    name: str
    distribution: str
    version: str
    status: str  # "loaded", "failed", "disabled"
    builtin: bool = False
    error: str | None = None
    provides: dict[str, list[str]] = field(default_factory=dict)
    #: The plugin-API version the plugin declares (built-ins: the core's own).
    api: str | None = None
    #: What still works but will not in the next plugin-API major (deprecated hooks it implements).
    warnings: list[str] = field(default_factory=list)


@dataclass
class ComponentCheck:
    """One lazy part of a registered component (its factory, or a source's ``detect``), imported."""

    kind: str
    name: str
    plugin: str
    distribution: str
    part: str  # "factory", "detect" or "job_from_env"
    error: str | None = None


class PluginLoadError(HsmError):
    """A plugin's component could not be imported when it was first used."""


def _call_plugin(record: ComponentRecord, part: str, call: Any) -> Any:
    """``call()``, with any failure but Ctrl-C turned into a one-line :class:`PluginLoadError`."""
    try:
        return call()
    except (HsmError, KeyboardInterrupt):
        raise
    except BaseException as exc:  # SystemExit from a plugin's import must not end hsm with no word
        dist = record.distribution or "?"
        label = KIND_LABELS.get(record.kind, record.kind)
        raise PluginLoadError(
            f"{label} {record.name!r} of {dist} {_dist_version(dist)} failed to load ({part}): {describe_failure(exc)}",
            hint="`hsm plugins --check` imports every plugin's components",
        ) from exc


class _GuardedLoad:
    """Mixed into a plugin's records: :meth:`load` (and ``detected``) fail with a one-line error."""

    def load(self) -> Any:
        return _call_plugin(self, "factory", super().load)  # type: ignore[arg-type, misc]


class _GuardedDetect:
    def detected(self) -> bool:
        return _call_plugin(self, "detect", super().detected)  # type: ignore[arg-type, misc]

    def running_job(self, environ: Any) -> Any:
        return _call_plugin(self, "job_from_env", lambda: super(_GuardedDetect, self).running_job(environ))  # type: ignore[misc]


_GUARDED_CLASSES: dict[type, type] = {}


def _guarded(record: ComponentRecord) -> ComponentRecord:
    """The same record, as an instance of a subclass whose lazy imports fail with a one-line error."""
    cls = type(record)
    guarded = _GUARDED_CLASSES.get(cls)
    if guarded is None:
        mixins = (_GuardedLoad, _GuardedDetect) if hasattr(cls, "detected") else (_GuardedLoad,)
        names = {"__module__": cls.__module__, "__qualname__": cls.__qualname__, "__doc__": cls.__doc__}
        guarded = _GUARDED_CLASSES[cls] = type(cls.__name__, (*mixins, cls), names)
    return guarded(**{f.name: getattr(record, f.name) for f in dataclasses.fields(record)})


def _dist_version(dist: str) -> str:
    from importlib import metadata  # only for an error message: reading metadata is slow

    try:
        return metadata.version(dist)
    except Exception:  # not installed as a distribution (tests register plain modules)
        return "?"


class PluginRegistry:
    """A pluggy manager plus what each plugin registered. Build it with :func:`get_registry`."""

    def __init__(self, pm: pluggy.PluginManager, plugins: list[PluginInfo]) -> None:
        self.pm = pm
        self.plugins = plugins
        self._components: dict[str, dict[str, ComponentRecord]] = {}
        self._conflicts: dict[str, dict[str, list[str]]] = {}
        self._collected = False

    def add_builtin(self, module: ModuleType, name: str) -> None:
        """Register a built-in plugin of a layer above this one (the command line's own commands,
        ``core.commands``), listed with the other built-ins; once per registry. Such a plugin
        registers no components (they are collected once, from the plugins loaded before)."""
        if self.pm.has_plugin(name):
            return
        err = _register(self.pm, module, name)
        if err:
            raise RuntimeError(f"built-in plugin {module.__name__}: {err}")
        position = sum(1 for p in self.plugins if p.builtin)
        self.plugins.insert(position, PluginInfo(name, "hsm-core", __version__, "loaded", builtin=True, api=api_text()))

    @property
    def hook(self) -> Any:
        """The pluggy hook relay (``registry.hook.hsm_task_env(...)``)."""
        return self.pm.hook

    def _collect(self) -> None:
        if self._collected:
            return
        self._collected = True
        by_plugin = {p.name: p for p in self.plugins}
        for kind, hook_name in KIND_HOOKS.items():
            found: dict[str, ComponentRecord] = {}
            conflicts: dict[str, list[str]] = {}
            # get_hookimpls() lists plugins in registration order: built-ins first, then entry points.
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                info = by_plugin.get(impl.plugin_name)
                dist = info.distribution if info else impl.plugin_name
                try:
                    records = [_own_record(rec, dist, hook_name, guard=not (info and info.builtin))
                               for rec in impl.function() or []]
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:  # a plugin's registration must not break the others
                    _warn(f"plugin {impl.plugin_name!r} failed in {hook_name}: {exc!r}")
                    if info:
                        info.status, info.error = "failed", f"{hook_name}: {exc!r}"
                    continue
                for rec in records:
                    if rec.name in found:
                        conflicts.setdefault(rec.name, [found[rec.name].distribution or "?"]).append(dist)
                        continue
                    found[rec.name] = rec
                    if info:
                        info.provides.setdefault(kind, []).append(rec.name)
            self._components[kind] = found
            self._conflicts[kind] = conflicts

    def check(self) -> list[ComponentCheck]:
        """Import every lazy part (factory, ``detect``) of every registered component, built-ins too."""
        self._collect()
        owner = {(kind, name): p for p in self.plugins for kind, names in p.provides.items() for name in names}
        checks = []
        for kind in KIND_HOOKS:
            for name, rec in sorted(self.components(kind).items()):
                plugin = owner.get((kind, name))
                for part in ("factory", "detect", "job_from_env"):
                    ref = getattr(rec, part, None)
                    if ref is None:
                        continue
                    check = ComponentCheck(kind, name, plugin.name if plugin else "?", rec.distribution or "?", part)
                    if isinstance(ref, str):
                        try:
                            load_object(ref)
                        except KeyboardInterrupt:
                            raise
                        except BaseException as exc:
                            check.error = describe_failure(exc)
                    checks.append(check)
        return checks

    def components(self, kind: str) -> dict[str, ComponentRecord]:
        """All records of a kind, by name."""
        self._collect()
        return self._components.get(kind, {})

    def conflicts(self, kind: str) -> dict[str, list[str]]:
        """Names registered by more than one distribution (name -> distributions)."""
        self._collect()
        return self._conflicts.get(kind, {})

    def get(self, kind: str, name: str) -> Any:
        """The record of ``kind`` named ``name``, or a :class:`ComponentNotFound` that says what to do."""
        comps = self.components(kind)
        label = KIND_LABELS.get(kind, kind)
        if name in self.conflicts(kind):
            dists = " and ".join(self.conflicts(kind)[name])
            raise HsmError(
                f"{label} {name!r} is registered by two plugins: {dists}",
                hint="uninstall one, or disable it with HSM_DISABLE_PLUGINS",
            )
        if name in comps:
            return comps[name]
        for rec in comps.values():  # aliases (compute sources)
            if name in getattr(rec, "aliases", ()):
                return rec
        raise ComponentNotFound(self.missing_message(kind, name))

    def missing_message(self, kind: str, name: str) -> str:
        """The one-line error for a component nobody provides."""
        label = KIND_LABELS.get(kind, kind)
        available = ", ".join(sorted(self.components(kind))) or "none"
        import difflib

        close = difflib.get_close_matches(str(name), sorted(self.components(kind)), n=1, cutoff=0.6)
        guess = f", did you mean {close[0]!r}?" if close else ""
        parts = [f"unknown {label} {name!r}{guess} (available: {available})"]
        failed = [p for p in self.plugins if p.status == "failed"]
        if failed:
            parts.append("plugins that failed to load: " + "; ".join(f"{p.name}: {p.error}" for p in failed))
        dists = PACKAGE_HINTS.get((kind, name))
        if dists:
            parts.append(f"to get it, {install_hint(*dists)}")
        return "; ".join(parts)


def _own_record(record: object, dist: str, hook_name: str, *, guard: bool) -> ComponentRecord:
    """``record`` stamped with the distribution that registered it (guarded when it is a plugin's)."""
    if not isinstance(record, ComponentRecord):
        raise TypeError(f"{hook_name} returned {record!r}, not a record of hsm_core.plugin")
    record = dataclasses.replace(record, distribution=dist)
    return _guarded(record) if guard else record


def builtin_name(module: str) -> str:
    """``hsm_core.builtin.local`` is listed as ``core.local``."""
    return "core." + module.rsplit(".", 1)[-1]


def _warn(msg: str) -> None:
    print(f"hsm: warning: {msg}", file=sys.stderr)


def _env_list(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {x.strip() for x in raw.split(",") if x.strip()}


def _unknown_hooks(pm: pluggy.PluginManager, module: ModuleType) -> list[str]:
    """Hook implementations in ``module`` with no spec: a misspelled hook name."""
    marker = PROJECT_NAME + "_impl"
    return [
        name
        for name in dir(module)
        if name.startswith("hsm_")
        and hasattr(getattr(module, name), marker)
        and getattr(pm.hook, name, None) is None
    ]


def _register(pm: pluggy.PluginManager, module: ModuleType, name: str) -> str | None:
    bad = _unknown_hooks(pm, module)
    if bad:
        return f"implements unknown hook(s) {', '.join(bad)} (misspelled?)"
    pm.register(module, name=name)
    return None


def build_registry(
    *,
    builtins: Iterable[str] = BUILTIN_PLUGINS,
    entry_points: bool = True,
    extra: Iterable[tuple[str, ModuleType | object]] = (),
) -> PluginRegistry:
    """Build a fresh registry (tests use this; the CLI uses the cached :func:`get_registry`)."""
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    plugins: list[PluginInfo] = []
    for modname in builtins:
        module = import_module(modname)  # a broken built-in is a bug in hsm itself: let it raise
        name = builtin_name(modname)
        err = _register(pm, module, name)
        if err:
            raise RuntimeError(f"built-in plugin {modname}: {err}")
        plugins.append(PluginInfo(name, "hsm-core", __version__, "loaded", builtin=True, api=api_text()))

    disabled = _env_list("HSM_DISABLE_PLUGINS") or set()
    allowed = _env_list("HSM_LOAD_PLUGINS")
    if entry_points:
        from hsm_core.entry_points import plugin_entry_points

        for ep in plugin_entry_points(ENTRY_POINT_GROUP):  # sorted by name; cached (see there)
            dist, version = ep.distribution, ep.version
            info = PluginInfo(ep.name, dist, version, "loaded")
            plugins.append(info)
            if ep.name in disabled or "all" in disabled or (allowed is not None and ep.name not in allowed):
                info.status = "disabled"
                continue
            if pm.has_plugin(ep.name):
                info.status, info.error = "failed", f"name {ep.name!r} is already taken by another plugin"
                _warn(f"plugin {ep.name!r} ({dist}) not loaded: {info.error}")
                continue
            try:
                module = ep.load()
                declared = getattr(module, API_ATTRIBUTE, None)
                info.api = None if declared is None else str(declared)
                err = api_incompatibility(declared, ep.value.partition(":")[0])
                if err is None:
                    err = _register(pm, module, ep.name)
                if err is None:
                    info.warnings = deprecation_warnings(module)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # one try/except per entry point, by design (SystemExit too)
                err = describe_failure(exc)
            if err:
                info.status, info.error = "failed", err
                _warn(f"plugin {ep.name!r} ({dist} {version}) failed to load: {err}")
    for name, obj in extra:
        pm.register(obj, name=name)
        plugins.append(PluginInfo(name, name, "0", "loaded"))
    return PluginRegistry(pm, plugins)


_REGISTRY: PluginRegistry | None = None
#: The registry :func:`get_registry` built itself, and the plugin selection it was built under.
_BUILT: tuple[PluginRegistry, tuple[str | None, str | None]] | None = None


def _plugin_selection() -> tuple[str | None, str | None]:
    return os.environ.get("HSM_DISABLE_PLUGINS"), os.environ.get("HSM_LOAD_PLUGINS")


def get_registry() -> PluginRegistry:
    """The process-wide registry, built on first use."""
    global _REGISTRY, _BUILT
    if _REGISTRY is None:
        _REGISTRY = build_registry()
        _BUILT = (_REGISTRY, _plugin_selection())
    return _REGISTRY


def set_registry(registry: PluginRegistry | None) -> None:
    """Replace the process-wide registry (for tests: ``hsm_core.testing`` fixtures use it)."""
    global _REGISTRY
    _REGISTRY = registry


def is_installed_registry(registry: Any = None) -> bool:
    """True when ``registry`` (None: the process-wide one, built or still to be built) is what
    :func:`get_registry` makes of the installed plugins' entry points under the current
    ``HSM_DISABLE_PLUGINS`` / ``HSM_LOAD_PLUGINS``: what :mod:`hsm_core.config.checked_cache`
    records a check under. A registry a caller built or set (tests) is not."""
    if registry is None:
        if _REGISTRY is None:
            return True  # get_registry will build it from what is installed
        registry = _REGISTRY
    return _BUILT is not None and registry is _BUILT[0] and registry is _REGISTRY and _BUILT[1] == _plugin_selection()


# --------------------------------------------------------------------------------------------
# Installed components of one role (what configuration and the commands offer)
# --------------------------------------------------------------------------------------------


def scheduler_records(registry: Any) -> dict[str, ComputeSourceRecord]:
    """The installed batch schedulers, by name."""
    return {n: r for n, r in sorted(registry.components(ComputeSourceRecord.kind).items())
            if getattr(r, "batch_scheduler", False)}


def scheduler_names(registry: Any) -> list[str]:
    """Names and aliases of the installed batch schedulers (what ``hpc.system`` may say)."""
    names: list[str] = []
    for name, rec in scheduler_records(registry).items():
        names += [name, *getattr(rec, "aliases", ())]
    return names
