"""``hsm completion bash|zsh|fish``: the shell's completion script (click's shell completion),
and what it completes beyond command and option names: sweep ids and ``--sources`` entries."""

from __future__ import annotations

from typing import Any

import click

SHELLS = ("bash", "zsh", "fish")
#: The environment variable click's completion scripts set when they ask ``hsm`` for candidates.
COMPLETE_VAR = "_HSM_COMPLETE"


def _project_dir(ctx: click.Context) -> str | None:
    """``--project-dir`` given to this command or a parent (``hsm monitor --project-dir D errors``)."""
    while ctx is not None:
        value = ctx.params.get("project_dir")
        if value:
            return str(value)
        ctx = ctx.parent  # type: ignore[assignment]
    return None


def _complete_sweep_id(ctx: click.Context, incomplete: str) -> list[Any]:
    from click.shell_completion import CompletionItem

    from hsm_core.completion import sweep_id_candidates

    return [CompletionItem(c) for c in sweep_id_candidates(_project_dir(ctx)) if c.startswith(incomplete)]


def _complete_sources(ctx: click.Context, incomplete: str) -> list[Any]:
    from click.shell_completion import CompletionItem

    from hsm_core.completion import complete_list, source_candidates
    from hsm_core.registry import get_registry

    try:
        candidates = source_candidates(_project_dir(ctx), get_registry())
    except Exception:
        return []
    return [CompletionItem(c) for c in complete_list(candidates, incomplete)]


def add_value_completion(group: click.Group) -> None:
    """Let every ``SWEEP_ID`` argument and ``--sources`` option under ``group`` complete values,
    plugins' commands included (they need not know about completion)."""
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is not None:
            add_command_value_completion(command)


def add_command_value_completion(command: click.Command) -> None:
    """:func:`add_value_completion` for one command (and its subcommands, if it is a group): the
    command line calls it for each command it loads on demand."""
    for param in command.params:
        if isinstance(param, click.Argument) and param.name == "sweep_id":
            param.shell_complete = _complete_sweep_id  # type: ignore[method-assign]
        elif isinstance(param, click.Option) and param.name == "sources":
            param.shell_complete = _complete_sources  # type: ignore[method-assign]
    if isinstance(command, click.Group):
        add_value_completion(command)


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion_command(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL (commands, options, sweep ids, --sources entries).

    \b
    bash:  echo 'eval "$(hsm completion bash)"' >> ~/.bashrc
    zsh:   echo 'eval "$(hsm completion zsh)"' >> ~/.zshrc
    fish:  hsm completion fish > ~/.config/fish/completions/hsm.fish
    """
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None  # click ships all three
    root = ctx.find_root()
    click.echo(cls(root.command, {}, "hsm", COMPLETE_VAR).source())


def register(cli: click.Group) -> None:
    """Add completion."""
    cli.add_command(completion_command)
