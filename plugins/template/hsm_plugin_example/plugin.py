"""Hook implementations. Keep this module cheap to import: hsm loads it for every command.

The factory is given as a string, so ``source.py`` (and anything heavy it imports) is loaded only
when someone actually runs ``--sources example`` (or ``hsm test example``, which calls
``ExampleSource.test``: behaviour lives in the source class, hooks only register).
"""

from __future__ import annotations

from hsm_core.plugin import ComputeSourceRecord, hookimpl

#: The plugin-API version this plugin is written for (see hsm_core.plugin.PLUGIN_API_VERSION): hsm
#: loads it only under a core whose API has the same major, else says "upgrade the plugin/hsm-core".
HSM_PLUGIN_API = "1.2"  # 1.2: ExampleSource.test and before_run (hsm test example, checks before a run)


@hookimpl
def hsm_register_compute_sources() -> list[ComputeSourceRecord]:
    return [
        ComputeSourceRecord(
            name="example",
            summary="Runs each task as a separate hsm-task process (template plugin)",
            factory="hsm_plugin_example.source:ExampleSource",
            config_schema={
                "type": "object",
                "properties": {
                    "max_parallel_jobs": {"type": "integer", "minimum": 1},
                    "kill_grace": {"type": "number", "minimum": 0, "description": "seconds between SIGTERM and SIGKILL"},
                },
            },
        )
    ]
