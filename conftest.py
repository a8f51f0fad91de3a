"""Test-session settings for every test directory of this repository (core, plugins, template).

The suite runs on several pytest-xdist workers (``scripts/test.sh`` passes ``-n N --dist
loadgroup``), the tests spread over them one by one. The exception: every test module that uses the
shared local Slurm cluster (the Torque front-end is the same cluster) runs in ONE worker, one test
after the other, as without xdist. Such tests restart the cluster with other settings
(``start_slurm(max_array_size=2)``), count the jobs in its queue and wait for its single node; two
workers using it at once would see each other's jobs and restarts. Every other test only uses its
own tmp_path, its own sshd instances (one directory per session: ``isolate_sshd``) and free ports,
so it may run next to anything.

The group is chosen here, by test module, in the xdist controller (which sees only test ids): every
module of the Slurm and PBS plugins' tests, and every other module whose source uses the cluster.
(pytest-xdist's own ``xdist_group`` marker is honoured too, but with pytest 9 it no longer reaches
the controller: it renames ``item._nodeid``, which pytest 9 no longer reads.)
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

#: The work unit of the tests that use the shared cluster.
CLUSTER_GROUP = "slurm-cluster"

#: What in a test module's source says it uses the cluster: the cluster fixtures, the
#: ``slurm`` marker, ``start_slurm``, the throw-away accounting cluster (it uses the shared cluster's
#: munged) and the cross-source project (a Slurm source of the shared cluster).
_USES_CLUSTER = re.compile(
    r"\bslurm_cluster\b|\bslurm_env\b|\bslurm_fixtures\b|mark\.slurm\b|\bstart_slurm\b"
    r"|\baccounting_cluster\b|\bcross_support\b"
)

#: Test directories whose every module talks to the cluster or may (the scheduler plugins').
_CLUSTER_DIRS = ("hsm_plugin_slurm/tests/", "hsm_plugin_pbs/tests/")

_ROOT = Path(__file__).resolve().parent
_module_uses_cluster: dict[str, bool] = {}


def uses_cluster(module: str) -> bool:
    """Whether the test module at *module* (a path relative to the repository) uses the cluster."""
    if module not in _module_uses_cluster:
        path = _ROOT / module
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            text = ""
        _module_uses_cluster[module] = module.startswith(_CLUSTER_DIRS) or bool(_USES_CLUSTER.search(text))
    return _module_uses_cluster[module]


#: Set to 80 and 24 in pytest-xdist's workers when the controller had them unset: `hsm` commands
#: the tests run would then wrap their tables at 80 columns, unlike in a plain pytest run.
_TERMINAL_ENV = ("COLUMNS", "LINES")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: hand each worker the controller's own terminal size variables."""
    node.workerinput["hsm_terminal_env"] = {name: os.environ.get(name) for name in _TERMINAL_ENV}


def pytest_configure(config: pytest.Config) -> None:
    """xdist worker: the environment of the tests and their commands is the controller's."""
    env = getattr(config, "workerinput", {}).get("hsm_terminal_env")
    for name, value in (env or {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup``: tests one by one, the cluster's modules as one unit (see above)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ClusterGroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if uses_cluster(nodeid.split("::", 1)[0]):
                return CLUSTER_GROUP
            if "@" in nodeid:  # an xdist_group marker, should xdist's renaming work again
                return nodeid.rsplit("@", 1)[-1]
            return nodeid

    return ClusterGroupScheduling(config, log)
