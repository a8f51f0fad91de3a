"""Quick start-up as users meet it: commands loaded when used, answers cached, and never stale.

``hsm --help`` lists every command (plugins' too) from a cached index, ``hsm status`` reads the
config without checking it again while it is unchanged; installing, removing or editing a plugin,
or editing a config file, is seen by the very next command.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from hsm_project import Project
from plugin_dists import CURRENT_API, make_dist, plugin_env

HELLO = """
from hsm_core.plugin import hookimpl

@hookimpl
def hsm_register_commands(cli):
    import click

    @cli.command("hello")
    def hello():
        '''Say hello (from a plugin).'''
        click.echo("hello from plugin")
"""

FAILING_COMMANDS = """
from hsm_core.plugin import hookimpl

@hookimpl
def hsm_register_commands(cli):
    raise RuntimeError("no commands today")
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    d = tmp_path / "site"
    d.mkdir()
    return d


def _env(site: Path, cache: Path | str, **extra: str) -> dict[str, str]:
    return plugin_env(site, **{"HSM_CACHE_DIR": str(cache), **extra})


def test_help_lists_what_is_installed_now_from_the_index(project: Project, site: Path, tmp_path: Path) -> None:
    env = _env(site, tmp_path / "cache")
    first = project.hsm("--help", env=env, check=True).stdout
    assert list((tmp_path / "cache").glob("commands-*.json")), "the command index was not written"
    assert project.hsm("--help", env=env, check=True).stdout == first
    # The index gives exactly what loading every command gives.
    assert project.hsm("--help", env=_env(site, "off"), check=True).stdout == first
    assert "hello" not in first

    make_dist(site, "hsm-hello", "hello", "hsm_hello", HELLO)  # installed after the index was written
    listed = project.hsm("--help", env=env, check=True).stdout
    assert "Say hello (from a plugin)." in listed
    assert project.hsm("hello", env=env, check=True).stdout == "hello from plugin\n"

    # The plugin's module edited in place: its new help line is shown at once.
    module = site / "hsm_hello.py"
    module.write_text(module.read_text().replace("Say hello (from a plugin).", "Greet the user, now with more words."))
    assert "Greet the user, now with more words." in project.hsm("--help", env=env, check=True).stdout

    # Uninstalled: gone from the help, and no such command.
    shutil.rmtree(next(site.glob("hsm_hello-*.dist-info")))
    assert "hello" not in project.hsm("--help", env=env, check=True).stdout
    gone = project.hsm("hello", env=env)
    assert gone.returncode == 2 and "No such command 'hello'" in gone.stderr


def test_an_entry_point_added_to_an_installed_distribution_is_found(project: Project, site: Path, tmp_path: Path) -> None:
    env = _env(site, tmp_path / "cache")
    make_dist(site, "hsm-two", "first", "hsm_first", "x = 1\n")
    assert "hello" not in project.hsm("--help", env=env, check=True).stdout
    (site / "hsm_hello.py").write_text(f"HSM_PLUGIN_API = {CURRENT_API!r}\n" + HELLO)
    info = next(site.glob("hsm_two-*.dist-info"))
    (info / "entry_points.txt").write_text("[hsm]\nfirst = hsm_first\nhello = hsm_hello\n")
    assert project.hsm("hello", env=env, check=True).stdout == "hello from plugin\n"
    plugins = project.hsm("plugins", env=env, check=True).stdout
    assert "hello" in plugins and "first" in plugins


def test_a_plugin_edited_to_add_its_first_command_is_listed(project: Project, site: Path, tmp_path: Path) -> None:
    # An editable install whose plugin module starts adding a command: its entry points are
    # unchanged, so only the module's own stamp can tell the index is stale.
    env = _env(site, tmp_path / "cache")
    make_dist(site, "hsm-quiet", "quiet", "hsm_quiet", "x = 1\n")
    assert "hello" not in project.hsm("--help", env=env, check=True).stdout
    module = site / "hsm_quiet.py"
    _settle(module)
    module.write_text(module.read_text() + HELLO)
    assert "Say hello (from a plugin)." in project.hsm("--help", env=env, check=True).stdout
    assert project.hsm("hello", env=env, check=True).stdout == "hello from plugin\n"


def test_a_plugin_failing_to_add_its_commands_is_reported_by_every_command(project: Project, site: Path, tmp_path: Path) -> None:
    env = _env(site, tmp_path / "cache")
    make_dist(site, "hsm-failing", "failing", "hsm_failing", FAILING_COMMANDS)
    for _ in range(2):
        proc = project.hsm("--help", env=env, check=True)
        assert "plugin 'failing' failed to add its commands" in proc.stderr
        assert "status" in proc.stdout


def _settle(path: Path) -> None:
    """Date a file a minute back, as a config file edited earlier is (only settled files are recorded)."""
    past = time.time() - 60
    os.utime(path, (past, past))


