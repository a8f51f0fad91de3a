"""Hydra's sweeper syntax and nested mappings in sweep files (issue 18).

The parser is checked against literal expectations taken from Hydra's documentation and, when
hydra-core is installed, against Hydra's own parser on the same texts. The sweep-file behaviour is
checked through the real loader, the real expanders and the real ``hsm`` command.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from hsm_core import config
from hsm_core.plugin import ConfigError
from hsm_core.sweep import count, expand, load_spec
from hsm_core.sweep_syntax import (
    ChoiceSweep,
    IntervalSweep,
    RangeSweep,
    SweepSyntaxError,
    looks_like_sweep,
    parse_override_value,
    sweep_of,
)

# (text, what it means): a list for an enumerable sweep, ("interval", lo, hi, tags) for an interval,
# anything else for a plain element.
CASES = [
    ("0.001,0.01,0.1", [0.001, 0.01, 0.1]),
    ("a,b,c", ["a", "b", "c"]),
    (" x , y ", ["x", "y"]),
    ("true,null,abc", [True, None, "abc"]),
    ("01,1_000,1e-3,+1,-2", ["01", 1000, 0.001, 1, -2]),
    ("1.,.5,5e3,inf", [1.0, 0.5, 5000.0, math.inf]),
    ("choice(b,a,1)", ["b", "a", 1]),
    ("choice(a)", ["a"]),
    ("range(5)", [0, 1, 2, 3, 4]),
    ("range(0,5,2)", [0, 2, 4]),
    ("range(10,0,-3)", [10, 7, 4, 1]),
    ("range(0,10,3.3)", [0.0, 3.3, 6.6, 9.9]),  # Hydra's documented example: decimal, not 9.899999999999999
    ("range(1,2,0.1)", [1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9000000000000001]),
    ("range(start=1,stop=4)", [1, 2, 3]),
    ("float(range(1,4))", [1.0, 2.0, 3.0]),
    ("sort(3,1,2)", [1, 2, 3]),
    ("sort(choice(3,1,2),reverse=true)", [3, 2, 1]),
    ("str(1,2)", ["1", "2"]),
    ("[1,2],[3,4]", [[1, 2], [3, 4]]),
    ("[a,[b,c]],{x:[1]}", [["a", ["b", "c"]], {"x": [1]}]),
    ("'a,b','c'", ["a,b", "c"]),
    ("${x},${y:1,2}", ["${x}", "${y:1,2}"]),
    ("12:00:00,13:00:00", ["12:00:00", "13:00:00"]),
    ("hello world, foo bar", ["hello world", "foo bar"]),
    ("a/b.c,d-e", ["a/b.c", "d-e"]),
    ("?|%,*@,-1,+2", ["?|%", "*@", -1, 2]),
    ("a b,c", ["a b", "c"]),
    ("interval(0,1)", ("interval", 0.0, 1.0, [])),
    ("tag(log,interval(1e-5,1e-1))", ("interval", 1e-5, 0.1, ["log"])),
    ("'a,b'", "a,b"),
    ("x\\,y", "x,y"),
    ("{a:1,b:2}", {"a": 1, "b": 2}),
]


def _meaning(value):
    if isinstance(value, IntervalSweep):
        return ("interval", value.low, value.high, sorted(value.tags))
    if isinstance(value, (ChoiceSweep, RangeSweep)):
        return list(value)
    return value


@pytest.mark.parametrize("text,expected", CASES)
def test_hydra_values_parse_as_hydra_documents_them(text, expected):
    assert _meaning(parse_override_value(text)) == expected


def test_the_parser_agrees_with_hydra_itself():
    parser_module = pytest.importorskip("hydra.core.override_parser.overrides_parser")
    hydra = parser_module.OverridesParser.create()
    for text, _ in CASES:
        override = hydra.parse_override(f"k={text}")
        value = override.value()
        if type(value).__name__ == "IntervalSweep":
            theirs = ("interval", float(value.start), float(value.end), sorted(value.tags))
        elif override.is_sweep_override():
            theirs = [getattr(v, "text", v) for v in override.sweep_iterator()]  # (QuotedString: its text)
        else:
            theirs = value
        assert repr(_meaning(parse_override_value(text))) == repr(theirs), text


def test_a_range_is_counted_without_being_listed():
    sweep = sweep_of("range(0,1000000000)")
    assert len(sweep) == 10**9
    assert len(sweep_of("range(0,1,0.1)")) == 10 and len(sweep_of("range(5,0)")) == 0


@pytest.mark.parametrize("text", ["hello", "10", "[1,2]", "{a:1}", "C:\\dir[1]", "a (b", "'x,y'", "x\\,y", "int(3.5)"])
def test_text_without_a_sweep_is_left_as_written(text):
    # Only a sweep changes meaning: existing sweep files keep their values (and their task ids).
    assert sweep_of(text) is None


@pytest.mark.parametrize("text,words", [
    ("choice(a,b", "expected ')'"),
    ("range(a,3)", "must be a number"),
    ("range(0,3,0)", "zero"),
    ("interval(3,1)", "below"),
    ("shuffle(a,b)", "not supported"),
    ("glob(*)", "not supported"),
    ("frobnicate(1),2", "unknown function"),
    ("x,'y", "unterminated"),
    ("a,choice(b,c)", "cannot be one value"),
    ("Hello, world!", "'!' cannot appear unquoted"),  # as Hydra's lexer: quote such text
    ("café,b", "'é' cannot appear unquoted"),
])
def test_bad_sweep_syntax_says_why(text, words):
    assert looks_like_sweep(text)
    with pytest.raises(SweepSyntaxError, match=re.escape(words)):
        sweep_of(text)


# --------------------------------------------------------------------------------------------
# Sweep files
# --------------------------------------------------------------------------------------------


def _sets(tmp_path: Path, text: str, registry) -> list[dict]:
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    spec = load_spec(path, registry)
    sets = list(expand(spec, registry))
    assert count(spec, registry) == len(sets)
    return sets


def test_nested_mappings_are_dotted_parameters(tmp_path, hsm_builtin_registry):
    sets = _sets(tmp_path, "grid:\n  optimizer:\n    lr: [0.001, 0.01]\n    name: adam\n  seed: [1, 2]\n",
                 hsm_builtin_registry)
    assert sets[0] == {"optimizer.lr": 0.001, "optimizer.name": "adam", "seed": 1}
    assert len(sets) == 4
    # the flow form Hydra users write, and a paired group
    sets = _sets(tmp_path, "grid: {optimizer: {lr: [0.001, 0.01]}}\npaired:\n  - g:\n      model: {name: [a, b]}\n"
                 "      width: [1, 2]\n", hsm_builtin_registry)
    assert sets == [{"optimizer.lr": 0.001, "model.name": "a", "width": 1},
                    {"optimizer.lr": 0.001, "model.name": "b", "width": 2},
                    {"optimizer.lr": 0.01, "model.name": "a", "width": 1},
                    {"optimizer.lr": 0.01, "model.name": "b", "width": 2}]


def test_a_mapping_meant_as_one_value_is_a_one_item_list(tmp_path, hsm_builtin_registry):
    sets = _sets(tmp_path, "grid:\n  optimizer: [{lr: 0.1, name: adam}]\n", hsm_builtin_registry)
    assert sets == [{"optimizer": {"lr": 0.1, "name": "adam"}}]


def test_hydra_sweeps_in_grid_and_paired(tmp_path, hsm_builtin_registry):
    sets = _sets(tmp_path, "grid:\n  optimizer.lr: 0.001,0.01,0.1\n  layers: range(2,8,2)\n  act: choice(relu,gelu)\n",
                 hsm_builtin_registry)
    assert len(sets) == 3 * 3 * 2
    assert {s["optimizer.lr"] for s in sets} == {0.001, 0.01, 0.1}
    assert {s["layers"] for s in sets} == {2, 4, 6}
    sets = _sets(tmp_path, "paired:\n  - g:\n      a: 1,2,3\n      b: range(3)\n", hsm_builtin_registry)
    assert sets == [{"a": 1, "b": 0}, {"a": 2, "b": 1}, {"a": 3, "b": 2}]


def test_a_value_with_a_comma_stays_possible(tmp_path, hsm_builtin_registry):
    text = "grid:\n  path: [\"a,b\"]\n  hydra_quoted: \"'c,d'\"\n  escaped: 'e\\,f'\n  plain: hello\n"
    assert _sets(tmp_path, text, hsm_builtin_registry) == [
        # a list item is a value as written; the other two reach Hydra as written, which reads one string
        {"path": "a,b", "hydra_quoted": "'c,d'", "escaped": "e\\,f", "plain": "hello"}
    ]


@pytest.mark.parametrize("body,line,key,words", [
    ("grid:\n  seed: [1]\n  lr: interval(0,1)\n", 3, "grid.lr", "random:"),
    ("grid:\n  seed: [1]\n  lr: choice(a,b\n", 3, "grid.lr", "one-item list"),
    ("grid:\n  opt:\n    lr: [1, 2]\n  opt.lr: [3]\n", 4, "grid.opt.lr", "twice"),
    ("grid:\n  opt:\n    lr: [1, 2]\npaired:\n  - g:\n      opt.lr: [1]\n      b: [2]\n", 6, "paired[0].g.opt.lr", "also set in grid"),
    ("grid:\n  seed: [1]\n  n: range(3,3)\n", 3, "grid.n", "no value"),
])
def test_bad_sweep_values_name_file_line_and_key(tmp_path, hsm_builtin_registry, body, line, key, words):
    path = tmp_path / "sweep.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError) as err:
        config.load_sweep_file(path, hsm_builtin_registry)
    assert (err.value.line, err.value.key) == (line, key), str(err.value)
    assert words in str(err.value)


def task_argvs(sweep: Path) -> list[list[str]]:
    """The arguments each task's own process received (its ``ARGV`` line in stdout.log)."""
    out = []
    for task in sorted((sweep / "tasks").iterdir()):
        line = next(ln for ln in (task / "stdout.log").read_text().splitlines() if ln.startswith("ARGV "))
        out.append(json.loads(line[5:]))
    return out


