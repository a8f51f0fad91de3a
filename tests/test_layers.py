"""hsm_core has one layer order and no import circle (issue 15, "the inside follows the boundary").

Every module of hsm_core is placed in exactly one layer of :data:`LAYERS`, lowest first. A module
may import modules of its own layer and of lower ones, never of a higher one, and no set of
modules may import each other in a circle. Every import counts: at module level, inside functions
(an import hidden in a function is still a dependency, only a later one), and
``importlib.import_module("hsm_core...")`` with a literal name. Imports under ``if TYPE_CHECKING:``
never run: they follow the layer order but may form a circle (two types of one layer that name
each other).

``from hsm_core.plugin import X`` counts as an import of the submodule that defines ``X``: the
contract package loads nothing itself and imports each name from its submodule on first use
(``hsm_core.plugin._SUBMODULE``), which is exactly what runs. ``hsm_core.config`` does the same
for the names of the former single module; hsm's own modules import them from their owners.

A new module must be added to :data:`LAYERS`; the test says where it is missing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hsm_core.config
import hsm_core.plugin

CORE = Path(hsm_core.plugin.__file__).resolve().parent.parent

#: Every module of hsm_core by layer, lowest first (names without the ``hsm_core.`` prefix;
#: ``hsm_core`` is the package itself, its ``__version__``).
LAYERS: list[tuple[str, str]] = [
    # Errors, atomic files, processes, task states and the sweep directory on disk: what the
    # contract is built on (the task runner, started once per array element, uses only these).
    ("base", """
        hsm_core errors atomic processes whole_file start_lock taskstate jobenv install_hints durations progress secrecy taskdir task_manifest index_columns state
        user_cache intermediate runner fastrun fastrun_rows setup_failure ended_task_processes walltime_note sweep_file_path
    """),
    # The plugin contract and the plugin manager (built-in plugins are loaded by name, as
    # entry points are: they are in the cli layer).
    ("plugin", """
        plugin plugin.version plugin.errors plugin.values plugin.components plugin.records
        plugin.hooks plugin.search plugin.pruning plugin.files plugin.taskfiles plugin.sweepdir plugin.process_identity
        plugin.local_host plugin.arrayjob plugin.arrayjob.directives plugin.arrayjob.resources
        plugin.arrayjob.schema plugin.arrayjob.script plugin.arrayjob.source plugin.arrayjob.states
        plugin.arrayjob.selftest plugin.arrayjob.final_status plugin.arrayjob.jobfiles plugin.arrayjob.manifest
        plugin.arrayjob.staging plugin.arrayjob.submission plugin.arrayjob.watcher
        plugin.arrayjob.vocabulary plugin.arrayjob.per_task
        plugin.arrayjob.task_link plugin.arrayjob.task_control
        plugin.arrayjob.throttle plugin.arrayjob.chunk_plan plugin.arrayjob.unmade plugin.arrayjob.late_dirs plugin.arrayjob.dependencies
        plugin.arrayjob.warning plugin.arrayjob.poll_pace
        plugin_compat entry_points registry
    """),
    # Configuration files: YAML with lines, schemas, the project config, sweep files, editing.
    ("config", """
        config config.lines config.project_root config.yaml_io config.layers config.schema
        config.validation config.installed config.project_config config.checked_cache config.sweep_file config.editing
        sync.config sweep_syntax sweep_forms wandb_sweep sweep_metric
    """),
    # Sweeps: expansion, task directories (and the Hydra app they may run), the layout of a
    # worker sweep.
    ("sweep", """
        sweep run_resources per_task_resources hydra_app prepare workers.settings workers.layout pruning
    """),
    # A project's services: its sources and hosts, pre-flight checks.
    ("project", """
        sources hosts preflight dry_run dry_run_scripts hydra_check hydra_example targets run_start project_init
        resource_check
    """),
    # What runs, finds and watches sweeps, and the contract's window onto it for plugins' own
    # commands (plugin.project: locate_project, locate_sweep ...; sync uses its SweepLocation).
    ("engine", """
        spec_queue failfast retries on_finish engine metrics indexed_metrics metrics_columns bulk_read outages lease sweep_select lifecycle adaptive
        search_turn plugin.project edited_sweep_file unfollowed metrics_freshness
        cancel_request cancel target_check verdicts sweep_end
        workers workers.claims workers.execute workers.gitcheck workers.registries workers.status
        workers.stop workers.submit workers.pick_queue workers.worker workers.walltime_warning
        monitor monitor.logs monitor.svg monitor.snapshot monitor.export monitor.export_columns monitor.errors
        monitor.best monitor.svg_search monitor.best_report monitor.dashboard_hint monitor.cleanup monitor.view monitor.report monitor.shared_params monitor.status monitor.watch
        monitor.follow monitor.scheduler_link monitor.task_view task_control
        sync sync.ssh sync.rsync sync.planner sync.pull sync.transfers
    """),
    # What Python users and the shell call: the Python API, shell completion.
    ("api", """
        api api.background api.starting api.sweeps completion
    """),
    # The command line, the built-in plugins (they add commands) and the test kit.
    ("cli", """
        cli cli.main cli.lazy_group cli.commands cli.completion_cmd cli.config_cmd cli.export_cmd cli.hpc_cmd cli.manage_cmd cli.monitor_cmd
        cli.plugins_cmd cli.resource_options cli.run_cmd cli.status_cmd cli.sync_cmd cli.worker_cmd __main__
        cli.logs_cmd cli.task_control_cmd cli.command_hint
        builtin builtin.collectors builtin.expanders builtin.hosts builtin.local
        builtin.strategies builtin.transports builtin.random_search builtin.search
        testing testing.contracts testing.controller testing.expanders testing.helpers
        testing.inprocess testing.observer testing.project testing.pytest_plugin testing.runlog
        testing.services testing.slurm_fixtures testing.sync testing.pruners testing.slurm_accounting testing.timeline
        testing.slurm_signals testing.recording_scheduler testing.task_env
    """),
]

#: Packages whose names are loaded lazily from their submodules: name -> submodule table.
FACADES: dict[str, dict[str, str]] = {
    "hsm_core.plugin": {name: f"hsm_core.plugin.{sub}" for name, sub in hsm_core.plugin._SUBMODULE.items()},
    "hsm_core.config": {name: f"hsm_core.config.{sub}" for name, sub in hsm_core.config._SUBMODULE.items()},
}


def _full(name: str) -> str:
    return "hsm_core" if name == "hsm_core" else f"hsm_core.{name}"


def layer_of() -> dict[str, int]:
    """Each placed module -> the index of its layer (a module placed twice is a mistake)."""
    out: dict[str, int] = {}
    for i, (_, names) in enumerate(LAYERS):
        for name in names.split():
            assert _full(name) not in out, f"{name} is placed twice in LAYERS"
            out[_full(name)] = i
    return out


def modules(root: Path = CORE) -> dict[str, Path]:
    """Every module of the package at ``root``, by dotted name."""
    out: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


class Import:
    """One import of a hsm_core module: who, what, where, and whether it only runs for type checkers."""

    def __init__(self, source: str, target: str, line: int, type_only: bool) -> None:
        self.source, self.target, self.line, self.type_only = source, target, line, type_only

    def __repr__(self) -> str:
        return f"{self.source}:{self.line} -> {self.target}"


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(name: str, path: Path, known: dict[str, Path]) -> list[Import]:
    """The hsm_core modules that module ``name`` (file ``path``) imports, wherever it does."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []

    def owner(dotted: str) -> str:
        while dotted not in known:
            dotted = dotted.rpartition(".")[0]
            assert dotted, f"{path}: cannot resolve an import to a hsm_core module"
        return dotted

    def add(target: str, line: int, type_only: bool) -> None:
        if target != name:
            found.append(Import(name, target, line, type_only))

    def visit(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, type_only)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "hsm_core" or alias.name.startswith("hsm_core."):
                    add(owner(alias.name), node.lineno, type_only)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module == "hsm_core" or module.startswith("hsm_core."):
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    if sub in known:
                        add(sub, node.lineno, type_only)
                    elif module in FACADES:
                        assert alias.name in FACADES[module], f"{path}:{node.lineno}: {module} has no {alias.name}"
                        add(FACADES[module][alias.name], node.lineno, type_only)
                    else:
                        add(owner(module), node.lineno, type_only)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, (ast.Name, ast.Attribute))
            and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and node.args[0].value.startswith("hsm_core")
        ):
            add(owner(node.args[0].value), node.lineno, type_only)
        for child in ast.iter_child_nodes(node):
            visit(child, type_only)

    visit(tree, False)
    return found


