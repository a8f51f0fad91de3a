"""Property-based fuzzing of sweep files and hsm_config.yaml: every bad input is a clean exit 2.

Whatever bytes a user puts in these files, hsm answers with exit 0 (valid) or 2 (one line saying
what is wrong) — never a traceback, never a hang, never memory exhaustion.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hsm_core.cli.main import build_cli

KEYS = st.sampled_from(["grid", "paired", "sweep", "metadata", "command", "args_style", "gird", "lr", "x.y", "", "name"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS | st.text(max_size=8), inner, max_size=4), max_leaves=12)
DOCS = st.dictionaries(KEYS, VALUES, max_size=5)

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _invoke(root: Path, *args: str):
    runner = CliRunner()
    cwd = os.getcwd()
    os.chdir(root)
    try:
        return runner.invoke(build_cli(), list(args), catch_exceptions=True)
    finally:
        os.chdir(cwd)


def _assert_clean(result) -> None:
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"traceback for input: {result.exception!r}\n{result.output}") from result.exception
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        lines = [ln for ln in result.output.splitlines() if ln.strip()]
        assert lines and "Traceback" not in result.output
        assert any(ln.startswith("Error:") or ln.startswith("Usage:") for ln in lines), result.output


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text("pass\n")
    (tmp_path / "hsm_config.yaml").write_text("paths:\n  train_script: train.py\n")
    return tmp_path


@FUZZ
@given(doc=DOCS)
def test_structured_sweep_files(root: Path, doc) -> None:
    import yaml

    path = root / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc))
    _assert_clean(_invoke(root, "run", "--config", str(path), "--count-only"))
    _assert_clean(_invoke(root, "run", "--config", str(path), "--dry-run"))


@FUZZ
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_as_sweep_file(root: Path, data: bytes) -> None:
    path = root / "sweep.yaml"
    path.write_bytes(data)
    _assert_clean(_invoke(root, "run", "--config", str(path), "--count-only"))


@FUZZ
@given(text=st.text(max_size=200))
def test_arbitrary_text_as_project_config(root: Path, text: str) -> None:
    (root / "hsm_config.yaml").write_text(text)
    (root / "sweep.yaml").write_text("grid:\n  x: [1, 2]\n")
    _assert_clean(_invoke(root, "config", "validate"))
    _assert_clean(_invoke(root, "run", "--config", "sweep.yaml", "--dry-run"))


@FUZZ
@given(doc=st.dictionaries(st.sampled_from(["paths", "compute", "hpc", "distributed", "project", "pahts", "wandb"]), VALUES, max_size=4))
def test_structured_project_configs(root: Path, doc) -> None:
    import yaml

    (root / "hsm_config.yaml").write_text(yaml.safe_dump(doc))
    (root / "sweep.yaml").write_text("grid:\n  x: [1, 2]\n")
    _assert_clean(_invoke(root, "run", "--config", "sweep.yaml", "--dry-run"))


def test_duplicate_keys_non_utf8_and_long_values(root: Path) -> None:
    (root / "dup.yaml").write_text("grid:\n  x: [1]\n  x: [2]\n")
    result = _invoke(root, "run", "--config", "dup.yaml", "--count-only")
    assert result.exit_code == 2 and "duplicate" in result.output and ":3" in result.output
    (root / "latin1.yaml").write_bytes("grid:\n  x: ['caf\xe9']\n".encode("latin-1"))
    result = _invoke(root, "run", "--config", "latin1.yaml", "--count-only")
    assert result.exit_code == 2 and "UTF-8" in result.output
    long_value = "v" * 100_000
    (root / "long.yaml").write_text(f"grid:\n  x: ['{long_value}']\n")
    result = _invoke(root, "run", "--config", "long.yaml", "--count-only")
    assert result.exit_code == 0 and "1" in result.output


def test_billion_laughs_is_refused_or_bounded(root: Path) -> None:
    """YAML alias bombs must not expand into memory."""
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    prev = "a"
    for name in "bcdefghij":
        lines.append(f"{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]")
        prev = name
    lines.append(f"grid:\n  x: *{prev}")
    (root / "bomb.yaml").write_text("\n".join(lines) + "\n")
    result = _invoke(root, "run", "--config", "bomb.yaml", "--count-only")
    _assert_clean(result)
