"""The resource flags of ``hsm run``, ``hsm complete`` and ``hsm worker submit``: one vocabulary,
the sweep file's ``resources:`` keys (see :mod:`hsm_core.run_resources`)."""

from __future__ import annotations

import functools
from typing import Any, Callable

import click

#: Parameter names of the flags, as the ``resources`` mapping the command receives has them.
NAMES = ("walltime", "gpus", "cpus", "memory", "nodes", "partition", "account", "qos")


def resource_options(per: str = "task") -> Callable[[Any], Any]:
    """Add ``--walltime --gpus --cpus --mem --nodes --partition --account --qos`` to a command; it
    receives them as one keyword argument, ``resources`` (name -> value, None when not given).
    ``per`` names what one array element runs (``task``, ``worker``)."""
    options = [
        click.option("--walltime", metavar="TIME", help=f"Walltime per {per}: HH:MM:SS, D-HH:MM:SS, 90m, 4h."),
        click.option("--gpus", metavar="N|TYPE:N", help=f"GPUs per {per}, e.g. 2 or a100:2."),
        click.option("--cpus", type=click.IntRange(min=1), metavar="N", help=f"CPUs per {per}."),
        click.option("--mem", "--memory", "memory", metavar="SIZE", help=f"Memory per {per}, e.g. 16G or 500M."),
        click.option("--nodes", type=click.IntRange(min=1), metavar="N", help=f"Nodes per {per}."),
        click.option("--partition", "--queue", "partition", metavar="NAME", help="The batch scheduler's partition or queue."),
        click.option("--account", metavar="NAME", help="The account charged."),
        click.option("--qos", metavar="NAME", help="Quality of service."),
    ]

    def decorate(fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            kwargs["resources"] = {name: kwargs.pop(name, None) for name in NAMES}
            return fn(*args, **kwargs)

        for opt in reversed(options):
            wrapper = opt(wrapper)
        return wrapper

    return decorate