def all_imports(root: Path = CORE) -> list[Import]:
    known = modules(root)
    out: list[Import] = []
    for name, path in known.items():
        if name in FACADES:
            continue  # its names are counted where they are imported (see the module docstring)
        out += imports_of(name, path, known)
    return out


def cycles(edges: list[Import]) -> list[list[str]]:
    """The import circles among ``edges``: each strongly connected set of two or more modules."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan's algorithm (iterative would be longer; the graph is small)
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def layer_violations(edges: list[Import], layers: dict[str, int]) -> list[str]:
    names = [n for n, _ in LAYERS]
    return [
        f"{e.source} (layer {names[layers[e.source]]}) imports {e.target} (layer {names[layers[e.target]]}) on line {e.line}"
        for e in edges
        if e.source in layers and e.target in layers and layers[e.target] > layers[e.source]
    ]


def test_every_module_is_placed_in_one_layer() -> None:
    layers = layer_of()
    known = modules()
    missing = sorted(set(known) - set(layers))
    gone = sorted(set(layers) - set(known))
    assert not missing, f"place these modules in LAYERS of {__file__}: {missing}"
    assert not gone, f"LAYERS names modules that do not exist: {gone}"


def test_no_module_imports_a_higher_layer() -> None:
    found = layer_violations(all_imports(), layer_of())
    assert not found, "imports against the layer order (move the function to the layer that owns it):\n" + "\n".join(found)


def test_core_imports_config_names_from_their_owners() -> None:
    found = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "hsm_core.config" and not node.level:
                found += [f"{path.relative_to(CORE.parent)}:{node.lineno}: from {FACADES['hsm_core.config'][a.name]} "
                          f"import {a.name}" for a in node.names if a.name in FACADES["hsm_core.config"]]
    assert not found, "import these names from the module that owns them:\n" + "\n".join(found)


def test_no_import_circle() -> None:
    found = cycles([e for e in all_imports() if not e.type_only])
    assert not found, "import circles among hsm_core modules:\n" + "\n".join(" <-> ".join(c) for c in found)


# The checker itself, on a throw-away package: each way of importing is seen, with its line.

SAMPLE = {
    "__init__.py": "",
    "low.py": "def f():\n    from hsm_core.high import g\n",
    "high.py": "import hsm_core.low\n",
    "lazy.py": "import importlib\n\ndef h():\n    return importlib.import_module('hsm_core.high')\n",
    "typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from hsm_core import high\n",
    "rel.py": "from . import low\nfrom .high import something\n",
}


@pytest.fixture()
def sample(tmp_path: Path) -> Path:
    root = tmp_path / "hsm_core"
    root.mkdir()
    for name, text in SAMPLE.items():
        (root / name).write_text(text, encoding="utf-8")
    return root


def test_the_checker_sees_function_local_lazy_typed_and_relative_imports(sample: Path) -> None:
    edges = {(e.source, e.target, e.line, e.type_only) for e in all_imports(sample)}
    assert edges == {
        ("hsm_core.low", "hsm_core.high", 2, False),
        ("hsm_core.high", "hsm_core.low", 1, False),
        ("hsm_core.lazy", "hsm_core.high", 4, False),
        ("hsm_core.typed", "hsm_core.high", 3, True),
        ("hsm_core.rel", "hsm_core.low", 1, False),
        ("hsm_core.rel", "hsm_core.high", 2, False),
    }


def test_the_checker_finds_a_circle_made_by_a_function_local_import(sample: Path) -> None:
    assert cycles([e for e in all_imports(sample) if not e.type_only]) == [["hsm_core.high", "hsm_core.low"]]


def test_the_checker_finds_an_import_of_a_higher_layer(sample: Path) -> None:
    edges = all_imports(sample)
    layers = {"hsm_core.low": 0, "hsm_core.rel": 0, "hsm_core.high": 1, "hsm_core.lazy": 1, "hsm_core.typed": 0}
    assert sorted(layer_violations(edges, layers)) == [
        f"hsm_core.low (layer {LAYERS[0][0]}) imports hsm_core.high (layer {LAYERS[1][0]}) on line 2",
        f"hsm_core.rel (layer {LAYERS[0][0]}) imports hsm_core.high (layer {LAYERS[1][0]}) on line 2",
        f"hsm_core.typed (layer {LAYERS[0][0]}) imports hsm_core.high (layer {LAYERS[1][0]}) on line 3",
    ]
