"""What Slurm's accounting (sacct) says an array element used: elapsed time, peak memory, CPU
efficiency and nodes, for ``hsm status --tasks`` and ``hsm export``.

``sacct -P`` prints one line for the element's allocation (``12345_7``) and one per step
(``12345_7.batch``, ``12345_7.extern``, ``12345_7.0``). The allocation line has the elapsed time,
the CPU time it was allotted (``CPUTimeRAW`` = elapsed x allocated CPUs), the CPU time used by all
its steps together (``TotalCPU``) and the node list; the memory peak is only on the steps
(``MaxRSS``), so the element's is the largest of its steps'. CPU efficiency is used / allotted, as
Slurm's ``seff`` computes it.
"""

from __future__ import annotations

import re
from typing import Any

#: The fields asked for, in this order (``sacct --format``).
SACCT_FIELDS = ("JobID", "ElapsedRaw", "CPUTimeRAW", "TotalCPU", "MaxRSS", "NodeList")

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}
_RSS = re.compile(r"^(?P<n>\d+(?:\.\d+)?)(?P<unit>[KMGTP]?)$", re.I)
_CPU = re.compile(r"^(?:(?P<d>\d+)-)?(?:(?P<h>\d+):)?(?P<m>\d+):(?P<s>\d+(?:\.\d+)?)$")


def parse_rss(text: str) -> int | None:
    """``145792K`` -> bytes (sacct's units are powers of 1024); None when empty or unreadable."""
    m = _RSS.match(text.strip())
    if not m:
        return None
    return int(float(m.group("n")) * _UNITS[m.group("unit").upper()])


def parse_cpu_time(text: str) -> float | None:
    """sacct's ``[D-][HH:]MM:SS[.mmm]`` (TotalCPU) -> seconds; None when empty or unreadable."""
    m = _CPU.match(text.strip())
    if not m:
        return None
    days, hours = int(m.group("d") or 0), int(m.group("h") or 0)
    return ((days * 24 + hours) * 60 + int(m.group("m"))) * 60 + float(m.group("s"))


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def parse_sacct_usage(stdout: str, sep: str = "|") -> dict[str, dict[str, Any]]:
    """``sacct -n -P --format=<SACCT_FIELDS>`` output -> element id -> ``elapsed`` (s),
    ``max_rss`` (bytes), ``cpu_efficiency`` (0..1, rounded to 3 places), ``nodes``; a value
    sacct leaves empty (a job that never ran) is left out."""
    out: dict[str, dict[str, Any]] = {}
    peaks: dict[str, int] = {}
    for line in stdout.splitlines():
        parts = line.split(sep)
        if len(parts) < len(SACCT_FIELDS) or not parts[0].strip():
            continue
        job, elapsed, allotted, used, rss, nodes = (p.strip() for p in parts[: len(SACCT_FIELDS)])
        element, dot, _step = job.partition(".")
        if dot:
            peak = parse_rss(rss)
            if peak is not None:
                peaks[element] = max(peak, peaks.get(element, 0))
            continue
        row: dict[str, Any] = {}
        seconds, cpu_total, cpu_used = _int(elapsed), _int(allotted), parse_cpu_time(used)
        if seconds is not None:
            row["elapsed"] = seconds
        if cpu_total and cpu_used is not None:
            row["cpu_efficiency"] = round(min(cpu_used / cpu_total, 1.0), 3)
        if nodes and nodes not in ("None assigned", "(null)"):
            row["nodes"] = nodes
        out[element] = row
    for element, peak in peaks.items():
        out.setdefault(element, {})["max_rss"] = peak
    return {k: v for k, v in out.items() if v}
