"""The test kit's fixtures are opt-in: hsm-core registers no pytest plugin of its own."""

pytest_plugins = ["hsm_core.testing.pytest_plugin"]
