"""hsm_config.yaml and sweep files: loading, validation errors, `hsm config ...` and `hsm init`."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

import pytest
from hsm_core.testing.project import make_project
import yaml
from click.testing import CliRunner

from hsm_core import config
from hsm_core.cli.main import build_cli
from hsm_core.plugin import ComputeSourceRecord, ConfigError, ExpanderRecord, hookimpl
from hsm_core.registry import build_registry, get_registry, set_registry


@pytest.fixture(autouse=True)
def builtin_registry():
    """Built-in plugins only, so installed plugins cannot change what these tests see."""
    old = get_registry.__globals__["_REGISTRY"]
    reg = build_registry(entry_points=False)
    set_registry(reg)
    yield reg
    set_registry(old)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def error_of(fn, *args, **kwargs) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message, f"error must be one line: {message!r}"
    return info.value


def invoke(args, *, env=None, input=None, cwd: Path | None = None):
    runner = CliRunner()
    base_env = {"COLUMNS": "200", "CONDA_PREFIX": None, "CONDA_DEFAULT_ENV": None, "VIRTUAL_ENV": None}
    base_env.update(env or {})
    old = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        return runner.invoke(build_cli(), args, env=base_env, input=input, catch_exceptions=False)
    finally:
        os.chdir(old)


# --------------------------------------------------------------------------------------------
# Errors name the file, the line and the key
# --------------------------------------------------------------------------------------------

PROJECT = """\
project:
  name: demo
paths:
  train_script: train.py
compute:
  max_consecutive_failures: 3
  local:
    max_parallel_jobs: 4
