"""Following fail fast's advice after a misspelt key (a new user's first sweep).

The script refuses an unknown key (``layer=1`` for ``layers``): the first tasks fail alike and fail
fast stops the sweep. The user corrects the key in the sweep file. ``hsm complete --retry-failed``
would run the sweep's own copy, with the misspelt key, and fail again; the fail-fast line says how
to run the corrected file instead, and following it runs every task once, all completed (counted
from the script's own log).
"""

from __future__ import annotations

import json
import re

from hsm_core.testing.project import Project, make_project

STRICT = r'''
import json, os, sys
known = {"lr", "layers"}
args = dict(a.split("=", 1) for a in sys.argv[1:])
bad = sorted(set(args) - known)
if bad:
    print(f"error: unknown key {bad[0]!r}", file=sys.stderr)
    sys.exit(2)
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "runs.log"), "a") as fh:
    fh.write(json.dumps(args) + "\n")
'''


def test_the_fail_fast_line_says_how_to_run_the_corrected_sweep_file(tmp_path) -> None:
    project: Project = make_project(tmp_path / "proj", script=STRICT)
    cfg = project.write_sweep({"grid": {"lr": [0.1, 0.2, 0.3], "layer": [1, 2]}})
    first = project.hsm("run", "-c", str(cfg), "--sources", "local:1")
    assert first.returncode == 1, first.stdout + first.stderr
    line = " ".join(first.stderr.split())
    m = re.search(r"a parameter corrected in the sweep file: start it again with (hsm run -c \S+) \(", line)
    assert m, line
    project.write_sweep({"grid": {"lr": [0.1, 0.2, 0.3], "layers": [1, 2]}})
    again = project.hsm(*m.group(1).split()[1:], "--sources", "local:2")
    assert again.returncode == 0, again.stdout + again.stderr
    runs = [json.loads(x) for x in (project.root / "runs.log").read_text().splitlines()]
    assert sorted((r["lr"], r["layers"]) for r in runs) == sorted((lr, n) for lr in ("0.1", "0.2", "0.3") for n in ("1", "2"))


def test_a_failure_the_sweep_file_cannot_cause_gets_no_such_clause(tmp_path) -> None:
    project = make_project(tmp_path / "proj", script="import sys\nraise MemoryError('CUDA out of memory')\n")
    cfg = project.write_sweep({"grid": {"lr": [0.1, 0.2, 0.3, 0.4]}})
    proc = project.hsm("run", "-c", str(cfg), "--sources", "local:1")
    assert "Fail fast" in proc.stderr and "start it again with hsm run" not in " ".join(proc.stderr.split())
