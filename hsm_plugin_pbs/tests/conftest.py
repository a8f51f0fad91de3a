"""Fixtures: the local Slurm cluster (hsm_core.testing.slurm_fixtures) and a throw-away project
(pbs_support.py, shared with the tests that import its helpers)."""

from hsm_core.testing.slurm_fixtures import slurm_cluster, slurm_env, squeue  # noqa: F401
from pbs_support import pbs_cluster, project  # noqa: F401

# The test kit's fixtures (hsm_registry, hsm_builtin_registry) are opt-in: hsm-core registers no
# pytest plugin of its own, so every test directory names it here.
pytest_plugins = ["hsm_core.testing.pytest_plugin"]
