"""How to install one of the plugins shipped in hsm's repository, told in error messages.

None of hsm's distributions is on a package index, so a hint never says ``pip install NAME``: a
stranger could publish that name. It names what really installs the plugin: the directory in a
checkout of hsm (the absolute path when hsm-core itself runs from a checkout, as an editable install
does), or what the site's admins wrote in ``HSM_INSTALL_HINT`` (``module load hsm-{directory}``,
``pip install /opt/hsm/src/{directory}`` ...; ``{distribution}`` and ``{directory}`` are filled in).
"""

from __future__ import annotations

import os
from pathlib import Path

#: Each shipped plugin distribution -> its directory in hsm's repository.
SHIPPED_PLUGINS: dict[str, str] = {
    "hsm-plugin-slurm": "hsm_plugin_slurm",
    "hsm-plugin-pbs": "hsm_plugin_pbs",
    "hsm-plugin-ssh": "hsm_plugin_ssh",
    "hsm-plugin-wandb-sync": "hsm_plugin_wandb_sync",
}

#: A site's own install instruction, a template with ``{distribution}`` and ``{directory}``.
SITE_HINT_VARIABLE = "HSM_INSTALL_HINT"


def checkout_root() -> Path | None:
    """The checkout of hsm's repository this hsm-core runs from, or None (installed as a wheel)."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() else None


def install_command(distribution: str) -> str:
    """What installs ``distribution`` here: the site's hint, else ``pip install`` of its directory."""
    directory = SHIPPED_PLUGINS.get(distribution, distribution.replace("-", "_"))
    site = os.environ.get(SITE_HINT_VARIABLE, "").strip()
    if site:
        try:
            return site.format(distribution=distribution, directory=directory)
        except (KeyError, IndexError, ValueError):  # a typo in the site's template: show it as written
            return site
    root = checkout_root()
    if root is not None and (root / directory / "pyproject.toml").is_file():
        return f"pip install {root / directory}"
    return f"pip install ./{directory} in a checkout of hsm's repository"


def install_hint(*distributions: str) -> str:
    """``install hsm-plugin-ssh with: pip install ...``, alternatives joined by "or"."""
    return "install " + " or ".join(f"{d} with: {install_command(d)}" for d in distributions)
