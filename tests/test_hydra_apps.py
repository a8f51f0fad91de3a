"""Hydra apps, run for real: a small ``@hydra.main`` script in a throw-away project.

Each task gets a Hydra run dir of its own (four tasks started together used to share
``outputs/<date>/<time>`` and remove each other's checkpoints), unless the user chose one;
``hsm monitor errors`` quotes Hydra's real cause; ``--dry-run`` and ``config validate`` compose the
app's config with the sweep's keys; ``config init`` writes an example from the app's own keys.
"""

from __future__ import annotations

import json
import os
import re
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from hsm_project import Project, make_project

from hsm_core.testing.project import make_project as make_project_at

if os.environ.get("CI") == "true":
    import hydra  # noqa: F401  (CI installs the test extra: a missing hydra-core fails, never skips)
pytest.importorskip("hydra", reason="hydra-core is a test dependency (pip install -e .[test])")

#: The app: writes a checkpoint into its run dir, waits until every task of the barrier has
#: written its own (so they provably overlap in time), checks its checkpoint is still its own,
#: removes it, and leaves result.txt.
HYDRA_APP = textwrap.dedent(
    """\
    import os, time
    import hydra
    from hydra.core.hydra_config import HydraConfig


    @hydra.main(config_path="conf", config_name="config", version_base=None)
    def main(cfg):
        out = HydraConfig.get().runtime.output_dir
        ckpt = os.path.join(out, "checkpoint.pt")
        with open(ckpt, "w") as fh:
            fh.write(str(cfg.lr))
        barrier = os.environ.get("BARRIER_DIR")
        if barrier:
            open(os.path.join(barrier, str(cfg.lr)), "w").close()
            deadline = time.time() + 60
            while len(os.listdir(barrier)) < int(os.environ["BARRIER_N"]) and time.time() < deadline:
                time.sleep(0.05)
        with open(ckpt) as fh:
            assert fh.read() == str(cfg.lr), "checkpoint overwritten by another task"
        os.remove(ckpt)
        with open(os.path.join(out, "result.txt"), "w") as fh:
            fh.write(str(cfg.lr))
        with open(os.path.join(os.environ["HSM_COUNT_DIR"], "runs.log"), "a") as fh:
            fh.write(os.environ["HSM_TASK_ID"] + "\\n")


    if __name__ == "__main__":
        main()
    """
)

CONFIG = "lr: 0.1\nbatch_size: 32\nmodel:\n  name: small\n  hidden: 64\n"


def hydra_project(tmp_path: Path, config: str = CONFIG, script: str = HYDRA_APP) -> Project:
    project = make_project_at(tmp_path / "proj", script=script)
    (project.root / "conf").mkdir()
    (project.root / "conf" / "config.yaml").write_text(config)
    return project


def _sweep_dir(project: Project) -> Path:
    return project.only_sweep()


def _argv(task_dir: Path) -> list[str]:
    return json.loads((task_dir / "command.json").read_text())["argv"]


# -- 1. each task its own run dir -------------------------------------------------------------


