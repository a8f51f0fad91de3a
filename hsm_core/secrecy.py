"""What hsm treats as a secret, and so keeps out of sight.

A key whose name says it holds a password, passphrase, token, secret or API key (``WANDB_API_KEY``,
``HF_TOKEN``, ``distributed.remotes.NAME.password``) holds a secret: ``hsm config show`` hides its
value, and a file hsm writes with one in it is for its owner only (``0600``), whatever the umask.
Every other file follows the umask, so a group can share a project's sweeps.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

#: Names of keys (config keys, environment variables) whose values are secrets. (``hsm config
#: set`` keeps the same pattern beside it in hsm_core.config: a split of that module is under way,
#: after which it imports this one.)
SECRET_KEY = re.compile(r"api[_-]?key|passw(or)?d|passphrase|secret|token", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """True when a key or variable called ``name`` holds a secret."""
    return bool(SECRET_KEY.search(str(name)))


def holds_secret(env: Mapping[str, Any] | None) -> bool:
    """True when a mapping of variables (a task's extra environment) has a secret in it."""
    return any(is_secret_name(k) and v not in (None, "") for k, v in (env or {}).items())
