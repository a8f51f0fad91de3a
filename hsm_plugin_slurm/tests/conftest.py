"""Fixtures (defined in slurm_support.py, shared with the tests that import its helpers)."""

from slurm_support import project, slurm_cluster, slurm_env, squeue  # noqa: F401