def test_four_parallel_tasks_each_get_their_own_run_dir_and_overwrite_nothing(tmp_path: Path) -> None:
    project = hydra_project(tmp_path)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    sweep = project.write_sweep({"grid": {"lr": [0.1, 0.2, 0.3, 0.4]}})
    proc = project.hsm("run", "--config", str(sweep), "--sources", "local:4",
                       env={"BARRIER_DIR": str(barrier), "BARRIER_N": "4"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Done: 4 completed" in proc.stdout
    assert len(os.listdir(barrier)) == 4  # all four ran at the same time
    runs = project.executions()
    assert len(runs) == 4 and len(set(runs)) == 4
    seen = set()
    for task_dir in sorted((_sweep_dir(project) / "tasks").iterdir()):
        lr = yaml.safe_load((task_dir / "params.yaml").read_text())["params"]["lr"]
        run_dir = task_dir / "hydra"
        assert (run_dir / "result.txt").read_text() == str(lr)
        assert not (run_dir / "checkpoint.pt").exists()
        assert f"lr={lr}" in yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
        assert (run_dir / "train.log").exists()  # Hydra's job log is the task's own too
        seen.add(lr)
    assert seen == {0.1, 0.2, 0.3, 0.4}
    assert not (project.root / "outputs").exists()  # nothing in Hydra's shared default place


def test_dry_run_shows_the_run_dir_override_and_why(tmp_path: Path) -> None:
    project = hydra_project(tmp_path)
    sweep = project.write_sweep({"grid": {"lr": [0.1]}})
    proc = project.hsm("run", "--config", str(sweep), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert "'hydra.run.dir=${oc.env:HSM_TASK_DIR}/hydra'" in out
    assert "Hydra app: train.py uses @hydra.main; Hydra run dir: each task's own tasks/task_NNN/hydra" in out
    assert "Hydra pre-flight: checked: every override key exists in conf/config.yaml (1 key set composed)" in out


def test_a_run_dir_the_user_chose_is_left_alone(tmp_path: Path) -> None:
    # In the sweep's parameters ...
    project = hydra_project(tmp_path / "a")
    sweep = project.write_sweep({"grid": {"lr": [0.5], "hydra.run.dir": ["runs/mine"]}})
    project.hsm("run", "--config", str(sweep), "--sources", "local", check=True)
    task = _sweep_dir(project) / "tasks" / "task_001"
    assert [a for a in _argv(task) if a.startswith("hydra.run.dir")] == ["hydra.run.dir=runs/mine"]
    assert (project.root / "runs" / "mine" / "result.txt").read_text() == "0.5"
    assert not (task / "hydra").exists()

    # ... in the command template ...
    project = hydra_project(tmp_path / "b")
    sweep = project.write_sweep({"grid": {"lr": [0.5]}, "command": "{python} train.py {args} hydra.run.dir=cmd_runs"})
    project.hsm("run", "--config", str(sweep), "--sources", "local", check=True)
    task = _sweep_dir(project) / "tasks" / "task_001"
    assert [a for a in _argv(task) if a.startswith("hydra.run.dir")] == ["hydra.run.dir=cmd_runs"]
    assert (project.root / "cmd_runs" / "result.txt").exists()

    # ... or in the app's config.
    project = hydra_project(tmp_path / "c", config=CONFIG + "hydra:\n  run:\n    dir: custom/${lr}\n")
    sweep = project.write_sweep({"grid": {"lr": [0.5, 0.25]}})
    proc = project.hsm("run", "--config", str(sweep), "--dry-run")
    assert "Hydra run dir: as set in conf/config.yaml (hydra.run.dir)" in " ".join(proc.stdout.split())
    project.hsm("run", "--config", str(sweep), "--sources", "local:2", check=True)
    for task in (_sweep_dir(project) / "tasks").iterdir():
        assert not any(a.startswith("hydra.run.dir") for a in _argv(task))
    assert sorted(p.name for p in (project.root / "custom").iterdir()) == ["0.25", "0.5"]


def test_with_hydra_job_chdir_each_task_works_in_its_own_run_dir(tmp_path: Path) -> None:
    # An app of the old habit: relative paths, and Hydra changing into the run dir.
    app = HYDRA_APP.replace("    with open(os.path.join(os.environ[\"HSM_COUNT_DIR\"]",
                            "    with open(\"relative.txt\", \"w\") as fh:\n        fh.write(str(cfg.lr))\n"
                            "    with open(os.path.join(os.environ[\"HSM_COUNT_DIR\"]")
    assert "relative.txt" in app
    project = hydra_project(tmp_path, script=app)
    sweep = project.write_sweep({"grid": {"lr": [0.1, 0.2], "hydra.job.chdir": [True]}})
    project.hsm("run", "--config", str(sweep), "--sources", "local:2", check=True)
    for task in (_sweep_dir(project) / "tasks").iterdir():
        lr = yaml.safe_load((task / "params.yaml").read_text())["params"]["lr"]
        assert (task / "hydra" / "relative.txt").read_text() == str(lr)
    assert not (project.root / "relative.txt").exists()


def test_non_hydra_scripts_and_hydra_false_keep_their_command(tmp_path: Path) -> None:
    # A script that takes key=value arguments but is no Hydra app: its argv is what it was.
    project = make_project(tmp_path / "plain")
    sweep = project.write_sweep({"grid": {"x": [1]}})
    project.hsm("run", "--config", str(sweep), "--sources", "local", check=True)
    assert _argv(_sweep_dir(project) / "tasks" / "task_001") == [sys.executable, "train.py", "x=1"]

    # A Hydra app with hydra: false in the sweep file: hsm adds nothing.
    project = hydra_project(tmp_path / "off")
    sweep = project.write_sweep({"grid": {"lr": [0.5]}, "hydra": False})
    proc = project.hsm("run", "--config", str(sweep), "--dry-run")
    assert "hydra.run.dir" not in proc.stdout and "Hydra app" not in proc.stdout


def test_hydra_true_for_an_app_hsm_cannot_recognise(tmp_path: Path) -> None:
    # run.py only imports the app: no @hydra.main in it, so only the setting says it is a Hydra app.
    project = hydra_project(tmp_path)
    # (An imported app needs an absolute config_path: Hydra reads a relative one as a module there.)
    app = HYDRA_APP.replace('config_path="conf"', 'config_path=os.path.join(os.path.dirname(os.path.abspath(__file__)), "conf")')
    (project.root / "app.py").write_text(app.replace('if __name__ == "__main__":\n    main()\n', ""))
    (project.root / "run.py").write_text("from app import main\nmain()\n")
    sweep = project.write_sweep({"grid": {"lr": [0.5]}, "command": "{python} run.py {args}"})
    proc = project.hsm("run", "--config", str(sweep), "--dry-run")
    assert proc.returncode == 0 and "hydra.run.dir" not in proc.stdout

    from hsm_core.config import set_config_value

    set_config_value(project.root / "hsm_config.yaml", "command.hydra", "true")
    project.hsm("run", "--config", str(sweep), "--sources", "local", check=True)
    task = _sweep_dir(project) / "tasks" / "task_001"
    assert (task / "hydra" / "result.txt").read_text() == "0.5"
    assert not (project.root / "outputs").exists()


# -- 2 and 4. monitor errors names the real cause; fail fast ---------------------------------


FAIL_FAST_LINE = re.compile(
    r"Fail fast: the first 3 finished tasks all failed with \"Could not override 'learning_rate'\.\" "
    r"\(see tasks/task_00\d/stderr\.log\); no more tasks are started: (?:1 running task\(s\) finish, )?(\d) stay pending\. "
    r"Fix: the app's config has no key 'learning_rate': correct the parameter name in the sweep file, or write "
    r"\+learning_rate to add it, then run hsm complete (sweep_\w+) --retry-failed; "
    r"a parameter corrected in the sweep file: start it again with hsm run -c sweeps/sweep\.yaml "
    r"\(compute\.fail_fast: 0 in hsm_config\.yaml turns this check off\)"
)


def test_a_misspelt_key_fails_fast_and_monitor_errors_names_it(tmp_path: Path) -> None:
    project = hydra_project(tmp_path)
    sweep = project.write_sweep({"grid": {"learning_rate": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]}})
    proc = project.hsm("run", "--config", str(sweep), "--sources", "local:2")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    m = FAIL_FAST_LINE.search(" ".join(proc.stderr.split()))
    assert m, proc.stderr
    sweep_id = m.group(2)
    states = [s.get("state") for s in project.statuses(_sweep_dir(project)).values()]
    # 2 slots: when the third failure is known at most one more task runs, and it finishes; the
    # others were never started (no task dir yet) and stay pending.
    assert states == ["failed"] * len(states) and len(states) in (3, 4), states
    assert int(m.group(1)) == 8 - len(states)
    index = json.loads((_sweep_dir(project) / "task_index.json").read_text())
    index_states = [t["state"] for t in index["tasks"]]
    assert index_states.count("pending") == 8 - len(states) and index_states.count("failed") == len(states)
    assert project.executions() == []

    errors = project.hsm("monitor", "errors", sweep_id)
    assert errors.returncode == 0, errors.stderr
    assert "Hydra configuration error" in errors.stdout
    assert "Could not override 'learning_rate'." in errors.stdout
    assert "HYDRA_FULL_ERROR" not in errors.stdout

    # The fix (here: the app learns the key), then complete runs every task.
    (project.root / "conf" / "config.yaml").write_text(CONFIG + "learning_rate: 0.0\n")
    proc = project.hsm("complete", sweep_id, "--retry-failed", "--sources", "local:2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Done: 8 completed" in proc.stdout
    assert len(project.executions()) == 8 and len(set(project.executions())) == 8


def test_fail_fast_k_is_configurable_and_0_turns_it_off(project: Project) -> None:
    sweep = project.write_sweep({"grid": {"x": [1, 2, 3, 4, 5, 6], "exit": [4]}})
    project.hsm("config", "set", "compute.fail_fast", "2", check=True)
    proc = project.hsm("run", "--config", str(sweep), "--sources", "local:1", "--sweep-id", "k2")
    assert proc.returncode == 1
    line = " ".join(proc.stderr.split())
    assert ('Fail fast: the first 2 finished tasks all failed with exit code 4 (last line of stderr: "error output") '
            "(see tasks/task_001/stderr.log); no more tasks are started: 4 stay pending. Fix: fix the script or its parameters, then run "
            "hsm complete k2 --retry-failed; a parameter corrected in the sweep file: start it again with hsm run -c sweeps/sweep.yaml "
            "(compute.fail_fast: 0 in hsm_config.yaml turns this check off)") in line, line
    assert "Done: 2 failed, 4 pending" in proc.stdout

    project.hsm("config", "set", "compute.fail_fast", "0", check=True)
    proc = project.hsm("run", "--config", str(sweep), "--sources", "local:1", "--sweep-id", "k0")
    assert proc.returncode == 1 and "Fail fast" not in proc.stderr
    assert "Done: 6 failed" in proc.stdout


def test_fail_fast_keeps_going_after_a_success_or_different_failures(project: Project) -> None:
    # The first task completes: later failures never stop the run.
    sweep = project.write_sweep({"paired": [{"g": {"x": [1, 2, 3, 4, 5], "exit": [0, 4, 4, 4, 4]}}]})
    proc = project.hsm("run", "--config", str(sweep), "--sources", "local:1", "--sweep-id", "ok_first")
    assert "Fail fast" not in proc.stderr and "Done: 1 completed, 4 failed" in proc.stdout
    # Three failures, three different ways: no common cause, so everything runs.
    sweep = project.write_sweep({"grid": {"exit": [3, 4, 5, 6]}})
    proc = project.hsm("run", "--config", str(sweep), "--sources", "local:1", "--sweep-id", "mixed")
    assert "Fail fast" not in proc.stderr and "Done: 4 failed" in proc.stdout


# -- 3. pre-flight ------------------------------------------------------------------------------


MISSING_KEY = ("Error: sweeps/sweep.yaml:3: grid.learning_rate: the Hydra app's config (conf/config.yaml) has no key "
               "'learning_rate' (did you mean lr? fix the parameter name in the sweep file, or write +learning_rate "
               "to add a key the config lacks)")


def test_preflight_reports_a_key_the_config_lacks_with_file_and_line(tmp_path: Path) -> None:
    project = hydra_project(tmp_path)
    sweep = project.write_sweep("grid:\n  batch_size: [32, 64]\n  learning_rate: [0.1, 0.01]\n")
    for args in (("run", "--config", str(sweep), "--dry-run"), ("config", "validate", "--config", str(sweep))):
        proc = project.hsm(*args)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert proc.stderr.strip() == MISSING_KEY, proc.stderr
    assert project.sweep_ids() == []  # nothing was created

    # A nested key, close to a real one.
    sweep = project.write_sweep("grid:\n  lr: [0.1]\n  model.hiden: [128]\n")
    proc = project.hsm("run", "--config", str(sweep), "--dry-run")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "Error: sweeps/sweep.yaml:3: grid.model.hiden: the Hydra app's config (conf/config.yaml) has no key "
        "'model.hiden' (did you mean model.hidden? fix the parameter name in the sweep file, or write "
        "+model.hiden to add a key the config lacks)")

    # +key adds a key the config lacks: fine; so is a key set only in paired groups.
    sweep = project.write_sweep({"grid": {"+learning_rate": [0.1]},
                                 "paired": [{"g": {"lr": [0.1, 0.2], "model.name": ["a", "b"]}}]})
    proc = project.hsm("config", "validate", "--config", str(sweep))
    assert proc.returncode == 0, proc.stderr
    assert "Hydra pre-flight: checked: every override key exists in conf/config.yaml (1 key set composed)" in proc.stdout


def test_preflight_reports_a_config_group_option_that_does_not_exist(tmp_path: Path) -> None:
    project = hydra_project(tmp_path, config="defaults:\n  - model: small\n  - _self_\nlr: 0.1\n")
    (project.root / "conf" / "model").mkdir()
    (project.root / "conf" / "model" / "small.yaml").write_text("hidden: 64\n")
    # The first task's choice exists; the second's does not.
    sweep = project.write_sweep("grid:\n  lr: [0.1]\n  model: [small, large]\n")
    proc = project.hsm("run", "--config", str(sweep), "--dry-run")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "Error: sweeps/sweep.yaml:3: grid.model: Hydra refuses 'model=large' for the app's config (conf/config.yaml): "
        "In 'config': Could not find 'model/large' (available: small) (fix the value or the key in the sweep file: "
        "every task with it would fail)"), proc.stderr
    (project.root / "conf" / "model" / "large.yaml").write_text("hidden: 1024\n")
    proc = project.hsm("run", "--config", str(sweep), "--dry-run")
    assert proc.returncode == 0, proc.stderr


def test_preflight_is_skipped_with_the_reason_when_hydra_is_not_importable(tmp_path: Path) -> None:
    project = hydra_project(tmp_path)
    # An interpreter without site-packages: no hydra-core for the tasks' Python.
    wrapper = project.root / "python_no_site"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    wrapper.chmod(0o755)
    from hsm_core.config import set_config_value

    set_config_value(project.root / "hsm_config.yaml", "paths.python_interpreter", str(wrapper))
    sweep = project.write_sweep({"grid": {"learning_rate": [0.1]}})
    proc = project.hsm("run", "--config", str(sweep), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert "Hydra pre-flight: not checked: hydra-core is not importable (ModuleNotFoundError: No module named 'hydra')" in out


def test_config_init_writes_an_example_from_the_apps_own_keys(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    root.mkdir()
    (root / "train.py").write_text(HYDRA_APP)
    (root / "conf").mkdir()
    (root / "conf" / "config.yaml").write_text("optimizer:\n  lr: 0.001\n  wd: 0.0\nepochs: 10\nname: run\n")
    env = {**os.environ, "VIRTUAL_ENV": str(Path(sys.executable).parent.parent)}
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "hsm_core", "config", "init"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = (root / "sweeps" / "sweep_config.yaml").read_text()
    grid = yaml.safe_load(text)["grid"]
    assert grid == {"optimizer.lr": [0.0001, 0.001, 0.01], "epochs": [10, 20]}
    assert "learning_rate" not in text
    assert "# Other keys of the config: optimizer.wd, name" in text
    project = Project(root)
    proc = project.hsm("run", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "Hydra pre-flight: checked" in proc.stdout


# -- recognising an app, and Hydra's messages ---------------------------------------------------


@pytest.mark.parametrize(
    "source, expected",
    [
        ('import hydra\n@hydra.main(config_path="conf", config_name="config", version_base=None)\ndef f(c): pass\n',
         {"config_path": "conf", "config_name": "config", "version_base": None}),
        ('from hydra import main as hmain\n@hmain("cfgs", "base")\ndef f(c): pass\n',
         {"config_path": "cfgs", "config_name": "base"}),
        ('import hydra as h\n@h.main(version_base="1.1")\ndef f(c): pass\n', {"version_base": "1.1"}),
        # Mentioning it is not using it; key=value parsing alone is no Hydra app.
        ('# like @hydra.main(config_path="conf")\nimport sys\nargs = dict(a.split("=") for a in sys.argv[1:])\n', None),
        ('from mylib import main\n@main()\ndef f(): pass\n', None),
    ],
)
def test_the_decorator_is_found_in_the_source_without_importing_it(source: str, expected: dict | None) -> None:
    from hsm_core.hydra_app import find_main_decorator

    assert find_main_decorator(source) == expected


def test_the_script_of_a_template_or_a_module(tmp_path: Path) -> None:
    from hsm_core.hydra_app import script_of

    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "train.py").write_text("")
    assert script_of(None, "train.py", tmp_path) == tmp_path / "train.py"
    assert script_of(["{python}", "-m", "pkg.train", "{args}"], None, tmp_path) == tmp_path / "src" / "pkg" / "train.py"
    assert script_of(["torchrun", "--nproc_per_node=2", "tools/fit.py", "{args}"], None, tmp_path) == tmp_path / "tools" / "fit.py"
    assert script_of(["{python}", "{script}", "{args}"], "a/b.py", tmp_path) == tmp_path / "a" / "b.py"


# Hydra 1.3's stderr for mistakes of a sweep (blank lines dropped, as hsm reads the tail).
HYDRA_OUTPUTS = {
    "Error merging override lr=abc": "Error merging override lr=abc\nValue 'abc' of type 'str' could not be converted to Float\n"
                                     "    full_key: lr\n    object_type=C",
    "no viable alternative at input '[1,'": "no viable alternative at input '[1,'\n"
                                            "See https://hydra.cc/docs/1.2/advanced/override_grammar/basic for details",
    "Could not append to config. An item is already at 'lr'.": "Could not append to config. An item is already at 'lr'.\n"
                                                               "Either remove + prefix: 'lr=1'\n"
                                                               "Or add a second + to add or override 'lr': '++lr=1'",
    "Cannot find primary config 'nope'. Check that it's in your config search path.":
        "Cannot find primary config 'nope'. Check that it's in your config search path.\nConfig search path:\n"
        "\tprovider=hydra, path=pkg://hydra.conf",
}


@pytest.mark.parametrize("cause", sorted(HYDRA_OUTPUTS))
def test_monitor_errors_picks_hydras_cause_not_its_footer(cause: str) -> None:
    from hsm_core.monitor.errors import classify

    lines = ["some warning printed at import", *HYDRA_OUTPUTS[cause].split("\n"),
             "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace."]
    diag = classify("failed", 1, lines)
    assert (diag.category, diag.message) == ("hydra_config", cause)


def test_an_exception_of_the_app_itself_stays_a_python_exception() -> None:
    from hsm_core.monitor.errors import classify

    lines = ["Error executing job with overrides: ['lr=5']", "Traceback (most recent call last):",
             '  File "/p/train.py", line 13, in main', "    raise ValueError(x)", "ValueError: lr too big: 5.0",
             "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace."]
    diag = classify("failed", 1, lines)
    assert (diag.category, diag.message) == ("python_exception", "ValueError: lr too big: 5.0")


ECHO_APP = textwrap.dedent(
    """\
    import os
    import hydra


    @hydra.main(config_path="conf", config_name="config", version_base=None)
    def main(cfg):
        with open(os.path.join(os.environ["HSM_TASK_DIR"], "seen.txt"), "w") as fh:
            fh.write(repr(cfg.tag))


    if __name__ == "__main__":
        main()
    """
)


def test_values_hydra_would_misread_reach_the_app_as_written(tmp_path: Path) -> None:
    """A value with a comma (a sweep to Hydra), spaces and quotes reaches a Hydra app as that one
    string, quoted for Hydra's grammar; a number stays a number."""
    project = hydra_project(tmp_path, config="tag: none\n", script=ECHO_APP)
    values = ["a,b", "it's a test, ok", 'say "hi"', "plain"]
    sweep = project.write_sweep({"grid": {"tag": [*values, 0.5]}})  # in a list, each item is one value
    proc = project.hsm("run", "--config", str(sweep), "--sources", "local:2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen = sorted((d / "seen.txt").read_text() for d in (_sweep_dir(project) / "tasks").iterdir())
    assert seen == sorted([repr(v) for v in values] + ["0.5"])
