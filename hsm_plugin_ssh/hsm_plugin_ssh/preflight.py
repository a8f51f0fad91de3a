"""Before a run (``SshSource.before_run``): reach the host, discover the project there, verify sync.

Everything that would make the remote tasks fail for certain stops the run here, before a sweep
directory is written: an unknown host key, refused keys, a missing project, Python or hsm-core, a
project that differs from this one (unless ``--no-verify-sync``). An unreachable host raises
``HostUnreachable``, a ``SourceUnavailable``: core stops the run only when no other source could
work meanwhile; otherwise it starts unhealthy and the engine uses it once it answers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import click

from hsm_core.plugin import HsmError, RunStart

from hsm_plugin_ssh.discovery import discover
from hsm_plugin_ssh.project_sync import push_project
from hsm_plugin_ssh.sync_check import check_remote


def _say(text: str) -> None:
    click.echo(text, err=True)


def before_run(src: Any, run: RunStart) -> None:
    """Prepare one SshSource: find the project there (offer to copy it), check it matches this one.

    Raises HostUnreachable (a :class:`SourceUnavailable`: core stops the run only when no other
    source could work meanwhile), or HsmError for what the user must fix first.
    """
    root = Path(src.context.project_root)
    project_config = src.context.project_config or {}
    interactive = run.interactive
    rp = discover(src.host, src.options, root)
    if not rp.exists and interactive and click.confirm(
        f"The project is not on {src.name} (looked in {', '.join(rp.candidates)}). "
        f"Copy it to {rp.project_dir} now?", default=False, err=True
    ):
        _push(src, root, project_config)
        rp = discover(src.host, src.options, root)
    rp.raise_if_not_ready()
    src.remote = rp
    if run.verify_sync:
        _verify(src, root, project_config, interactive)


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
