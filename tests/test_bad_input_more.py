"""Bad input, part two (issue 12, items 8-12): command lines the OS cannot start, YAML alias bombs,
damaged sweep files, settings checked before a sweep exists, and the odd ones (a full disk at
creation, two runs in one second, ``{param.NAME}``, read-only sweeps, empty and dot names).

Each refusal runs the real ``hsm`` in a throw-away project and checks the exact one-line message,
exit code 2, that nothing the user had changed, and that no sweep directory was left behind.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from hsm_project import Project, make_project
from hsm_core.testing.services import small_filesystem


def refused(proc: subprocess.CompletedProcess) -> str:
    """The one line of a refusal: exit 2, one ``Error:`` line on stderr, no traceback."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    return lines[0]


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its content: what the user has, to compare before/after."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def done(project: Project) -> Project:
    """A project with one finished sweep ``first`` (2 tasks)."""
    cfg = project.write_sweep({"grid": {"x": [1, 2]}}, name="first.yaml")
    project.hsm("run", "--config", str(cfg), "--sweep-id", "first", check=True)
    return project


# --------------------------------------------------------------------------------------------
# 8. Command lines the operating system cannot start (E2BIG)
# --------------------------------------------------------------------------------------------


def _big_sweep(n: int = 25, size: int = 100_000) -> dict:
    return {"grid": {f"p{i}": ["v" * size] for i in range(n)}}


@pytest.mark.parametrize("args", [("run",), ("run", "--dry-run"), ("worker", "--sweep")], ids=["run", "dry-run", "worker"])
def test_arguments_beyond_arg_max_are_refused_before_the_sweep_exists(done: Project, args: tuple[str, ...]) -> None:
    # 25 values of 100 KB: each fits in one argument, together they exceed ARG_MAX (2 MiB). The
    # run used to disable and re-enable the local source forever, exec failing with E2BIG.
    cfg = done.write_sweep({"name": "big", **_big_sweep()}, name="big.yaml")
    before = tree(done.root)
    flag = [] if args[-1] == "--sweep" else ["--config"]
    line = refused(done.hsm(*args, *flag, str(cfg), timeout=60))
    limit = os.sysconf("SC_ARG_MAX")
    label = "[0-9a-f]{16}" if args[0] == "worker" else "task_001"  # worker tasks are named by run id
    expected = (rf"Error: sweeps/big\.yaml:3: grid\.p0: the command line of {label} would be [\d,]+ bytes with its "
                rf"environment, more than the system allows \({limit:,} bytes: ARG_MAX\); this parameter's value is "
                r"100,000 bytes \(pass long values through a file: write the text to a file and give its path as the "
                r"parameter\)")
    assert re.fullmatch(expected, line), line
    assert tree(done.root) == before and done.sweep_ids() == ["first"]
    assert not (done.outputs / "big").exists()


def test_one_argument_over_max_arg_strlen_through_a_template_is_refused(done: Project) -> None:
    # Each value is under Linux's 128 KiB per-argument limit, but the template glues two of them
    # into one argument.
    cfg = done.write_sweep({"grid": {"a": ["x" * 70_000], "b": ["y" * 70_000]},
                            "command": "{python} train.py --ab={param.a}{param.b}"}, name="glued.yaml")
    line = refused(done.hsm("run", "--config", str(cfg)))
    assert line == ("Error: sweeps/glued.yaml:2: grid.a: one argument of the command of task_001 would be 140,006 bytes, "
                    "more than the system allows for one argument (131,071 bytes: MAX_ARG_STRLEN) (pass long values "
                    "through a file: write the text to a file and give its path as the parameter)")
    assert done.sweep_ids() == ["first"]


def test_a_single_value_over_max_arg_strlen_names_file_line_and_key(done: Project) -> None:
    cfg = done.write_sweep("grid:\n  x: [1]\n  long: ['" + "v" * 140_000 + "']\n", name="one.yaml")
    line = refused(done.hsm("config", "validate", "--config", str(cfg)))
    assert line == ("Error: sweeps/one.yaml:3: grid.long: a value of 140,005 bytes is too long for a command-line "
                    "argument (at most 131,071) (pass a file name instead, and read the file in the script)")


