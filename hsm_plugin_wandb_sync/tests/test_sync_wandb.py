"""``hsm sync`` with W&B runs, end to end: real wandb runs, real rsync over a real sshd."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from wandb_project import WandbProject

from hsm_core.testing.services import LocalSshd
from hsm_core.testing.sync import auth_count, local_target, ssh_target, tree, write_sync_config
from hsm_plugin_wandb_sync.discovery import discover


def sync(p: WandbProject, *args: str, code: int = 0) -> dict[str, Any]:
    r = p.hsm("sync", "to", "sweep_1", *args, "--json", check=False)
    assert r.returncode == code, r.stdout + r.stderr
    [report] = json.loads(r.stdout)
    return report


#: Runs of the shared wandb dir that belong to sweep_10, not to sweep_1 (wandb_project.py).
SWEEP_10_RUNS = {"shared-g10", "shared-tag10", "shared-cfg10"}


def run_id(dir_name: str) -> str:
    """The run id of a run dir ``[offline-]run-YYYYMMDD_HHMMSS-RUNID``."""
    m = re.fullmatch(r"(?:offline-)?run-\d{8}_\d{6}-(.+)", dir_name)
    assert m, dir_name
    return m.group(1)


def test_run_id_ignores_the_start_time() -> None:
    assert run_id("offline-run-20261210_101010-shared-g1") == "shared-g1"
    assert run_id("run-20260101_000000-shared-g10") == "shared-g10"


def expected_dirs(p: WandbProject) -> set[str]:
    return {d.path.name for r in discover("sweep_1", p.sweep_dir, p.root, {}) for d in r.dirs}


def staging_payload(p: WandbProject, mode: str, version: int) -> bytes:
    [run] = [r for r in discover("sweep_1", p.sweep_dir, p.root, {}) if r.run_id == p.task_runs[mode]]
    [(_, versions)] = run.versions().items()
    return Path(versions[version].files[0].local_path).read_bytes()


@pytest.mark.sshd
def test_sync_runs_over_ssh_latest_only_then_incremental(wandb_project: WandbProject, ssh_host: LocalSshd,
                                                          tmp_path: Path) -> None:
    p = wandb_project
    remote = tmp_path / "desktop"
    write_sync_config(p.root, {"desktop": ssh_target(ssh_host, remote)}, default="desktop")
    logins = auth_count(ssh_host)
    first = sync(p)
    assert auth_count(ssh_host) - logins == 1  # one SSH connection for the whole sync
    wandb_dest = remote / "wandb"
    on_target = {d.name for d in wandb_dest.iterdir() if d.name.startswith("offline-run-")}
    assert on_target == expected_dirs(p)  # exactly the sweep's runs, every dir of the resumed one
    # sweep_10's runs stay behind. By run id: the dir name also holds the run's start time, which
    # contains "10" at 10:xx or on the 10th (the test used to fail then).
    assert len(on_target) == 7 and not {run_id(n) for n in on_target} & SWEEP_10_RUNS, on_target
    # Run dirs arrive whole; wandb.save's symlink arrives as the file it points to.
    for name in on_target:
        src = next(p.sweep_dir.glob(f"tasks/*/wandb/{name}"), None) or p.root / "wandb" / name
        assert tree(wandb_dest / name) == tree(src), name
    ckpt = p.task_runs["ckpt"]
    [notes] = wandb_dest.glob(f"offline-run-*-{ckpt}/files/notes.txt")
    assert not notes.is_symlink() and notes.read_text() == "saved with wandb.save\n"
    # latest_only: only the last version of each artifact, under its real name.
    arts = {k for k in tree(wandb_dest / "artifacts")}
    resume = p.task_runs["resume"]
    assert arts == {
        f"{ckpt}/model-{ckpt}/v2/ckpt.pt",
        f"{resume}/model-{resume}/v1/ckpt.pt",
        "shared-g1/data-shared-g1/v0/data.bin",
    }
    assert (wandb_dest / "artifacts" / ckpt / f"model-{ckpt}" / "v2" / "ckpt.pt").read_bytes() == staging_payload(p, "ckpt", 2)
    assert first["details"] == {"older artifact versions not sent (latest_only)": 3}
    assert first["kinds"]["wandb_run"]["sent"] == 5 and first["kinds"]["wandb_run"]["unfinished_sent"] == 1
    # The sweep's own dir went too, without the task wandb dirs.
    sweep = tree(remote / "sweeps" / "outputs" / "sweep_1")
    assert "tasks/task_001/status.yaml" in sweep and not any("/wandb/" in k for k in sweep)

    # Second sync: finished runs skipped after one listing, nothing transferred.
    second = sync(p)
    assert second["files"] == 0 and second["changed"] == []
    assert second["kinds"]["wandb_run"] == {"sent": 1, "skipped": {"already on target": 4}, "failed": 0, "unfinished_sent": 1}
    assert auth_count(ssh_host) - logins == 2

    # --all-versions: the older versions now, and nothing else.
    third = sync(p, "--all-versions")
    assert sorted(third["changed"]) == sorted([
        f"artifacts/{ckpt}/model-{ckpt}/v0/ckpt.pt",
        f"artifacts/{ckpt}/model-{ckpt}/v1/ckpt.pt",
        f"artifacts/{resume}/model-{resume}/v0/ckpt.pt",
    ])
    assert (wandb_dest / "artifacts" / ckpt / f"model-{ckpt}" / "v1" / "ckpt.pt").read_bytes() == staging_payload(p, "ckpt", 1)


def test_unfinished_runs_are_sent_again_finished_ones_not(wandb_project: WandbProject, tmp_path: Path) -> None:
    # A copy of the project: this test writes into a run dir.
    p = WandbProject(tmp_path / "proj", wandb_project.env, task_runs=wandb_project.task_runs)
    shutil.copytree(wandb_project.root, p.root, symlinks=True)
    write_sync_config(p.root, {"b": local_target(tmp_path / "b")}, default="b")
    sync(p)
    crash = p.task_runs["crash"]
    ckpt = p.task_runs["ckpt"]
    [crash_dir] = sorted(p.sweep_dir.glob(f"tasks/*/wandb/offline-run-*-{crash}"))[-1:]
    (crash_dir / "files" / "progress.txt").write_text("still going\n")
    [ckpt_dir] = p.sweep_dir.glob(f"tasks/*/wandb/offline-run-*-{ckpt}")
    (ckpt_dir / "files" / "late.txt").write_text("written after the run finished\n")
    again = sync(p)
    assert again["changed"] == [f"{crash_dir.name}/files/progress.txt"]
    assert not (tmp_path / "b" / "wandb" / ckpt_dir.name / "files" / "late.txt").exists()
    # check_remote_first off: every run goes through rsync again (which finds the late file).
    write_sync_config(p.root, {"b": local_target(tmp_path / "b", check_remote_first=False)}, default="b")
    third = sync(p)
    assert third["changed"] == [f"{ckpt_dir.name}/files/late.txt"]
    assert "skipped" not in json.dumps(third["kinds"]["wandb_run"]["skipped"])


def test_wandb_only_dry_run_and_list(wandb_project: WandbProject, tmp_path: Path) -> None:
    p = wandb_project
    dest = tmp_path / "t"
    write_sync_config(p.root, {"t": local_target(dest)}, default="t")
    dry = sync(p, "--dry-run")
    assert dry["dry_run"] and dry["files"] > 0 and not dest.exists()
    only = sync(p, "--wandb-only")
    assert not (dest / "sweeps").exists() and (dest / "wandb").is_dir()
    assert only["files"] == dry["files"] - len([k for k in dry["changed"] if not k.startswith(("offline-run", "artifacts"))])
    listing = p.hsm("wandb", "list", "sweep_1").stdout
    assert "W&B runs of sweep_1: 5" in listing
    assert f"{p.task_runs['resume']}  finished, 2 dir(s)" in listing
    assert f"{p.task_runs['crash']}  unfinished, 2 dir(s)" in listing
    text = p.hsm("sync", "to", "sweep_1", "--target", "t", "--all-versions").stdout
    assert "W&B runs: 1 sent (1 unfinished, sent again), 4 skipped: already on target" not in text  # fingerprint changed
    assert "W&B runs: 5 sent" in text
