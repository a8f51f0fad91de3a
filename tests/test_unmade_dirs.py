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


def test_the_dirs_of_a_whole_cancelled_chunk_are_made_with_one_read_of_its_task_file(tmp_path: Path, monkeypatch) -> None:
    # The queue watcher's verdicts for a cancelled 10,000-task chunk re-read the chunk's task file
    # from the top for each task (quadratic); with a ChunkRows, as the watcher and hsm cancel
    # keep, the file is read once and every dir is still made whole from its own line.
    from hsm_core.plugin.arrayjob.manifest import SubmittedChunk
    from hsm_core.plugin.arrayjob.unmade import ChunkRows, make_dir
    from hsm_core.task_manifest import chunk_tasks_path

    n = 2000
    job_dir = tmp_path / "sweep" / "scripts" / "job_scripts"
    job_dir.mkdir(parents=True)
    list_file = job_dir / "slurm_001.list"
    list_file.write_text("".join(f"../../tasks/task_{i:05d}\n" for i in range(1, n + 1)))
    write_chunk_tasks(list_file, [
        {"params": {"task_id": f"id{i}", "index": i, "params": {"x": i}},
         "command": {"task_id": f"id{i}", "index": i, "argv": ["echo", str(i)], "cwd": str(tmp_path), "env": {}}}
        for i in range(1, n + 1)])
    chunk = SubmittedChunk("77", "n", "slurm_001.sh", "slurm_001.list", [f"id{i}" for i in range(1, n + 1)])
    reads = []
    real_read_bytes = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: (reads.append(self), real_read_bytes(self))[1])
    rows = ChunkRows()
    tasks = tmp_path / "sweep" / "tasks"
    for i in reversed(range(1, n + 1)):  # (any order: a poll reports them as the scheduler lists them)
        assert make_dir(tasks / f"task_{i:05d}", list_file, chunk.line_of(f"id{i}"), rows)
    assert reads.count(chunk_tasks_path(list_file)) == 1
    for i in (1, 1000, n):
        command = json.loads((tasks / f"task_{i:05d}" / "command.json").read_text())
        assert (command["task_id"], command["argv"]) == (f"id{i}", ["echo", str(i)])
        assert f"x: {i}" in (tasks / f"task_{i:05d}" / "params.yaml").read_text()
    assert chunk.element_of(f"id{n}") == n - 1


def test_list_file_lines_are_the_task_dirs_relative_to_the_job_dir() -> None:
    # (one relpath per parent dir, not per task: the same lines as os.path.relpath writes)
    import os

    from hsm_core.plugin.arrayjob.jobfiles import relative_paths

    start = Path("/p/sweeps/outputs/s/scripts/job_scripts")
    paths = [Path("/p/sweeps/outputs/s/tasks/task_00001"), Path("/p/sweeps/outputs/s/tasks/task_00002"),
             start / "x", start, start.parent, Path("/"), Path("/elsewhere/task_1"), start.parent / "job_scripts2" / "y"]
    assert relative_paths(paths, start) == [os.path.relpath(p, start) for p in paths]


def test_a_chunk_mixing_made_and_unmade_dirs_gets_submitted_statuses_and_task_rows_for_the_right_ones(tmp_path: Path) -> None:
    """Which tasks of a chunk still need their dir is read from one listing of the tasks dir: a
    task whose dir exists gets its ``submitted`` status and an empty task-file line; one without
    (also when a plain file has its dir's name, or the tasks dir does not exist yet) gets no
    status file and its full line."""
    from hsm_core.plugin.arrayjob.manifest import write_submitted
    from hsm_core.plugin.arrayjob.unmade import UnmadeTaskSpec, unmade_flags, write_chunk_file
    from hsm_core.plugin.values import TaskSpec
    from hsm_core.state import read_status
    from hsm_core.task_manifest import read_chunk_tasks

    tasks = tmp_path / "sweep" / "tasks"

    def spec(i: int, cls: type = UnmadeTaskSpec) -> TaskSpec:
        made_from = {"params": {"task_id": f"id{i}", "index": i, "params": {"x": i}},
                     "command": {"argv": ["true"], "cwd": str(tmp_path), "env": {}}}
        extra = (made_from,) if cls is UnmadeTaskSpec else ()
        return cls(f"id{i}", i, {"x": i}, tasks / f"task_{i:03d}", "sweep", tmp_path / "sweep", *extra)

    chunk = [spec(1), spec(2), spec(3), spec(4, TaskSpec)]
    assert unmade_flags(chunk) == [True, True, True, False]  # no tasks dir at all yet
    tasks.mkdir(parents=True)
    (tasks / "task_002").mkdir()  # made by an earlier attempt's element
    (tasks / "task_003").write_text("not a dir")
    (tasks / "task_004").mkdir()
    assert unmade_flags(chunk) == [True, False, True, False]

    write_submitted(chunk, source="slurm", per_element=1, script="slurm_001.sh")
    assert [(read_status(tasks / f"task_{i:03d}") or {}).get("state") for i in (2, 4)] == ["submitted", "submitted"]
    assert not (tasks / "task_001").exists()
    list_file = tmp_path / "slurm_001.list"
    write_chunk_file(list_file, chunk)
    rows = read_chunk_tasks(list_file)
    assert [bool(r) for r in rows] == [True, False, True, False]
    assert rows[0]["params"]["task_id"] == "id1" and rows[2]["params"]["task_id"] == "id3"
