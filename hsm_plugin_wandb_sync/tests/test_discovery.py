"""Finding a sweep's runs: per-task dirs, the shared wandb dir, exact membership, resumes."""

from __future__ import annotations

from pathlib import Path

import pytest
from wandb_project import WandbProject

from hsm_plugin_wandb_sync import discovery
from hsm_plugin_wandb_sync.discovery import WandbRun, discover, parse_dir_name
from hsm_plugin_wandb_sync.runlog import LogSummary


def runs_of(p: WandbProject, sweep_id: str = "sweep_1") -> dict[str, WandbRun]:
    return {r.run_id: r for r in discover(sweep_id, p.root / "sweeps" / "outputs" / sweep_id, p.root, {})}


def test_exactly_the_sweeps_runs(wandb_project: WandbProject) -> None:
    runs = runs_of(wandb_project)
    t = wandb_project.task_runs
    assert set(runs) == {t["ckpt"], t["resume"], t["crash"], "shared-g1", "shared-cfg1"}
    # sweep_10's runs (group, tag, config) are never taken for sweep_1's
    assert not any("10" in r for r in runs if r.startswith("shared"))


def test_resumed_run_is_one_run_with_two_dirs_in_order(wandb_project: WandbProject) -> None:
    runs = runs_of(wandb_project)
    resume = runs[wandb_project.task_runs["resume"]]
    assert len(resume.dirs) == 2 and resume.dirs[0].sort_key < resume.dirs[1].sort_key
    assert resume.dirs[0].summary.exit_code == 1 and resume.finished and resume.exit_code == 0
    crash = runs[wandb_project.task_runs["crash"]]
    assert len(crash.dirs) == 2 and not crash.finished
    assert runs[wandb_project.task_runs["ckpt"]].finished and runs["shared-g1"].finished


def test_artifact_versions_in_logging_order(wandb_project: WandbProject) -> None:
    runs = runs_of(wandb_project)
    ckpt = runs[wandb_project.task_runs["ckpt"]]
    [(name, versions)] = ckpt.versions().items()
    assert name == f"model-{ckpt.run_id}" and [v.number for v in versions] == [0, 1, 2]
    assert "best" in versions[1].aliases and "best" not in versions[2].aliases
    resume = runs[wandb_project.task_runs["resume"]]
    [(_, versions)] = resume.versions().items()
    assert [v.run_dir for v in versions] == [d.path for d in resume.dirs]  # across both starts


def test_membership_is_exact() -> None:
    def run(**kw: object) -> WandbRun:
        from hsm_plugin_wandb_sync.discovery import RunDir

        s = LogSummary(has_run_record=True, **kw)  # type: ignore[arg-type]
        return WandbRun("x", [RunDir(Path("/r"), "x", True, "20250101_000000", 0, Path("/r/l"), s, False)])

    assert run(group="sweep_1").matches("sweep_1")
    assert run(tags=["a", "sweep_1"]).matches("sweep_1")
    assert run(config_sweep_id="sweep_1").matches("sweep_1")
    for kw in ({"group": "sweep_10"}, {"tags": ["sweep_10", "sweep_1x"]}, {"config_sweep_id": "sweep_10"},
               {"group": "sweep_"}, {"group": "SWEEP_1"}):
        assert not run(**kw).matches("sweep_1"), kw


@pytest.mark.parametrize(
    "name, run_id, expected",
    [
        ("offline-run-20251020_212836-abc", "abc", (True, "20251020_212836", 0)),
        ("run-20251020_212836-abc-2", "abc", (False, "20251020_212836", 2)),
        ("offline-run-20251020_212836-a.b-c_d", "a.b-c_d", (True, "20251020_212836", 0)),  # ids with - _ .
        ("offline-run-20251020_212836-a-b-1", "a-b", (True, "20251020_212836", 1)),
        ("offline-run-20251020_212836-abc", "ab", None),
        ("latest-run", "abc", None),
    ],
)
def test_dir_names(name: str, run_id: str, expected: object) -> None:
    assert parse_dir_name(name, run_id) == expected


def test_second_discovery_reads_no_log(wandb_project: WandbProject, monkeypatch: pytest.MonkeyPatch) -> None:
    runs_of(wandb_project)  # fills the cache

    def boom(path: Path) -> LogSummary:
        raise AssertionError(f"read {path} again")

    monkeypatch.setattr(discovery, "read_log", boom)
    again = runs_of(wandb_project)
    assert len(again) == 5 and again[wandb_project.task_runs["ckpt"]].finished
