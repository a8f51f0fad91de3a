"""Text that goes into job scripts, made safe (part of the array-job toolkit of :mod:`hsm_core.plugin`).

A partition, an account or a job name ends up in a directive line: :func:`check_name` refuses
anything that could add a directive of its own, :func:`check_line` anything of more than one line,
and :func:`finish_directives` applies dask-jobqueue's two escape hatches (extra directives to add,
generated lines to skip).
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from hsm_core.errors import ConfigError

__all__ = ["check_name", "check_line", "finish_directives", "directive_path"]

# Names that end up in directives: no whitespace, quotes, '#', or shell metacharacters.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.,:+@=%/\[\]-]+$")


def check_name(value: Any, key: str) -> str:
    """Return ``value`` as a string if it is safe in a directive (partition, account, job name ...).

    A value with whitespace, a newline, ``#``, quotes or shell characters could add a directive of
    its own (``debug\\n#SBATCH --uid=0``), so it is refused with a ConfigError.
    """
    text = str(value)
    if not _SAFE_NAME.match(text):
        raise ConfigError(
            f"{text!r} cannot be used in a job script",
            key=key,
            hint="use letters, digits and _ . , : + @ = % / [ ] - (no spaces, newlines, quotes or #)",
        )
    return text


def check_line(value: Any, key: str) -> str:
    """Return ``value`` if it is one line (no newline, carriage return or NUL); else ConfigError."""
    text = str(value)
    if any(c in text for c in "\n\r\x00"):
        raise ConfigError(f"{text!r} must be a single line", key=key, hint="give one directive or command per list entry")
    return text


def directive_path(path: Any, key: str = "log_dir") -> str:
    """An absolute path as a directive value: as is when it is a plain name, in double quotes
    when it holds spaces (sbatch and qsub read quoted directive values). A quote, a newline or a
    NUL could end the value or add a directive of its own: refused with a ConfigError."""
    text = str(path)
    if any(c in text for c in '"\n\r\x00'):
        raise ConfigError(f"{text!r} cannot be used in a job script", key=key,
                          hint="use a project directory whose path has no quotes or newlines")
    return text if _SAFE_NAME.match(text) else f'"{text}"'


def finish_directives(
    prefix: str, lines: Sequence[str], extra: Sequence[str] = (), skip: Sequence[str] = ()
) -> list[str]:
    """Directive lines with the escape hatches applied (dask-jobqueue's two knobs).

    ``skip``: generated lines containing any of these strings are dropped (e.g. ``--mem`` on a
    cluster that refuses it). ``extra``: directives appended as given; the ``prefix`` (``#SBATCH``,
    ``#PBS``) is added unless the entry already starts with it.
    """
    out = [ln for ln in lines if not any(s and s in ln for s in skip)]
    for i, item in enumerate(extra):
        text = check_line(item, f"extra_directives[{i}]").strip()
        if not text:
            continue
        out.append(text if text.startswith(prefix) else f"{prefix} {text}")
    return out




def scoped_directives(
    options: Any,
    *,
    prefix: str,
    scopes: Sequence[str] = (),
    foreign_forms: Sequence[str] = (),
    scheduler: str = "this scheduler",
    file: Any = None,
) -> tuple[str, ...]:
    """The raw directives one scheduler's job scripts get: ``extra_directives`` of the section
    (meant for every scheduler), then those under each of its ``scopes`` (``slurm:
    {extra_directives: [...]}``), which no other scheduler reads.

    A project written for one scheduler must not leak its directives into another's scripts,
    where the other's submission command refuses them (``#PBS #SBATCH ...``): an entry written
    in another scheduler's form (a ``#`` prefix other than ``prefix``, or one of
    ``foreign_forms`` such as ``--``) is a ConfigError naming ``file`` and the key.
    """
    out: list[str] = []
    places = [("extra_directives", options.get("extra_directives") or ())]
    for scope in scopes:
        section = options.get(scope)
        if isinstance(section, dict):
            places.append((f"{scope}.extra_directives", section.get("extra_directives") or ()))
    flat = options.get("extra_directives")
    if isinstance(flat, dict):
        # extra_directives: {slurm: [...], pbs: [...]}: each scheduler reads its own entries only.
        places = [(f"extra_directives.{scope}", flat.get(scope) or ()) for scope in scopes] + places[1:]
    for key, entries in places:
        if isinstance(entries, str):
            entries = [entries]
        for i, item in enumerate(entries):
            where = f"hpc.{key}[{i}]"
            text = check_line(item, where).strip()
            foreign = (text.startswith("#") and not text.startswith(prefix)) or any(text.startswith(f) for f in foreign_forms)
            if foreign:
                own = f"hpc.{scopes[0]}.extra_directives" if scopes else "extra_directives"
                raise ConfigError(
                    f"{text!r} is not a {scheduler} directive",
                    file=file,
                    key=where,
                    hint=f"put directives for one scheduler under its own key, hpc.<scheduler>.extra_directives; "
                         f"{scheduler} directives go under {own}",
                )
            out.append(text)
    return tuple(out)
