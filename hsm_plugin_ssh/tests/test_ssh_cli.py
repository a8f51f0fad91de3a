"""End to end through the real ``hsm`` command against a real sshd on 127.0.0.1."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
import yaml

from ssh_support import Project, free_port, push, remote_entry, sshd_instance

pytestmark = pytest.mark.sshd

SWEEP = {"grid": {"x": [1, 2, 3]}}


def statuses(project: Project, sweep_id: str) -> dict[str, dict]:
    tasks = project.outputs / sweep_id / "tasks"
    return {d.name: yaml.safe_load((d / "status.yaml").read_text()) for d in sorted(tasks.iterdir())}


def test_run_on_remote_copies_results_back(project: Project, sshd) -> None:
    project.set_remote("srv", remote_entry(sshd, project.remote_dir))
    push(project)
    project.write_sweep(SWEEP)
    proc = project.hsm("run", "--config", "sweeps/sweep.yaml", "--sources", "ssh:srv", "--sweep-id", "s1")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "Done: 3 completed" in proc.stdout
    for name, st in statuses(project, "s1").items():
        assert st["state"] == "completed" and st["source"] == "srv" and st["exit_code"] == 0, st
        local = project.outputs / "s1" / "tasks" / name
        remote = project.remote_dir / "sweeps" / "outputs" / "s1" / "tasks" / name
        # Ran in the remote copy of the project, and came back here.
        env = json.loads(next(ln[4:] for ln in (local / "stdout.log").read_text().splitlines() if ln.startswith("ENV ")))
        assert env["HSM_TASK_DIR"] == str(remote)
        assert (local / "metrics.json").is_file() and (remote / "metrics.json").is_file()
        assert "error output" in (local / "stderr.log").read_text()
    manifest = json.loads((project.outputs / "s1" / "scripts" / "ssh_remotes.json").read_text())
    assert manifest["srv"]["sweep_dir"] == str(project.remote_dir / "sweeps" / "outputs" / "s1")
    status = project.hsm("status", "s1")
    assert status.returncode == 0 and "completed" in status.stdout


def test_v1_sweep_mode_remote_and_failures_with_stderr(project: Project, sshd) -> None:
    project.set_remote("srv", remote_entry(sshd, project.remote_dir))
    push(project)
    project.write_sweep({"grid": {"x": [1, 2], "exit": [0, 5]}})
    proc = project.hsm("sweep", "--config", "sweeps/sweep.yaml", "--mode", "remote", "--remote", "srv", "--sweep-id", "v1")
    assert proc.returncode == 1, proc.stderr + proc.stdout  # some tasks failed
    states = statuses(project, "v1")
    assert sorted(s["state"] for s in states.values()) == ["completed", "completed", "failed", "failed"]
    failed = [n for n, s in states.items() if s["state"] == "failed"]
    assert all(states[n]["exit_code"] == 5 for n in failed)
    log = (project.outputs / "v1" / "logs" / "sources" / "srv.log").read_text()
    assert "exit code 5: " in log and "error output" in log  # the stderr tail, collected at once


def test_out_of_sync_project_is_refused_then_runs_with_no_verify_sync(project: Project, sshd) -> None:
    project.set_remote("srv", remote_entry(sshd, project.remote_dir))
    push(project)
    project.write_sweep(SWEEP)
    (project.root / "train.py").write_text((project.root / "train.py").read_text() + "\n# changed here\n")
    (project.root / "helper.py").write_text("X = 1\n")
    proc = project.hsm("run", "--config", "sweeps/sweep.yaml", "--sources", "ssh:srv")
    assert proc.returncode == 2, proc.stderr
    assert "OUT OF SYNC" in proc.stderr and "train.py" in proc.stderr and "helper.py" in proc.stderr
    assert "hsm remote sync srv" in proc.stderr and "Traceback" not in proc.stderr
    assert project.sweep_ids() == []  # refused before anything was written
    validate = project.hsm("config", "validate", "--check-sync")
    assert validate.returncode == 1 and "OUT OF SYNC" in validate.stdout
    proc = project.hsm("run", "--config", "sweeps/sweep.yaml", "--sources", "ssh:srv", "--no-verify-sync")
    assert proc.returncode == 0, proc.stderr
    sync = project.hsm("remote", "sync", "srv")
    assert sync.returncode == 0 and "  helper.py\n  train.py\n" in sync.stdout, sync.stdout + sync.stderr
    validate = project.hsm("config", "validate", "--check-sync")
    assert validate.returncode == 0 and "in sync" in validate.stdout, validate.stdout


def test_unknown_host_key_is_refused_until_trusted(project: Project, sshd, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"  # empty: the host is unknown (HOME is a fresh dir too)
    known.write_text("")
    entry = remote_entry(sshd, project.remote_dir, known_hosts=str(known))
    project.set_remote("srv", entry)
    project.write_sweep(SWEEP)
    proc = project.hsm("run", "--config", "sweeps/sweep.yaml", "--sources", "ssh:srv")
    assert proc.returncode == 2
    err = proc.stderr
    assert "host key of srv" in err and "is not known" in err and "SHA256:" in err, err
    assert f"hsm remote add srv --host 127.0.0.1 --port {sshd.port} --trust-host-key" in err
    assert "ssh-keyscan" in err and "Traceback" not in err
    assert project.sweep_ids() == []
    assert known.read_text() == ""  # nothing added silently
    add = project.hsm("remote", "add", "srv", "--host", "127.0.0.1", "--port", str(sshd.port), "--trust-host-key")
    assert add.returncode == 0, add.stderr
    assert f"Trusted [127.0.0.1]:{sshd.port}: ssh-ed25519 SHA256:" in add.stdout
    assert known.read_text().startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 ")
    again = project.hsm("remote", "add", "srv", "--host", "127.0.0.1", "--port", str(sshd.port), "--trust-host-key")
    assert "already trusted" in again.stdout and len(known.read_text().splitlines()) == 1
    push(project)
    test = project.hsm("remote", "test", "srv")
    assert test.returncode == 0 and "All checks passed" in test.stdout, test.stdout + test.stderr


def test_changed_host_key_is_refused(project: Project, sshd, tmp_path: Path) -> None:
    other = sshd_instance("hsm-plugin-ssh-other")
    # known_hosts claims sshd's address has the *other* instance's key: a man in the middle.
    line = other.known_hosts.read_text().split(" ", 1)[1]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {line}")
    project.set_remote("srv", remote_entry(sshd, project.remote_dir, known_hosts=str(known)))
    proc = project.hsm("remote", "test", "srv")
    assert proc.returncode == 1
    assert "CHANGED" in proc.stdout and "connection refused" in proc.stdout
    add = project.hsm("remote", "add", "srv", "--host", "127.0.0.1", "--port", str(sshd.port), "--trust-host-key")
    assert add.returncode == 2 and "DIFFERENT" in add.stderr


def test_unreachable_host_is_reported_clearly(project: Project, sshd) -> None:
    port = free_port()
    project.set_remote("down", remote_entry(sshd, project.remote_dir, port=port))
    project.write_sweep(SWEEP)
    proc = project.hsm("run", "--config", "sweeps/sweep.yaml", "--sources", "ssh:down")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("Error: cannot reach down")
    assert f"127.0.0.1:{port}" in proc.stderr and "connection refused" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert project.sweep_ids() == []
    test = project.hsm("test", "ssh:down")
    assert test.returncode == 1 and "connection refused" in test.stdout


def test_remote_add_list_test_health(project: Project, sshd) -> None:
    (project.root / "hsm_config.yaml").write_text("# my settings\n" + (project.root / "hsm_config.yaml").read_text())
    add = project.hsm("remote", "add", "gpu1", "--host", "127.0.0.1", "--port", str(sshd.port), "--user", sshd.user,
                      "--key", str(sshd.key_file), "--project-dir", str(project.remote_dir), "--python", sys.executable,
                      "--max-parallel-jobs", "3", "--known-hosts", str(sshd.known_hosts))
    assert add.returncode == 0, add.stderr
    text = (project.root / "hsm_config.yaml").read_text()
    assert text.startswith("# my settings\n")  # the rest of the file is kept
    cfg = yaml.safe_load(text)
    assert cfg["distributed"]["remotes"]["gpu1"]["max_parallel_jobs"] == 3
    assert cfg["paths"]["train_script"] == "train.py"
    upd = project.hsm("remote", "add", "gpu1", "--host", "127.0.0.1", "--max-parallel-jobs", "2")
    assert upd.returncode == 0 and "Updated remote gpu1" in upd.stdout
    cfg = yaml.safe_load((project.root / "hsm_config.yaml").read_text())
    assert cfg["distributed"]["remotes"]["gpu1"]["max_parallel_jobs"] == 2
    assert cfg["distributed"]["remotes"]["gpu1"]["port"] == sshd.port
    bad = project.hsm("remote", "add", "a;b", "--host", "x")
    assert bad.returncode == 2 and "invalid remote name" in bad.stderr

    listing = project.hsm("remote", "list", env={"COLUMNS": "250"})  # long interpreter paths
    assert listing.returncode == 0 and "gpu1" in listing.stdout and str(sshd.port) in listing.stdout

    missing = project.hsm("remote", "test", "gpu1")
    assert missing.returncode == 1
    assert "project found" in missing.stdout and "hsm remote sync gpu1" in missing.stdout

    sync = project.hsm("remote", "sync", "gpu1")
    assert sync.returncode == 0, sync.stderr
    test = project.hsm("remote", "test", "gpu1")
    assert test.returncode == 0, test.stdout + test.stderr
    for check in ("connect", "project found", "python", "hsm-core installed", "project in sync"):
        assert f"[ok] {check}" in test.stdout
    assert f"{sys.executable} (configured)" in test.stdout

    health = project.hsm("remote", "health", "gpu1")
    assert health.returncode == 0, health.stderr
    # The "remote" is this machine: other tests' tasks may be running on it, so no count is asserted.
    for word in ("load:", "disk:", "memory:", "gpus:", "hsm tasks running:"):
        assert word in health.stdout
    data = json.loads(project.hsm("remote", "health", "--json").stdout)
    assert data["gpu1"]["cpus"] >= 1 and data["gpu1"]["disk_free_gb"] > 0

    ssh_test = project.hsm("test", "ssh:gpu1")
    assert ssh_test.returncode == 0, ssh_test.stdout + ssh_test.stderr
    assert "[ok] test task completed: hsm test ok on" in ssh_test.stdout
    assert not list((project.root / ".hsm" / "ssh_test").iterdir())  # cleaned up after passing


def test_remote_python_from_remote_config_and_missing_hsm(project: Project, sshd) -> None:
    entry = remote_entry(sshd, project.remote_dir)
    del entry["python_interpreter"]
    project.set_remote("srv", entry)
    push(project)
    # The remote project's own hsm_config.yaml names its Python: discovery uses it.
    (project.remote_dir / "hsm_config.yaml").write_text("paths:\n  python_interpreter: /usr/bin/python3-nonexistent\n")
    test = project.hsm("remote", "test", "srv")
    assert test.returncode == 1
    assert "/usr/bin/python3-nonexistent (remote hsm_config.yaml) was not found on srv" in test.stdout
    (project.remote_dir / "hsm_config.yaml").write_text("paths:\n  python_interpreter: /usr/bin/python3\n")
    test = project.hsm("remote", "test", "srv")
    if "hsm-core installed: version" in test.stdout:
        pytest.skip("/usr/bin/python3 has hsm-core here")
    assert "hsm is not installed on srv" in test.stdout and "install hsm-core there" in test.stdout
    assert test.stdout.count("hsm is not installed on srv") == 1, test.stdout  # said once, not again as a note
    project.write_sweep(SWEEP)
    run = project.hsm("run", "--config", "sweeps/sweep.yaml", "--sources", "ssh:srv")
    assert run.returncode == 2 and "Error: hsm is not installed on srv" in run.stderr


def test_remote_with_an_hsm_core_older_than_the_plugin_api_is_named_so(project: Project, sshd, tmp_path: Path) -> None:
    """An hsm-core there that lacks what the plugin API provides here: "too old", with the version to
    install, not "not installed"."""
    from hsm_core.plugin import CORE_VERSION

    old = tmp_path / "old_core"
    (old / "hsm_core").mkdir(parents=True)
    (old / "hsm_core" / "__init__.py").write_text('__version__ = "0.0.1"\n')
    (old / "hsm_core" / "plugin.py").write_text("# an hsm-core from before the plugin API had CORE_VERSION\n")
    (old / "hsm_core" / "runner.py").write_text("")
    python = tmp_path / "old_python"
    python.write_text(f'#!/bin/sh\nPYTHONPATH={old} exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    project.set_remote("srv", remote_entry(sshd, project.remote_dir, python_interpreter=str(python)))
    push(project)
    test = project.hsm("remote", "test", "srv")
    assert test.returncode == 1
    assert "hsm-core on srv is too old for this hsm" in test.stdout, test.stdout
    assert f"install hsm-core {CORE_VERSION} there" in test.stdout and "not installed" not in test.stdout


def test_remote_sync_honours_gitignore_and_never_deletes_unless_asked(project: Project, sshd) -> None:
    project.set_remote("srv", remote_entry(sshd, project.remote_dir))
    root, remote = project.root, project.remote_dir
    (root / ".gitignore").write_text("data/\n*.log\n")
    (root / "data").mkdir()
    (root / "data" / "big.bin").write_text("local data")
    (root / "run.log").write_text("log")
    (root / "src").mkdir()
    (root / "src" / "model.py").write_text("M = 1\n")
    (root / "sweeps" / "outputs" / "old").mkdir(parents=True)
    (root / "sweeps" / "outputs" / "old" / "local.txt").write_text("local output")
    remote.mkdir(parents=True)
    (remote / "remote_only.txt").write_text("mine")
    (remote / "data").mkdir()
    (remote / "data" / "dataset.bin").write_text("remote data")
    (remote / "sweeps" / "outputs" / "r1").mkdir(parents=True)
    (remote / "sweeps" / "outputs" / "r1" / "result.txt").write_text("remote result")
    (remote / "hsm_config.yaml").write_text("paths:\n  python_interpreter: python3\n")

    dry = project.hsm("remote", "sync", "srv", "--dry-run")
    assert dry.returncode == 0 and "Would copy" in dry.stdout and not (remote / "train.py").exists()
    proc = project.hsm("remote", "sync", "srv")
    assert proc.returncode == 0, proc.stderr
    assert (remote / "train.py").is_file() and (remote / "src" / "model.py").read_text() == "M = 1\n"
    assert (remote / ".gitignore").is_file()
    assert not (remote / "data" / "big.bin").exists() and not (remote / "run.log").exists()
    assert not (remote / "sweeps" / "outputs" / "old").exists()
    assert (remote / "remote_only.txt").read_text() == "mine"
    assert (remote / "hsm_config.yaml").read_text() == "paths:\n  python_interpreter: python3\n"

    proc = project.hsm("remote", "sync", "srv", "--delete-extra")
    assert proc.returncode == 0, proc.stderr
    assert "Deleted 1 remote file(s)" in proc.stdout
    assert not (remote / "remote_only.txt").exists()
    # Outputs, ignored data and the remote's own config survive even --delete-extra.
    assert (remote / "data" / "dataset.bin").read_text() == "remote data"
    assert (remote / "sweeps" / "outputs" / "r1" / "result.txt").read_text() == "remote result"
    assert (remote / "hsm_config.yaml").is_file()


def test_no_wait_then_collect_results(project: Project, sshd) -> None:
    project.set_remote("srv", remote_entry(sshd, project.remote_dir))
    push(project)
    project.write_sweep({"grid": {"x": [1, 2], "sleep": [1]}})
    proc = project.hsm("run", "--config", "sweeps/sweep.yaml", "--sources", "ssh:srv", "--sweep-id", "nw", "--no-wait")
    assert proc.returncode == 0, proc.stderr
    remote_tasks = project.remote_dir / "sweeps" / "outputs" / "nw" / "tasks"
    deadline = time.time() + 60
    while time.time() < deadline:
        states = [yaml.safe_load((d / "status.yaml").read_text()).get("state") for d in remote_tasks.iterdir()]
        if states == ["completed", "completed"]:
            break
        time.sleep(0.3)
    assert all(s["state"] != "completed" for s in statuses(project, "nw").values())
    proc = project.hsm("collect-results", "nw")
    assert proc.returncode == 0, proc.stderr
    assert "srv: copied 2 task dir(s)" in proc.stdout and "2 completed" in proc.stdout
    assert all(s["state"] == "completed" for s in statuses(project, "nw").values())
    again = project.hsm("collect-results", "nw")
    assert "copied 0 task dir(s)" in again.stdout and "2 already here" in again.stdout


def test_gpu_slots_on_the_remote(project: Project, sshd) -> None:
    project.set_remote("srv", remote_entry(sshd, project.remote_dir, gpus=[0, 1], env={"MY_FLAG": "on $(x)"}))
    push(project)
    project.write_sweep({"grid": {"x": [1, 2, 3], "sleep": [0.5]}})
    proc = project.hsm("run", "--config", "sweeps/sweep.yaml", "--sources", "ssh:srv", "--sweep-id", "g1")
    assert proc.returncode == 0, proc.stderr
    assert "capacity 2" in (project.outputs / "g1" / "logs" / "sources" / "srv.log").read_text()
    for d in (project.outputs / "g1" / "tasks").iterdir():
        env = json.loads(next(ln[4:] for ln in (d / "stdout.log").read_text().splitlines() if ln.startswith("ENV ")))
        assert env["CUDA_VISIBLE_DEVICES"] in ("0", "1")


def test_hsm_cancel_stops_remote_tasks(project: Project, sshd) -> None:
    project.set_remote("srv", remote_entry(sshd, project.remote_dir, kill_grace=2))
    push(project)
    project.write_sweep({"grid": {"x": [1, 2], "sleep": [300]}})
    proc = project.hsm("run", "--config", "sweeps/sweep.yaml", "--sources", "ssh:srv", "--sweep-id", "c1", "--no-wait")
    assert proc.returncode == 0, proc.stderr
    cancel = project.hsm("cancel", "c1", "--wait", "30")
    assert cancel.returncode == 0 and "2 cancelled" in cancel.stdout, cancel.stdout + cancel.stderr
    remote_tasks = project.remote_dir / "sweeps" / "outputs" / "c1" / "tasks"
    for d in remote_tasks.iterdir():
        assert yaml.safe_load((d / "status.yaml").read_text())["state"] == "cancelled"
    assert all(s["state"] == "cancelled" for s in statuses(project, "c1").values())
    ps = __import__("subprocess").run(["ps", "-eo", "args="], capture_output=True, text=True).stdout
    assert str(remote_tasks) not in ps  # the runners and their commands are gone
