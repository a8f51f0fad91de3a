"""The Python API (``import hsm``, docs/python-api.md) against real sweeps: the example script end
to end, reading tasks as ``hsm export`` does, starting and completing sweeps in the test's process
and in the background."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import os

import pytest
import yaml
from hsm_project import Project

import hsm

ROOT = Path(__file__).resolve().parents[1]


def _run_python(code: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_import_hsm_loads_nothing_heavy(tmp_path: Path) -> None:
    proc = _run_python("import sys, hsm\n"
                       "print(sorted(m for m in ('rich', 'jsonschema', 'yaml', 'click', 'pluggy', 'hsm_core.api') if m in sys.modules))\n"
                       "print(hsm.load_sweep.__module__)", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["[]", "hsm_core.api.sweeps"]


def test_the_example_script_runs_against_a_real_sweep(tmp_path: Path) -> None:
    """examples/python_api.py in a copy of the demo project, as its docstring says to run it."""
    demo = tmp_path / "demo"
    shutil.copytree(ROOT / "examples" / "demo_project", demo)
    config = demo / "hsm_config.yaml"
    config.write_text(config.read_text().replace("python_interpreter: python3", f"python_interpreter: {sys.executable}"))
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "python_api.py"), str(demo)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout.splitlines()
    [sweep_dir] = [p for p in (demo / "sweeps" / "outputs").iterdir() if (p / "sweep_metadata.yaml").exists()]
    sweep_id = sweep_dir.name
    assert out[0] == f"<Sweep {sweep_id}: completed, 4/4 (100.0%)>"
    assert "best: task_003 {'learning_rate': 0.01, 'batch_size': 32} loss 3.8371" in out
    # Returned once the controller was at work with all six tasks listed (the two new ones fail
    # in a moment, so on a slow machine they may have failed already).
    [background] = [line for line in out if line.startswith("running in the background: ")]
    assert re.fullmatch(rf"running in the background: <Sweep {sweep_id}: (running|incomplete), [4-6]/6 \(.*\)>", background)
    assert f"<Sweep {sweep_id}: incomplete, 6/6 (100.0%)> {{'completed': 4, 'failed': 2}}" in out
    assert ("task_005 {'learning_rate': 0.5, 'batch_size': 32} -> "
            "FloatingPointError: loss is nan after epoch 0 (learning_rate=0.5 is too high)") in out
    assert out[-1] == "True 100.0% done {'completed': 4, 'failed': 2}"
    # Every task ran exactly once: extending the grid ran only the two new combinations.
    for task in sorted((sweep_dir / "tasks").iterdir()):
        status = yaml.safe_load((task / "status.yaml").read_text())
        assert status["attempt"] == 1, (task.name, status)
    # The extended grid is the sweep's file now; the first one is kept beside it.
    assert "0.5" in (sweep_dir / "sweep_config.yaml").read_text()
    assert len(list(sweep_dir.glob("sweep_config.*.yaml"))) == 1
    # The dict configs written for the controllers are gone; the background controller's log stays.
    controllers = demo / "sweeps" / "outputs" / ".controllers"
    assert sorted(p.name for p in controllers.iterdir()) == [f"{sweep_id}.log"]


def test_reading_a_sweep_matches_hsm_export(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    sweep_file = project.write_sweep({"grid": {"x": [1, 2, 3], "exit": [0, 3]}})
    assert project.hsm("run", "-c", str(sweep_file)).returncode == 1
    (project.root / "notebooks").mkdir()
    monkeypatch.chdir(project.root / "notebooks")  # a notebook beside the project's files

    sw = hsm.load_sweep()
    assert sw.id == project.only_sweep().name
    assert len(sw) == 6 and sw.counts == {"completed": 3, "failed": 3}
    assert sw.progress == 100.0 and sw.finished and sw.status == "incomplete"
    first = sw.task("task_001")
    assert (first.index, first.params, first.state, first.metrics) == (1, {"x": 1, "exit": 0}, "completed", {"score": 2.0})
    assert sw.task(first.id) is first and sw.task(1) is first
    assert "ARGV" in first.stdout() and first.stderr() == "error output\n"
    failed = [t for t in sw if t.state == "failed"]
    assert [t.params["exit"] for t in failed] == [3, 3, 3] and all(t.exit_code == 3 for t in failed)

    exported = json.loads(project.hsm("export", "--format", "json", check=True).stdout)
    assert sw.rows() == exported
    assert hsm.load_sweep("latest", project=project.root).id == sw.id
    assert [s.id for s in hsm.list_sweeps(project=project.root)] == [sw.id]

    with pytest.raises(hsm.HsmError, match=r"unknown sweep id 'nope'"):
        hsm.load_sweep("nope")


def test_to_dataframe_has_the_export_columns(project: Project) -> None:
    if os.environ.get("CI") == "true":
        import pandas  # noqa: F401  (CI installs the test extra: a missing pandas fails, never skips)
    pd = pytest.importorskip("pandas")
    project.hsm("run", "-c", str(project.write_sweep({"grid": {"x": [1, 2]}})), check=True)
    frame = hsm.load_sweep(project=project.root).to_dataframe()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["task", "id", "x", "status", "source", "duration", "exit_code", "score"]
    assert frame["score"].tolist() == [2.0, 4.0]


def test_to_dataframe_without_pandas_says_how_to_install_it(project: Project) -> None:
    project.hsm("run", "-c", str(project.write_sweep({"grid": {"x": [1]}})), check=True)
    code = ("import sys; sys.modules['pandas'] = None\n"  # as if pandas were not installed
            "import hsm\n"
            "try:\n    hsm.load_sweep().to_dataframe()\n"
            "except hsm.HsmError as exc:\n    print(exc)\n")
    proc = _run_python(code, project.root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Sweep.to_dataframe() needs pandas, which is not installed (install it with: ")
    assert "-m pip install pandas" in proc.stdout and "Sweep.rows()" in proc.stdout


def test_run_and_complete_in_this_process(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocking calls, as a notebook cell makes them; the process's signal handlers are left as they were."""
    monkeypatch.setenv("HSM_COUNT_DIR", str(project.root))
    handlers = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    sw = hsm.run({"grid": {"x": [1, 2, 3], "fail_once": [1]}}, project=project.root, sources="local:2")
    assert sw.counts == {"failed": 3} and sw.status == "incomplete"
    assert project.executions() == []  # the test script logs only runs that get past their failure
    assert sw.complete() is sw and sw.counts == {"failed": 3}  # failed tasks wait for retry_failed
    sw.complete(retry_failed=True)
    assert sw.counts == {"completed": 3} and sw.status == "completed"
    assert sorted(project.executions()) == sorted(t.id for t in sw)
    assert all(t.attempt == 2 for t in sw)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
    # The dict was written for the run and removed after it: the sweep has its own copy.
    assert not list((project.outputs / ".controllers").glob("*.yaml"))
    assert "fail_once" in (sw.path / "sweep_config.yaml").read_text()


