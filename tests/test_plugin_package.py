"""The plugin API package, ``hsm_core.plugin``: one list of names, kept in step, and nothing above it.

The package exports its names lazily (PEP 562): ``__all__``, the map of each name to the submodule
defining it, the imports shown to type checkers and each submodule's own ``__all__`` must agree.
It sits low in core's import order (errors -> plugin -> config -> sweep -> project -> engine,
workers -> cli): loading every name it exports loads none of core's upper layers, and the light
users (a remote script asking for the task files) load only what they ask for.
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import hsm_core.plugin as api

PACKAGE = Path(api.__file__).parent

#: The modules of hsm-core below the plugin API, which it may import when it is imported.
LOWER = {"hsm_core", "hsm_core.errors", "hsm_core.taskstate", "hsm_core.atomic", "hsm_core.processes",
         "hsm_core.state", "hsm_core.taskdir", "hsm_core.install_hints", "hsm_core.secrecy",
         # the task runner's shell fast path: array job files are made with it (imported when they
         # are, so that importing the API does not load the runner)
         "hsm_core.fastrun", "hsm_core.fastrun_rows",
         # the one manifest task dirs are made from: array elements make theirs when they start
         "hsm_core.task_manifest",
         # a task's start lock: the task files' reader asks it of a "starting" record (stdlib only)
         "hsm_core.start_lock"}


def _fresh(code: str) -> list[str]:
    """Run ``code`` in a new interpreter; it prints a JSON list."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def test_all_the_lazy_map_and_the_type_checking_imports_agree() -> None:
    assert len(api.__all__) == len(set(api.__all__))
    assert set(api.__all__) == set(api._SUBMODULE)
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    shown: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.module
                for alias in imp.names:
                    shown[alias.asname or alias.name] = imp.module.removeprefix("hsm_core.plugin.")
    assert shown == api._SUBMODULE


def test_every_name_resolves_to_what_its_submodule_exports() -> None:
    by_module = defaultdict(set)
    for name, submodule in api._SUBMODULE.items():
        by_module[submodule].add(name)
        module = importlib.import_module(f"hsm_core.plugin.{submodule}")
        assert getattr(api, name) is getattr(module, name)
    for submodule, names in by_module.items():
        module = importlib.import_module(f"hsm_core.plugin.{submodule}")
        assert set(module.__all__) == names, f"hsm_core.plugin.{submodule}.__all__ and the package disagree"


def test_the_same_objects_as_core_uses() -> None:
    """Re-exports are the objects themselves: a plugin and core always agree (and a test patching
    one patches both)."""
    import hsm_core.errors
    import hsm_core.processes
    import hsm_core.state
    import hsm_core.taskstate

    assert api.processes is hsm_core.processes
    assert api.TaskState is hsm_core.taskstate.TaskState
    assert api.HsmError is hsm_core.errors.HsmError
    assert api.read_status is hsm_core.state.read_status
    assert importlib.import_module(api.RUNNER_MODULE).main


def test_an_unknown_name_is_the_usual_import_error() -> None:
    code = "try:\n    from hsm_core.plugin import no_such_name\nexcept ImportError as exc:\n    print(repr(str(exc)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "cannot import name 'no_such_name' from 'hsm_core.plugin'" in out.stdout


def test_the_whole_api_loads_nothing_above_it() -> None:
    """Every name of the contract, but the window onto the project (``hsm_core.plugin.project``:
    locate_project, locate_sweep ... which read the project's configuration, a layer above: see
    tests/test_layers.py), loads only the contract and the base below it."""
    loaded = _fresh(
        "import json, sys, hsm_core.plugin as p\n"
        "[getattr(p, n) for n in p.__all__ if p._SUBMODULE.get(n) != 'project']\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('hsm_core') or m in ('click', 'rich', 'jsonschema'))))"
    )
    above = [m for m in loaded if m not in LOWER and not (m == "hsm_core.plugin" or m.startswith("hsm_core.plugin."))]
    assert above == [], f"importing hsm_core.plugin loads modules above it: {above}"
    assert "hsm_core.plugin.project" not in loaded


def test_a_remote_script_loads_only_the_task_files() -> None:
    """What the ssh plugin's scripts ask for on a remote host, once per poll: no pluggy, no ABCs,
    no array-job toolkit."""
    loaded = _fresh(
        "import json, sys\n"
        "from hsm_core.plugin import processes, started_process, read_status, write_status\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('hsm_core', 'pluggy')))))"
    )
    assert sorted(m for m in loaded if m.startswith("hsm_core.plugin.")) == [
        "hsm_core.plugin.process_identity",
        "hsm_core.plugin.taskfiles",
    ]
    assert "pluggy" not in loaded


def test_a_scheduler_plugins_schema_does_not_load_the_array_job_source() -> None:
    """Every ``hsm`` command registers the plugins, and the Slurm and PBS plugins' schemas use
    COMMON_SCHEMA: that must not cost the import of ArrayJobSource."""
    loaded = _fresh(
        "import json, sys\n"
        "from hsm_core.plugin import COMMON_SCHEMA, hookimpl, ComputeSourceRecord\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('hsm_core.plugin.'))))"
    )
    assert "hsm_core.plugin.arrayjob.schema" in loaded
    assert "hsm_core.plugin.arrayjob.source" not in loaded and "hsm_core.plugin.components" not in loaded


def test_no_module_of_the_package_imports_an_upper_layer_at_module_level() -> None:
    """Upper layers (config, sweeps, prepare ...) are reached by no module of the package but
    ``project.py`` (the services for plugin commands), which tests/test_layers.py places above
    them; importing the package does not import it (see above)."""
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "project.py" and path.parent == PACKAGE:
            continue
        rel = path.relative_to(PACKAGE.parent.parent).as_posix()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] if node.module != "hsm_core" else [f"hsm_core.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if not name.startswith("hsm_core") or name.startswith("hsm_core.plugin") or name in LOWER:
                    continue
                if name == "hsm_core.__version__":
                    continue
                problems.append(f"{rel}:{node.lineno}: imports {name}")
    assert problems == []
