"""``hsm optuna-dashboard``: the real optuna-dashboard on a running adaptive sweep, live; and
without it, one clear line in ``hsm status`` and from the command."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from hsm_core.testing.project import Project, make_project, wait_for

OBJECTIVE = r'''
import json, os, sys, time
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
gate = os.environ.get("TOY_GATE")  # the study waits here until the test opens the gate
while gate and not os.path.exists(gate):
    time.sleep(0.05)
x, y = float(args["x"]), float(args["y"])
with open(os.path.join(os.environ["HSM_TASK_DIR"], "metrics.json"), "w") as fh:
    json.dump({"loss": (x - 3) ** 2 + (y + 1) ** 2}, fh)
'''

SWEEP = {"metric": {"name": "loss", "goal": "minimize"},
         "search": {"strategy": "tpe", "trials": 6, "parallel": 1, "seed": 0,
                    "params": {"x": "interval(-10, 10)", "y": "interval(-10, 10)"}}}


@pytest.fixture
def toy(tmp_path: Path) -> Project:
    return make_project(tmp_path / "proj", script=OBJECTIVE)


def test_without_optuna_dashboard_status_and_the_command_say_how_to_get_it(toy: Project) -> None:
    toy.hsm("run", "--config", str(toy.write_sweep(SWEEP)), "--sweep-id", "s", check=True, timeout=300)
    env = {"HSM_OPTUNA_DASHBOARD": str(toy.root / "no-such-dashboard")}
    lines = toy.hsm("status", "s", env=env, check=True).stdout.splitlines()
    assert "Live view: optuna-dashboard is not installed; pip install optuna-dashboard, then: hsm optuna-dashboard s" in lines
    proc = toy.hsm("optuna-dashboard", "s", env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "optuna-dashboard is not installed" in proc.stderr and "pip install optuna-dashboard" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_grid_sweep_has_no_study_to_show(toy: Project) -> None:
    toy.hsm("run", "--config", str(toy.write_sweep({"grid": {"x": [1], "y": [2]}})), "--sweep-id", "g", check=True)
    assert "Live view" not in toy.hsm("status", "g", check=True).stdout
    if shutil.which("optuna-dashboard") is not None:
        proc = toy.hsm("optuna-dashboard", "g")
        assert proc.returncode == 2 and "not an adaptive search" in proc.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def test_the_dashboard_follows_a_running_study_and_stops_cleanly(toy: Project) -> None:
    if shutil.which("optuna-dashboard") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("optuna-dashboard must be installed in CI")
        pytest.skip("optuna-dashboard is not installed (pip install optuna-dashboard)")
    gate = toy.root / "gate"
    run = toy.popen("run", "--config", str(toy.write_sweep(SWEEP)), "--sweep-id", "live", env={"TOY_GATE": str(gate)})
    wait_for(lambda: (toy.outputs / "live" / "search" / "asks").is_dir(), timeout=120, what="the first ask")
    assert "Live view: hsm optuna-dashboard live" in toy.hsm("status", "live", check=True).stdout
    port = _free_port()
    dash = toy.popen("optuna-dashboard", "live", "--port", str(port), "--refresh", "0.3")
    try:
        def trials() -> list[dict[str, Any]] | None:
            try:
                return _get(f"http://127.0.0.1:{port}/api/studies/0?after=0")["trials"]
            except (urllib.error.URLError, OSError, KeyError, ValueError):
                return None

        first = wait_for(trials, timeout=120, what="the dashboard to answer")
        assert len(first) == 1 and first[0]["state"] == "Running"  # it started while the study ran ...
        gate.write_text("")
        done = wait_for(lambda: (t := trials()) is not None and sum(x["state"] == "Complete" for x in t) == 6 and t,
                        timeout=300, what="every trial complete in the dashboard")  # ... and followed it
        assert run.wait(timeout=300) == 0
        summary = _get(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
        assert [s["study_name"] for s in summary] == ["live"] and summary[0]["directions"] == ["minimize"]
        best = json.loads(toy.hsm("status", "live", "--json", check=True).stdout)["best"]
        assert min(t["values"][0] for t in done) == pytest.approx(best["value"])
        assert {p["name"] for p in done[0]["params"]} == {"x", "y"}
    finally:
        dash.send_signal(signal.SIGTERM)
        dash.wait(timeout=30)
        if run.poll() is None:
            run.kill()
            run.wait()
    with pytest.raises((urllib.error.URLError, OSError)):  # the dashboard went with the command
        _get(f"http://127.0.0.1:{port}/api/studies")
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("hsm-optuna-dashboard-*/live.journal"))
