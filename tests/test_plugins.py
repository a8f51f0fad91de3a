"""The plugin framework as users meet it: discovery, broken plugins, conflicts, allow/deny lists."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from hsm_project import Project

from hsm_core.plugin import PLUGIN_API_VERSION

CURRENT_API = f"{PLUGIN_API_VERSION[0]}.{PLUGIN_API_VERSION[1]}"


def make_dist(site: Path, dist: str, ep_name: str, module: str, code: str, *, api: str | None = CURRENT_API) -> None:
    """A minimal installed distribution (dist-info + module) exposing one ``hsm`` entry point.

    The module declares plugin API ``api`` as shipped plugins do (None: declares nothing)."""
    declaration = f"HSM_PLUGIN_API = {api!r}\n" if api is not None else ""
    (site / f"{module}.py").write_text(declaration + textwrap.dedent(code))
    info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[hsm]\n{ep_name} = {module}\n")


GOOD = """
from hsm_core.plugin import hookimpl, ComputeSourceRecord, StrategyRecord
from hsm_core.builtin.strategies import RoundRobin

class First(RoundRobin):
    pass

@hookimpl
def hsm_register_dispatch_strategies():
    return [StrategyRecord("first_fit", "always the first source", First)]

@hookimpl
def hsm_register_commands(cli):
    import click

    @cli.command("hello")
    def hello():
        '''Say hello (from a plugin).'''
        click.echo("hello from plugin")
"""

BROKEN = """
import this_module_does_not_exist_anywhere
"""

MISSPELLED = """
from hsm_core.plugin import hookimpl

@hookimpl
def hsm_register_compute_source():   # missing 's'
    return []
"""

CONFLICT = """
from hsm_core.plugin import hookimpl, StrategyRecord
from hsm_core.builtin.strategies import RoundRobin

@hookimpl
def hsm_register_dispatch_strategies():
    return [StrategyRecord("first_fit", "same name as another plugin", RoundRobin)]
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    d = tmp_path / "site"
    d.mkdir()
    return d


