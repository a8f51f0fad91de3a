"""Intermediate values a running task reports, read for early stopping (see docs/pruning.md).

A task reports the value of a metric at a step in either (or both) of two ways:

* a line on stdout: ``METRIC loss=0.41 step=3`` (several ``name=value`` pairs may share a line;
  ``step=`` is what makes it intermediate: a ``METRIC`` line without a step is a final metric, read
  by the result collectors when the task ends);
* a line of ``$HSM_TASK_DIR/intermediate.jsonl``: ``{"step": 3, "loss": 0.41}``.

Both files only grow while the task runs, so a :class:`ReportReader` reads each from where it
stopped the last time (a poll of a 1 GB log costs what was appended since). The last report of a
step wins (a task resumed from a checkpoint reports its steps again).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from hsm_core.taskdir import intermediate_path, stdout_path

#: ``METRIC loss=0.41 step=3``: the name/value pairs of a stdout line that has a step.
_PAIR = re.compile(r"([A-Za-z_][\w./-]*)=(\S+)")
_MARK = b"METRIC"


@dataclass
class _Tail:
    """How far one file was read, and what it held."""

    ident: tuple[int, int] = (0, 0)  #: (device, inode): a replaced file is read again from its start
    offset: int = 0
    partial: bytes = b""
    values: dict[str, dict[int, float]] = field(default_factory=dict)


def parse_stdout_line(line: str) -> tuple[int, dict[str, float]] | None:
    """``(step, {name: value})`` of an intermediate ``METRIC`` line, or None (not one)."""
    at = line.find("METRIC")
    if at < 0:
        return None
    pairs = dict(_PAIR.findall(line[at + len("METRIC"):]))
    step = _step(pairs.pop("step", None))
    if step is None:
        return None
    values = {k: v for k, v in ((k, _number(v)) for k, v in pairs.items()) if v is not None}
    return (step, values) if values else None


def parse_json_line(line: str) -> tuple[int, dict[str, float]] | None:
    """``(step, {name: value})`` of a line of ``intermediate.jsonl``, or None (not one)."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    step = _step(data.get("step"))
    if step is None:
        return None
    values = {str(k): v for k, v in ((k, _number(v)) for k, v in data.items() if k != "step") if v is not None}
    return step, values


def _step(raw: object) -> int | None:
    value = _number(raw)  # a whole, finite, non-negative number
    return int(value) if value is not None and math.isfinite(value) and value == int(value) and value >= 0 else None


def _number(raw: object) -> float | None:
    if isinstance(raw, bool):
        return None
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    # NaN is kept: a diverged run reports it, and pruners stop such a trial at once.
    return None if math.isinf(value) else value


class ReportReader:
    """Reads the intermediate values of many tasks, each file from where it stopped last time."""

    def __init__(self) -> None:
        self._tails: dict[Path, _Tail] = {}

    def values(self, task_dir: Path, metric: str) -> dict[int, float]:
        """step -> value of ``metric`` reported by the task so far (both ways merged; where both
        report a step, ``intermediate.jsonl`` wins)."""
        merged: dict[int, float] = {}
        for path, parse in ((stdout_path(task_dir), parse_stdout_line), (intermediate_path(task_dir), parse_json_line)):
            merged.update(self._read(path, parse).get(metric, {}))
        return merged

    def _read(self, path: Path, parse: "object") -> dict[str, dict[int, float]]:
        tail = self._tails.get(path)
        try:
            st = os.stat(path)
        except OSError:
            self._tails.pop(path, None)
            return {}
        ident = (st.st_dev, st.st_ino)
        if tail is None or tail.ident != ident or st.st_size < tail.offset:
            tail = self._tails[path] = _Tail(ident=ident)
        if st.st_size == tail.offset:
            return tail.values
        try:
            with open(path, "rb") as fh:
                fh.seek(tail.offset)
                chunk = fh.read(st.st_size - tail.offset)
        except OSError:
            return tail.values
        tail.offset += len(chunk)
        data = tail.partial + chunk
        lines = data.split(b"\n")
        tail.partial = lines.pop()  # a line still being written is read once it is whole
        is_stdout = parse is parse_stdout_line
        for raw in lines:
            if is_stdout and _MARK not in raw:
                continue  # most of a training log: skipped without decoding
            found = parse(raw.decode("utf-8", "replace").strip())  # type: ignore[operator]
            if found is None:
                continue
            step, values = found
            for name, value in values.items():
                tail.values.setdefault(name, {})[step] = value
        return tail.values
