"""Entry point of the ``hsm`` command: a click group that plugins extend.

User errors (:class:`~hsm_core.plugin.HsmError`) are printed as one line and exit 2; a traceback is
shown only with ``--debug``.
"""

from __future__ import annotations

import errno
import os
import sys

import click

from hsm_core import __version__
from hsm_core.cli.lazy_group import LazyCommandGroup
from hsm_core.plugin import HsmError
from hsm_core.plugin_compat import api_text


class HsmGroup(LazyCommandGroup):
    """Turns HsmError into a one-line message with the error's exit code."""

    def resolve_command(self, ctx: click.Context, args: list[str]):  # type: ignore[override]
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            from hsm_core.cli.command_hint import command_hint

            ctx.fail(f"No such command '{name}'.{command_hint(name, self.list_commands(ctx))}")
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except HsmError as exc:
            if os.environ.get("HSM_DEBUG") or (ctx.obj or {}).get("debug"):
                raise
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)
        except OSError as exc:
            # Disk full, quota, permissions: the user's environment, not a bug. One line, exit 2.
            if os.environ.get("HSM_DEBUG") or (ctx.obj or {}).get("debug"):
                raise
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            hint = ""
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                # (A sweep that was running says which one to complete: lifecycle.execute.)
                hint = "; free some space, then run the command again"
            click.echo(f"Error: {exc.strerror or exc}{where}{hint}", err=True)
            ctx.exit(2)


@click.group(cls=HsmGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hsm", message=f"%(prog)s, version %(version)s (plugin API {api_text()})")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """hsm: run hyperparameter sweeps on local processes, SSH hosts, Slurm and PBS clusters."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def build_cli() -> click.Group:
    """:data:`cli` with every plugin's commands (built-ins included) added, once.

    ``hsm`` itself does not call this: it loads a command when it runs it
    (:class:`~hsm_core.cli.lazy_group.LazyCommandGroup`)."""
    cli.load_all()
    return cli


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (commands are loaded when used: see :mod:`hsm_core.cli.lazy_group`)."""
    cli.main(args=argv, prog_name="hsm")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