def _env(site: Path, **extra: str) -> dict[str, str]:
    import os

    env = {"PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.update(extra)
    return env


def test_a_plugin_adds_a_strategy_and_a_command(project: Project, site: Path) -> None:
    make_dist(site, "hsm-plugin-first", "first", "hsm_first_plugin", GOOD)
    proc = project.hsm("hello", env=_env(site))
    assert proc.returncode == 0 and "hello from plugin" in proc.stdout
    cfg = project.write_sweep({"grid": {"x": [1, 2]}})
    proc = project.hsm("run", "--config", str(cfg), "--strategy", "first_fit", env=_env(site))
    assert proc.returncode == 0, proc.stderr
    listing = json.loads(project.hsm("plugins", "--json", env=_env(site)).stdout)
    mine = next(p for p in listing["plugins"] if p["name"] == "first")
    assert mine["distribution"] == "hsm-plugin-first" and mine["version"] == "1.2.3" and mine["status"] == "loaded"
    assert mine["provides"]["strategy"] == ["first_fit"]
    builtin = {p["name"]: p for p in listing["plugins"] if p["builtin"]}
    assert builtin["core.local"]["provides"]["compute_source"] == ["local"]
    assert builtin["core.expanders"]["provides"]["expander"] == ["grid", "paired"]
    assert builtin["core.random_search"]["provides"]["expander"] == ["random"]


TESTER = """
from hsm_core.plugin import hookimpl

@hookimpl
def hsm_test_target(target, project_root, timeout, echo):
    kind, _, name = target.partition(":")
    if kind != "mine":
        return None
    echo(f"checking {name} from {project_root}")
    return name == "good"
"""


def test_a_plugin_answers_hsm_test_for_its_own_targets(project: Project, site: Path) -> None:
    make_dist(site, "hsm-plugin-mine", "mine", "hsm_mine_plugin", TESTER)
    good = project.hsm("test", "mine:good", env=_env(site))
    assert good.returncode == 0, good.stderr
    assert f"checking good from {project.root}" in good.stdout and "All checks passed." in good.stdout
    bad = project.hsm("test", "mine:bad", env=_env(site))
    assert bad.returncode == 1 and "mine:bad: some checks failed" in bad.stderr
    # Nobody answers: one line, exit 2. Core still answers its own targets (checked with Slurm).
    unknown = project.hsm("test", "nowhere:x", env=_env(site))
    assert unknown.returncode == 2 and "no installed plugin tests 'nowhere:x'" in unknown.stderr
    assert "Traceback" not in unknown.stderr and len(unknown.stderr.strip().splitlines()) == 1


LISTENER = """
import os
from hsm_core.plugin import hookimpl

@hookimpl
def hsm_task_finished(sweep_id, task_id, state, task_dir):
    with open(os.path.join(os.environ["HSM_COUNT_DIR"], "events.log"), "a") as fh:
        fh.write(f"{sweep_id} {task_id} {state} {os.path.basename(task_dir)}\\n")
"""


def test_an_event_plugin_hears_of_tasks_run_by_workers(project: Project, site: Path) -> None:
    make_dist(site, "hsm-plugin-listen", "listen", "hsm_listen_plugin", LISTENER)
    (project.root / "ok.sh").write_text("exit $(( $1 - 1 ))\n")
    cfg = project.write_sweep({"name": "ev", "command": "sh ok.sh {x}", "grid": {"x": [1, 2]}}, "ev.yaml")
    proc = project.hsm("worker", "--sweep", str(cfg), env=_env(site))
    assert proc.returncode == 1, proc.stderr  # one task failed
    events = sorted(ln.split() for ln in (project.root / "events.log").read_text().splitlines())
    assert [e[0] for e in events] == ["ev", "ev"] and sorted(e[2] for e in events) == ["completed", "failed"]
    assert all(e[3].startswith(e[1]) for e in events)  # the run's own dir, named after its id


FEATURE = """
import os
from hsm_core.plugin import WorkerFeature, hookimpl


class Stamp(WorkerFeature):
    def __init__(self, log):
        self.log = log

    def task_env(self, task_dir, project_root, environ):
        return {"STAMP": "stamped:" + environ["HSM_RUN_ID"]}

    def task_started(self, task_dir, checkpoint_dir, environ):
        self.log("stamp: started " + environ["STAMP"])

    def task_ended(self, state, stopping):
        self.log(f"stamp: ended {state} stopping={stopping}")
        raise RuntimeError("a bug in the plugin")  # logged; the worker carries on


@hookimpl
def hsm_worker_feature(name, log):
    return Stamp(log) if name == "stamp" else None
"""


def test_a_plugin_provides_a_worker_option(project: Project, site: Path) -> None:
    make_dist(site, "hsm-plugin-stamp", "stamp", "hsm_stamp_plugin", FEATURE)
    (project.root / "t.sh").write_text('echo "$STAMP" >> "$HSM_COUNT_DIR/stamps.log"\n')
    cfg = project.write_sweep({"name": "st", "command": "sh t.sh {x}", "grid": {"x": [1, 2]}}, "st.yaml")
    proc = project.hsm("worker", "--sweep", str(cfg), "--feature", "stamp", env=_env(site))
    assert proc.returncode == 0, proc.stderr
    stamps = (project.root / "stamps.log").read_text().split()
    assert len(stamps) == 2 and all(s.startswith("stamped:") for s in stamps)
    assert proc.stderr.count("hsm worker: stamp: started stamped:") == 2
    assert proc.stderr.count("stamp: ended completed stopping=False") == 2 and "a bug in the plugin" in proc.stderr
    # An option nobody provides stops the worker before it claims anything.
    other = project.write_sweep({"name": "st2", "command": "sh t.sh {x}", "grid": {"x": [1]}}, "st2.yaml")
    proc = project.hsm("worker", "--sweep", str(other), "--feature", "nope", env=_env(site))
    assert _one_error_line(proc).startswith("Error: the worker option 'nope' needs a plugin that provides it")
    assert len((project.root / "stamps.log").read_text().split()) == 2


def test_a_broken_plugin_is_one_warning_and_never_breaks_help(project: Project, site: Path) -> None:
    make_dist(site, "hsm-plugin-broken", "broken", "hsm_broken_plugin", BROKEN)
    proc = project.hsm("--help", env=_env(site))
    assert proc.returncode == 0 and "Usage" in proc.stdout
    warnings = [ln for ln in proc.stderr.splitlines() if "warning" in ln]
    assert len(warnings) == 1 and "broken" in warnings[0] and "this_module_does_not_exist_anywhere" in warnings[0]
    listing = json.loads(project.hsm("plugins", "--json", env=_env(site)).stdout)
    broken = next(p for p in listing["plugins"] if p["name"] == "broken")
    assert broken["status"] == "failed" and "ModuleNotFoundError" in broken["error"]
    # Selecting something nobody provides mentions the failed plugin too.
    cfg = project.write_sweep({"grid": {"x": [1]}})
    # hsm-plugin-pbs may be installed (scripts/test.sh installs every plugin): disable it here.
    proc = project.hsm("run", "--config", str(cfg), "--sources", "pbs", env=_env(site, HSM_DISABLE_PLUGINS="pbs"))
    assert proc.returncode == 2
    assert "broken" in proc.stderr and "hsm-plugin-pbs" in proc.stderr


def test_a_misspelled_hook_is_reported_not_silently_ignored(project: Project, site: Path) -> None:
    make_dist(site, "hsm-plugin-typo", "typo", "hsm_typo_plugin", MISSPELLED)
    listing = json.loads(project.hsm("plugins", "--json", env=_env(site)).stdout)
    typo = next(p for p in listing["plugins"] if p["name"] == "typo")
    assert typo["status"] == "failed" and "hsm_register_compute_source" in typo["error"]


def test_two_plugins_registering_one_name_is_an_error_naming_both(project: Project, site: Path) -> None:
    make_dist(site, "hsm-plugin-first", "first", "hsm_first_plugin", GOOD)
    make_dist(site, "hsm-plugin-other", "other", "hsm_other_plugin", CONFLICT)
    cfg = project.write_sweep({"grid": {"x": [1]}})
    proc = project.hsm("run", "--config", str(cfg), "--strategy", "first_fit", env=_env(site))
    assert proc.returncode == 2
    assert "hsm-plugin-first" in proc.stderr and "hsm-plugin-other" in proc.stderr
    listing = json.loads(project.hsm("plugins", "--json", env=_env(site)).stdout)
    assert listing["conflicts"] == {"strategy:first_fit": ["hsm-plugin-first", "hsm-plugin-other"]}


def test_disable_and_allow_lists(project: Project, site: Path) -> None:
    make_dist(site, "hsm-plugin-first", "first", "hsm_first_plugin", GOOD)
    make_dist(site, "hsm-plugin-broken", "broken", "hsm_broken_plugin", BROKEN)
    proc = project.hsm("plugins", "--json", env=_env(site, HSM_DISABLE_PLUGINS="broken"))
    states = {p["name"]: p["status"] for p in json.loads(proc.stdout)["plugins"]}
    assert states["broken"] == "disabled" and states["first"] == "loaded" and "warning" not in proc.stderr
    proc = project.hsm("plugins", "--json", env=_env(site, HSM_LOAD_PLUGINS="first"))
    states = {p["name"]: p["status"] for p in json.loads(proc.stdout)["plugins"]}
    assert states["broken"] == "disabled" and states["first"] == "loaded"
    proc = project.hsm("hello", env=_env(site, HSM_DISABLE_PLUGINS="first"))
    assert proc.returncode == 2  # the plugin's command is gone


def test_plugins_table_lists_builtins(project: Project) -> None:
    proc = project.hsm("plugins")
    assert proc.returncode == 0
    assert "core.local" in proc.stdout and "hsm-core" in proc.stdout


# --------------------------------------------------------------------------------------------
# Plugin-API versions, lazy components, plugins that end the interpreter
# --------------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]

NAMED_STRATEGY = """
from hsm_core.plugin import hookimpl, StrategyRecord

@hookimpl
def hsm_register_dispatch_strategies():
    return [StrategyRecord("{name}_fit", "a strategy", "hsm_core.builtin.strategies:RoundRobin")]
"""


def _one_error_line(proc: object) -> str:
    """The only line a failed command printed on stderr (no traceback), besides plugin warnings."""
    lines = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("hsm: warning: ")]  # type: ignore[attr-defined]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr  # type: ignore[attr-defined]
    return lines[0]


