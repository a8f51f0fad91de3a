"""Reading real ``.wandb`` transaction logs written by wandb (offline)."""

from __future__ import annotations

from pathlib import Path

from wandb_project import WandbProject

from hsm_plugin_wandb_sync import runlog
from hsm_plugin_wandb_sync.runlog import read_log, summarize


def _logs(project: WandbProject, mode: str) -> list[Path]:
    run_id = project.task_runs[mode]
    return sorted(project.sweep_dir.glob(f"tasks/*/wandb/offline-run-*-{run_id}/run-{run_id}.wandb"))


def test_field_numbers_are_those_of_the_installed_wandb() -> None:
    Record = runlog.record_pb()
    fields = {f.name: f.number for f in Record.DESCRIPTOR.oneofs_by_name["record_type"].fields}
    assert (fields["run"], fields["exit"], fields["artifact"]) == (runlog.RUN_FIELD, runlog.EXIT_FIELD, runlog.ARTIFACT_FIELD)
    # record_type() knows which top-level fields are record types: every oneof member, nothing else
    for name, number in fields.items():
        msg = getattr(Record(), name).__class__()
        rec = Record()
        getattr(rec, name).CopyFrom(msg)
        rec.num = 7
        assert runlog.record_type(rec.SerializeToString()) == number, name


def test_finished_run_with_artifacts(wandb_project: WandbProject) -> None:
    [log] = _logs(wandb_project, "ckpt")
    s = read_log(log)
    assert s.intact and s.has_run_record and s.exited and s.exit_code == 0
    assert s.run_id == wandb_project.task_runs["ckpt"]
    assert s.group == "sweep_1" and s.tags == ["hsm", "sweep_1"]
    names = [a.name for a in s.artifacts]
    assert names == [f"model-{s.run_id}"] * 3
    assert [("best" in a.aliases) for a in s.artifacts] == [False, True, False]
    for a in s.artifacts:
        [f] = a.files
        assert f.path == "ckpt.pt" and f.size > 40000 and Path(f.local_path).is_file()
        assert "/wandb/data/artifacts/staging/" in f.local_path  # the task's own staging dir


def test_resumed_run_has_one_log_per_start(wandb_project: WandbProject) -> None:
    first, second = (read_log(p) for p in _logs(wandb_project, "resume"))
    assert first.exited and first.exit_code == 1 and len(first.artifacts) == 1
    assert second.exited and second.exit_code == 0 and len(second.artifacts) == 1
    assert first.run_id == second.run_id


def test_killed_run_leaves_no_exit_record(wandb_project: WandbProject) -> None:
    for log in _logs(wandb_project, "crash"):
        s = read_log(log)
        assert not s.exited and s.intact


def test_truncated_corrupt_and_foreign_files_do_not_raise(wandb_project: WandbProject, tmp_path: Path) -> None:
    [log] = _logs(wandb_project, "ckpt")
    data = log.read_bytes()
    whole = summarize(data)
    for cut in (7, 100, len(data) // 2, len(data) - 3):
        part = summarize(data[:cut])  # a run still writing: read what is there
        assert len(part.artifacts) <= len(whole.artifacts) and not part.exited
    damaged = bytearray(data)
    damaged[len(data) // 2] ^= 0xFF
    s = summarize(bytes(damaged))
    assert not s.exited  # reading stops at the bad checksum, before the exit record
    assert not summarize(b"not a log at all").intact
    assert not read_log(tmp_path / "missing.wandb").intact
