"""Fixtures (defined in ssh_support.py, shared with the tests that import its helpers)."""

from ssh_support import project, sshd  # noqa: F401

# The test kit's fixtures (hsm_registry, hsm_builtin_registry) are opt-in: hsm-core registers no
# pytest plugin of its own, so every test directory names it here.
pytest_plugins = ["hsm_core.testing.pytest_plugin"]