def test_hsm_runs_a_hydra_style_sweep(project):
    """The real ``hsm run``: 'optimizer: {lr: 0.001,0.01,0.1}' is three tasks, each told its value."""
    cfg = project.write_sweep("grid:\n  optimizer:\n    lr: 0.001,0.01,0.1\n  layers: range(1,3)\n"
                              "  path: [\"a,b\"]\n")
    assert project.hsm("run", "--config", str(cfg), "--count-only", check=True).stdout.strip().endswith("6")
    project.hsm("run", "--config", str(cfg), "--sources", "local:2", check=True)
    argvs = task_argvs(project.only_sweep())
    assert sorted(argvs) == sorted(
        [f"optimizer.lr={lr}", f"layers={n}", "path=a,b"] for lr in ("0.001", "0.01", "0.1") for n in (1, 2)
    )


HYDRA_APP = """\
import json
import hydra
from omegaconf import OmegaConf


@hydra.main(version_base=None, config_path=".", config_name="config")
def main(cfg):
    print("CFG", json.dumps(OmegaConf.to_container(cfg, resolve=True)), flush=True)


if __name__ == "__main__":
    main()
"""

HYDRA_CONFIG = """\
optimizer: {lr: 0.0, name: none}
layers: 0
tag: ""
hydra:
  run:
    dir: ${oc.env:HSM_TASK_DIR}/hydra
  output_subdir: null
"""


