"""A wandb sweep file, written as wandb's documentation shows it, run by ``hsm run`` unchanged.

The translation is checked as a pure function (every key honoured or refused, with its line), and
the real ``hsm`` runs such files in a throw-away project: the tasks' own processes report the
arguments they received, in wandb's ``--key=value`` form.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from hsm_core import config
from hsm_core.plugin import ConfigError
from hsm_core.wandb_sweep import is_wandb_sweep, translate, wandb_args

# The example of wandb's "Define a sweep configuration" page (with the bayes method it shows
# replaced by random and a run_cap, which hsm needs to know how many runs to draw).
WANDB_DOCS_EXAMPLE = """\
program: train.py
name: sweepdemo
method: random
run_cap: 6
parameters:
  learning_rate:
    min: 0.0001
    max: 0.1
  batch_size:
    values: [16, 32, 64]
  epochs:
    values: [5, 10, 15]
  optimizer:
    values: ["adam", "sgd"]
"""


def _load(tmp_path: Path, text: str) -> dict:
    path = tmp_path / "sweep.yaml"
    path.write_text(textwrap.dedent(text))
    return config.load_sweep_file(path)


def _error(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text)
    return err.value


def test_wandb_formats_arguments_as_the_agent_does():
    params = {"lr": 0.01, "flag": True, "off": False, "name": "adam", "none": None}
    assert wandb_args(params, "wandb") == ["--lr=0.01", "--flag=True", "--off=False", "--name=adam", "--none=None"]
    assert wandb_args(params, "wandb_no_hyphens")[:2] == ["lr=0.01", "flag=True"]
    assert wandb_args(params, "wandb_no_boolean_flags") == ["--lr=0.01", "--flag", "--name=adam", "--none=None"]
    assert json.loads(wandb_args(params, "wandb_json")[0]) == params


def test_the_docs_example_becomes_a_random_section(tmp_path):
    data = _load(tmp_path, WANDB_DOCS_EXAMPLE)
    assert is_wandb_sweep({"method": "grid"}) and not is_wandb_sweep({"grid": {}})
    assert data["random"]["samples"] == 6 and data["random"]["seed"] == 0
    params = data["random"]["params"]
    assert params["learning_rate"] == {"uniform": [0.0001, 0.1]}  # min/max floats: uniform
    assert params["batch_size"] == [16, 32, 64]
    assert data["command"] == "/usr/bin/env {python} train.py {args:wandb}"  # wandb's default command
    assert data["name"] == "sweepdemo"


@pytest.mark.parametrize("spec,expected", [
    ({"min": 1, "max": 8}, {"int": [1, 8]}),
    ({"value": "a,b"}, ["a,b"]),  # a constant stays exactly itself (never read as a sweep)
    ({"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.25}, {"uniform": [0, 1], "q": 0.25}),
    ({"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1}, {"log_uniform": [1e-5, 1e-1]}),
    ({"distribution": "q_log_uniform_values", "min": 8, "max": 256, "q": 8}, {"log_uniform": [8, 256], "q": 8}),
    ({"distribution": "inv_log_uniform_values", "min": 0.1, "max": 10}, {"log_uniform": [0.1, 10]}),
    ({"distribution": "normal"}, {"normal": [0.0, 1.0]}),
    ({"distribution": "q_log_normal", "mu": 1, "sigma": 0.5, "q": 2}, {"log_normal": [1, 0.5], "q": 2}),
    ({"distribution": "beta", "a": 2, "b": 5}, {"beta": [2, 5]}),
    ({"values": ["a", "b"], "probabilities": [0.9, 0.1]}, {"choice": ["a", "b"], "weights": [0.9, 0.1]}),
])
def test_each_wandb_distribution_has_its_hsm_form(tmp_path, spec, expected):
    data = {"method": "random", "run_cap": 3, "program": "train.py", "parameters": {"p": spec}}
    assert translate(data, "sweep.yaml")["random"]["params"]["p"] == expected


def test_log_uniform_takes_exponents_as_wandb_does():
    data = {"method": "random", "run_cap": 3, "program": "t.py",
            "parameters": {"p": {"distribution": "log_uniform", "min": -2, "max": 0}}}
    low, high = translate(data, "s.yaml")["random"]["params"]["p"]["log_uniform"]
    assert low == pytest.approx(0.1353352832) and high == 1.0


def test_grid_and_nested_parameters(tmp_path):
    data = _load(tmp_path, """\
        program: train.py
        method: grid
        parameters:
          optimizer:
            parameters:
              lr: {values: [0.1, 0.01]}
              name: {value: sgd}
          layers: {min: 1, max: 3}
        command: [python3, "${program}", "${args_no_hyphens}"]
        """)
    assert data["grid"] == {"optimizer.lr": [0.1, 0.01], "optimizer.name": ["sgd"], "layers": [1, 2, 3]}
    assert data["command"] == "python3 train.py {args:wandb_no_hyphens}"


@pytest.mark.parametrize("text,line,key,words", [
    ("program: t.py\nmethod: grid\nmetric: {name: loss}\nparameters: {a: {values: [1]}}\n", 3, "metric",
     "does not rank runs by a metric"),
    ("method: bayes\nmetric: {name: loss}\nparameters: {a: {values: [1]}}\nprogram: t.py\n", 1, "method",
     "bayes needs run_cap"),
    ("program: t.py\nmethod: bayes\nrun_cap: 3\nparameters: {a: {values: [1]}}\n", None, "metric",
     "bayes needs the metric"),
    ("program: t.py\nmethod: bayes\nrun_cap: 3\nmetric: {name: loss, target: 0.1}\nparameters: {a: {values: [1]}}\n",
     4, "metric.target", "not supported: metric.target"),
    ("program: t.py\nmethod: grid\nparameters: {a: {values: [1]}}\nearly_terminate:\n  type: hyperband\n  min_iter: 3\n",
     4, "early_terminate", "add metric: {name: loss"),
    ("program: t.py\nmethod: grid\nmetric: {name: loss}\nparameters: {a: {values: [1]}}\nearly_terminate:\n"
     "  type: envelope\n", 6, "early_terminate.type", "must be hyperband"),
    ("program: t.py\nmethod: grid\nmetric: {name: loss}\nparameters: {a: {values: [1]}}\nearly_terminate:\n"
     "  type: hyperband\n  max_iter: 27\n", 7, "early_terminate.max_iter", "max_iter needs s"),
    ("program: t.py\nmethod: grid\nmetric: {name: loss}\nparameters: {a: {values: [1]}}\nearly_terminate:\n"
     "  type: hyperband\n  max_iter: 20\n  s: 2\n", 7, "early_terminate.max_iter", "not a whole number"),
    ("program: t.py\nmethod: grid\nmetric: {name: loss}\nparameters: {a: {values: [1]}}\nearly_terminate:\n"
     "  type: hyperband\n  min_iter: 3\n  strict: true\n", 8, "early_terminate.strict", "not supported: strict"),
    ("program: t.py\nmethod: random\nparameters:\n  a: {values: [1, 2]}\n", 2, "method", "run_cap"),
    ("program: t.py\nmethod: grid\nparameters:\n  a:\n    min: 0.0\n    max: 1.0\n", 4, "parameters.a",
     "use method: random"),
    ("program: t.py\nmethod: grid\nrun_cap: 1\nparameters:\n  a: {values: [1, 2]}\n", 3, "run_cap", "below the 2"),
    ("program: t.py\nmethod: grid\nparameters:\n  a:\n    values: [1]\n    probabilities: [1]\n", 6,
     "parameters.a.probabilities", "apply to method: random"),
    ("program: t.py\nmethod: random\nrun_cap: 1\nparameters:\n  a:\n    values: [1, 2]\n    probabilities: [1]\n", 7,
     "parameters.a.probabilities", "2 numbers of at least 0"),
    ("program: t.py\nmethod: grid\nparameters:\n  a: {values: [1]}\ncommand:\n  - ${env}\n  - ${envvar:HOME}\n", 7,
     "command.1", "not supported yet"),
    ("program: t.py\nmethod: grid\nparameters:\n  a: {values: [1]}\nproject_name: x\n", 5, "project_name",
     "hsm supports: method"),
    ("method: grid\nparameters:\n  a: {values: [1]}\n", None, None, "'program' is missing"),
    ("program: t.py\nmethod: grid\nparameters:\n  a: {values: [1]}\ngrid:\n  b: [1]\n", 5, "grid", "one form"),
])
def test_what_hsm_cannot_honour_is_refused_at_its_line(tmp_path, text, line, key, words):
    err = _error(tmp_path, text)
    if line is not None:
        assert (err.line, err.key) == (line, key), str(err)
    assert words in str(err)


def _argvs(sweep: Path) -> list[list[str]]:
    out = []
    for task in sorted((sweep / "tasks").iterdir()):
        line = next(ln for ln in (task / "stdout.log").read_text().splitlines() if ln.startswith("ARGV "))
        out.append(json.loads(line[5:]))
    return out


def test_hsm_runs_the_wandb_docs_example_unchanged(project):
    # (program: train.py is relative to the project root, where tasks run)
    cfg = project.write_sweep(WANDB_DOCS_EXAMPLE, name="wandb.yaml")
    assert project.hsm("run", "--config", str(cfg), "--count-only", check=True).stdout.strip().endswith("6")
    project.hsm("run", "--config", str(cfg), "--sources", "local:2", check=True)
    argvs = _argvs(project.only_sweep())
    assert len(argvs) == 6 and len(project.executions()) == 6
    for argv in argvs:
        args = dict(a[2:].split("=", 1) for a in argv)
        assert all(a.startswith("--") for a in argv) and set(args) == {"learning_rate", "batch_size", "epochs", "optimizer"}
        assert 0.0001 <= float(args["learning_rate"]) <= 0.1
        assert args["batch_size"] in ("16", "32", "64") and args["optimizer"] in ("adam", "sgd")


def test_hsm_runs_a_wandb_grid_with_a_custom_command(project):
    cfg = project.write_sweep(textwrap.dedent("""\
        program: train.py
        method: grid
        project: my-project
        parameters:
          lr: {values: [0.1, 0.01]}
          use_bn: {values: [true, false]}
        command:
          - ${env}
          - ${interpreter}
          - ${program}
          - "-b"
          - your-training-config
          - ${args_no_boolean_flags}
        """))
    project.hsm("run", "--config", str(cfg), "--sources", "local:2", check=True)
    sweep = project.only_sweep()
    argvs = sorted(_argvs(sweep))
    assert argvs == sorted([["-b", "your-training-config", f"--lr={lr}", *(["--use_bn"] if bn else [])]
                            for lr in (0.1, 0.01) for bn in (True, False)])
    # project: reaches the runs as WANDB_PROJECT, as wandb agent does (through /usr/bin/env)
    command = json.loads((sorted((sweep / "tasks").iterdir())[0] / "command.json").read_text())
    assert "WANDB_PROJECT=my-project" in json.dumps(command)


@pytest.mark.parametrize("terms, options", [
    ("  min_iter: 3\n", {"min_resource": 3, "reduction_factor": 3}),
    ("  max_iter: 27\n  s: 2\n", {"min_resource": 3, "reduction_factor": 3}),  # brackets 27/9, 27/3
    ("  min_iter: 2\n  eta: 2\n", {"min_resource": 2, "reduction_factor": 2}),
])
def test_early_terminate_becomes_an_asha_pruner_on_the_metric(tmp_path, terms, options):
    data = _load(tmp_path, "program: t.py\nmethod: random\nrun_cap: 4\nmetric:\n  name: acc\n  goal: maximize\n"
                           "parameters:\n  a: {min: 0.0, max: 1.0}\nearly_terminate:\n  type: hyperband\n" + terms)
    assert data["prune"] == {"pruner": "asha", "metric": "acc", "goal": "maximize", "options": options}
