"""``hsm test TARGET``: the source the target names checks itself (:meth:`ComputeSource.test`).

The source is created as ``--sources TARGET`` would create it (``hpc`` and ``hpc:NAME`` are the
batch scheduler of ``hpc.system``, or the one detected here). A source without a test, or a target
that names no installed source, is asked of the deprecated ``hsm_test_target`` hook (plugin API
1.x); when nobody answers, the target cannot be tested (a one-line error, exit 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from hsm_core.plugin import ComponentNotFound, ComputeSource, ComputeSourceRecord, HsmError, TargetTest
from hsm_core.sources import HPC


def has_test(cls: type) -> bool:
    """True when a source class implements :meth:`ComputeSource.test` (the default says "no test")."""
    return getattr(cls, "test", ComputeSource.test) is not ComputeSource.test


def _source_class(kind: str, registry: Any) -> type | None:
    """The class of the installed source ``kind`` (or alias); None when no plugin provides it."""
    try:
        record = registry.get(ComputeSourceRecord.kind, kind)
    except ComponentNotFound:
        return None
    return record.load()


def _own_test(target: str, project_root: Path, registry: Any, check: TargetTest) -> bool | None:
    """The answer of the source ``target`` names; None when it has no test."""
    from hsm_core.config.project_config import load_project_config
    from hsm_core.targets import scheduler_source, target_source

    kind = target.split(":")[0].lower()
    if kind != HPC:
        cls = _source_class(kind, registry)
        if cls is None or not has_test(cls):
            return None
    project = load_project_config(project_root, registry)
    # hpc[:NAME] names a batch scheduler; anything else is refused there, as for hsm queue.
    source = scheduler_source(target, project, registry) if kind == HPC else target_source(target, project, registry)
    try:
        if not has_test(type(source)):
            return None
        try:
            return bool(source.test(check))
        except NotImplementedError:
            return None
    finally:
        try:
            source.close()
        except Exception:  # closing must not hide the answer
            pass


def check_target(target: str, project_root: Path, registry: Any, *, timeout: float, echo: Callable[[str], None]) -> bool:
    """Run ``hsm test TARGET``'s checks, printing one line per check; True when all passed."""
    from functools import partial

    from hsm_core.plugin.project import make_probe_task

    check = TargetTest(target=target, timeout=timeout, echo=echo,
                       make_probe_task=partial(make_probe_task, project_root=project_root))
    passed = _own_test(target, project_root, registry, check)
    if passed is None:
        # Plugins written for plugin API 1.0/1.1 answer through the deprecated hook.
        passed = registry.hook.hsm_test_target(target=target, project_root=str(project_root), timeout=timeout, echo=echo)
    if passed is None:
        from hsm_core.targets import scheduler_hint

        raise HsmError(f"no installed plugin tests {target!r}",
                       hint=f"targets: {scheduler_hint(registry)}; other kinds with their plugins")
    return bool(passed)
