"""Hook implementations. Keep this module cheap to import: hsm loads it for every command.

The factory is given as a string, so ``source.py`` (and anything heavy it imports) is loaded only
when someone actually runs ``--sources example``.
"""

from __future__ import annotations

from typing import Callable

from hsm_core.plugin import ComputeSourceRecord, hookimpl

#: The plugin-API version this plugin is written for (see hsm_core.plugin.PLUGIN_API_VERSION): hsm
#: loads it only under a core whose API has the same major, else says "upgrade the plugin/hsm-core".
HSM_PLUGIN_API = "1.0"


@hookimpl
def hsm_register_compute_sources() -> list[ComputeSourceRecord]:
    return [
        ComputeSourceRecord(
            name="example",
            summary="Runs each task as a separate hsm-task process (template plugin)",
            factory="hsm_plugin_example.source:ExampleSource",
            config_schema={
                "type": "object",
                "properties": {"max_parallel_jobs": {"type": "integer", "minimum": 1}},
            },
        )
    ]


@hookimpl
def hsm_test_target(target: str, project_root: str, timeout: float, echo: Callable[[str], None]) -> bool | None:
    """``hsm test example``: answer only for your own target kinds (None lets other plugins answer),
    print one line per check, return whether all passed."""
    if target.split(":")[0] != "example":
        return None
    import subprocess
    import sys

    from hsm_core.plugin import RUNNER_MODULE

    proc = subprocess.run([sys.executable, "-c", f"import {RUNNER_MODULE}"], capture_output=True, text=True, timeout=timeout)
    passed = proc.returncode == 0
    detail = "" if passed else ": " + (proc.stderr.strip().splitlines() or ["no output"])[-1]
    echo(f"  [{'ok' if passed else 'FAIL'}] the task runner starts with {sys.executable}{detail}")
    return passed
