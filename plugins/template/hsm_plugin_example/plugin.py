"""Hook implementations. Keep this module cheap to import: hsm loads it for every command.

The factory is given as a string, so ``source.py`` (and anything heavy it imports) is loaded only
when someone actually runs ``--sources example``.
"""

from __future__ import annotations

from hsm_core.plugin import ComputeSourceRecord, hookimpl


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