def test_a_refused_run_raises_and_creates_nothing(project: Project) -> None:
    for wait in (True, False):
        with pytest.raises(hsm.HsmError, match=r"unknown compute source 'nosuch'"):
            hsm.run({"grid": {"x": [1]}}, project=project.root, sources="nosuch", wait=wait)
    with pytest.raises(hsm.HsmError, match=r"sweep file nowhere.yaml does not exist"):
        hsm.run("nowhere.yaml", project=project.root)
    assert project.sweep_ids() == []


def test_a_bad_sweep_dict_is_named_as_the_dict_not_a_temporary_file(project: Project) -> None:
    """A typo in a sweep given as a dict names the key in the dict: the file hsm wrote it to for
    the controller is gone by the time the user reads the error, and its line numbers mean nothing."""
    for wait in (True, False):
        with pytest.raises(hsm.HsmError) as info:
            hsm.run({"gird": {"x": [1]}}, project=project.root, wait=wait)
        assert str(info.value).startswith("sweep dict (config=): gird: unknown key 'gird', did you mean 'grid'?")
        assert not re.search(r"sweep-\w+\.yaml", str(info.value))
    assert project.sweep_ids() == []
    sw = hsm.run({"grid": {"x": [1]}}, project=project.root, sources="local:1")
    for wait in (True, False):
        with pytest.raises(hsm.HsmError) as info:
            sw.complete(config={"grid": {"x": [1, 2]}, "retries": "two"}, wait=wait)
        assert str(info.value).startswith("sweep dict (config=): retries: expected a number of retries")
        assert not re.search(r"sweep-\w+\.yaml", str(info.value))
    assert not list((project.outputs / ".controllers").glob("*.yaml"))
    assert sw.refresh().counts == {"completed": 1}


def test_background_run_wait_and_one_controller_at_a_time(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HSM_COUNT_DIR", str(project.root))
    sweep_file = project.write_sweep({"grid": {"x": [1, 2], "sleep": [5]}})
    started = time.monotonic()
    sw = hsm.run(sweep_file.relative_to(project.root), project=project.root, wait=False)
    assert time.monotonic() - started < 30
    assert sw.status == "running" and len(sw) == 2 and not sw.finished
    # The background controller holds the sweep: a second one is refused, saying who runs it.
    with pytest.raises(hsm.HsmError, match=r"being run by hsm run \(pid \d+"):
        sw.complete()
    assert sw.wait(timeout=120) is sw
    assert sw.status == "completed" and sw.counts == {"completed": 2}
    assert sorted(project.executions()) == sorted(t.id for t in sw)  # each ran once
    assert "Done: 2 completed" in sw.controller_log.read_text()


def test_interrupting_a_blocking_run_is_ctrl_c(project: Project) -> None:
    """A notebook's "interrupt kernel" (SIGINT) during hsm.run(): the tasks are stopped, the caller
    gets KeyboardInterrupt, the sweep is left for complete()."""
    code = ("import sys, hsm\n"
            "try:\n"
            "    hsm.run({'grid': {'x': [1, 2], 'sleep': [60]}}, project=sys.argv[1], sources='local:2')\n"
            "except KeyboardInterrupt:\n"
            "    print('KeyboardInterrupt', flush=True)\n"
            "sw = hsm.load_sweep(project=sys.argv[1])\n"
            "print(sw.status, sw.counts, flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(project.root)], cwd=project.root, env=project.environ(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        from hsm_project import wait_for

        def both_running() -> bool:
            ids = project.sweep_ids()
            return bool(ids) and [s.get("state") for s in project.statuses(project.outputs / ids[0]).values()] == ["running"] * 2

        wait_for(both_running, timeout=60, what="both tasks running")
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert time.monotonic() - started < 30  # the 60 s tasks were stopped, not waited for
    assert out.splitlines() == ["KeyboardInterrupt", "interrupted {'interrupted': 2}"]
    assert json.loads(project.hsm("status", "--json", check=True).stdout)["controller"] is None  # the lease was given back