def test_status_checks_the_config_once_per_change(project: Project, tmp_path: Path) -> None:
    sweep = project.write_sweep({"grid": {"x": [1, 2]}})
    project.hsm("run", "--config", str(sweep), "--sweep-id", "s1", check=True)
    config = project.root / "hsm_config.yaml"
    good = config.read_text()
    _settle(config)
    assert project.hsm("status", "s1", check=True).returncode == 0
    assert (project.root / ".hsm" / "checked_config.json").is_file()

    # Checked once: status and export no longer need the schema checker at all.
    shadow = tmp_path / "shadow" / "jsonschema"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('the schema checker was loaded')\n")
    no_checker = {"PYTHONPATH": str(shadow.parent)}
    assert "completed" in project.hsm("status", "s1", env=no_checker, check=True).stdout
    assert project.hsm("export", "s1", env=no_checker, check=True).stdout.count("\n") == 3

    # Edited (even within the same second, even dated back): checked again, the error as always.
    config.write_text(good.replace("max_parallel_jobs: 2", "max_paralel_jobs: 2"))
    _settle(config)
    bad = project.hsm("status", "s1")
    assert bad.returncode == 2, bad.stderr
    assert "hsm_config.yaml" in bad.stderr and "max_paralel_jobs" in bad.stderr and "Traceback" not in bad.stderr

    config.write_text(good)
    assert project.hsm("status", "s1", check=True).returncode == 0

    # A layer below the project's (the user's own config) is part of what was checked.
    user = tmp_path / "xdg" / "hsm" / "hsm_config.yaml"
    user.parent.mkdir(parents=True)
    user.write_text("compute:\n  local:\n    max_paralel_jobs: 4\n")
    layered = project.hsm("status", "s1", env={"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    assert layered.returncode == 2 and "max_paralel_jobs" in layered.stderr


def _count_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the schema checks of project configurations made in this process."""
    from hsm_core.config import project_config

    checks: list[int] = []
    real = project_config._check_project

    def counted(*args, **kwargs):
        checks.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(project_config, "_check_project", counted)
    return checks


def test_run_and_complete_check_the_config_once_per_change(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    from hsm_core.errors import ConfigError
    from hsm_core.lifecycle import plan_complete, plan_run
    from hsm_core.registry import get_registry

    sweep = project.write_sweep({"grid": {"x": [1, 2]}})
    config = project.root / "hsm_config.yaml"
    good = config.read_text()
    _settle(config)
    # A run refused after the check records nothing (a refused run writes nothing); one that
    # starts records the check.
    assert project.hsm("run", "--config", str(sweep), "--sources", "lcoal").returncode == 2
    assert not (project.root / ".hsm").exists()
    project.hsm("run", "--config", str(sweep), "--sweep-id", "s1", check=True)
    assert (project.root / ".hsm" / "checked_config.json").is_file()

    # The same files under the same plugins: planning a run or a complete checks nothing again.
    checks = _count_checks(monkeypatch)
    registry = get_registry()  # the installed plugins, as the command line has them
    plan_run(sweep, registry, project_root=project.root)
    plan_complete("s1", registry, project_root=project.root, take_lease=False)
    assert checks == []

    # Edited (same size, dated back): checked again, and the run stops with the error as always.
    config.write_text(good.replace("max_parallel_jobs: 2", "max_paralel_jobs: 2"))
    _settle(config)
    with pytest.raises(ConfigError, match="max_paralel_jobs"):
        plan_run(sweep, registry, project_root=project.root)
    bad = project.hsm("run", "--config", str(sweep))
    assert bad.returncode == 2 and "hsm_config.yaml" in bad.stderr and "max_paralel_jobs" in bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    bad = project.hsm("complete", "s1")
    assert bad.returncode == 2 and "max_paralel_jobs" in bad.stderr and "Traceback" not in bad.stderr


def test_a_run_with_plugins_of_its_own_always_checks(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    # The record says what passed under the installed plugins: a registry built or set by the
    # caller (tests, scripts with plugins of their own) may have other schemas.
    from hsm_core.lifecycle import plan_run
    from hsm_core.registry import build_registry, get_registry, set_registry

    sweep = project.write_sweep({"grid": {"x": [1]}})
    _settle(project.root / "hsm_config.yaml")
    project.hsm("run", "--config", str(sweep), check=True)  # recorded
    checks = _count_checks(monkeypatch)
    plan_run(sweep, get_registry(), project_root=project.root)
    assert checks == []
    own = build_registry()
    plan_run(sweep, own, project_root=project.root)
    assert len(checks) == 1
    old = get_registry.__globals__["_REGISTRY"]
    set_registry(own)
    try:
        plan_run(sweep, own, project_root=project.root)
    finally:
        set_registry(old)
    assert len(checks) == 2
    plan_run(sweep, get_registry(), project_root=project.root)
    assert len(checks) == 2


def test_the_installed_entry_points_are_found_again_from_another_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `python -m hsm_core` puts the current directory first on sys.path: a directory holding no
    # distribution changes nothing installed, so the cached answer holds; one holding a
    # distribution is read.
    import sys

    from hsm_core import entry_points

    scans: list[str] = []
    real = entry_points._scan
    monkeypatch.setattr(entry_points, "_scan", lambda group: scans.append(group) or real(group))
    first, second, with_dist = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for d in (first, second, with_dist):
        d.mkdir()
    for here in (first, second, tmp_path / "missing"):
        monkeypatch.setattr(sys, "path", [str(here), *sys.path[1:]])
        entry_points.forget()
        before = entry_points.plugin_entry_points()
    assert len(scans) == 1
    make_dist(with_dist, "hsm-hello", "hello", "hsm_hello", HELLO)
    monkeypatch.setattr(sys, "path", [str(with_dist), *sys.path[1:]])
    entry_points.forget()
    found = entry_points.plugin_entry_points()
    assert len(scans) == 2 and "hello" in [ep.name for ep in found] and "hello" not in [ep.name for ep in before]
    entry_points.forget()
