"""hsm-plugin-pbs: run hsm sweeps as PBS Pro / OpenPBS or Torque array jobs."""

__version__ = "0.1.0"
