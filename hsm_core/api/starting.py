"""Starting and completing sweeps from Python: what :func:`~hsm_core.api.sweeps.run` and
:meth:`Sweep.complete <hsm_core.api.sweeps.Sweep.complete>` do, in this process (blocking) or in
the background. This module deals in sweep directories; :mod:`hsm_core.api.sweeps` wraps them in
:class:`~hsm_core.api.sweeps.Sweep` (so that reading a sweep never imports this module).

In this process the library does what ``hsm run`` / ``hsm complete`` do after parsing: plan, make
every check, execute. In the background it is the ``hsm`` command itself
(:mod:`hsm_core.api.background`), since only a process of its own outlives a notebook's kernel.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Mapping

from hsm_core.api.background import CONTROLLER_DIR, start_controller
from hsm_core.config.project_config import ProjectConfig, load_project_config
from hsm_core.config.project_root import resolve_project_root
from hsm_core.errors import HsmError
from hsm_core.state import SweepDir
from hsm_core.sweep_select import resolve_sweep


def start_run(config: str | Path | Mapping[str, Any], *, project: str | Path | None, sources: str | None,
              parallel_limit: int | None, max_runs: int | None, sweep_id: str | None, strategy: str | None,
              wait: bool) -> tuple[SweepDir, ProjectConfig, subprocess.Popen | None]:
    """What :func:`hsm_core.api.sweeps.run` does: the sweep it started, its project, and the
    background controller (None when the sweep ran here, ``wait=True``)."""
    from hsm_core.lifecycle import plan_run
    from hsm_core.registry import get_registry

    proj = load_project_config(resolve_project_root(project, climb=True))
    registry = get_registry()
    path = _config_file(config, proj)
    # A dict is written to a file for the controller to read; the sweep keeps its own copy.
    written = path if isinstance(config, Mapping) else None
    keep = False
    try:
        if not wait:
            if sweep_id is None:
                sweep_id = _free_sweep_id(proj.output_dir)
            plan = plan_run(path, registry, project_root=proj.root, sweep_id=sweep_id, max_runs=max_runs)
            _preflight(plan, registry, sources, strategy)  # a refused run fails here, not in a log file
            argv = ["run", "-c", str(path), "--sweep-id", sweep_id,
                    *_flags(sources=sources, parallel_limit=parallel_limit, strategy=strategy, max_runs=max_runs)]
            proc, started = start_controller(argv, proj.root, proj.output_dir, sweep_id, new=True)
            keep = not started  # still starting: it has not read the file yet
            return resolve_sweep(proj, sweep_id), proj, proc
        plan = plan_run(path, registry, project_root=proj.root, sweep_id=sweep_id, max_runs=max_runs)
        chosen_sources, chosen_strategy = _preflight(plan, registry, sources, strategy)
        _execute(plan, registry, chosen_sources, chosen_strategy, parallel_limit, f"hsm.run({str(path)!r})")
        return plan.sweep, plan.project, None
    except HsmError as exc:
        raise _named_as_dict(exc, written)
    finally:
        if written is not None and not keep:
            written.unlink(missing_ok=True)


def _config_file(config: str | Path | Mapping[str, Any], project: ProjectConfig) -> Path:
    """The sweep file to run: a path as given (cwd, else project root), or a dict written to
    ``<output_dir>/.controllers/`` (the sweep keeps its own copy as sweep_config.yaml)."""
    if isinstance(config, Mapping):
        import tempfile

        import yaml

        where = project.output_dir / CONTROLLER_DIR
        where.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="sweep-", suffix=".yaml", dir=where)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yaml.safe_dump(dict(config), fh, sort_keys=False)
        return Path(name)
    return _config_path(config, project.root)


def _named_as_dict(exc: HsmError, written: Path | None) -> HsmError:
    """*exc* with the temporary file a sweep dict was written to (``path:line: ``) named as the dict:
    the file is removed before the user reads the error, and its line numbers are not the dict's."""
    if written is None:
        return exc
    import re

    where = re.compile(r"\S*" + re.escape(written.name) + r"(?::\d+)?(: )?")
    exc.message = where.sub(lambda m: "sweep dict (config=)" + (m.group(1) or ""), exc.message)
    if exc.hint:
        exc.hint = where.sub(lambda m: "sweep dict (config=)" + (m.group(1) or ""), exc.hint)
    exc.args = (exc.message,)
    return exc


def _config_path(config: str | Path, root: Path) -> Path:
    path = Path(config).expanduser()
    if not path.is_absolute() and not path.exists() and (root / path).exists():
        path = root / path
    if not path.is_file():
        raise HsmError(f"sweep file {config} does not exist", hint=f"give a path relative to {Path.cwd()} or to {root}")
    return path.absolute()


