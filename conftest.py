"""Test-session settings for every test directory of this repository (core, plugins, template).

The suite runs on several pytest-xdist workers (``scripts/test.sh`` passes ``-n``), all but one
test group spread over them test by test. The exception: every test that uses the shared local
Slurm cluster (the Torque front-end is the same cluster) runs in ONE worker, one test after the
other, as without xdist. Such tests restart the cluster with other settings (``start_slurm(
max_array_size=2)``), count the jobs in its queue, and wait for its single node; two workers using
it at once would see each other's jobs and restarts. Every other test only uses its own tmp_path,
its own sshd instances (one directory per session: ``isolate_sshd``) and free ports, so it may run
next to anything.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

#: The group of the tests that use the shared cluster (``--dist loadgroup`` keeps it in one worker).
CLUSTER_GROUP = "slurm-cluster"

#: Fixtures that start or use the shared cluster (``project`` of the Slurm and PBS test directories
#: depends on ``slurm_cluster``, so it is covered through ``item.fixturenames``).
_CLUSTER_FIXTURES = {"slurm_cluster", "slurm_env", "squeue"}

#: What in a test module's source says it starts the cluster itself (a throw-away accounting cluster
#: uses the shared cluster's munged, the cross-source project a Slurm source of the shared cluster).
_USES_CLUSTER = re.compile(r"\bstart_slurm\b|\baccounting_cluster\b|\bcross_support\b|\bslurm_fixtures\b")

#: Test directories whose every test talks to the cluster or may (the scheduler plugins').
_CLUSTER_DIRS = ("hsm_plugin_slurm/tests", "hsm_plugin_pbs/tests")

_ROOT = Path(__file__).resolve().parent
_module_uses_cluster: dict[Path, bool] = {}


def _uses_cluster(item: pytest.Item) -> bool:
    if _CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("slurm"):
        return True
    path = Path(str(item.path)).resolve()
    try:
        rel = path.relative_to(_ROOT).as_posix()
    except ValueError:
        rel = ""
    if rel.startswith(_CLUSTER_DIRS):
        return True
    if path not in _module_uses_cluster:
        try:
            _module_uses_cluster[path] = bool(_USES_CLUSTER.search(path.read_text(encoding="utf-8")))
        except OSError:
            _module_uses_cluster[path] = False
    return _module_uses_cluster[path]


def pytest_configure(config: pytest.Config) -> None:
    # Known also when pytest-xdist is not installed (a plain `pytest` run): no unknown-mark warning.
    config.addinivalue_line("markers", "xdist_group(name): tests run in one pytest-xdist worker (--dist loadgroup)")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put every test of the shared cluster in one xdist group (a no-op without ``--dist loadgroup``)."""
    for item in items:
        if _uses_cluster(item):
            item.add_marker(pytest.mark.xdist_group(CLUSTER_GROUP))