def test_a_real_hydra_app_gets_what_the_sweep_file_says(tmp_path):
    """hsm's reading of Hydra's syntax agrees with Hydra's own: a real Hydra app, run by the real
    ``hsm``, reports the configuration it composed from the arguments hsm gave it."""
    pytest.importorskip("hydra")
    from hsm_core.testing.project import make_project as make

    project = make(tmp_path / "proj", script=HYDRA_APP)
    (project.root / "config.yaml").write_text(HYDRA_CONFIG)
    cfg = project.write_sweep(
        "grid:\n  optimizer:\n    lr: 0.001,0.01\n  layers: range(1,3)\n  tag: \"'a,b'\"\n"
        "random:\n  samples: 2\n  seed: 4\n  optimizer.name: choice(adam,sgd)\n"
    )
    project.hsm("run", "--config", str(cfg), "--sources", "local:2", check=True)
    seen = []
    for task in sorted((project.only_sweep() / "tasks").iterdir()):
        line = next(ln for ln in (task / "stdout.log").read_text().splitlines() if ln.startswith("CFG "))
        seen.append(json.loads(line[4:]))
    assert len(seen) == 8
    assert {(c["optimizer"]["lr"], c["layers"]) for c in seen} == {(lr, n) for lr in (0.001, 0.01) for n in (1, 2)}
    assert all(c["tag"] == "a,b" and c["optimizer"]["name"] in ("adam", "sgd") for c in seen)
    assert isinstance(seen[0]["layers"], int) and isinstance(seen[0]["optimizer"]["lr"], float)
