"""Template hsm plugin (copy this directory to start your own)."""

__version__ = "0.1.0"
