"""A small array-job submission's task dirs are made right after the job is submitted
(hsm_core/plugin/arrayjob/late_dirs.py), while the scheduler starts its elements.

A "scheduler" of bash stands in for Slurm: its submission command runs elements of the job script
itself (through the shell fast path) before it answers with the job id, so an element starts
before the controller made its dir, as on a busy cluster; the others find the dir the controller
made after the submission. Either way each task runs exactly once (counted from the task's own
log) and leaves the same records and files as a task whose dir was made before the submission.
The real Slurm run is hsm_plugin_slurm/tests/test_slurm_unmade_dirs.py's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from hsm_core import fastrun
from hsm_core.plugin import ArrayJob, ArrayJobSource, script_body
from hsm_core.plugin.arrayjob.manifest import write_submitted
from hsm_core.plugin.arrayjob.unmade import UnmadeTaskSpec
from hsm_core.taskdir import read_command, read_params, read_status
from hsm_core.testing import make_sweep

TASK = r'''
import os, sys
with open(os.path.join(os.environ["HSM_OUTPUT_DIR"], "..", "runs.log"), "a") as fh:
    fh.write("ran\n")
print(sys.argv[1:])
'''

#: The submission command: runs the elements named in $EARLY (comma-separated) to their end, as a
#: scheduler that starts them at once would, then prints the job id. It also notes which task dirs
#: existed when the job was submitted.
SUBMIT = r'''
import os, subprocess, sys
script = sys.argv[1]
tasks = os.path.join(os.getcwd(), "..", "..", "tasks")
with open("dirs_at_submission", "w") as fh:
    fh.write(" ".join(sorted(os.listdir(tasks))) if os.path.isdir(tasks) else "")
for index in filter(None, os.environ.get("EARLY", "").split(",")):
    env = dict(os.environ, HSM_ARRAY_INDEX=index, HSM_JOB_ID=f"5_{index}", HSM_JOB_RESTART="0")
    subprocess.run(["bash", script], env=env, check=False)
print(5)
'''


class BashScheduler(ArrayJobSource):
    scheduler_name = "Bash"

    def render_script(self, job: ArrayJob) -> str:
        return "\n".join(["#!/bin/bash", *script_body(job, index_expr="$HSM_ARRAY_INDEX")]) + "\n"

    def submit_argv(self, script_name: str, job: ArrayJob) -> list[str]:
        return [sys.executable, "-c", SUBMIT, script_name]

    def parse_job_id(self, stdout: str) -> str:
        return stdout.strip()

    def element_keys(self, job_id: str, index: int) -> list[str]:
        return [f"{job_id}_{index}"]

    def query(self, ids):
        return {}

    def cancel_argv(self, ids):
        return ["true"]


def _unmade_specs(root: Path, n: int):
    """A sweep of ``n`` tasks handed over as ``hsm run`` hands a small array-job submission over:
    specs carrying what each dir is made from, no dir yet."""
    sweep, specs, ctx = make_sweep(root, [{"i": i} for i in range(n)], script=TASK)
    out = []
    for spec in specs:
        doc = read_params(spec.task_dir)
        made_from = {"params": {"task_id": doc["task_id"], "index": doc["index"], "params": doc["params"]},
                     "command": read_command(spec.task_dir)}
        shutil.rmtree(spec.task_dir)
        out.append(UnmadeTaskSpec(spec.task_id, spec.index, spec.params, spec.task_dir, spec.sweep_id, spec.sweep_dir, made_from))
    return sweep, out, ctx


def _run_element(src: BashScheduler, index: int) -> int:
    script = next(src.job_dir.glob("bash_*.sh"))
    env = {**os.environ, "HSM_ARRAY_INDEX": str(index), "HSM_JOB_ID": f"5_{index}", "HSM_JOB_RESTART": "0"}
    return subprocess.run(["bash", str(script)], env=env, check=False).returncode


def _files(spec, root: Path) -> dict[str, Any]:
    d = spec.task_dir
    files = {p.name: p.read_text().replace(str(root), "<root>") for p in sorted(d.iterdir())
             if p.is_file() and p.name not in ("status.yaml", "stdout.log", "stderr.log")}
    files["dirs"] = sorted(p.name for p in d.iterdir() if p.is_dir())
    return files


def _record(spec, root: Path) -> dict[str, Any]:
    status = dict(read_status(spec.task_dir) or {})
    for key in ("start_time", "end_time", "start_epoch", "duration", "submit_time", "last_process", "process"):
        status.pop(key, None)
    status["attempts"] = [{k: v for k, v in a.items() if k not in ("start_time", "end_time")} for a in status.get("attempts") or []]
    return json.loads(json.dumps(status, default=str).replace(str(root), "<root>"))


def test_dirs_are_made_after_the_submission_whole_and_as_before(tmp_path: Path) -> None:
    root = (tmp_path / "late").resolve()
    sweep, specs, ctx = _unmade_specs(root, 3)
    src = BashScheduler("bash", {}, ctx)
    src.launch(specs)
    # Nothing was made before the scheduler had the job; everything is there when launch returns.
    assert (src.job_dir / "dirs_at_submission").read_text() == ""
    assert all(s.task_dir.is_dir() for s in specs)
    assert not list(sweep.tasks_dir.glob(".*making"))
    for i, spec in enumerate(specs):
        status = read_status(spec.task_dir) or {}
        assert (status["state"], status["array_index"], status["job_script"], status["attempt"]) == ("submitted", i, "bash_001.sh", 0)

    # The same files as a dir made before the submission (the way every small one was until now).
    before_root = (tmp_path / "before").resolve()
    _, made, before_ctx = make_sweep(before_root, [{"i": i} for i in range(3)], script=TASK)
    write_submitted(made, source="bash", per_element=1, script="bash_001.sh")
    for spec in made:
        assert fastrun.write_for_task(spec.task_dir)
    for late, early in zip(specs, made):
        assert _files(late, root) == _files(early, before_root)
        late_status = {k: v for k, v in (read_status(late.task_dir) or {}).items() if k != "submit_time"}
        early_status = {k: v for k, v in (read_status(early.task_dir) or {}).items() if k != "submit_time"}
        assert late_status == early_status

    # And each runs through the fast path, once.
    for i in range(3):
        assert _run_element(src, i) == 0
    assert [(s.task_dir / "runs.log").read_text() for s in specs] == ["ran\n"] * 3
    assert {(read_status(s.task_dir) or {})["state"] for s in specs} == {"completed"}


def test_an_element_that_starts_before_its_dir_is_made_runs_once_with_the_same_records(tmp_path: Path, monkeypatch) -> None:
    root = (tmp_path / "p").resolve()
    _, specs, ctx = _unmade_specs(root, 3)
    src = BashScheduler("bash", {}, ctx)
    # Elements 0 and 2 start (and end) while the submission command runs, before the controller
    # made any dir: each makes its own from its row.
    monkeypatch.setenv("EARLY", "0,2")
    src.launch(specs)
    assert (src.job_dir / "dirs_at_submission").read_text() == ""
    assert (read_status(specs[0].task_dir) or {})["state"] == "completed"
    assert (read_status(specs[1].task_dir) or {})["state"] == "submitted"  # made by the controller
    assert _run_element(src, 1) == 0
    # Once each, whoever made the dir; the controller left the elements' dirs alone.
    assert [(s.task_dir / "runs.log").read_text() for s in specs] == ["ran\n"] * 3
    assert not list(specs[0].task_dir.parent.glob(".*making"))
    records = [_record(s, root) for s in specs]
    for record in records:
        assert (record["state"], record["attempt"], record["exit_code"]) == ("completed", 1, 0)
    # The same records and files, the ids aside.
    def without_ids(record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if k not in ("task_id", "index", "job_id", "array_index", "hsm_job_id")}

    assert without_ids(records[0]) == without_ids(records[1]) == without_ids(records[2])
    assert sorted(_files(specs[0], root)) == sorted(_files(specs[1], root))
