"""Fixtures for the template's tests."""

# hsm's test kit (the hsm_registry and hsm_builtin_registry fixtures) is opt-in: name it here.
pytest_plugins = ["hsm_core.testing.pytest_plugin"]
