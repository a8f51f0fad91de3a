"""``hsm wandb prune``: the server side against a recorded fake Api, the local side for real."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fake_wandb_api import FakeApi, FakeArtifact, FakeRun
from wandb_project import WandbProject

from hsm_plugin_wandb_sync.discovery import discover
from hsm_plugin_wandb_sync.prune import prune_local, prune_server


def server() -> FakeApi:
    arts = [FakeArtifact("model-r1", 0), FakeArtifact("model-r1", 1, ["best"]), FakeArtifact("model-r1", 2),
            FakeArtifact("model-r1", 3, ["latest"]), FakeArtifact("data-r1", 0, ["latest"], type="dataset")]
    other = [FakeArtifact("model-r9", 0), FakeArtifact("model-r9", 1, ["latest"])]
    return FakeApi([FakeRun("r1", "sweep_1", artifacts=arts), FakeRun("r9", "sweep_10", artifacts=other)])


def test_server_keeps_newest_and_aliased_versions_of_the_sweep_only() -> None:
    api = server()
    actions = prune_server(api, "me/proj", "sweep_1", keep=1)
    assert api.calls[0] == ("runs", ("me/proj", {"group": "sweep_1"}))
    assert api.deleted == ["model-r1:v0", "model-r1:v2"]  # sweep_10's run untouched
    kept = {a.artifact: a.reason for a in actions if a.action == "keep"}
    assert kept == {"model-r1:v1": "alias best", "model-r1:v3": "newest 1", "data-r1:v0": "newest 1"}


def test_server_dry_run_keep_and_types() -> None:
    api = server()
    actions = prune_server(api, "me/proj", "sweep_1", keep=1, dry_run=True)
    assert api.deleted == [] and sorted(a.artifact for a in actions if a.action == "delete") == ["model-r1:v0", "model-r1:v2"]
    api = server()
    prune_server(api, "me/proj", "sweep_1", keep=2)
    assert api.deleted == ["model-r1:v0"]
    api = server()
    prune_server(api, "me/proj", "sweep_1", keep=0, types=["dataset"])
    assert api.deleted == []  # the dataset's only version carries "latest"


def test_server_failure_of_one_version_does_not_stop_the_others() -> None:
    api = server()

    def refuse(delete_aliases: bool = False) -> None:
        raise RuntimeError("permission denied by server")

    api._runs[0].artifacts[0].delete = refuse  # type: ignore[method-assign]
    actions = prune_server(api, "me/proj", "sweep_1")
    assert api.deleted == ["model-r1:v2"]
    [err] = [a for a in actions if a.action == "error"]
    assert err.artifact == "model-r1:v0" and "permission denied" in err.reason


def test_local_staging_kept_until_uploaded_then_old_versions_go(wandb_project: WandbProject, tmp_path: Path) -> None:
    p = wandb_project
    runs = discover("sweep_1", p.sweep_dir, p.root, {})
    ckpt = next(r for r in runs if r.run_id == p.task_runs["ckpt"])
    payloads = [Path(v.files[0].local_path) for v in ckpt.versions()[f"model-{ckpt.run_id}"]]
    backup = tmp_path / "payloads"
    backup.mkdir()
    for i, f in enumerate(payloads):
        shutil.copy2(f, backup / str(i))
    synced_markers = [Path(str(d.log) + ".synced") for d in ckpt.dirs]
    try:
        # Not uploaded to W&B yet: every payload is still needed.
        actions = prune_local(runs, keep=1)
        assert not [a for a in actions if a.action == "delete"]
        assert all(f.exists() for f in payloads)
        # `wandb sync` marks the log as uploaded: now v0 can go; v1 (best) and v2 (newest) stay.
        for m in synced_markers:
            m.write_text("")
        runs = discover("sweep_1", p.sweep_dir, p.root, {})
        dry = prune_local(runs, keep=1, dry_run=True)
        assert [Path(a.path) for a in dry if a.action == "delete"] == [payloads[0]] and payloads[0].exists()
        actions = prune_local(runs, keep=1)
        assert [(a.artifact, a.reason) for a in actions if a.action == "delete"] == [(f"model-{ckpt.run_id}:v0", "older version of an uploaded run")]
        assert not payloads[0].exists() and payloads[1].exists() and payloads[2].exists()
        kept = {a.artifact: a.reason for a in actions if a.action == "keep" and a.run_id == ckpt.run_id}
        assert kept == {f"model-{ckpt.run_id}:v1": "alias best", f"model-{ckpt.run_id}:v2": "newest 1"}
    finally:
        for m in synced_markers:
            m.unlink(missing_ok=True)
        for i, f in enumerate(payloads):
            if not f.exists():
                shutil.copy2(backup / str(i), f)


def test_cli_prune_local_only_and_under_sync(wandb_project: WandbProject) -> None:
    p = wandb_project
    r = p.hsm("wandb", "prune", "sweep_1", "--local-only", "--dry-run", "--json")
    data = json.loads(r.stdout)
    assert data["server"] is None and data["local"] and all(a["action"] == "keep" for a in data["local"])
    r = p.hsm("sync", "prune", "sweep_1", "--local-only", "--dry-run")
    assert "This machine: would delete 0 staging file(s)" in r.stdout
    # The server part needs W&B credentials: without them, one line saying what to do.
    r = p.hsm("wandb", "prune", "sweep_1", "--server-only", "--dry-run", check=False,
              env={"WANDB_API_KEY": "", "NETRC": "/nonexistent", "WANDB_MODE": "offline", "WANDB_BASE_URL": "http://127.0.0.1:9"})
    assert r.returncode == 2 and r.stderr.startswith("Error: W&B server:") and "--local-only" in r.stderr
    assert "Traceback" not in r.stderr