"""


def test_unknown_nested_key_gives_line_key_and_did_you_mean(tmp_path):
    write(tmp_path / "hsm_config.yaml", PROJECT + "  health_chek_interval: 300\n")
    err = error_of(config.load_project_config, tmp_path)
    assert err.line == 9
    assert err.key == "compute.health_chek_interval"
    assert str(err).endswith(
        "hsm_config.yaml:9: compute.health_chek_interval: unknown key 'health_chek_interval', "
        "did you mean 'health_check_interval'?"
    )


def test_typo_in_plugin_open_section_still_gets_did_you_mean(tmp_path):
    # hpc: accepts plugin options, so the schema cannot reject unknown keys there; near misses still fail
    write(tmp_path / "hsm_config.yaml", "hpc:\n  system: slurm\n  default_walltim: '01:00:00'\n")
    err = error_of(config.load_project_config, tmp_path)
    assert (err.line, err.key) == (3, "hpc.default_walltim")
    assert "did you mean 'default_walltime'" in str(err)


def test_wrong_type_deep_in_remote_entry(tmp_path):
    write(
        tmp_path / "hsm_config.yaml",
        "distributed:\n  remotes:\n    gpu1:\n      host: gpu1.example.org\n      port: twenty-two\n",
    )
    err = error_of(config.load_project_config, tmp_path)
    assert (err.line, err.key) == (5, "distributed.remotes.gpu1.port")
    assert "expected an integer, got 'twenty-two'" in str(err)


def test_sweep_top_level_typo_did_you_mean(tmp_path):
    path = write(tmp_path / "sweep.yaml", "gird:\n  lr: [0.1, 0.01]\n")
    err = error_of(config.load_sweep_file, path)
    assert err.line == 1
    assert "unknown key 'gird', did you mean 'grid'?" in str(err)


def test_duplicate_key_is_refused_with_both_lines(tmp_path):
    path = write(tmp_path / "sweep.yaml", "grid:\n  lr: [0.1]\n  bs: [32]\n  lr: [0.2]\n")
    err = error_of(config.load_yaml, path)
    assert (err.line, err.key) == (4, "lr")
    assert "duplicate key (first defined on line 2)" in str(err)


def test_yaml_merge_override_is_not_a_duplicate(tmp_path):
    path = write(tmp_path / "a.yaml", "base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  x: 3\n")
    assert config.load_yaml(path)["other"] == {"x": 3, "y": 2}


def test_yaml_syntax_error_is_one_line_with_file_and_line(tmp_path):
    path = write(tmp_path / "sweep.yaml", "grid:\n  lr: [0.1, 0.01\n  bs: [32]\nmetadata: {}\n")
    err = error_of(config.load_sweep_file, path)
    assert err.file.endswith("sweep.yaml") and err.line is not None
    assert "invalid YAML" in str(err)


def test_tab_indentation_is_explained(tmp_path):
    path = write(tmp_path / "sweep.yaml", "grid:\n\tlr: [0.1]\n")
    err = error_of(config.load_sweep_file, path)
    assert err.line == 2 and "indent with spaces" in str(err)


def test_non_utf8_file_is_refused_with_its_line(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_bytes(b"grid:\n  name: [caf\xe9]\n")
    err = error_of(config.load_sweep_file, path)
    assert err.line == 2 and "not UTF-8" in str(err)


def test_missing_and_empty_sweep_files(tmp_path):
    assert "file not found" in str(error_of(config.load_sweep_file, tmp_path / "nope.yaml"))
    empty = write(tmp_path / "empty.yaml", "")
    assert "sweep file is empty" in str(error_of(config.load_sweep_file, empty))
    assert config.load_yaml(empty) == {}


def test_paired_lists_of_unequal_length_name_group_and_lengths(tmp_path):
    path = write(
        tmp_path / "sweep.yaml",
        "paired:\n  - model_and_data:\n      model.name: [cnn, transformer, mlp]\n      data.aug: [basic, none]\n",
    )
    err = error_of(config.load_sweep_file, path)
    assert err.line == 2
    assert "paired group 'model_and_data'" in str(err)
    assert "model.name: 3, data.aug: 2" in str(err)


def test_parameter_in_grid_and_paired_is_refused(tmp_path):
    path = write(tmp_path / "s.yaml", "grid:\n  seed: [1, 2]\npaired:\n  - g:\n      seed: [1, 2]\n      lr: [1, 2]\n")
    err = error_of(config.load_sweep_file, path)
    assert err.line == 5 and "'seed' is also set in grid" in str(err)


def test_empty_value_list_is_refused(tmp_path):
    path = write(tmp_path / "s.yaml", "grid:\n  lr: []\n")
    err = error_of(config.load_sweep_file, path)
    assert (err.line, err.key) == (2, "grid.lr") and "empty list" in str(err)


def test_cli_prints_config_error_as_one_line_exit_2(tmp_path):
    write(tmp_path / "hsm_config.yaml", "compute:\n  strategy: [1]\n")
    result = invoke(["config", "validate"], cwd=tmp_path)
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("Error: hsm_config.yaml:2: compute.strategy: expected a string")


# --------------------------------------------------------------------------------------------
# Sweep files: v1 and v2 forms
# --------------------------------------------------------------------------------------------


def test_v1_and_v2_sweep_forms_normalise_to_the_same_dict(tmp_path):
    v2 = write(
        tmp_path / "v2.yaml",
        """\
grid:
  seed: [1, 2, 3]
  optimizer.lr: [0.001, 0.01]
  epochs: 10
paired:
  - model_and_data:
      model.name: [cnn, mlp]
      data.augmentation: [basic, none]
""",
    )
    v1 = write(
        tmp_path / "v1.yaml",
        """\
sweep:
  grid:
    seed: [1, 2, 3]
    optimizer.lr: [0.001, 0.01]
    epochs: [10]
  paired:
    - model_and_data:
        model.name: [cnn, mlp]
        data.augmentation: [basic, none]
