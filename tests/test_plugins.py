"""The plugin framework as users meet it: discovery, broken plugins, conflicts, allow/deny lists."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from hsm_project import Project


def make_dist(site: Path, dist: str, ep_name: str, module: str, code: str) -> None:
    """A minimal installed distribution (dist-info + module) exposing one ``hsm`` entry point."""
    (site / f"{module}.py").write_text(textwrap.dedent(code))
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
