"""Core names no scheduler (issue 15): what it knows of a kind of source comes from the kind's record
and class. This keeps it so: no string in hsm-core's code (docstrings aside, ``hsm_core.testing``
aside) names a scheduler or one of its commands or variables, except the catalog of the plugins
shipped in hsm's repository, which install hints need for plugins that are *not* installed."""

from __future__ import annotations

import ast
import re
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "hsm_core"
NAMES = re.compile(r"slurm|sbatch|squeue|scancel|sacct|scontrol|\bpbs|qsub|qstat|qdel|torque|\bbsub\b|\bbjobs\b", re.I)
#: Assignments allowed to name them: install hints of the shipped plugins, format_memory's API-1.0 style names.
CATALOGS = {"PACKAGE_HINTS", "SHIPPED_PLUGINS", "_LEGACY_MEMORY_STYLES"}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _catalogs(tree: ast.AST) -> set[int]:
    inside = set()
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id in CATALOGS for t in targets):
            inside |= {id(n) for n in ast.walk(node)}
    return inside


def test_no_string_in_core_names_a_scheduler() -> None:
    found = []
    for path in sorted(CORE.rglob("*.py")):
        if "testing" in path.relative_to(CORE).parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _docstrings(tree) | _catalogs(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip and NAMES.search(node.value):
                found.append(f"{path.relative_to(CORE.parent)}:{node.lineno}: {node.value[:80]!r}")
    for schema in sorted((CORE / "schemas").glob("*.json")):
        for i, line in enumerate(schema.read_text(encoding="utf-8").splitlines(), 1):
            if NAMES.search(line):
                found.append(f"{schema.relative_to(CORE.parent)}:{i}: {line.strip()[:80]}")
    assert found == [], "core names a scheduler (put it in the scheduler's plugin, behind its record):\n" + "\n".join(found)


def test_the_check_finds_what_it_looks_for() -> None:
    """The scan above is not vacuous: the names it refuses are found in a line of code."""
    tree = ast.parse('"""a docstring naming qsub"""\nCANCEL = {"sbatch": "scancel"}\nPACKAGE_HINTS = {"x": "hsm-plugin-slurm"}\n')
    skip = _docstrings(tree) | _catalogs(tree)
    hits = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and id(n) not in skip and NAMES.search(n.value)]
    assert hits == ["sbatch", "scancel"]