""",
    )
    a, b = config.load_sweep_file(v2), config.load_sweep_file(v1)
    assert a == b
    assert a["grid"]["epochs"] == [10]  # a scalar is one value
    assert "sweep" not in b
    # line numbers survive normalisation, for errors found later
    assert b.lines["grid"] == 2 and a.lines["paired"] == 5


def test_normalised_sweep_dumps_as_plain_yaml(tmp_path):
    path = write(tmp_path / "s.yaml", "grid:\n  lr: [1e-3, 0.01]\n  walltime: 12:00:00\n")
    data = config.load_sweep_file(path)
    # YAML 1.2 numbers: 1e-3 is a float, 12:00:00 stays text (YAML 1.1 reads 43200)
    assert data["grid"] == {"lr": [0.001, 0.01], "walltime": ["12:00:00"]}
    assert yaml.safe_load(yaml.safe_dump(data)) == data
    assert yaml.safe_load(config.dump_yaml(data)) == data


def test_loading_a_large_file_is_quick(tmp_path):
    lines = ["grid:"] + [f"  p{i}: [{i}, {i}.5, v{i}, true]" for i in range(30000)]
    path = write(tmp_path / "big.yaml", "\n".join(lines) + "\n")
    assert path.stat().st_size > 1_000_000
    t0 = time.perf_counter()
    data = config.load_yaml(path)
    elapsed = time.perf_counter() - t0
    assert len(data["grid"]) == 30000 and data["grid"].lines["p29999"] == 30001
    assert elapsed < 10, f"loading 1 MB took {elapsed:.1f}s"


# --------------------------------------------------------------------------------------------
# Plugin schema fragments
# --------------------------------------------------------------------------------------------


class FakeSchedulerPlugin:
    @hookimpl
    def hsm_register_compute_sources(self):
        return [
            ComputeSourceRecord(
                "slurm",
                "fake slurm",
                "x:y",
                config_schema={
                    "type": "object",
                    "properties": {"max_array_size": {"type": "integer", "minimum": 1}},
                    "additionalProperties": False,
                },
                batch_scheduler=True,  # core knows it from its record, never from its name
            ),
            ComputeSourceRecord(
                "ssh", "fake ssh", "x:y", config_schema={"properties": {"known_hosts": {"type": "string"}}},
                config_section="distributed.remotes.*",
            ),
        ]

    @hookimpl
    def hsm_register_expanders(self):
        return [ExpanderRecord("sobol", "fake", "x:y", section="sobol", config_schema={"type": "object"})]


@pytest.fixture
def plugin_registry():
    old = get_registry.__globals__["_REGISTRY"]
    reg = build_registry(entry_points=False, extra=[("fake", FakeSchedulerPlugin())])
    set_registry(reg)
    yield reg
    set_registry(old)


def test_plugin_fragments_validate_their_cluster_and_remote_options(tmp_path, plugin_registry):
    write(
        tmp_path / "hsm_config.yaml",
        "hpc:\n  clusters:\n    big:\n      system: slurm\n      host: login1\n      max_array_size: 0\n",
    )
    err = error_of(config.load_project_config, tmp_path, plugin_registry)
    assert (err.line, err.key) == (6, "hpc.clusters.big.max_array_size")
    write(
        tmp_path / "hsm_config.yaml",
        "hpc:\n  clusters:\n    big:\n      system: slurm\n      host: login1\n      max_array_size: 1000\n"
        "distributed:\n  remotes:\n    a:\n      host: a.example.org\n      known_host: x\n",
    )
    err = error_of(config.load_project_config, tmp_path, plugin_registry)
    assert err.line == 11 and "did you mean 'known_hosts'" in str(err)


def test_plugin_expander_section_is_accepted_in_sweep_files(tmp_path, plugin_registry):
    path = write(tmp_path / "s.yaml", "sobol:\n  n: 5\n")
    assert config.load_sweep_file(path, plugin_registry) == {"sobol": {"n": 5}}
    path = write(tmp_path / "s.yaml", "sobol: 5\n")
    assert "expected a mapping" in str(error_of(config.load_sweep_file, path, plugin_registry))


def test_config_schema_command_prints_merged_schema(plugin_registry):
    result = invoke(["config", "schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    cluster = schema["$defs"]["cluster"]
    assert any(c["then"]["properties"].get("max_array_size") for c in cluster["allOf"])
    sweep = json.loads(invoke(["config", "schema", "--which", "sweep"]).output)
    assert "sobol" in sweep["properties"] and "random" in sweep["properties"] and "grid" in sweep["properties"]


# --------------------------------------------------------------------------------------------
# Project config
# --------------------------------------------------------------------------------------------


def test_project_config_defaults_and_v1_location(tmp_path):
    cfg = config.load_project_config(tmp_path)
    assert cfg.path is None
    assert cfg.output_dir == tmp_path / "sweeps" / "outputs"
    assert cfg.python_interpreter == sys.executable
    assert cfg.train_script is None and cfg.args_style == "hydra"

    write(tmp_path / "sweeps" / "hsm_config.yaml", "paths:\n  train_script: src/train.py\n")
    assert config.find_project_root(tmp_path / "sweeps") == tmp_path
    cfg = config.load_project_config(config.find_project_root(tmp_path / "sweeps"))
    assert cfg.path == tmp_path / "sweeps" / "hsm_config.yaml"
    assert cfg.train_script == tmp_path / "src" / "train.py"
    assert cfg.data["paths"]["output_dir"] == "sweeps/outputs"


def test_find_project_root_walks_up(tmp_path):
    write(tmp_path / "hsm_config.yaml", "project: {name: x}\n")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert config.find_project_root(deep) == tmp_path


# --------------------------------------------------------------------------------------------
# hsm config set
# --------------------------------------------------------------------------------------------

COMMENTED = """\
# my project settings
compute:
  # how often sources are checked
  health_check_interval: 60  # seconds
  local:
    max_parallel_jobs: 4