def test_a_plugin_for_another_plugin_api_is_not_loaded_and_says_what_to_upgrade(project: Project, site: Path) -> None:
    major, minor = PLUGIN_API_VERSION
    declared = {
        "current": CURRENT_API,
        "older": f"{major}",  # "1" is "1.0": fine under any 1.x core
        "oldmajor": f"{major - 1}.9",
        "newminor": f"{major}.{minor + 1}",
        "newmajor": f"{major + 1}.0",
        "silent": None,
        "garbled": "one",
    }
    for name, api in declared.items():
        make_dist(site, f"hsm-plugin-{name}", name, f"hsm_{name}_plugin", NAMED_STRATEGY.replace("{name}", name), api=api)
    env = _env(site, HSM_DISABLE_PLUGINS="example,pbs,slurm,ssh,wandb_sync")  # only these plugins

    help_ = project.hsm("--help", env=env)
    assert help_.returncode == 0 and "Usage" in help_.stdout
    warned = {ln.split("'")[1] for ln in help_.stderr.splitlines() if "failed to load" in ln}
    assert warned == {"oldmajor", "newminor", "newmajor", "silent", "garbled"}

    listing = json.loads(project.hsm("plugins", "--json", env=env).stdout)
    assert listing["plugin_api"] == CURRENT_API
    mine = {p["name"]: p for p in listing["plugins"] if p["name"] in declared}
    assert mine["current"]["status"] == "loaded" and mine["current"]["api"] == CURRENT_API
    assert mine["older"]["status"] == "loaded"
    core = f"provides plugin API {CURRENT_API}"
    assert mine["oldmajor"]["error"].endswith(f"{core}: upgrade the plugin")
    assert f"written for plugin API {major - 1}.x" in mine["oldmajor"]["error"]
    assert mine["newminor"]["error"].startswith(f"needs plugin API {major}.{minor + 1} ")
    assert mine["newminor"]["error"].endswith("upgrade hsm-core")
    assert mine["newmajor"]["error"].endswith("upgrade hsm-core")
    assert "declares no plugin API version (HSM_PLUGIN_API in hsm_silent_plugin)" in mine["silent"]["error"]
    assert mine["silent"]["error"].endswith("upgrade the plugin")
    assert "HSM_PLUGIN_API = 'one' in hsm_garbled_plugin is not a string like" in mine["garbled"]["error"]
    assert all(mine[n]["status"] == "failed" for n in warned) and all(not mine[n]["provides"] for n in warned)

    # The table says the same, one readable line per failed plugin.
    table = project.hsm("plugins", env=env).stdout
    assert any(ln.startswith("failed: oldmajor (hsm-plugin-oldmajor 1.2.3)") and ln.endswith("upgrade the plugin")
               for ln in table.splitlines()), table

    cfg = project.write_sweep({"grid": {"x": [1]}})
    assert project.hsm("run", "--config", str(cfg), "--strategy", "current_fit", env=env).returncode == 0
    line = _one_error_line(project.hsm("run", "--config", str(cfg), "--strategy", "oldmajor_fit", env=env))
    assert "unknown dispatch strategy 'oldmajor_fit'" in line and "oldmajor: written for plugin API" in line


