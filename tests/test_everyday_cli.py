"""Issue 17, everyday use: the latest sweep by default, one meaning of progress, whole sweep ids,
JSON from ``run --count-only/--dry-run``, shell completion, and ``run --retry-failed``.

Every test runs the real ``hsm`` in a throw-away project.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hsm_project import Project


def _two_sweeps(project: Project) -> None:
    """``zeta_first`` (x: 1, 2), then ``alpha_second`` (x: 7, 8, 9): the latest is the one created
    last, although its name sorts first."""
    first = project.write_sweep({"grid": {"x": [1, 2]}}, "first.yaml")
    second = project.write_sweep({"grid": {"x": [7, 8, 9]}}, "second.yaml")
    project.hsm("run", "-c", str(first), "--sweep-id", "zeta_first", check=True)
    project.hsm("run", "-c", str(second), "--sweep-id", "alpha_second", check=True)


def test_every_sweep_id_command_defaults_to_the_latest_sweep(project: Project) -> None:
    _two_sweeps(project)
    # Touch the older sweep afterwards: "latest" is the one created last, not the one used last.
    project.hsm("complete", "zeta_first", check=True)

    status = json.loads(project.hsm("status", "--json", check=True).stdout)
    assert status["sweep_id"] == "alpha_second"

    for args in (("export",), ("export", "latest")):
        rows = list(csv.DictReader(io.StringIO(project.hsm(*args, check=True).stdout)))
        assert sorted(r["x"] for r in rows) == ["7", "8", "9"], args

    errors = project.hsm("monitor", "errors", check=True)
    assert "No failed tasks in alpha_second." in errors.stdout

    report = project.hsm("report", check=True)
    assert "alpha_second/reports/completion_report.html" in report.stdout
    assert (project.outputs / "alpha_second" / "reports" / "completion_report.html").is_file()

    dry = project.hsm("complete", "--dry-run", check=True)
    assert dry.stdout.startswith("Sweep alpha_second: 0 task(s) would run")

    watch = project.hsm("monitor", "watch", "latest", "--once", check=True)
    assert "Sweep Status: alpha_second" in watch.stdout

    cancel = project.hsm("cancel", check=True)  # last: it marks the sweep cancelled
    assert cancel.stdout.startswith("Sweep alpha_second: nothing queued or running; marked cancelled.")
    assert json.loads(project.hsm("status", "--json", "zeta_first", check=True).stdout)["status"] == "completed"


def test_no_sweep_yet_is_one_clear_line(project: Project) -> None:
    for args in (("export",), ("report",), ("monitor", "errors"), ("complete",)):
        proc = project.hsm(*args)
        assert proc.returncode == 2, args
        assert proc.stderr.startswith("Error: no sweeps in ") and "hsm run" in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr


def _progress_row(text: str) -> str:
    [value] = re.findall(r"Progress\s*│\s*([^│]+?)\s*│", text)
    return value


def test_progress_means_the_same_in_status_and_watch(project: Project) -> None:
    """Three of six tasks fail: both views count the six finished tasks (before, status said 3/6)."""
    sweep = project.write_sweep({"grid": {"x": [1, 2, 3], "exit": [0, 3]}})
    assert project.hsm("run", "-c", str(sweep)).returncode == 1
    info = json.loads(project.hsm("status", "--json", check=True).stdout)
    assert (info["done"], info["total"], info["progress"]) == (6, 6, 100.0)
    assert info["counts"]["failed"] == 3 and info["counts"]["completed"] == 3

    status = _progress_row(project.hsm("status", check=True, env={"COLUMNS": "120"}).stdout)
    watch = _progress_row(project.hsm("monitor", "watch", "--once", info["sweep_id"], check=True, env={"COLUMNS": "120"}).stdout)
    assert status == watch == "6/6 (100.0%)"


def test_status_all_shows_whole_sweep_ids_in_a_narrow_terminal(project: Project) -> None:
    sweep = project.write_sweep({"grid": {"x": [1]}})
    long_id = "a_rather_long_sweep_name_for_the_ablation_of_the_decoder_2026"
    project.hsm("run", "-c", str(sweep), "--sweep-id", long_id, check=True)
    out = project.hsm("status", "--all", check=True, env={"COLUMNS": "60"}).stdout
    assert long_id in out
    assert "1/1 (100.0%)" in out


def test_count_only_and_dry_run_print_json_and_create_nothing(project: Project) -> None:
    sweep = project.write_sweep({"grid": {"lr": [0.1, 0.01], "bs": [16, 32, 64]}})
    counted = json.loads(project.hsm("run", "-c", str(sweep), "--count-only", "--json", check=True).stdout)
    assert counted["total_combinations"] == 6

    plan = json.loads(project.hsm("run", "-c", str(sweep), "--dry-run", "--json", "--max-runs", "4", "-s", "local:3",
                                  check=True).stdout)
    assert plan["total_combinations"] == 6
    assert plan["tasks_to_run"] == 4 == len(plan["tasks"])
    assert plan["sources"] == [{"name": "local", "kind": "local"}]
    assert plan["tasks"][0]["params"] == {"lr": 0.1, "bs": 16}
    assert plan["first_command"]["argv"][-2:] == ["lr=0.1", "bs=16"]
    assert [p["name"] for p in plan["parameters"]] == ["lr", "bs"]
    assert project.sweep_ids() == []

    alone = project.hsm("run", "-c", str(sweep), "--json")
    assert alone.returncode == 2 and alone.stderr.startswith("Error: --json goes with --count-only or --dry-run")
    assert project.sweep_ids() == []


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_run_retry_failed_points_to_complete(project: Project, command: str) -> None:
    sweep = project.write_sweep({"grid": {"x": [1]}})
    proc = project.hsm(command, "-c", str(sweep), "--retry-failed")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"Error: hsm {command} starts a new sweep; --retry-failed is an option of hsm complete")
    assert "hsm complete --retry-failed" in proc.stderr
    assert project.sweep_ids() == []


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(project: Project, shell: str) -> None:
    proc = project.hsm("completion", shell, check=True)
    assert "_HSM_COMPLETE" in proc.stdout


def _complete(project: Project, words: str, cword: int) -> list[str]:
    """What click's bash protocol answers for ``words`` (the values, in order)."""
    proc = project.hsm(env={"_HSM_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)}, check=True)
    return [line.split(",", 1)[1] for line in proc.stdout.splitlines() if line]


def test_completion_of_sweep_ids_and_sources(project: Project) -> None:
    project.root.joinpath("hsm_config.yaml").write_text(
        project.root.joinpath("hsm_config.yaml").read_text()
        + "distributed:\n  remotes:\n    gpubox:\n      host: 127.0.0.1\n      project_dir: /tmp/nowhere\n"
    )
    assert _complete(project, "hsm export ", 2) == []  # no sweeps yet: nothing, and no error
    _two_sweeps(project)
    assert _complete(project, "hsm export ", 2) == ["zeta_first", "alpha_second", "latest"]
    assert _complete(project, "hsm monitor errors ze", 3) == ["zeta_first"]
    assert _complete(project, "hsm complete al", 2) == ["alpha_second"]
    kinds = _complete(project, "hsm run --sources ", 3)
    assert "local" in kinds
    sources = _complete(project, "hsm run --sources local:2,ss", 3)
    assert sources and all(s.startswith("local:2,ss") for s in sources)
    if "ssh" in kinds:  # the ssh plugin is installed: its remotes complete by name
        assert "local:2,ssh:gpubox" in sources


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_completion_in_a_real_bash(project: Project) -> None:
    """The script ``hsm completion bash`` prints, sourced by bash, completes sweep ids."""
    hsm = Path(sys.executable).with_name("hsm")
    if not hsm.exists():
        pytest.skip("no hsm console script beside this interpreter")
    _two_sweeps(project)
    script = project.hsm("completion", "bash", check=True).stdout
    driver = script + '\nCOMP_WORDS=(hsm report al); COMP_CWORD=2; _hsm_completion hsm; printf "%s\\n" "${COMPREPLY[@]}"\n'
    env = project.environ({"PATH": f"{hsm.parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    proc = subprocess.run(["bash", "--norc", "--noprofile", "-c", driver], cwd=project.root, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["alpha_second"]


def test_an_unknown_command_names_the_one_meant(project: Project) -> None:
    # Other tools' word for it gets hsm's spelling; a typo the closest command; exit 2 either way.
    retry = project.hsm("retry")
    assert retry.returncode == 2
    assert "No such command 'retry'. Did you mean 'hsm complete --retry-failed'?" in retry.stderr
    typo = project.hsm("stauts")
    assert typo.returncode == 2 and "Did you mean 'hsm status'?" in typo.stderr
    nothing = project.hsm("zzzz")
    assert nothing.returncode == 2 and "No such command 'zzzz'." in nothing.stderr
    assert "Did you mean" not in nothing.stderr and "Traceback" not in nothing.stderr


def test_the_sweep_names_its_user_where_user_and_logname_are_unset(project: Project) -> None:
    """cron, containers and some batch jobs set neither $USER nor $LOGNAME: the sweep still says
    who started it (sweep_metadata.yaml's user)."""
    import pwd

    import yaml

    project.write_sweep({"grid": {"x": [1]}})
    project.hsm("run", "--config", "sweeps/sweep.yaml", "--sources", "local:1", env={"USER": "", "LOGNAME": ""},
                check=True)
    meta = yaml.safe_load((project.only_sweep() / "sweep_metadata.yaml").read_text())
    assert meta["user"] == pwd.getpwuid(os.geteuid()).pw_name


def test_store_true_flags_of_an_argparse_script_through_the_documented_command(tmp_path: Path) -> None:
    """docs/configuration.md: booleans reach an argparse script as values (``--flag true``); a
    script whose flags are ``store_true`` runs with ``{args:wandb_no_boolean_flags}``."""
    from hsm_project import make_project

    script = ("import argparse, os\np = argparse.ArgumentParser()\np.add_argument('--lr', type=float)\n"
              "p.add_argument('--use-bn', action='store_true')\na = p.parse_args()\n"
              "open(os.path.join(os.environ['HSM_COUNT_DIR'], 'runs.log'), 'a').write(f'{a.lr} {a.use_bn}\\n')\n")
    project = make_project(tmp_path)
    (project.root / "train.py").write_text(script)
    project.write_sweep('command: "{python} {script} {args:wandb_no_boolean_flags}"\n'
                        "grid:\n  lr: [0.1]\n  use-bn: [true, false]\n")
    project.hsm("run", "--config", "sweeps/sweep.yaml", "--sources", "local:2", check=True)
    assert sorted((project.root / "runs.log").read_text().splitlines()) == ["0.1 False", "0.1 True"]
