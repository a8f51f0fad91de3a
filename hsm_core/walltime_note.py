"""The note for a walltime written the way another tool reads differently.

hsm reads ``1:00`` as one hour (``HH:MM``) and a bare ``60`` as sixty minutes, but Slurm's
``--time=1:00`` is one minute (``MM:SS``) and PBS/Torque's ``walltime=60`` sixty seconds. A user
who copies a value from an old job script gets a walltime 60 times longer than they meant, which
they only notice when the queue holds the job back. One line says how hsm read it and how to
write the other meaning, before anything is submitted.
"""

from __future__ import annotations

import re

__all__ = ["ambiguous_walltime_note"]

_TWO_FIELDS = re.compile(r"^(?P<a>\d+):(?P<b>\d{1,2})$")


def ambiguous_walltime_note(flag: str, value: object) -> str | None:
    """One line (without a ``Note:`` prefix) when ``value`` is ``H:MM`` or a bare number of
    minutes, forms Slurm or PBS read otherwise; None for unambiguous forms (``HH:MM:SS``,
    ``D-HH:MM``, ``90m``, ``4h``) and values that are not a walltime at all."""
    text = str(value).strip()
    m = _TWO_FIELDS.match(text)
    if m:
        a, b = int(m.group("a")), int(m.group("b"))
        return (f"{flag} {text} is read as {a:02d}:{b:02d}:00 ({a} h {b} min, HH:MM); a job script's MM:SS reads it as "
                f"{a} min {b} s: write 00:{a:02d}:{b:02d} for that, or {a:02d}:{b:02d}:00 to silence this note")
    if text.isdigit() and int(text) > 0:
        n = int(text)
        return (f"{flag} {text} is read as {n} minutes; a job script's bare number of seconds reads it as {n} s: "
                f"write {n}s for that, or {n}m to silence this note")
    return None
