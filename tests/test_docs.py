"""The plugin API stays honest: every hook is documented with its exact signature and tested."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import hsm_core.hookspecs as hookspecs

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