def test_e2big_at_launch_fails_that_task_only(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the up-front check (the engine driven directly), exec's E2BIG is the task's failure:
    the run ends, the other task completes, the source is never disabled."""
    from hsm_core.lifecycle import ExecOptions, execute, plan_run
    from hsm_core.registry import get_registry

    big = "v" * 100_000
    paired = {f"p{i}": [big, "s"] for i in range(25)}
    cfg = project.write_sweep({"paired": [{"g": paired}]})
    registry = get_registry()
    plan = plan_run(cfg, registry, project_root=project.root, sweep_id="e2big")
    monkeypatch.setenv("HSM_COUNT_DIR", str(project.root))
    counts = execute(plan, ExecOptions(sources="local"), registry)
    assert counts == {"failed": 1, "completed": 1}
    sweep = project.outputs / "e2big"
    status = yaml.safe_load((sweep / "tasks" / "task_001" / "status.yaml").read_text())
    assert status["state"] == "failed" and "Argument list too long" in status["error"]
    assert len(project.executions()) == 1
    # Not a failure of the source: it was never counted against it.
    assert "failure" not in (sweep / "logs" / "sources" / "local.log").read_text()
    errors = json.loads(project.hsm("monitor", "errors", "e2big", "--json").stdout)
    assert errors["total_failed"] == 1


# --------------------------------------------------------------------------------------------
# 9. YAML alias bombs
# --------------------------------------------------------------------------------------------


def _bomb(indent: str = "  ") -> str:
    lines = [f"{indent}a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"{indent}a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def _limited(project: Project, *args: str) -> subprocess.CompletedProcess:
    """hsm with 1.5 GB of address space and 30 s: a bomb that expands fails the test, never hangs."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))

    return subprocess.run([sys.executable, "-m", "hsm_core", *args], cwd=project.root, env=project.environ(),
                          capture_output=True, text=True, timeout=30, preexec_fn=limit)


def test_an_alias_bomb_in_a_grid_is_refused_at_once(project: Project) -> None:
    cfg = project.write_sweep("grid:\n" + _bomb(), name="bomb.yaml")
    for args in (("run", "--config", str(cfg), "--count-only"), ("config", "validate", "--config", str(cfg))):
        line = refused(_limited(project, *args))
        assert line == ("Error: sweeps/bomb.yaml:7: YAML aliases here expand to 1,111,111 values, and the whole file to "
                        "1,234,567,911 (at most 1,000,000 more than the file holds) (write the values out, or reuse a "
                        "list fewer times)")
    assert project.sweep_ids() == []


def test_an_alias_bomb_in_hsm_config_is_refused(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [1]}})
    with open(project.root / "hsm_config.yaml", "a") as fh:
        fh.write("anchors:\n" + _bomb())
    line = refused(_limited(project, "run", "--config", str(cfg)))
    assert line == ("Error: hsm_config.yaml:16: YAML aliases here expand to 1,111,111 values, and the whole file to "
                    "1,234,567,929 (at most 1,000,000 more than the file holds) (write the values out, or reuse a list "
                    "fewer times)")
    assert project.sweep_ids() == []


def test_a_recursive_alias_and_ordinary_aliases(project: Project) -> None:
    cfg = project.write_sweep("grid:\n  x: &a [1, *a]\n", name="rec.yaml")
    assert refused(project.hsm("run", "--config", str(cfg), "--count-only")) == (
        "Error: sweeps/rec.yaml:2: a YAML alias refers to the node that contains it (a recursive alias) (remove the alias)")
    # Reusing a list is normal YAML and keeps working.
    ok = project.write_sweep("grid:\n  x: &v [1, 2]\n  y: *v\n", name="ok.yaml")
    assert project.hsm("run", "--config", str(ok), "--count-only").stdout.strip() == "Total parameter combinations: 4"


# --------------------------------------------------------------------------------------------
# 10. Damaged sweep files; NUL characters
# --------------------------------------------------------------------------------------------


