"""Tasks submitted to array jobs before their dir exists (hsm_core/plugin/arrayjob/unmade.py),
without a scheduler: a sweep whose index is lost still knows them as submitted (``jobs.jsonl``
names them), so that ``hsm complete`` follows them instead of submitting them twice; a verdict's
dir is made from the chunk's task file, whole. The real thing runs in
hsm_plugin_slurm/tests/test_slurm_unmade_dirs.py."""

from __future__ import annotations

import json
from pathlib import Path

from hsm_core.plugin.arrayjob.manifest import read_manifest
from hsm_core.plugin.arrayjob.unmade import make_dir_from_jobs
from hsm_core.state import SweepDir
from hsm_core.task_manifest import entry, write_chunk_tasks, write_manifest


def _sweep(tmp_path: Path) -> SweepDir:
    path = tmp_path / "outputs" / "sweep_x"
    path.mkdir(parents=True)
    write_manifest(path, [entry(i, f"id{i}", {"x": i}) for i in (1, 2, 3)])
    job_dir = path / "scripts" / "job_scripts"
    job_dir.mkdir(parents=True)
    # Tasks 1 and 2 went to an array job; task 3 was never submitted.
    (job_dir / "slurm_001.list").write_text("../../tasks/task_001\n../../tasks/task_002\n")
    write_chunk_tasks(job_dir / "slurm_001.list", [
        {"params": {"task_id": f"id{i}", "index": i, "params": {"x": i}},
         "command": {"task_id": f"id{i}", "index": i, "argv": ["true"], "cwd": str(tmp_path), "env": {}}} for i in (1, 2)])
    (job_dir / "jobs.jsonl").write_text(json.dumps({"job_id": "77", "name": "n", "script": "slurm_001.sh", "list": "slurm_001.list",
                                                    "per_element": 1, "tasks": ["id1", "id2"], "source": "slurm"}) + "\n")
    return SweepDir(path)


def test_a_lost_index_keeps_array_tasks_without_dirs_submitted(tmp_path: Path) -> None:
    sweep = _sweep(tmp_path)
    records = sweep.rebuild_index()
    assert {r.task_id: (r.state, r.source) for r in records.values()} == {
        "id1": ("submitted", "slurm"), "id2": ("submitted", "slurm"), "id3": ("pending", None)}


def test_a_verdict_makes_the_dir_its_element_would_have_made(tmp_path: Path) -> None:
    sweep = _sweep(tmp_path)
    job_dir = sweep.path / "scripts" / "job_scripts"
    task_dir = sweep.tasks_dir / "task_002"
    assert make_dir_from_jobs(task_dir, job_dir, "id2", read_manifest(job_dir))
    assert json.loads((task_dir / "command.json").read_text())["task_id"] == "id2"
    assert "x: 2" in (task_dir / "params.yaml").read_text()
    assert not make_dir_from_jobs(sweep.tasks_dir / "task_003", job_dir, "id3", read_manifest(job_dir))
    assert not (sweep.tasks_dir / "task_003").exists()
