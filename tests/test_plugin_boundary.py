"""Every plugin distribution in the repository uses hsm-core only through its plugin API.

A plugin may import ``hsm_core.plugin`` (names from the package itself, not its submodules) and, in
its tests, ``hsm_core.testing``: nothing else of ``hsm_core`` is a contract (docs/plugin-api.md).
Each module of each distribution is parsed (not grepped), so an import inside a function counts,
and so does Python code held in a string and run elsewhere (the ssh plugin's remote scripts):
every string constant that parses as Python with imports is checked like a module.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: The plugin API, the only part of hsm-core a plugin may import.
API = "hsm_core.plugin"
#: What a plugin's tests may import besides (the package and its submodules).
TEST_KIT = "hsm_core.testing"
#: Directories that hold no source of a distribution.
SKIPPED_DIRS = {".venv", "venv", "build", "dist", ".git", "__pycache__", ".tox", ".eggs", "node_modules"}


def distributions() -> list[Path]:
    """Every distribution in the repository besides hsm-core itself: a directory with a pyproject.toml."""
    found = []
    for pyproject in sorted(ROOT.rglob("pyproject.toml")):
        rel = pyproject.relative_to(ROOT).parts
        if pyproject.parent != ROOT and not any(p in SKIPPED_DIRS or p.endswith(".egg-info") for p in rel):
            found.append(pyproject.parent)
    return found


def modules(dist: Path) -> Iterator[Path]:
    for path in sorted(dist.rglob("*.py")):
        rel = path.relative_to(dist).parts
        if not any(p in SKIPPED_DIRS or p.endswith(".egg-info") for p in rel):
            yield path


def is_test_module(dist: Path, path: Path) -> bool:
    rel = path.relative_to(dist).parts
    return "tests" in rel[:-1] or path.name.startswith("test_") or path.name == "conftest.py"


def _allowed(module: str, *, test: bool) -> bool:
    if module == API:
        return True
    return test and (module == TEST_KIT or module.startswith(TEST_KIT + "."))


def _imported(node: ast.AST) -> list[str]:
    """The ``hsm_core`` modules (or module attributes) an import statement or call brings in."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        if node.module == "hsm_core":
            # "from hsm_core import processes" is hsm_core.processes; "from hsm_core import plugin" is the API.
            return [f"hsm_core.{a.name}" for a in node.names]
        return [node.module]
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
            return [node.args[0].value]
    return []


def _as_code(text: str) -> ast.Module | None:
    """``text`` parsed as Python when it is a program with imports (remote code), else None."""
    if "import" not in text or "hsm_core" not in text:
        return None
    try:
        tree = ast.parse(textwrap.dedent(text))
    except SyntaxError:
        return None
    return tree if any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(tree)) else None


def violations(source: str, shown: str, *, test: bool) -> list[str]:
    """``file:line: import X`` for every import of hsm-core beyond what a plugin may use."""
    out: list[tuple[int, str]] = []

    def scan(tree: ast.AST, line_base: int, where: str) -> None:
        for node in ast.walk(tree):
            for module in _imported(node):
                if module.split(".")[0] == "hsm_core" and not _allowed(module, test=test):
                    line = line_base + node.lineno - 1
                    out.append((line, f"{shown}:{line}: {where}imports {module}"))
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                code = _as_code(node.value)
                if code is not None:
                    # Line 1 of the code is the line of the string's opening quote.
                    scan(code, line_base + node.lineno - 1, "remote code ")

    scan(ast.parse(source), 1, "")
    return [text for _, text in sorted(out, key=lambda item: item[0])]


DISTRIBUTIONS = distributions()


def test_every_distribution_of_the_repository_is_checked() -> None:
    names = {d.relative_to(ROOT).as_posix() for d in DISTRIBUTIONS}
    assert {"hsm_plugin_slurm", "hsm_plugin_pbs", "hsm_plugin_ssh", "hsm_plugin_wandb_sync", "plugins/template"} <= names
    for dist in DISTRIBUTIONS:
        assert any(not is_test_module(dist, m) for m in modules(dist)), f"{dist}: no modules found"


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=lambda d: d.relative_to(ROOT).as_posix())
def test_plugins_import_nothing_from_hsm_core_but_the_plugin_api(dist: Path) -> None:
    found = []
    for path in modules(dist):
        shown = path.relative_to(ROOT).as_posix()
        found += violations(path.read_text(encoding="utf-8"), shown, test=is_test_module(dist, path))
    assert not found, (
        "plugins may import only hsm_core.plugin (and hsm_core.testing in tests); see docs/plugin-api.md:\n"
        + "\n".join(found)
    )


# The checker itself: each way of reaching into core is caught, with its line.
SAMPLE = '''\
import hsm_core.plugin
from hsm_core.plugin import TaskState
from hsm_core import plugin
import json

from hsm_core.state import read_status

def late():
    from hsm_core import processes, __version__
    import hsm_core.config as cfg
    import importlib
    importlib.import_module("hsm_core.batch")

REMOTE = r"""
import json, sys
from hsm_core.atomic import atomic_write_text
"""
NOT_CODE = "python -m hsm_core.runner TASK_DIR"
from hsm_core.plugin.records import ComputeSourceRecord
from hsm_core.testing import make_sweep
'''


def test_the_checker_finds_every_kind_of_import_with_its_line() -> None:
    found = violations(SAMPLE, "x.py", test=False)
    assert found == [
        "x.py:6: imports hsm_core.state",
        "x.py:9: imports hsm_core.processes",
        "x.py:9: imports hsm_core.__version__",
        "x.py:10: imports hsm_core.config",
        "x.py:12: imports hsm_core.batch",
        "x.py:16: remote code imports hsm_core.atomic",
        "x.py:19: imports hsm_core.plugin.records",
        "x.py:20: imports hsm_core.testing",
    ]
    # In a test module the test kit is allowed, nothing else more.
    assert [v for v in violations(SAMPLE, "x.py", test=True) if "testing" in v] == []