def test_an_unknown_state_in_the_index_is_a_cache_to_rebuild(done: Project) -> None:
    cfg = done.write_sweep({"grid": {"x": [3]}}, name="second.yaml")
    done.hsm("run", "--config", str(cfg), "--sweep-id", "second", check=True)
    index = done.outputs / "first" / "task_index.json"
    good = json.loads(index.read_text())
    commands = (("status", "first", "--json"), ("export", "first"), ("report", "first"), ("monitor", "errors", "first"),
                ("status", "--all"), ("monitor", "recent"), ("complete", "first"))
    for field, value in (("state", "bogus"), ("duration", "long"), ("params", [1])):
        for args in commands:
            damaged = json.loads(json.dumps(good))
            damaged["tasks"][0][field] = value
            index.write_text(json.dumps(damaged))
            proc = done.hsm(*args)
            assert proc.returncode == 0 and proc.stderr == "", (field, args, proc.stderr)
            # Rebuilt from the task dirs, nothing run again.
            assert [t["state"] for t in json.loads(index.read_text())["tasks"]] == ["completed", "completed"]
    assert len(done.executions()) == 3


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"sweep_id: first\nstatus: \xff\xfe\n", "not UTF-8 text"),
        (b"- a\n- b\n", "expected a mapping, found a list"),
        (b"sweep_id: first\ntotal_tasks: lots\n", "total_tasks: unexpected str 'lots'"),
        (b"sweep_id: first\nstatus: [1, 2]\n", "status: unexpected list [1, 2]"),
        (b"sweep_id: first\nstatus: {unclosed\n", "not valid YAML at line 3"),
    ],
    ids=["not-utf8", "list", "wrong-int", "wrong-str", "bad-yaml"],
)
def test_a_damaged_metadata_file_is_one_line_and_listings_skip_it(done: Project, content: bytes, problem: str) -> None:
    cfg = done.write_sweep({"grid": {"x": [3]}}, name="second.yaml")
    done.hsm("run", "--config", str(cfg), "--sweep-id", "second", check=True)
    meta = done.outputs / "first" / "sweep_metadata.yaml"
    meta.write_bytes(content)
    message = (f"sweeps/outputs/first/sweep_metadata.yaml: {problem} (the sweep's metadata is damaged) "
               "(fix or restore that file; the tasks under tasks/ are not affected)")
    for args in (("status", "first"), ("report", "first"), ("complete", "first"), ("monitor", "watch", "first", "--once")):
        assert refused(done.hsm(*args)) == f"Error: {message}", args
    for args in (("status", "--all", "--json"), ("monitor", "recent", "--json")):
        proc = done.hsm(*args)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.strip() == f"Warning: skipped a damaged sweep: {message}"
        assert [s["sweep_id"] for s in json.loads(proc.stdout)] == ["second"]
    assert meta.read_bytes() == content  # never rewritten behind the user's back
    assert len(done.executions()) == 3


def test_a_nul_in_the_command_is_refused_by_validate_and_run(project: Project) -> None:
    cfg = project.write_sweep('grid:\n  x: [1]\ncommand: "{python} train.py\\0 {args}"\n', name="nul.yaml")
    expected = ("Error: sweeps/nul.yaml:3: command: '{python} train.py\\x00 {args}' contains a NUL character, which no "
                "command line, path or environment variable can hold (remove it)")
    assert refused(project.hsm("config", "validate", "--config", str(cfg))) == expected
    assert refused(project.hsm("run", "--config", str(cfg))) == expected
    with open(project.root / "hsm_config.yaml", "a") as fh:
        fh.write('command:\n  template: "{python} {script}\\0 {args}"\n')
    plain = project.write_sweep({"grid": {"x": [1]}})
    expected = ("Error: hsm_config.yaml:11: command.template: '{python} {script}\\x00 {args}' contains a NUL character, "
                "which no command line, path or environment variable can hold (remove it)")
    assert refused(project.hsm("config", "validate")) == expected
    assert refused(project.hsm("run", "--config", str(plain))) == expected
    assert project.sweep_ids() == []


def test_a_nul_reaching_popen_puts_the_status_back(tmp_path: Path) -> None:
    """The runner's own guard: exec refuses a NUL with ValueError; the task's status is restored
    as for an OSError, not left 'running/starting' forever."""
    from hsm_core import runner

    task = tmp_path / "task_001"
    task.mkdir()
    (task / "command.json").write_text(json.dumps({"task_id": "t", "index": 1, "argv": ["/bin/echo", "a\0b"],
                                                   "cwd": str(tmp_path), "env": {}}))
    with pytest.raises(ValueError):
        runner.start_task(task, source="local")
    assert not (task / "status.yaml").exists()
    earlier = {"task_id": "t", "index": 1, "state": "failed", "attempt": 1, "exit_code": 3}
    (task / "status.yaml").write_text(yaml.safe_dump(earlier))
    with pytest.raises(ValueError):
        runner.start_task(task, source="local")
    assert yaml.safe_load((task / "status.yaml").read_text()) == earlier


# --------------------------------------------------------------------------------------------
# 11. Checked before the sweep directory exists (run, --dry-run, config validate)
# --------------------------------------------------------------------------------------------

