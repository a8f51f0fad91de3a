"""The ``hsm`` command line (click). Commands are added through ``hsm_register_commands``."""