"""


def test_config_set_changes_one_line_and_keeps_comments(tmp_path):
    path = write(tmp_path / "hsm_config.yaml", COMMENTED)
    os.chmod(path, 0o640)
    result = invoke(["config", "set", "compute.health_check_interval", "300"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    text = path.read_text()
    assert text == COMMENTED.replace("60  # seconds", "300 # seconds")
    assert config.load_project_config(tmp_path).data["compute"]["health_check_interval"] == 300
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["hsm_config.yaml"]  # no temp file left


def test_config_set_adds_new_keys_with_typed_values(tmp_path):
    path = write(tmp_path / "hsm_config.yaml", COMMENTED)
    config.set_config_value(path, "ssh.compression", "true")
    config.set_config_value(path, "compute.local.gpus", "[0, 1]")
    config.set_config_value(path, "hpc.default_walltime", "12:00:00")
    config.set_config_value(path, "project.name", "my run # 2")
    data = config.load_project_config(tmp_path).data
    assert data["ssh"] == {"compression": True}
    assert data["compute"]["local"] == {"max_parallel_jobs": 4, "gpus": [0, 1]}
    assert data["hpc"]["default_walltime"] == "12:00:00"
    assert data["project"]["name"] == "my run # 2"
    assert path.read_text().startswith(COMMENTED.splitlines()[0])  # comments still there


def test_config_set_creates_the_file_when_missing(tmp_path):
    config.set_config_value(tmp_path / "hsm_config.yaml", "compute.result_collection_interval", "120")
    assert config.load_project_config(tmp_path).get("compute.result_collection_interval") == 120


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("compute.health_chek_interval", "300", "did you mean 'health_check_interval'"),
        ("compute.health_check_interval", "soon", "expected a number"),
        ("compute.local.max_parallel_jobs", "0", "must be at least 1"),
        ("compute.local.max_parallel_jobs.x", "1", "not a mapping"),
    ],
)
def test_config_set_refuses_bad_key_or_value_and_leaves_file_identical(tmp_path, key, value, expected):
    path = write(tmp_path / "hsm_config.yaml", COMMENTED)
    before = path.read_bytes()
    result = invoke(["config", "set", key, value], cwd=tmp_path)
    assert result.exit_code == 2
    assert expected in result.stderr
    assert path.read_bytes() == before


def test_config_set_interrupted_write_keeps_old_file(tmp_path, monkeypatch):
    path = write(tmp_path / "hsm_config.yaml", COMMENTED)
    before = path.read_bytes()

    def crash(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        config.set_config_value(path, "compute.health_check_interval", "300")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["hsm_config.yaml"]


def test_config_show_prints_effective_config(tmp_path):
    write(tmp_path / "hsm_config.yaml", COMMENTED)
    result = invoke(["config", "show"], cwd=tmp_path)
    assert result.exit_code == 0
    shown = yaml.safe_load(result.output)
    assert shown["compute"]["health_check_interval"] == 60
    assert shown["paths"]["output_dir"] == "sweeps/outputs"


# --------------------------------------------------------------------------------------------
# hsm config init / hsm init
# --------------------------------------------------------------------------------------------


def fake_bin(tmp_path: Path, *names: str) -> Path:
    bindir = tmp_path / "fakebin"
    bindir.mkdir(exist_ok=True)
    for name in names:
        exe = bindir / name
        exe.write_text("#!/bin/sh\nexit 0\n")
        exe.chmod(0o755)
    return bindir


@pytest.fixture
def schedulers(builtin_registry):
    """The Slurm and PBS plugins besides the built-ins: core detects a scheduler only through the
    ``detect`` of its plugin's record."""
    slurm = pytest.importorskip("hsm_plugin_slurm.plugin")
    pbs = pytest.importorskip("hsm_plugin_pbs.plugin")
    reg = build_registry(entry_points=False, extra=[("slurm", slurm), ("pbs", pbs)])
    set_registry(reg)
    return reg


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "my_project"
    write(root / "train.py", "import hydra\n")
    write(root / "configs" / "config.yaml", "lr: 0.1\n")
    return root