AVAILABLE = "(available: example, local, pbs, slurm, ssh, torque)"


@pytest.mark.parametrize(
    "extra, expected",
    [
        (("--sources", "lcoal:2"), f"Error: --sources entry 'lcoal:2': unknown compute source 'lcoal', did you mean 'local'? {AVAILABLE}"),
        (("--sources", "foo:bar"), f"Error: --sources entry 'foo:bar': unknown compute source 'foo' {AVAILABLE}"),
        (("--sources", "local:1:2"), "Error: invalid --sources entry 'local:1:2' (use local or local:N)"),
        (("--sources", "local:0"), "Error: invalid capacity '0' in --sources entry 'local:0' (use a positive number, e.g. local:4)"),
        (("--sources", "hpc:nowhere"), "Error: hpc.clusters: unknown cluster 'nowhere' in --sources entry 'hpc:nowhere' "
                                       "(clusters: none configured) (add it under hpc.clusters in hsm_config.yaml)"),
        (("--strategy", "rnd"), "Error: --strategy: unknown dispatch strategy 'rnd', did you mean 'random'? "
                                "(available: least_loaded, random, round_robin)"),
    ],
    ids=["misspelled", "unknown-kind", "malformed", "zero", "cluster", "strategy"],
)
def test_bad_sources_and_strategy_are_refused_in_dry_run_and_run(done: Project, extra: tuple[str, ...], expected: str) -> None:
    cfg = done.write_sweep({"grid": {"x": [5]}}, name="new.yaml")
    before = tree(done.root)
    for mode in (("--dry-run",), ()):
        assert refused(done.hsm("run", "--config", str(cfg), *mode, *extra)) == expected
    assert tree(done.root) == before and done.sweep_ids() == ["first"]
    # The latest sweep is still the one that ran.
    assert json.loads(done.hsm("status", "--json").stdout)["sweep_id"] == "first"


def test_sources_and_strategy_in_files_name_the_file_and_line(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [1]}, "sources": ["local", "lcoal"]}, name="src.yaml")
    expected = f"Error: sweeps/src.yaml:4: sources entry 'lcoal': unknown compute source 'lcoal', did you mean 'local'? {AVAILABLE}"
    for args in (("run", "--config", str(cfg), "--dry-run"), ("config", "validate", "--config", str(cfg))):
        assert refused(project.hsm(*args)) == expected
    with open(project.root / "hsm_config.yaml", "a") as fh:
        fh.write("  strategy: least_loded\n")
    expected = ("Error: hsm_config.yaml:10: compute.strategy: unknown dispatch strategy 'least_loded', did you mean "
                "'least_loaded'? (available: least_loaded, random, round_robin)")
    assert refused(project.hsm("config", "validate")) == expected
    assert refused(project.hsm("run", "--config", str(project.write_sweep({"grid": {"x": [1]}})))) == expected
    assert project.sweep_ids() == []


@pytest.mark.parametrize("kind, command", [("slurm", "sbatch"), ("pbs", "qsub")])
def test_a_scheduler_without_its_commands_is_refused_up_front(project: Project, tmp_path: Path, kind: str, command: str) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    cfg = project.write_sweep({"grid": {"x": [1]}})
    expected = (f"Error: --sources entry '{kind}': the {kind} source runs {command} on this machine, but {command} is "
                f"not on PATH (install the {kind} client commands here, submit through a login node "
                "(hpc.clusters.NAME.host in hsm_config.yaml), or run with --sources local)")
    for mode in (("--dry-run",), ()):
        proc = project.hsm("run", "--config", str(cfg), "--sources", kind, *mode, env={"PATH": str(empty)})
        assert refused(proc) == expected
    assert project.sweep_ids() == [] and not project.outputs.exists()


def test_a_missing_script_or_interpreter_is_refused_everywhere(done: Project) -> None:
    cfg = done.write_sweep({"grid": {"x": [5]}}, name="new.yaml")
    (done.root / "train.py").rename(done.root / "moved.py")
    expected = (f"Error: hsm_config.yaml:5: paths.train_script: the training script {done.root / 'train.py'} does not "
                "exist (fix paths.train_script (a relative path starts at the project root))")
    for args in (("run", "--config", str(cfg)), ("run", "--config", str(cfg), "--dry-run"), ("config", "validate"),
                 ("complete", "first", "--config", str(cfg), "--dry-run"), ("worker", "--sweep", str(cfg))):
        assert refused(done.hsm(*args)) == expected, args
    (done.root / "moved.py").rename(done.root / "train.py")
    text = (done.root / "hsm_config.yaml").read_text()
    (done.root / "hsm_config.yaml").write_text(text.replace(sys.executable, "/nonexistent/bin/python"))
    expected = ("Error: hsm_config.yaml:4: paths.python_interpreter: the Python interpreter /nonexistent/bin/python is "
                "not found (or not executable) (fix the path, or remove it to use the Python running hsm)")
    for args in (("run", "--config", str(cfg)), ("config", "validate", "--config", str(cfg))):
        assert refused(done.hsm(*args)) == expected
    assert done.sweep_ids() == ["first"] and len(done.executions()) == 2


