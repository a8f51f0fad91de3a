"""The plugin API stays honest: every hook is documented with its exact signature and tested, and every
name of ``hsm_core.plugin`` is documented in docs/plugin-api.md."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import hsm_core.plugin as hsm_plugin
import hsm_core.plugin.hooks as hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("hsm_"))


def _signature(name: str) -> str:
    sig = inspect.signature(getattr(hookspecs, name))
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"{name}({params}) -> {sig.return_annotation}"


def test_there_are_hooks() -> None:
    assert len(HOOKS) >= 10


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_with_its_exact_signature(hook: str) -> None:
    docs = (ROOT / "docs" / "hooks.md").read_text()
    assert f"### `{_signature(hook)}`" in docs


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_docstring_and_no_defaults(hook: str) -> None:
    fn = getattr(hookspecs, hook)
    assert fn.__doc__ and fn.__doc__.strip()
    assert all(p.default is inspect.Parameter.empty for p in inspect.signature(fn).parameters.values())


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook: str) -> None:
    """Some test (outside this file) implements or calls the hook by name."""
    pattern = re.compile(rf"\b{hook}\b")
    for path in list(ROOT.glob("tests/**/*.py")) + list(ROOT.glob("hsm_plugin_*/tests/**/*.py")) + list(ROOT.glob("plugins/**/tests/*.py")):
        if path.name != "test_docs.py" and pattern.search(path.read_text()):
            return
    pytest.fail(f"no test mentions {hook}")


def _api_sections() -> dict[str, str]:
    """The sections of docs/plugin-api.md that document a submodule: ``## Title (submodule)`` -> text."""
    text = (ROOT / "docs" / "plugin-api.md").read_text()
    sections: dict[str, str] = {}
    for chunk in re.split(r"^## ", text, flags=re.M)[1:]:
        heading, _, body = chunk.partition("\n")
        m = re.search(r"\((\w+)\)\s*$", heading)
        if m:
            sections[m.group(1)] = body
    return sections


def _documented(body: str) -> list[str]:
    """The names in the first column of a section's table rows (``| `name` | ... |``)."""
    return re.findall(r"^\| `([A-Za-z_][A-Za-z0-9_]*)` \|", body, flags=re.M)


@pytest.mark.parametrize("name", hsm_plugin.__all__)
def test_every_name_of_the_plugin_api_is_documented_in_its_section(name: str) -> None:
    """docs/plugin-api.md has a table row for every exported name, in the section of the submodule
    that defines it (so the page is grouped like the package)."""
    submodule = hsm_plugin._SUBMODULE[name].split(".")[0]  # arrayjob.source -> the arrayjob section
    sections = _api_sections()
    assert submodule in sections, f"docs/plugin-api.md has no section '## ... ({submodule})'"
    assert name in _documented(sections[submodule]), f"{name} is not documented in the ({submodule}) section"


def test_the_plugin_api_page_documents_nothing_that_is_not_exported() -> None:
    stale = [n for body in _api_sections().values() for n in _documented(body) if n not in hsm_plugin.__all__]
    assert stale == [], f"docs/plugin-api.md documents names hsm_core.plugin does not export: {stale}"


def test_the_plugin_api_page_is_linked_from_the_plugin_guide_and_the_hooks_page() -> None:
    for page in ("plugins/README.md", "docs/hooks.md", "README.md"):
        assert "plugin-api.md" in (ROOT / page).read_text(), page


def _readme_commands() -> list[list[str]]:
    """The command path of every ``hsm ...`` line in the README's shell blocks (``hsm sync to``)."""
    text = (ROOT / "README.md").read_text()
    paths: list[list[str]] = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            for part in re.split(r"&&|\|", line.split("#", 1)[0]):
                words = part.split()
                if not words or words[0] != "hsm":
                    continue
                path = []
                for word in words[1:]:
                    if not re.fullmatch(r"[a-z][a-z-]*", word):
                        break
                    path.append(word)
                if path not in paths:
                    paths.append(path)
    return paths


_WALK = """
import json, sys
import click
from hsm_core.cli.main import build_cli
cli = build_cli()
for path in json.loads(sys.argv[1]):
    group, walked = cli, []
    for word in path:
        if not isinstance(group, click.Group):
            break  # an argument (e.g. a sweep id in lower case)
        sub = group.get_command(click.Context(group), word)
        if sub is None:
            print("hsm " + " ".join(walked + [word]))
            break
        group, walked = sub, walked + [word]
    else:
        if not walked:
            print("hsm " + " ".join(path))
"""


def test_every_command_in_the_readme_exists() -> None:
    """A new user copies these lines: each command (and subcommand) must be there.

    In a fresh process: the command tree is built once per process, and other tests build it
    with some plugins hidden.
    """
    import json
    import subprocess
    import sys

    paths = _readme_commands()
    assert len(paths) >= 15
    proc = subprocess.run([sys.executable, "-c", _WALK, json.dumps(paths)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "", f"README names commands that do not exist:\n{proc.stdout}"


def test_the_tests_map_names_every_test_file_and_every_module() -> None:
    """tests/README.md maps the code to its tests: a new test file or a new module of hsm_core
    must find its row (a module by its file name, a package by its directory)."""
    text = (ROOT / "tests" / "README.md").read_text()
    tests_dir = ROOT / "tests"
    missing = [p.relative_to(tests_dir).as_posix() for p in sorted(tests_dir.rglob("test_*.py"))
               if "support" not in p.parts and p.relative_to(tests_dir).as_posix() not in text]
    assert not missing, f"tests/README.md does not name these test files: {missing}"
    core = ROOT / "hsm_core"
    unnamed = []
    for entry in sorted(core.iterdir()):
        if entry.name.startswith(("_", ".")) and entry.name != "__main__.py" or entry.name in ("py.typed", "schemas"):
            continue
        named = f"{entry.name}/`" if entry.is_dir() else f"{entry.name}`"
        if named not in text:
            unnamed.append(entry.name)
    assert not unnamed, f"tests/README.md maps no tests to these parts of hsm_core: {unnamed}"
    for sub in ("builtin",):
        for entry in sorted((core / sub).glob("[!_]*.py")):
            assert f"{sub}/{entry.name}`" in text, f"tests/README.md maps no tests to hsm_core/{sub}/{entry.name}"
