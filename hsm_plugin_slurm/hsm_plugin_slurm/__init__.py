"""hsm-plugin-slurm: run hsm sweeps as Slurm array jobs (``--sources slurm`` / ``hpc``)."""

__version__ = "0.1.0"