STALE = """
from hsm_core.plugin import hookimpl, ComputeSourceRecord, StrategyRecord

@hookimpl
def hsm_register_dispatch_strategies():
    return [StrategyRecord("stale_fit", "its module imports a core name that is gone", "hsm_stale_impl:Strategy")]

@hookimpl
def hsm_register_compute_sources():
    return [ComputeSourceRecord("stale", "same", "hsm_stale_impl:Source", detect="hsm_stale_impl:detect")]
"""

# What an old plugin meets after a name of the plugin API it was written for went away.
STALE_IMPL = "from hsm_core.plugin import a_function_renamed_since_this_plugin_was_written\n"


def test_hsm_plugins_check_imports_every_component_and_first_use_fails_in_one_line(project: Project, site: Path) -> None:
    make_dist(site, "hsm-plugin-stale", "stale", "hsm_stale_plugin", STALE)
    (site / "hsm_stale_impl.py").write_text(STALE_IMPL)
    env = _env(site)
    listing = json.loads(project.hsm("plugins", "--json", env=env).stdout)
    assert next(p for p in listing["plugins"] if p["name"] == "stale")["status"] == "loaded"  # registering is fine

    check = project.hsm("plugins", "--check", env=env)
    assert check.returncode == 1, check.stdout + check.stderr
    fails = [ln.strip() for ln in check.stdout.splitlines() if "[FAIL]" in ln]
    assert [ln.split(":")[0] for ln in fails] == [
        "[FAIL] dispatch strategy stale_fit (factory, hsm-plugin-stale)",
        "[FAIL] compute source stale (factory, hsm-plugin-stale)",
        "[FAIL] compute source stale (detect, hsm-plugin-stale)",
    ], check.stdout
    assert all("upgrade the plugin or hsm-core" in ln for ln in fails)
    assert "[ok] compute source local (factory, hsm-core)" in check.stdout and "3 problem(s)." in check.stdout
    as_json = json.loads(project.hsm("plugins", "--check", "--json", env=env).stdout)
    assert len(as_json["problems"]) == 3 and all(c["error"] is None for c in as_json["check"] if c["plugin"] != "stale")

    cfg = project.write_sweep({"grid": {"x": [1, 2]}})
    for selection in (["--strategy", "stale_fit"], ["--sources", "stale"]):
        line = _one_error_line(project.hsm("run", "--config", str(cfg), *selection, env=env))
        assert "of hsm-plugin-stale 1.2.3 failed to load (factory): ImportError: cannot import name" in line, line
        assert "upgrade the plugin or hsm-core" in line and "hsm plugins --check" in line
    # Without the broken plugin, --check passes.
    assert project.hsm("plugins", "--check", env=_env(site, HSM_DISABLE_PLUGINS="stale")).returncode == 0


