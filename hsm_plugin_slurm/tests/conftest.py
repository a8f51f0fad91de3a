"""Fixtures: the local Slurm cluster (hsm_core.testing.slurm_fixtures) and a throw-away project
(slurm_support.py, shared with the tests that import its helpers)."""

from hsm_core.testing.slurm_fixtures import slurm_cluster, slurm_env, squeue  # noqa: F401
from slurm_support import project  # noqa: F401
