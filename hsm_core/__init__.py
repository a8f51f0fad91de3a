"""hsm: hyperparameter sweeps on local processes, SSH hosts and HPC clusters."""

__version__ = "0.1.0"
