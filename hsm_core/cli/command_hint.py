"""The hint after "No such command": the command a user probably meant.

Words other sweep tools use for what hsm calls differently get their hsm spelling (``retry`` is
``hsm complete --retry-failed``); a typo gets the closest command names.
"""

from __future__ import annotations

import difflib

# What users type, from other tools' vocabulary, and what does it in hsm.
OTHER_TOOLS_WORDS = {
    "retry": "hsm complete --retry-failed",
    "rerun": "hsm complete --retry-failed",
    "resume": "hsm complete",
    "continue": "hsm complete",
    "restart": "hsm complete",
    "stop": "hsm cancel",
    "kill": "hsm cancel",
    "ls": "hsm recent",
    "list": "hsm recent",
    "ps": "hsm queue",
    "agent": "hsm worker",
}


def command_hint(name: str, commands: list[str]) -> str:
    """" Did you mean ...?" for ``name``, or "" when nothing is close."""
    meant = OTHER_TOOLS_WORDS.get(name.lower())
    if meant and meant.split()[1] in commands:
        return f" Did you mean '{meant}'?"
    close = difflib.get_close_matches(name, commands, n=2, cutoff=0.6)
    if close:
        return " Did you mean " + " or ".join(f"'hsm {c}'" for c in close) + "?"
    return ""
