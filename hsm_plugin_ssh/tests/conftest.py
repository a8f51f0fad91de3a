"""Fixtures (defined in ssh_support.py, shared with the tests that import its helpers)."""

from ssh_support import project, sshd  # noqa: F401