def test_an_unknown_placeholder_or_program_names_the_template(project: Project) -> None:
    cfg = project.write_sweep("grid:\n  lr: [0.1]\ncommand: '{python} train.py --lr={param.lx}'\n", name="ph.yaml")
    assert refused(project.hsm("run", "--config", str(cfg), "--dry-run")) == (
        "Error: sweeps/ph.yaml:3: command: unknown placeholder {param.lx} (parameters: lr) "
        "(use {param.NAME} (or {NAME}) for a parameter, {python}, {script} or {args})")
    cfg = project.write_sweep("grid:\n  lr: [0.1]\ncommand: no-such-program {args}\n", name="prog.yaml")
    assert refused(project.hsm("config", "validate", "--config", str(cfg))) == (
        "Error: sweeps/prog.yaml:3: command: the program 'no-such-program' is not found (not on PATH, not in the "
        "project) (fix the command template)")
    assert project.sweep_ids() == []


def test_a_source_refusing_after_the_dir_was_claimed_leaves_no_dir(done: Project) -> None:
    # The local source itself refuses its options when created, after the sweep's directory was
    # claimed: the claim is undone.
    with open(done.root / "hsm_config.yaml", "a") as fh:
        fh.write("    gpus: [0]\n    gpus_per_task: 2\n")
    cfg = done.write_sweep({"grid": {"x": [5]}}, name="new.yaml")
    assert refused(done.hsm("run", "--config", str(cfg))) == "Error: local.gpus_per_task: gpus_per_task=2 but only 1 GPUs listed"
    assert sorted(p.name for p in done.outputs.iterdir()) == ["first"]


# --------------------------------------------------------------------------------------------
# 12. A full disk at creation, two runs in one second, {param.NAME}, read-only sweeps, names
# --------------------------------------------------------------------------------------------


def test_a_full_disk_at_creation_says_nothing_was_created(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "small", 1) as disk:
        project = make_project(tmp_path)
        config = project.root / "hsm_config.yaml"
        config.write_text(config.read_text().replace("paths:\n", f"paths:\n  output_dir: {disk / 'outputs'}\n", 1))
        (disk / "outputs").mkdir()
        fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:  # full
            pass
        finally:
            os.close(fd)
        cfg = project.write_sweep({"grid": {"x": [1, 2]}})
        proc = project.hsm("run", "--config", str(cfg), "--sweep-id", "full")
        assert refused(proc) == ("Error: no space left on device while creating sweep full; nothing was created "
                                 "(free some space, then run the same command again)")
        assert list((disk / "outputs").iterdir()) == []
        (disk / "filler").unlink()
        again = project.hsm("run", "--config", str(cfg), "--sweep-id", "full")
        assert again.returncode == 0, again.stderr
        assert len(project.executions()) == 2


