"""The command line is the top layer: nothing below it imports ``hsm_core.cli``.

CLI modules parse arguments and print; the library does the work, so nothing in ``hsm_core``
outside ``hsm_core/cli/`` (and nothing in a shipped plugin) may reach into the CLI, except the
console entry point (``python -m hsm_core``: ``hsm_core/__main__.py``). Each module is parsed, not
grepped: an import inside a function counts, so does ``importlib.import_module("hsm_core.cli...")``,
and so does a string naming a CLI module (``"hsm_core.cli.x"``, ``"hsm_core.cli.x:attr"``): a table of
module names that something imports later is an import too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = "hsm_core.cli"
#: The console entry point: the one module outside the CLI that starts it.
ENTRY_POINTS = {"hsm_core/__main__.py"}
#: A whole string that names a CLI module (or an attribute of one).
_CLI_NAME = re.compile(r"hsm_core\.cli(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*)?")
SKIPPED_DIRS = {".venv", "venv", "build", "dist", ".git", "__pycache__", "tests"}


def _is_cli(module: str) -> bool:
    return module == CLI or module.startswith(CLI + ".")


def cli_imports(source: str, shown: str) -> list[str]:
    """``file:line: imports X`` for every way ``source`` reaches into ``hsm_core.cli``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [f"{node.module}.{a.name}" if node.module == "hsm_core" else node.module for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _CLI_NAME.fullmatch(node.value):
            modules = [node.value.partition(":")[0]]
        found += [(node.lineno, f"{shown}:{node.lineno}: imports {m}") for m in modules if _is_cli(m)]
    return [text for _, text in sorted(set(found))]


def library_modules() -> list[Path]:
    """Every module of hsm-core outside ``hsm_core/cli/`` and of each plugin distribution (not their tests)."""
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        parts = rel.parts
        if any(p in SKIPPED_DIRS or p.endswith(".egg-info") for p in parts[:-1]) or path.name.startswith("test_"):
            continue
        if parts[0] == "hsm_core" and parts[1:2] == ("cli",):
            continue
        if parts[0] in ("hsm_core", "plugins") or parts[0].startswith("hsm_plugin_"):
            out.append(path)
    return out


def test_nothing_below_the_cli_imports_it() -> None:
    modules = library_modules()
    shown = {p.relative_to(ROOT).as_posix() for p in modules}
    # The scan covers the library, the builtin plugins and the shipped plugins (a wrong filter would pass).
    assert {"hsm_core/lifecycle.py", "hsm_core/registry.py", "hsm_core/builtin/local.py", "hsm_core/cancel.py",
            "hsm_plugin_ssh/hsm_plugin_ssh/plugin.py", "plugins/template/hsm_plugin_example/plugin.py"} <= shown
    assert not any(s.startswith("hsm_core/cli/") for s in shown)
    found = []
    for path in modules:
        rel = path.relative_to(ROOT).as_posix()
        if rel not in ENTRY_POINTS:
            found += cli_imports(path.read_text(encoding="utf-8"), rel)
    assert not found, "the library must not import the CLI (move the logic into a library module):\n" + "\n".join(found)


def test_the_entry_point_is_the_one_exception_and_it_does_start_the_cli() -> None:
    entry = (ROOT / "hsm_core" / "__main__.py").read_text()
    assert cli_imports(entry, "__main__.py") == ["__main__.py:1: imports hsm_core.cli.main"]


SAMPLE = '''\
import hsm_core.cli
from hsm_core.cli.hpc_cmd import cancel_sweep
from hsm_core import cli, plugin
import json

def late():
    from hsm_core.cli import status_cmd
    import importlib
    importlib.import_module("hsm_core.cli.monitor_cmd")

BUILTINS = ("hsm_core.builtin.local", "hsm_core.cli.commands")
FACTORY = "hsm_core.cli.hpc_cmd:test_hpc"
PROSE = "see hsm_core.cli.hpc_cmd for the command"
from hsm_core.client import x
from hsm_core.plugin import hookimpl
'''


def test_the_checker_finds_every_way_into_the_cli_with_its_line() -> None:
    assert cli_imports(SAMPLE, "x.py") == [
        "x.py:1: imports hsm_core.cli",
        "x.py:2: imports hsm_core.cli.hpc_cmd",
        "x.py:3: imports hsm_core.cli",
        "x.py:7: imports hsm_core.cli",
        "x.py:9: imports hsm_core.cli.monitor_cmd",
        "x.py:11: imports hsm_core.cli.commands",
        "x.py:12: imports hsm_core.cli.hpc_cmd",
    ]
