"""The chunk plan (hsm_core/plugin/arrayjob/chunk_plan.py): ``hsm run --dry-run`` shows exactly
the array jobs ``hsm run`` submits — the same per-task resource groups, cuts at the array size
limit, ``%N`` throttles and lanes (which job waits for which) — because both are made by one
function. Checked here against what a scheduler made of plain commands was actually handed (the
real Slurm run of the same plumbing is in hsm_plugin_slurm/tests/test_slurm_flow.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hsm_core.dry_run_scripts import _plan_of, describe_resources
from hsm_core.testing.helpers import make_sweep
from hsm_core.testing.recording_scheduler import RecordingArrayJobSource


OPTIONS = [
    pytest.param({"max_array_size": 3, "array_parallelism": 4}, id="cut-and-lanes"),
    pytest.param({"max_array_size": 2, "array_parallelism": 3, "tasks_per_element": 2}, id="packed"),
    pytest.param({"max_array_size": 4, "array_parallelism": 2, "walltime": "01:00:00",
                  "per_task_resources": [{"when": {"model": "large"}, "walltime": "04:00:00"}]}, id="per-task-resources"),
    pytest.param({"max_array_size": 1000}, id="one-job-no-throttle"),
]


@pytest.mark.parametrize("options", OPTIONS)
def test_the_dry_run_shows_the_array_jobs_the_run_submits(tmp_path: Path, options: dict) -> None:
    params = [{"model": "large" if i % 3 == 0 else "small", "x": i} for i in range(11)]
    _, specs, ctx = make_sweep(tmp_path / "p", params)
    shown = _plan_of(RecordingArrayJobSource("rec", dict(options), ctx), len(specs), specs)

    run = RecordingArrayJobSource("rec", dict(options), ctx)
    run.launch(specs)
    job_dir = run.job_dir
    handed = []
    for job_id, job in run.handed:
        listed = (job_dir / Path(job.list_file).name).read_text().split()
        handed.append({"job_id": job_id, "name": job.name, "elements": job.size, "parallelism": job.parallelism,
                       "after": job.after, "resources": job.resources, "tasks": [d.rsplit("/", 1)[-1] for d in listed]})

    assert len(shown["chunks"]) == len(handed) > 1 or options.get("max_array_size") == 1000
    ids = [h["job_id"] for h in handed]
    by_index = {s.index: s.task_dir.name for s in specs}
    for seen, sub in zip(shown["chunks"], handed):
        assert seen["job_name"] == sub["name"]
        assert seen["elements"] == sub["elements"]
        assert seen["array"] == f"0-{sub['elements'] - 1}" + (f"%{sub['parallelism']}" if sub["parallelism"] else "")
        # "after rec_00N ended" in the dry run is the job id the run gave that chunk to wait for.
        waited = [ids.index(a) for a in sub["after"]]
        assert seen["after"] == (f", after rec_{waited[0] + 1:03d} ended" if waited else "")
        if "task_indices" in seen:  # per-task resources: which tasks, and the resources they ask for
            assert [by_index[i] for i in seen["task_indices"]] == sub["tasks"]
            assert seen["resources"] == describe_resources(sub["resources"])
        else:
            assert [s.task_dir.name for s in specs[seen["first_task"] : seen["first_task"] + seen["tasks"]]] == sub["tasks"]
        assert seen["tasks"] == len(sub["tasks"])
    if "per_task_resources" in options:
        walltimes = {h["resources"].walltime for h in handed}
        assert walltimes == {3600, 4 * 3600}  # the large models' array jobs ask for their own walltime
        assert "per-task resources: 2 sets" in "\n".join(shown["plan"])