def test_two_runs_started_together_take_two_ids(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [1, 2]}})
    procs = [project.popen("run", "--config", str(cfg)) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert len(project.sweep_ids()) == 3 and len(project.executions()) == 6
    # Each run names the sweep it really created.
    said = sorted(re.search(r"^Starting sweep (\S+):", out, re.M).group(1) for out, _ in outs)
    assert said == project.sweep_ids()


def test_an_id_taken_between_plan_and_start_moves_to_the_next(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race itself, made certain: another run creates the chosen directory after this one
    planned it. mkdir (exist_ok=False) notices, and the next free id is taken."""
    from hsm_core.lifecycle import ExecOptions, execute, plan_run
    from hsm_core.registry import get_registry

    cfg = project.write_sweep({"grid": {"x": [1]}})
    registry = get_registry()
    plan = plan_run(cfg, registry, project_root=project.root)
    chosen = plan.sweep.path
    chosen.mkdir(parents=True)
    (chosen / "theirs.txt").write_text("the other run's")
    monkeypatch.setenv("HSM_COUNT_DIR", str(project.root))
    assert execute(plan, ExecOptions(sources="local"), registry) == {"completed": 1}
    assert plan.sweep.path == chosen.parent / f"{chosen.name}_2"
    assert sorted(p.name for p in chosen.iterdir()) == ["theirs.txt"]


def test_param_placeholders_work_as_documented(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"lr": [0.1], "optimizer.momentum": [0.9]},
                               "command": "{python} {script} --lr={param.lr} --m {param.optimizer.momentum} {lr}"})
    project.hsm("run", "--config", str(cfg), "--sweep-id", "ph", check=True)
    out = (project.outputs / "ph" / "tasks" / "task_001" / "stdout.log").read_text()
    argv = json.loads(next(ln for ln in out.splitlines() if ln.startswith("ARGV "))[5:])
    assert argv == ["--lr=0.1", "--m", "0.9", "0.1"]


@pytest.fixture
def read_only_sweep(tmp_path: Path) -> Iterator[tuple[Project, Path]]:
    """A finished sweep ``ro`` (one task failed) on a file system then remounted read-only."""
    with small_filesystem(tmp_path / "ro", 16) as disk:
        project = make_project(disk)
        cfg = project.write_sweep({"grid": {"exit": [0, 3]}})
        project.hsm("run", "--config", str(cfg), "--sweep-id", "ro", env={"HSM_COUNT_DIR": str(tmp_path)})
        mount = subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True, text=True)
        if mount.returncode != 0:
            pytest.skip(f"cannot remount read-only: {mount.stderr.strip()}")
        yield project, disk


def test_reading_commands_work_on_a_read_only_sweep(read_only_sweep: tuple[Project, Path], tmp_path: Path) -> None:
    project, _ = read_only_sweep
    before = tree(project.outputs)
    errors = project.hsm("monitor", "errors", "ro")
    assert errors.returncode == 0 and "task_002" in errors.stdout, errors.stdout
    assert errors.stderr.strip() == "Note: logs/errors/*.yaml not written (Read-only file system); the analysis follows"
    assert json.loads(project.hsm("monitor", "errors", "ro", "--json").stdout)["total_failed"] == 1
    for args in (("status", "ro"), ("export", "ro"), ("status", "--all"), ("monitor", "recent")):
        assert project.hsm(*args).returncode == 0, args
    reports = project.outputs / "ro" / "reports"
    assert refused(project.hsm("report", "ro")) == (
        f"Error: cannot write the reports into {reports}: Read-only file system "
        "(write them elsewhere with: hsm report ro --output-dir DIR)")
    out = tmp_path / "reports"
    proc = project.hsm("report", "ro", "--output-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    assert (out / "completion_report.html").is_file() and (out / "error_analysis.html").is_file()
    assert tree(project.outputs) == before


def test_an_empty_parameter_name_is_refused(project: Project) -> None:
    cfg = project.write_sweep('grid:\n  x: [1]\n  "": [1]\n', name="empty.yaml")
    expected = ("Error: sweeps/empty.yaml:3: grid: empty parameter name '' (give the parameter a name: it becomes the "
                "argument name=value)")
    for args in (("run", "--config", str(cfg), "--count-only"), ("config", "validate", "--config", str(cfg)),
                 ("worker", "--sweep", str(cfg))):
        assert refused(project.hsm(*args)) == expected
    cfg = project.write_sweep('paired:\n  - g:\n      " ": [1, 2]\n', name="blank.yaml")
    assert refused(project.hsm("run", "--config", str(cfg), "--dry-run")) == (
        "Error: sweeps/blank.yaml:3: paired.g: empty parameter name ' ' (give the parameter a name: it becomes the "
        "argument name=value)")
    assert project.sweep_ids() == []


@pytest.mark.parametrize("name", [".", "..", "'-.-'"])
def test_worker_sweep_names_without_letters_are_refused(project: Project, name: str) -> None:
    cfg = project.write_sweep(f"name: {name}\ngrid:\n  x: [1]\n", name="w.yaml")
    shown = name.strip("'")
    expected = (f"Error: sweeps/w.yaml:1: name: cannot make a directory name from the sweep name {shown!r}: it needs "
                "an ASCII letter or digit (use letters, digits, '_', '-' and '.')")
    assert refused(project.hsm("worker", "--sweep", str(cfg))) == expected
    assert not project.outputs.exists() and project.executions() == []
