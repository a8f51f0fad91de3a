"""Bad input beyond what the fuzzer covers (tests/test_fuzz_config.py): huge grids under a memory
limit, values no command line can carry, duplicate keys and non-UTF-8 bytes in every YAML file a
user writes. Every case is one clear line naming the file (and line or key), exit 2, no traceback,
and nothing written."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hsm_project import Project

#: Address-space limit for the hsm process: about 3x what `hsm run` needs; expanding 10^12
#: combinations (or even 10^8) would need far more.
MEMORY_LIMIT = 1536 * 1024 * 1024
HUGE = {"grid": {f"p{i}": list(range(10)) for i in range(12)}}  # 10^12 combinations


def limited_hsm(project: Project, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the real hsm with RLIMIT_AS set, and a timeout: a runaway expansion fails, never hangs."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    env = dict(os.environ, HSM_COUNT_DIR=str(project.root))
    return subprocess.run([sys.executable, "-m", "hsm_core", *args], cwd=project.root, env=env, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=limit)


def one_clear_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# --------------------------------------------------------------------------------------------
# Huge grids
# --------------------------------------------------------------------------------------------


def test_count_only_of_a_trillion_combinations_within_a_memory_limit(project: Project) -> None:
    cfg = project.write_sweep(HUGE)
    proc = limited_hsm(project, "run", "--config", str(cfg), "--count-only")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "Total parameter combinations: 1000000000000"


@pytest.mark.parametrize(
    "args",
    [
        ("run",),
        ("run", "--dry-run"),
        ("sweep", "--mode", "local"),  # v1 spelling
        ("worker", "--sweep"),
        ("worker", "--status", "--sweep"),
    ],
    ids=["run", "dry-run", "v1-sweep", "worker", "worker-status"],
)
def test_a_trillion_combinations_are_refused_within_a_memory_limit(project: Project, args: tuple[str, ...]) -> None:
    cfg = project.write_sweep({"name": "huge", **HUGE})
    flag = [] if args[-1] == "--sweep" else ["--config"]
    proc = limited_hsm(project, *args, *flag, str(cfg))
    one_clear_line(proc, "1,000,000,000,000 combinations")
    assert project.sweep_ids() == [] and project.executions() == []
    assert not (project.outputs / "huge").exists()


def test_max_runs_streams_the_first_combinations_of_a_trillion(project: Project) -> None:
    """--max-runs takes the first N combinations without expanding the rest; `hsm complete` of
    that sweep (and with the config given again) stays within the same N."""
    cfg = project.write_sweep(HUGE)
    proc = limited_hsm(project, "run", "--config", str(cfg), "--max-runs", "3", "--sweep-id", "first3")
    assert proc.returncode == 0, proc.stderr
    assert len(project.executions()) == 3
    info = json.loads(limited_hsm(project, "status", "first3", "--json").stdout)
    assert info["total"] == 3 and info["counts"]["completed"] == 3
    for extra in ((), ("--config", str(cfg))):
        again = limited_hsm(project, "complete", "first3", *extra)
        assert again.returncode == 0, again.stderr
        assert "Nothing to run" in again.stdout
    assert len(project.executions()) == 3


# --------------------------------------------------------------------------------------------
# Values no command line can carry
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["run", "worker"])
def test_a_nul_character_in_a_value_is_one_clear_line_before_anything_is_written(project: Project, command: str) -> None:
    # A NUL ends a C string: no argv element or environment variable can hold one. (It used to
    # reach subprocess and end `hsm run` with a ValueError traceback.)
    cfg = project.write_sweep('name: nul\ngrid:\n  x: [1, "a\\0b"]\n')
    args = ("run", "--config", str(cfg)) if command == "run" else ("worker", "--sweep", str(cfg))
    line = one_clear_line(project.hsm(*args), "sweep.yaml", "grid.x", "NUL")
    assert "a\\x00b" in line
    assert project.sweep_ids() == [] and not (project.outputs / "nul").exists()


def test_a_nul_character_in_a_parameter_name(project: Project) -> None:
    cfg = project.write_sweep('paired:\n  - g:\n      "lr\\0": [1]\n')
    one_clear_line(project.hsm("run", "--config", str(cfg), "--count-only"), "sweep.yaml", "paired.g", "NUL")


def test_a_value_too_long_for_a_command_line_is_one_clear_line(project: Project) -> None:
    # Linux refuses one argument of 128 KiB or more (E2BIG). Such a task could never start: the
    # run used to disable and re-enable the local source forever.
    cfg = project.write_sweep({"grid": {"x": ["v" * 200_000]}})
    proc = project.hsm("run", "--config", str(cfg), timeout=60)
    one_clear_line(proc, "sweep.yaml", "grid.x", "200,002 bytes", "too long")
    assert project.sweep_ids() == []


def test_a_long_value_that_fits_reaches_the_script_intact(project: Project) -> None:
    value = "é" * 30_000 + "-" + "x" * 60_000  # ~120 KB of UTF-8: just under the limit
    cfg = project.write_sweep({"grid": {"name": [value]}})
    proc = project.hsm("run", "--config", str(cfg), "--sweep-id", "long")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = (project.outputs / "long" / "tasks" / "task_001" / "stdout.log").read_text(encoding="utf-8")
    argv = json.loads(next(ln for ln in out.splitlines() if ln.startswith("ARGV "))[5:])
    assert argv == [f"name={value}"]


def test_a_very_long_sweep_id_is_refused(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [1]}})
    one_clear_line(project.hsm("run", "--config", str(cfg), "--sweep-id", "s" * 200), "invalid sweep id")
    assert project.sweep_ids() == []


# --------------------------------------------------------------------------------------------
# Duplicate keys and non-UTF-8 bytes, in every file a user writes
# --------------------------------------------------------------------------------------------


def test_duplicate_key_in_hsm_config_names_both_lines(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [1]}})
    text = (project.root / "hsm_config.yaml").read_text()
    (project.root / "hsm_config.yaml").write_text(text + "compute:\n  strategy: random\n")
    line = one_clear_line(project.hsm("run", "--config", str(cfg)), "hsm_config.yaml:", "compute", "duplicate key")
    first = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.startswith("compute:"))
    assert f"first defined on line {first}" in line
    assert project.sweep_ids() == []


def test_duplicate_key_inside_a_paired_group(project: Project) -> None:
    cfg = project.write_sweep("paired:\n  - g:\n      a: [1, 2]\n      a: [3, 4]\n")
    one_clear_line(project.hsm("run", "--config", str(cfg), "--count-only"), "sweep.yaml:4", "a: duplicate key",
                   "line 3")


def test_duplicate_key_in_a_worker_sweep_file(project: Project) -> None:
    cfg = project.write_sweep("name: w\ngrid:\n  x: [1]\ngrid:\n  y: [2]\n")
    one_clear_line(project.hsm("worker", "--sweep", str(cfg)), "sweep.yaml:4", "grid: duplicate key")
    assert not (project.outputs / "w").exists()


def test_duplicate_key_and_non_utf8_in_the_sync_config(project: Project) -> None:
    sync = project.root / ".hsm" / "sync_config.yaml"
    sync.parent.mkdir()
    sync.write_text("sync_targets:\n  a:\n    paths: {sweeps: /tmp/x}\n  a:\n    paths: {sweeps: /tmp/y}\n")
    one_clear_line(project.hsm("sync", "list"), "sync_config.yaml:4", "duplicate key")
    sync.write_bytes(b"sync_targets:\n  a:\n    paths: {sweeps: \"/tmp/caf\xe9\"}\n")
    one_clear_line(project.hsm("sync", "list"), "sync_config.yaml:3", "not UTF-8")


def test_non_utf8_hsm_config_is_one_clear_line(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [1]}})
    (project.root / "hsm_config.yaml").write_bytes(b"paths:\n  train_script: caf\xe9.py\n")
    for args in (("run", "--config", str(cfg)), ("config", "validate"), ("status",)):
        proc = project.hsm(*args)
        one_clear_line(proc, "hsm_config.yaml:2", "UTF-8")


def test_non_utf8_bytes_in_a_sweep_value_name_the_line(project: Project) -> None:
    path = project.root / "sweeps" / "bad.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"grid:\n  lr: [0.1]\n  name: [\"\xff\xfe\"]\n")
    one_clear_line(project.hsm("run", "--config", str(path)), "bad.yaml:3", "UTF-8")


def test_yaml_that_is_not_a_mapping_or_has_tabs(project: Project) -> None:
    for i, text in enumerate(["- grid\n- x\n", "grid:\n\tx: [1]\n", "grid: [unclosed\n", "~\n"]):
        cfg = project.write_sweep(text, name=f"s{i}.yaml")
        proc = project.hsm("run", "--config", str(cfg))
        one_clear_line(proc, f"s{i}.yaml")
    assert project.sweep_ids() == []


def test_an_edited_config_with_a_nul_value_is_refused_by_complete(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [1]}})
    assert project.hsm("run", "--config", str(cfg), "--sweep-id", "c1").returncode == 0
    edited = project.write_sweep('grid:\n  x: [1, "\\0"]\n', name="edited.yaml")
    one_clear_line(project.hsm("complete", "c1", "--config", str(edited)), "edited.yaml", "NUL")
    # The sweep is untouched: its config was not replaced, no backup was made.
    assert yaml.safe_load((project.outputs / "c1" / "sweep_config.yaml").read_text()) == {"grid": {"x": [1]}}
    assert not list((project.outputs / "c1").glob("sweep_config.*.yaml"))
