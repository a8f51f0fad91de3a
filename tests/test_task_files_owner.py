"""One module owns the task directory's files: ``hsm_core/taskdir.py``.

It names every file of a task dir (``status.yaml``, ``.hsm_pid`` ...) and does every write; the rest
of core and every plugin distribution call it (plugins through ``hsm_core.plugin``). Each module is
parsed, not grepped: a file name in any string constant outside the owner fails, in code run
elsewhere (a remote script held in a string) and in messages too, while docstrings and comments may
name the files. Tests are outside observers and may spell the names out.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from hsm_core import taskdir

ROOT = Path(__file__).resolve().parents[1]
OWNER = Path(taskdir.__file__).resolve()
SKIPPED_DIRS = {".venv", "venv", "build", "dist", ".git", "__pycache__", ".tox", ".eggs", "node_modules", "tests"}

#: The same words naming something else: (module, word) -> what it is.
NOT_TASK_FILES = {
    ("hsm_core/sync/pull.py", "checkpoints"): "an experiment's checkpoint folder that hsm sync pull copies",
    ("hsm_core/hydra_check.py", "results"): "a key of the JSON its compose script prints",
}

#: A task-file name as a word of a string: ``status.yaml``, ``"$HSM_TASK_DIR/.hsm_pid"``, not
#: ``rec.exit_code`` (an attribute named in a message) or ``my_status.yaml``.
_NAME = re.compile(r"(?<![\w.-])(" + "|".join(re.escape(n) for n in taskdir.TASK_FILE_NAMES) + r")(?![\w-])")


def _source_files() -> list[Path]:
    """hsm-core's modules and every plugin distribution's, without tests."""
    roots = [ROOT / "hsm_core", *(p.parent for p in ROOT.rglob("pyproject.toml") if p.parent != ROOT)]
    files = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(ROOT).parts
            if any(p in SKIPPED_DIRS or p.endswith(".egg-info") for p in rel) or path.name.startswith("test_"):
                continue
            if path.name == "conftest.py" or path.resolve() == OWNER:
                continue
            files.append(path)
    return files


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (a statement of their own)."""
    return {id(node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)}


def task_file_literals(path: Path) -> list[str]:
    """``file:line: 'string'`` for every string constant of ``path`` that names a task file."""
    return literals_in(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix())


def literals_in(text: str, rel: str) -> list[str]:
    """:func:`task_file_literals` of the module ``rel`` whose source is ``text``."""
    tree = ast.parse(text, filename=rel)
    skip = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in skip:
            continue
        for m in _NAME.finditer(node.value):
            line = node.lineno + node.value.count("\n", 0, m.start())
            found.append(f"{rel}:{line}: {m.group(1)!r}")
        if node.value in taskdir.TASK_DIR_NAMES and (rel, node.value) not in NOT_TASK_FILES:
            # Words too common to look for inside other strings: only a string that is the name.
            found.append(f"{rel}:{node.lineno}: {node.value!r}")
    return found


def test_the_scan_covers_core_and_every_plugin_distribution() -> None:
    files = {str(p.relative_to(ROOT)) for p in _source_files()}
    for expected in ("hsm_core/runner.py", "hsm_core/state.py", "hsm_core/plugin/arrayjob/source.py",
                     "hsm_plugin_ssh/hsm_plugin_ssh/remote_scripts.py", "plugins/template/hsm_plugin_example/source.py"):
        assert expected in files
    assert "hsm_core/taskdir.py" not in files


@pytest.mark.parametrize("text, names", [
    ('p = d / "status.yaml"', ["status.yaml"]),
    ("f'tasks/{name}/stderr.log'", ["stderr.log"]),
    ("sh = 'printf 1 > \"$HSM_TASK_DIR/.hsm_pid\"; mv x \"$HSM_TASK_DIR/.exit_code\"'", [".hsm_pid", ".exit_code"]),
    ("CODE = '''\\nimport os\\nopen(os.path.join(d, \"metrics.json\"))\\n'''", ["metrics.json"]),
    ('out = task_dir / "results"', ["results"]),
    ('LOG = "runner.log"; CKPT = "checkpoints"', ["runner.log", "checkpoints"]),
    ('"""The runner writes status.yaml."""\nmsg = f"{rec.exit_code} my_status.yaml"', []),
])
def test_the_scan_finds_names_in_code_and_strings_but_not_in_docstrings(text: str, names: list[str]) -> None:
    found = [hit.rsplit(": ", 1)[1].strip("'") for hit in literals_in(text + "\n", "hsm_core/probe.py")]
    assert found == names


def test_no_module_but_the_owner_spells_a_task_file_name() -> None:
    hits = [hit for path in _source_files() for hit in task_file_literals(path)]
    assert hits == [], ("task-file names outside hsm_core/taskdir.py (use its names and functions; "
                        "plugins through hsm_core.plugin):\n" + "\n".join(hits))
