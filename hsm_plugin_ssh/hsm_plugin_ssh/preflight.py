"""Before a run (``hsm_before_run``): reach each ``ssh:`` source, discover its project, verify sync.

Everything that would make the remote tasks fail for certain stops the run here, before a sweep
directory is written: an unknown host key, refused keys, a missing project, Python or hsm-core, a
project that differs from this one (unless ``--no-verify-sync``). An unreachable host stops the run
only when no other source could work meanwhile; otherwise it starts unhealthy and the engine uses
it once it answers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import click

from hsm_core.plugin import HsmError

from hsm_plugin_ssh.discovery import discover
from hsm_plugin_ssh.host import HostUnreachable
from hsm_plugin_ssh.project_sync import push_project
from hsm_plugin_ssh.sync_check import check_remote


def _say(text: str) -> None:
    click.echo(text, err=True)


def before_run(sources: Sequence[Any], project_config: Mapping[str, Any], options: Mapping[str, Any]) -> None:
    """Prepare every SshSource in ``sources``; raise HsmError for what the user must fix first."""
    from hsm_plugin_ssh.source import SshSource

    ssh = [s for s in sources if isinstance(s, SshSource)]
    if not ssh:
        return
    root = Path(str(options.get("project_root") or ssh[0].context.project_root))
    interactive = bool(options.get("interactive"))
    unreachable: list[HostUnreachable] = []
    for src in ssh:
        try:
            rp = discover(src.host, src.options, root)
        except HostUnreachable as exc:
            unreachable.append(exc)
            continue
        if not rp.exists and interactive and click.confirm(
            f"The project is not on {src.name} (looked in {', '.join(rp.candidates)}). "
            f"Copy it to {rp.project_dir} now?", default=False, err=True
        ):
            _push(src, root, project_config)
            rp = discover(src.host, src.options, root)
        rp.raise_if_not_ready()
        src.remote = rp
        if options.get("verify_sync", True):
            _verify(src, root, project_config, interactive)
    if unreachable and len(unreachable) == len(sources):
        first = unreachable[0]
        raise HsmError(first.message, hint=first.hint or "check the host, or run elsewhere with --sources local")
    for exc in unreachable:
        _say(f"Warning: {exc.message}; continuing with the other sources (it is used once it answers)")


def _push(src: Any, root: Path, project_config: Mapping[str, Any]) -> None:
    result = push_project(src.host, src.options, root, project_config)
    _say(f"Pushed {len(result.sent)} file(s) to {src.name}:{result.remote_dir} ({result.method})")


def _verify(src: Any, root: Path, project_config: Mapping[str, Any], interactive: bool) -> None:
    report = check_remote(src.name, src.options, root, project_config, host=src.host, remote=src.remote)
    if report.in_sync:
        for note in report.notes:
            _say(f"{src.name}: {note}")
        return
    for line in report.lines():
        _say(line)
    if report.ok is False and interactive and click.confirm(
        f"Push the project to {src.name} now (hsm remote sync {src.name})?", default=False, err=True
    ):
        _push(src, root, project_config)
        report = check_remote(src.name, src.options, root, project_config, host=src.host, remote=src.remote)
        if report.in_sync:
            return
        for line in report.lines():
            _say(line)
    raise HsmError(
        f"the project on {src.name} is not the same as here: {report.summary()}",
        hint=f"push it with: hsm remote sync {src.name} (or skip this check with --no-verify-sync)",
    )
