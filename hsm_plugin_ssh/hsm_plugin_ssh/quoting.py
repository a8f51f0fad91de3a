"""Remote command lines built from argv: every word is quoted for the remote POSIX shell.

An SSH server always hands the command to the user's login shell, so the only safe way to pass
values (parameters, paths, names) is to quote each word; nothing here ever pastes a value into a
command unquoted.
"""

from __future__ import annotations

import re
import shlex
from typing import Mapping, Sequence

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _word(value: object) -> str:
    text = str(value)
    if "\0" in text:
        raise ValueError("a command argument cannot contain a NUL byte")
    return shlex.quote(text)


def build_command(argv: Sequence[str], *, cwd: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The shell command line that runs ``argv`` (in ``cwd``, with ``env`` added) on the remote.

    ``env`` names must be identifiers; values, like every argv word, are single-quoted.
    """
    if not argv:
        raise ValueError("empty command")
    words = [_word(a) for a in argv]
    if env:
        assigns = []
        for key, value in env.items():
            if not _ENV_NAME.match(str(key)):
                raise ValueError(f"invalid environment variable name {key!r}")
            assigns.append(f"{key}={_word(value)}")
        words = assigns + words
    command = " ".join(words)
    if cwd:
        command = f"cd -- {_word(cwd)} && {command}"
    return command


def python_snippet(python: str, code: str) -> list[str]:
    """argv running ``code`` with the remote ``python`` (the data goes on stdin, never in argv)."""
    return [python, "-c", code]