def test_init_detects_project_and_creates_files(tmp_path, project, schedulers):
    bindir = fake_bin(tmp_path, "sbatch")
    result = invoke(["config", "init"], env={"PATH": str(bindir)}, cwd=project)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Detected Project Information" in out
    assert "SLURM" in out and str(project / "train.py") in out and "my_project" in out
    for rel in ("hsm_config.yaml", "sweeps/sweep_config.yaml", "sweeps/README.md"):
        assert (project / rel).is_file(), rel
        assert f"created  {rel}" in out
    assert (project / "sweeps" / "outputs").is_dir()
    assert "hsm run --config sweeps/sweep_config.yaml --dry-run" in out

    cfg = config.load_project_config(project)
    assert cfg.data["hpc"]["system"] == "slurm"
    assert cfg.train_script == project / "train.py"
    assert cfg.config_dir == project / "configs"
    assert cfg.args_style == "hydra"
    sweep = config.load_sweep_file(project / "sweeps" / "sweep_config.yaml")
    assert sweep["grid"]["learning_rate"] == [0.001, 0.01, 0.1]
    validated = invoke(["config", "validate", "--config", "sweeps/sweep_config.yaml"], cwd=project)
    assert validated.exit_code == 0 and "(6 tasks)" in validated.output


@pytest.mark.parametrize("exes, system", [(("qsub",), "pbs"), (("sbatch", "qsub"), "slurm"), ((), "auto")])
def test_init_hpc_detection(tmp_path, project, exes, system, schedulers):
    bindir = fake_bin(tmp_path, *exes)
    result = invoke(["init", "--project-dir", str(project)], env={"PATH": str(bindir)})
    assert result.exit_code == 0, result.output
    assert config.load_project_config(project).data["hpc"]["system"] == system


def test_init_keeps_existing_files_without_force_and_replaces_with_force(tmp_path, project):
    env = {"PATH": str(fake_bin(tmp_path))}
    mine = write(project / "hsm_config.yaml", "project:\n  name: mine  # hand-edited\n")
    result = invoke(["config", "init"], env=env, cwd=project)
    assert result.exit_code == 0
    assert mine.read_text() == "project:\n  name: mine  # hand-edited\n"
    assert "kept     hsm_config.yaml" in result.output
    assert (project / "sweeps" / "sweep_config.yaml").is_file()  # missing files are still created

    sweep = project / "sweeps" / "sweep_config.yaml"
    sweep.write_text("grid:\n  mine: [1]\n")
    again = invoke(["init"], env=env, cwd=project)
    assert again.exit_code == 0
    assert sweep.read_text() == "grid:\n  mine: [1]\n"
    assert "created" not in again.output

    forced = invoke(["config", "init", "--force"], env=env, cwd=project)
    assert forced.exit_code == 0
    assert "replaced hsm_config.yaml" in forced.output
    assert "name: my_project" in mine.read_text()
    assert "learning_rate" in sweep.read_text()
    # What --force replaced is kept beside it (a hand-edited config holds remotes, clusters ...).
    (config_copy,) = project.glob("hsm_config.yaml.*.bak")
    assert config_copy.read_text() == "project:\n  name: mine  # hand-edited\n"
    (sweep_copy,) = (project / "sweeps").glob("sweep_config.yaml.*.bak")
    assert sweep_copy.read_text() == "grid:\n  mine: [1]\n"
    assert f"saved    {config_copy.name} (the hsm_config.yaml it replaces)" in forced.output
    assert not list((project / "sweeps").glob("README.md.*.bak"))  # init's own text: nothing to keep
    again = invoke(["config", "init", "--force"], env=env, cwd=project)
    assert again.exit_code == 0 and len(list(project.glob("hsm_config.yaml.*.bak"))) == 1  # same text: no copy


