"""Summarise a chaos run: ``python tests/support/chaos_report.py REPORT.jsonl`` (written by the
chaos tests when ``HSM_CHAOS_REPORT`` is set; ``scripts/chaos.sh`` does both)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path


def summarise(path: Path) -> str:
    rows = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    out = ["| fault (test) | result | rounds | seconds | what was injected and what happened |",
           "| --- | --- | --- | --- | --- |"]
    totals: Counter[str] = Counter()
    for row in rows:
        stats = ", ".join(f"{k}: {v}" for k, v in sorted(row["stats"].items()))
        result = "held" if row["passed"] else f"FAILED in round {row['rounds_done'] + 1}"
        out.append(f"| {row['test']} | {result} | {row['rounds_done']}/{row['rounds']} | {row['seconds']:.0f} | {stats} |")
        totals["tests"] += 1
        totals["passed"] += int(row["passed"])
        totals["rounds"] += row["rounds_done"]
        totals["seconds"] += row["seconds"]
        for note in row.get("notes") or []:
            out.append(f"|  | note | | | {note} |")
    seeds = sorted({row["seed"] for row in rows})
    out.append("")
    out.append(f"{totals['passed']}/{totals['tests']} faults held over {totals['rounds']} rounds in "
               f"{totals['seconds'] / 60:.1f} min (seed {', '.join(map(str, seeds))}).")
    return "\n".join(out)


if __name__ == "__main__":
    print(summarise(Path(sys.argv[1])))
