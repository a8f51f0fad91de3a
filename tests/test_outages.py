"""What the controller writes while a source does not answer, as other terminals read it: shown
while that controller runs, forgotten once it is gone (killed before it could remove the file)."""

from __future__ import annotations

import json
import subprocess
import time

from hsm_project import Project

from hsm_core import processes
from hsm_core.outages import OUTAGES_FILE, Outage


def _write(logs, controller_pid: int) -> None:
    now = time.time()
    outage = Outage("gpu1", now - 90, "poll failed: connection refused", {"poll": 9, "health": 2},
                    ["task_002", "task_003"], now + 510, "distributed.remotes.gpu1.lost_after")
    data = {"sweep_id": "s1", "controller": {"machine": processes.machine_id(), "pid": controller_pid,
                                             "identity": processes.identity(controller_pid)},
            "sources": [outage.to_json()]}
    (logs / OUTAGES_FILE).write_text(json.dumps(data))


def test_status_shows_what_waits_while_its_controller_runs_and_forgets_it_after(project: Project) -> None:
    cfg = project.write_sweep({"grid": {"x": [1, 2]}})
    project.hsm("run", "--config", str(cfg), "--sweep-id", "s1", check=True)
    controller = subprocess.Popen(["sleep", "600"])  # stands in for a controller in another terminal
    try:
        _write(project.outputs / "s1" / "logs", controller.pid)
        info = json.loads(project.hsm("status", "s1", "--json", check=True).stdout)
        (w,) = info["waiting"]
        assert w["source"] == "gpu1" and w["tasks"] == ["task_002", "task_003"] and w["failed"] == {"poll": 9, "health": 2}
        assert any(f"kill {controller.pid}" in h and "hsm cancel s1" in h for h in w["hints"]), w["hints"]
        text = project.hsm("status", "s1", env={"COLUMNS": "250"}, check=True).stdout
        assert "gpu1 has not answered since" in text and "; 9 failed polls, 2 failed health checks)" in text, text
        assert "2 task(s) wait on it: task_002, task_003" in text, text
        assert "they run elsewhere at" in text and "; distributed.remotes.gpu1.lost_after) unless gpu1" in text, text
    finally:
        controller.kill()
        controller.wait()
    assert json.loads(project.hsm("status", "s1", "--json", check=True).stdout)["waiting"] == []
    assert "wait on it" not in project.hsm("status", "s1", check=True).stdout
