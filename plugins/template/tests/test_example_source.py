"""The template plugin passes the same contract suite as every hsm compute source."""

from __future__ import annotations

from pathlib import Path

from hsm_core.plugin import SourceContext
from hsm_core.testing import ComputeSourceContract
from hsm_plugin_example.source import ExampleSource


class TestExampleSource(ComputeSourceContract):
    timeout = 60.0

    def make_source(self, context: SourceContext, tmp_path: Path) -> ExampleSource:
        return ExampleSource("example", {"max_parallel_jobs": 2}, context)


def test_the_entry_point_registers_the_source(hsm_registry) -> None:  # fixture: tests/conftest.py
    plugin = next(p for p in hsm_registry.plugins if p.name == "example")
    # Not loaded, with "upgrade the plugin / hsm-core", when HSM_PLUGIN_API does not fit this core.
    assert plugin.status == "loaded", plugin.error
    record = hsm_registry.get("compute_source", "example")
    assert record.distribution == "hsm-plugin-example"
    assert record.load() is ExampleSource


def test_hsm_test_example_runs_the_plugins_check(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "hsm_core", "test", "example"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "[ok] the task runner starts with" in proc.stdout and "All checks passed." in proc.stdout