def _free_sweep_id(output_dir: Path) -> str:
    from hsm_core.state import new_sweep_id

    base = candidate = new_sweep_id()
    n = 1
    while (Path(output_dir) / candidate).exists():
        n += 1
        candidate = f"{base}_{n}"
    return candidate


def _preflight(plan: Any, registry: Any, sources: str | None, strategy: str | None) -> tuple[str, str]:
    """The checks of ``hsm run`` (sources, strategy, command, script): returns (sources, strategy)."""
    from hsm_core.preflight import Origin, check_run, sources_setting, strategy_setting

    chosen_sources = sources_setting(sources, plan.project, plan.spec)
    chosen_strategy = strategy_setting(strategy, plan.project, plan.spec)
    if sources:
        chosen_sources = (sources, Origin("sources="))
    if strategy:
        chosen_strategy = (strategy, Origin("strategy="))
    check_run(plan.project, plan.spec, [(r.name, r.params) for r in plan.to_run], registry,
              sources=chosen_sources, strategy=chosen_strategy)
    return chosen_sources[0], chosen_strategy[0]


def _execute(plan: Any, registry: Any, sources: str, strategy: str, parallel_limit: int | None, command_line: str,
             *, given_sources: str | None = None, given_strategy: str | None = None) -> None:
    """Carry out ``plan`` in this process (what ``hsm run``/``hsm complete`` do after planning)."""
    from hsm_core.lifecycle import ExecOptions, execute, settle_sweep_status

    try:
        if not plan.new_sweep:
            from hsm_core.preflight import Origin, check_run

            check_run(plan.project, plan.spec, [(r.name, r.params) for r in plan.to_run], registry,
                      sources=(sources, Origin("sources=" if given_sources else "sources")),
                      strategy=(strategy, Origin("strategy=" if given_strategy else "strategy")))
        if not plan.to_run and not plan.to_adopt:
            if not plan.new_sweep:
                settle_sweep_status(plan)
            return
        opts = ExecOptions(sources=sources, strategy=strategy, parallel_limit=parallel_limit, command_line=command_line)
        from hsm_core.engine import Interrupted

        try:
            execute(plan, opts, registry)
        except Interrupted:
            # The engine stopped the tasks (Ctrl-C, "interrupt kernel"): to Python code this is
            # the KeyboardInterrupt it asked for, not an error of the sweep.
            raise KeyboardInterrupt(f"sweep {plan.sweep.sweep_id} interrupted; its tasks were stopped, "
                                    "continue with sweep.complete()") from None
        if plan.lease is not None and plan.lease.lost:
            raise plan.lease.lost_error()
    finally:
        plan.release_lease()


def _flags(**options: Any) -> list[str]:
    """Command-line flags for the options that are set (``parallel_limit=4`` -> ``--parallel-limit 4``)."""
    out: list[str] = []
    for name, value in options.items():
        if value is not None:
            out += [f"--{name.replace('_', '-')}", str(value)]
    return out


def complete_sweep(sweep_id: str, sweep_dir: Path, project: ProjectConfig, *, retry_failed: bool, sources: str | None,
                   parallel_limit: int | None, strategy: str | None, config: str | Path | Mapping[str, Any] | None,
                   wait: bool) -> subprocess.Popen | None:
    """What :meth:`Sweep.complete <hsm_core.api.sweeps.Sweep.complete>` does: ``hsm complete`` on the
    sweep; returns the background controller (None when it ran here, ``wait=True``)."""
    path = _config_file(config, project) if config is not None else None
    written = path if isinstance(config, Mapping) else None
    keep = False
    try:
        if not wait:
            argv = ["complete", sweep_id, *_flags(sources=sources, parallel_limit=parallel_limit, strategy=strategy,
                                                 config=path)]
            if retry_failed:
                argv.append("--retry-failed")
            proc, started = start_controller(argv, project.root, Path(sweep_dir).parent, sweep_id, new=False)
            keep = not started
            return proc
        from hsm_core.lifecycle import plan_complete
        from hsm_core.registry import get_registry

        registry = get_registry()
        plan = plan_complete(sweep_id, registry, project_root=project.root, retry_failed=retry_failed,
                             config_file=path)
        meta = plan.sweep.read_metadata()
        _execute(plan, registry, sources or meta.get("sources") or "local",
                 strategy or meta.get("strategy") or "round_robin", parallel_limit,
                 f"hsm.Sweep({sweep_id!r}).complete()", given_sources=sources, given_strategy=strategy)
        return None
    except HsmError as exc:
        raise _named_as_dict(exc, written)
    finally:
        if written is not None and not keep:
            written.unlink(missing_ok=True)
