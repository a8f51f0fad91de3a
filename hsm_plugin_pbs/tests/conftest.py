"""Fixtures (defined in pbs_support.py, shared with the tests that import its helpers)."""

from pbs_support import project, slurm_cluster, slurm_env, squeue  # noqa: F401