EXITS_AT_IMPORT = "raise SystemExit('this plugin ends the interpreter')\n"

EXITS_IN_COMMANDS = """
from hsm_core.plugin import hookimpl

@hookimpl
def hsm_register_commands(cli):
    raise SystemExit(3)
"""

EXITS_ON_FIRST_USE = """
from hsm_core.plugin import hookimpl, StrategyRecord

@hookimpl
def hsm_register_dispatch_strategies():
    return [StrategyRecord("exit_fit", "its module exits", "hsm_exit_impl:Strategy")]
"""


def test_a_plugin_raising_systemexit_never_ends_help_version_or_run(project: Project, site: Path) -> None:
    make_dist(site, "hsm-plugin-exits", "exits", "hsm_exits_plugin", EXITS_AT_IMPORT)
    make_dist(site, "hsm-plugin-quits", "quits", "hsm_quits_plugin", EXITS_IN_COMMANDS)
    make_dist(site, "hsm-plugin-later", "later", "hsm_later_plugin", EXITS_ON_FIRST_USE)
    (site / "hsm_exit_impl.py").write_text("import sys\nsys.exit(4)\n")
    env = _env(site)
    help_ = project.hsm("--help", env=env)
    assert help_.returncode == 0 and "Usage" in help_.stdout and "plugins" in help_.stdout
    warnings = [ln for ln in help_.stderr.splitlines() if "warning" in ln]
    assert len(warnings) == 2 and "this plugin ends the interpreter" in warnings[0] and "SystemExit(3)" in warnings[1]
    version = project.hsm("--version", env=env)
    assert version.returncode == 0 and version.stdout.strip().endswith(f"(plugin API {CURRENT_API})"), version.stdout
    listing = {p["name"]: p for p in json.loads(project.hsm("plugins", "--json", env=env).stdout)["plugins"]}
    assert listing["exits"]["status"] == "failed" and listing["exits"]["error"] == "SystemExit: this plugin ends the interpreter"
    assert listing["quits"]["status"] == "failed" and "SystemExit(3)" in listing["quits"]["error"]
    cfg = project.write_sweep({"grid": {"x": [1]}})
    line = _one_error_line(project.hsm("run", "--config", str(cfg), "--strategy", "exit_fit", env=env))
    assert "dispatch strategy 'exit_fit' of hsm-plugin-later 1.2.3 failed to load (factory): SystemExit: 4" in line