def test_init_keeps_v1_layout(tmp_path, project):
    write(project / "sweeps" / "hsm_config.yaml", "hpc:\n  system: pbs\n")
    write(project / "sweeps" / "sweep.yaml", "sweep:\n  grid:\n    seed: [1, 2]\n")
    result = invoke(["init"], env={"PATH": str(fake_bin(tmp_path))}, cwd=project)
    assert result.exit_code == 0
    assert not (project / "hsm_config.yaml").exists()  # the v1 config is not shadowed
    assert not (project / "sweeps" / "sweep_config.yaml").exists()
    assert "hsm run --config sweeps/sweep.yaml --dry-run" in result.output


def test_init_interactive_answers(tmp_path, project, schedulers):
    write(project / "scripts" / "run.py", "import argparse\n")
    answers = "\n".join(["vision", "scripts/run.py", "/opt/py/bin/python", "pbs", "", "argparse", "2"]) + "\n"
    result = invoke(["config", "init", "--interactive"], env={"PATH": str(fake_bin(tmp_path))}, input=answers, cwd=project)
    assert result.exit_code == 0, result.output
    cfg = config.load_project_config(project)
    assert cfg.name == "vision"
    assert cfg.train_script == project / "scripts" / "run.py"
    assert cfg.python_interpreter == "/opt/py/bin/python"
    assert cfg.data["hpc"]["system"] == "pbs"
    assert cfg.config_dir == project / "configs"  # empty answer keeps the detected value
    assert cfg.args_style == "argparse"
    assert cfg.get("compute.local.max_parallel_jobs") == 2


def test_init_interactive_without_input_uses_detected_values(tmp_path, project, schedulers):
    bindir = fake_bin(tmp_path, "qsub")
    result = invoke(["config", "init", "-i"], env={"PATH": str(bindir)}, input="", cwd=project)
    assert result.exit_code == 0, result.output
    cfg = config.load_project_config(project)
    assert cfg.name == "my_project" and cfg.data["hpc"]["system"] == "pbs"
    assert cfg.train_script == project / "train.py"


def test_init_reports_conda_environment(tmp_path, project):
    env_dir = tmp_path / "envs" / "myenv"
    write(env_dir / "bin" / "python", "")
    result = invoke(
        ["config", "init"],
        env={"PATH": str(fake_bin(tmp_path)), "CONDA_PREFIX": str(env_dir), "CONDA_DEFAULT_ENV": "myenv"},
        cwd=project,
    )
    assert result.exit_code == 0
    assert "myenv" in result.output
    assert config.load_project_config(project).python_interpreter == str(env_dir / "bin" / "python")


# --------------------------------------------------------------------------------------------
# hsm config validate --check-sync
# --------------------------------------------------------------------------------------------


def test_check_sync_without_remotes(tmp_path):
    write(tmp_path / "hsm_config.yaml", "project: {name: x}\n")
    result = invoke(["config", "validate", "--check-sync"], cwd=tmp_path)
    assert result.exit_code == 0 and "no remotes configured" in result.output


def test_check_sync_needs_the_remotes_host_provider(tmp_path):
    """Without the ssh plugin (here disabled, as if not installed) --check-sync is one line naming
    what installs the provider of remotes, exit 2. (With it: hsm_plugin_ssh/tests/test_ssh_cli.py.)"""
    project = make_project(tmp_path / "proj", config_extra="distributed:\n  remotes:\n    a: {host: a.example.org}\n")
    proc = project.hsm("config", "validate", "--check-sync", env={"HSM_DISABLE_PLUGINS": "ssh"})
    assert proc.returncode == 2, proc.stderr
    line = next(line for line in proc.stderr.splitlines() if line.startswith("Error:"))
    assert "--check-sync needs the 'ssh' host provider" in line and "hsm-plugin-ssh" in proc.stderr
    assert "Traceback" not in proc.stderr
