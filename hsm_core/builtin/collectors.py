"""Built-in plugin: result collectors reading ``metrics.json`` and ``METRIC name=value`` stdout lines."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from hsm_core.plugin import CollectorRecord, ResultCollector, hookimpl
from hsm_core.taskdir import METRICS_FILE, STDOUT_LOG, metrics_paths, stdout_path

# "METRIC loss=0.25" or "hsm_metric: acc: 0.9" anywhere on a line of stdout.
_METRIC_LINE = re.compile(
    r"(?:^|\s)(?:METRIC|hsm_metric):?\s+([A-Za-z_][\w./-]*)\s*[=:]\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)


class MetricsJson(ResultCollector):
    """Metrics the script wrote itself to ``$HSM_TASK_DIR/metrics.json`` (a JSON object), or else to
    ``$HSM_OUTPUT_DIR/metrics.json``: scripts that put every output in the output dir put it there."""

    def collect(self, task_dir: Path) -> dict[str, Any]:
        for path in metrics_paths(task_dir):
            try:
                data = json.loads(path.read_text())
            except FileNotFoundError:
                continue
            except (OSError, ValueError):
                return {}
            return data if isinstance(data, dict) else {}
        return {}


class StdoutMetrics(ResultCollector):
    """``METRIC name=value`` lines in ``stdout.log`` (the last value of each name wins)."""

    def collect(self, task_dir: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        try:
            with open(stdout_path(task_dir), "rb") as fh:
                for raw in fh:
                    if b"METRIC" not in raw and b"hsm_metric" not in raw:
                        continue
                    m = _METRIC_LINE.search(raw.decode("utf-8", "replace").rstrip())
                    if m:
                        out[m.group(1)] = float(m.group(2))
        except OSError:
            return {}
        return out


@hookimpl
def hsm_register_result_collectors() -> list[CollectorRecord]:
    return [
        CollectorRecord("metrics_json", f"{METRICS_FILE} written by the script", MetricsJson),
        CollectorRecord("stdout", f"METRIC name=value lines in {STDOUT_LOG}", StdoutMetrics),
    ]