def test_install_hints_name_what_installs_the_plugin(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [1]}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", "slurm", env={"HSM_DISABLE_PLUGINS": "slurm"})
    line = _one_error_line(proc)
    # hsm-core runs from this checkout: the hint is the plugin's directory in it, never a bare name
    # that no package index has (and a stranger could register).
    assert f"install hsm-plugin-slurm with: pip install {REPO / 'hsm_plugin_slurm'}" in line, line
    assert "pip install hsm-plugin" not in line
    # A site says how its users get plugins.
    site_env = {"HSM_DISABLE_PLUGINS": "pbs,slurm", "HSM_INSTALL_HINT": "module load hsm/{directory}"}
    line = _one_error_line(project.hsm("run", "--config", str(cfg), "--sources", "hpc", env=site_env))
    assert ("install hsm-plugin-slurm with: module load hsm/hsm_plugin_slurm"
            " or hsm-plugin-pbs with: module load hsm/hsm_plugin_pbs") in line, line
    line = _one_error_line(project.hsm("run", "--config", str(cfg), "--sources", "pbs", env=site_env))
    assert "to get it, install hsm-plugin-pbs with: module load hsm/hsm_plugin_pbs" in line, line


OPT_IN_TEST = """
def test_uses_the_kit(hsm_builtin_registry):
    assert "local" in hsm_builtin_registry.components("compute_source")
"""


def test_the_test_kit_is_opt_in(tmp_path: Path) -> None:
    """Installing hsm-core adds no fixtures to other projects' pytest sessions; one line adds them."""
    import subprocess
    import sys

    def pytest_in(directory: Path) -> subprocess.CompletedProcess:
        (directory / "test_kit.py").write_text(OPT_IN_TEST)
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(directory)],
                              cwd=directory, capture_output=True, text=True, timeout=120)

    (tmp_path / "plain").mkdir()
    proc = pytest_in(tmp_path / "plain")
    assert proc.returncode == 1 and "fixture 'hsm_builtin_registry' not found" in proc.stdout, proc.stdout
    (tmp_path / "opted").mkdir()
    (tmp_path / "opted" / "conftest.py").write_text('pytest_plugins = ["hsm_core.testing.pytest_plugin"]\n')
    proc = pytest_in(tmp_path / "opted")
    assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout


TEST_DIRS = ["tests", *sorted(str(p.parent.relative_to(REPO)) for p in REPO.glob("hsm_plugin_*/tests/conftest.py")),
             "plugins/template/tests"]


@pytest.mark.parametrize("test_dir", TEST_DIRS)
def test_every_test_dir_of_the_repository_gets_the_kit(test_dir: str) -> None:
    import subprocess
    import sys

    # -p no:hsm: an hsm-core installed before the kit became opt-in still has a pytest11 entry point.
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hsm", "--fixtures",
                           str(REPO / test_dir / "conftest.py")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 5), proc.stdout + proc.stderr  # 5: no tests collected
    fixtures = {ln.split()[0] for ln in proc.stdout.splitlines() if ln and not ln[0].isspace() and " -- " in ln}
    assert {"hsm_registry", "hsm_builtin_registry"} <= fixtures, proc.stdout
