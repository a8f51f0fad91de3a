"""``hsm sync`` (core): configuration, errors, local and SSH targets, safety, pull, --continuous.

Real rsync over a real sshd on 127.0.0.1 (the "remote" is another directory of this machine
reached through ssh with the test key). W&B runs are the wandb plugin's tests; here a sweep is
synced with ``--sweep-only`` (or with no plugin providing runs).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from hsm_core.testing import SCRIPT
from hsm_core.testing.services import ServiceUnavailable, LocalSshd, require_service, start_sshd
from hsm_core.testing.sync import auth_count, local_target, ssh_target, tree, write_sync_config

SSHD_NAME = "hsm-sync-tests"


class Proj:
    """A project with a finished 3-task sweep ``s1``; runs the real ``hsm``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def hsm(self, *args: str, check: bool = False, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        # Core behaviour under test: no installed plugin (they may be half-built by others here).
        full = dict(os.environ, HSM_DISABLE_PLUGINS="all")
        full.update(env or {})
        full["HSM_COUNT_DIR"] = str(self.root)
        proc = subprocess.run([sys.executable, "-m", "hsm_core", *args], cwd=self.root, env=full,
                              capture_output=True, text=True, timeout=timeout)
        # Other plugins installed here may warn at start-up; what is under test is the rest.
        proc.stderr = "".join(ln for ln in proc.stderr.splitlines(keepends=True) if not ln.startswith("hsm: warning:"))
        if check and proc.returncode != 0:
            raise AssertionError(f"hsm {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def sync_json(self, *args: str, code: int = 0, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
        proc = self.hsm("sync", "to", *args, "--json", env=env)
        assert proc.returncode == code, proc.stdout + proc.stderr
        return json.loads(proc.stdout)

    @property
    def sweep_dir(self) -> Path:
        return self.root / "sweeps" / "outputs" / "s1"


def make_project(root: Path, sweep_id: str = "s1", grid: str = "x: [1, 2, 3]") -> Proj:
    root.mkdir(parents=True)
    (root / "train.py").write_text(SCRIPT)
    (root / "hsm_config.yaml").write_text(textwrap.dedent(f"""\
        project:
          name: syncproj
        paths:
          python_interpreter: {sys.executable}
          train_script: train.py
        """))
    (root / "sweeps").mkdir()
    (root / "sweeps" / "sweep.yaml").write_text(f"grid:\n  {grid}\n")
    proj = Proj(root)
    proj.hsm("run", "-c", "sweeps/sweep.yaml", "--sweep-id", sweep_id, "--sources", "local:3", check=True)
    # Results a user would have: a file in results/ (depth 3) and a task wandb dir (never part of
    # the sweep metadata: W&B runs are synced as runs).
    task1 = proj.root / "sweeps" / "outputs" / sweep_id / "tasks" / "task_001"
    (task1 / "results" / "model.txt").write_text("weights\n")
    (task1 / "wandb" / "offline-run-20250101_000000-abc").mkdir(parents=True)
    (task1 / "wandb" / "offline-run-20250101_000000-abc" / "run-abc.wandb").write_bytes(b":W&B\xe1\xbe\x00")
    return proj


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> Proj:
    return make_project(tmp_path_factory.mktemp("sync") / "proj")


@pytest.fixture(scope="module")
def ssh_host() -> Iterator[LocalSshd]:
    try:
        host = start_sshd(SSHD_NAME)
    except ServiceUnavailable as exc:
        require_service("sshd", str(exc))
    yield host


def sweep_files(p: Proj) -> dict[str, bytes]:
    """The sweep dir's files a full sync must deliver (no task wandb dirs, no temp files)."""
    return {k: v for k, v in tree(p.sweep_dir).items() if "/wandb/" not in k and not k.endswith(".tmp")}


# --------------------------------------------------------------------------------------------
# init, list, configuration errors
# --------------------------------------------------------------------------------------------


def test_init_writes_a_valid_template_and_never_overwrites(tmp_path: Path) -> None:
    p = make_project(tmp_path / "p", grid="x: [1]")
    first = p.hsm("sync", "init", check=True)
    path = p.root / ".hsm" / "sync_config.yaml"
    assert "Created .hsm/sync_config.yaml" in first.stdout
    text = path.read_text()
    assert "default_target: desktop" in text and "# " in text  # commented template
    path.write_text(text + "# my edit\n")
    again = p.hsm("sync", "init", check=True)
    assert "already exists" in again.stdout and path.read_text().endswith("# my edit\n")
    listed = p.hsm("sync", "list", "--json", check=True)
    data = json.loads(listed.stdout)
    assert data["default_target"] == "desktop"
    assert data["targets"]["desktop"]["options"]["parallel_transfers"] == 4
    table = p.hsm("sync", "list", check=True).stdout
    assert "desktop (default)" in table and "me@desktop.example.com" in table


def test_no_configuration_says_to_run_init(proj: Proj, tmp_path: Path) -> None:
    p = Proj(tmp_path)
    (tmp_path / "hsm_config.yaml").write_text("project:\n  name: x\n")
    for args in (("sync", "to", "s1"), ("sync", "list")):
        r = p.hsm(*args)
        assert r.returncode == 2
        assert "No sync configuration found" in r.stderr and "hsm sync init" in r.stderr
        assert "Traceback" not in r.stderr


def test_unknown_target_names_the_configured_ones(proj: Proj, tmp_path: Path) -> None:
    write_sync_config(proj.root, {"desktop": local_target(tmp_path / "d"), "laptop": local_target(tmp_path / "l")})
    r = proj.hsm("sync", "to", "s1", "--target", "dekstop")
    assert r.returncode == 2
    assert "Unknown sync target 'dekstop'" in r.stderr and "desktop, laptop" in r.stderr and "hsm sync list" in r.stderr
    r = proj.hsm("sync", "to", "s1")  # no default_target, no --target
    assert r.returncode == 2 and "--target" in r.stderr


@pytest.mark.parametrize(
    "text, expected",
    [
        ("sync_targets:\n  d:\n    paths: {sweeps: /x}\n    options:\n      parallel_transfer: 2\n",
         ":5: sync_targets.d.options.parallel_transfer: unknown key 'parallel_transfer', did you mean 'parallel_transfers'?"),
        ("sync_targets:\n  d:\n    host: h\n    port: ssh\n",
         ":4: sync_targets.d.port: expected an integer"),
        ("sync_targets:\n  d:\n    paths: {sweeps: /x}\n    options: {max_depth: -1}\n",
         ":4: sync_targets.d.options.max_depth: must be at least 0"),
        ("default_target: nope\nsync_targets:\n  d:\n    paths: {sweeps: /x}\n",
         ":1: default_target: default_target 'nope' is not one of the sync_targets (d)"),
        ("sync_targets:\n  d:\n    host: h\n    rsync_options: [--delete-after]\n",
         ":4: sync_targets.d.rsync_options: rsync option '--delete-after' is not allowed"),
        ("sync_targets:\n  d:\n    port: 22\n    paths: {sweeps: /x}\n",
         ":3: sync_targets.d.port: 'port' needs a 'host'"),
        ("sync_targets:\n  d:\n   - host\n", ":2: sync_targets.d: expected a mapping, got a list"),
    ],
)
def test_config_errors_name_file_line_and_key(proj: Proj, text: str, expected: str) -> None:
    path = proj.root / ".hsm" / "sync_config.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    r = proj.hsm("sync", "to", "s1", "--target", "d")
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.startswith("Error: .hsm/sync_config.yaml" + expected), r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_missing_paths_and_flag_conflicts(proj: Proj, tmp_path: Path) -> None:
    write_sync_config(proj.root, {"w": {"paths": {"wandb": str(tmp_path / "w")}}}, default="w")
    r = proj.hsm("sync", "to", "s1")
    assert r.returncode == 2 and "target 'w' has no paths.sweeps" in r.stderr and "--wandb-only" in r.stderr
    r = proj.hsm("sync", "to", "s1", "--sweep-only", "--wandb-only")
    assert r.returncode == 2 and "exclude each other" in r.stderr
    r = proj.hsm("sync", "to", "nosuchsweep")
    assert r.returncode == 2 and "unknown sweep id 'nosuchsweep'" in r.stderr


# --------------------------------------------------------------------------------------------
# Local targets
# --------------------------------------------------------------------------------------------


def test_local_target_full_then_nothing_then_depth(proj: Proj, tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    write_sync_config(proj.root, {"backup": local_target(dest), "shallow": local_target(tmp_path / "sh", max_depth=1)},
                      default="backup")
    [report] = proj.sync_json("s1", "--sweep-only")
    got = tree(dest / "sweeps" / "outputs" / "s1")
    assert got == sweep_files(proj)
    assert "tasks/task_001/results/model.txt" in got
    assert not any("/wandb/" in k for k in got)  # W&B runs are not sweep metadata
    assert report["files"] == len(got) and report["kinds"]["sweep"]["sent"] == 1
    # The same sync again transfers nothing.
    [again] = proj.sync_json("s1", "--sweep-only")
    assert again["files"] == 0 and again["changed"] == []
    # max_depth 1: top files and one level below (logs/), no task files.
    [shallow] = proj.sync_json("s1", "--sweep-only", "--target", "shallow")
    got = tree(tmp_path / "sh" / "sweeps" / "outputs" / "s1")
    assert "sweep_metadata.yaml" in got and "logs/sweep.log" in got
    assert not any(k.startswith("tasks/") for k in got)
    assert not (tmp_path / "sh" / "sweeps" / "outputs" / "s1" / "tasks").exists()  # no empty dirs left


def test_dry_run_sends_nothing_and_says_what_it_would(proj: Proj, tmp_path: Path) -> None:
    dest = tmp_path / "dry"
    write_sync_config(proj.root, {"b": local_target(dest)}, default="b")
    [report] = proj.sync_json("s1", "--sweep-only", "--dry-run")
    assert report["dry_run"] and report["files"] == len(sweep_files(proj))
    assert not (dest / "sweeps" / "outputs" / "s1").exists()
    text = proj.hsm("sync", "to", "s1", "--sweep-only", "--dry-run").stdout
    assert "Dry run to b" in text and "would send" in text


def test_nothing_is_deleted_or_replaced_on_the_target(proj: Proj, tmp_path: Path) -> None:
    dest = tmp_path / "keep"
    target_sweep = dest / "sweeps" / "outputs" / "s1"
    (target_sweep / "tasks" / "task_001").mkdir(parents=True)
    (target_sweep / "analysis.csv").write_text("mine\n")  # the user's own file on the target
    (dest / "sweeps" / "outputs").chmod(0o775)
    write_sync_config(proj.root, {"b": local_target(dest)}, default="b")
    proj.sync_json("s1", "--sweep-only")
    assert (target_sweep / "analysis.csv").read_text() == "mine\n"
    # Existing directories keep their mode (no attributes from hsm's temporary tree).
    assert (dest / "sweeps" / "outputs").stat().st_mode & 0o777 == 0o775


def test_no_plugin_for_wandb_runs_is_a_note(proj: Proj, tmp_path: Path) -> None:
    write_sync_config(proj.root, {"b": local_target(tmp_path / "n")}, default="b")
    r = proj.hsm("sync", "to", "s1", env={"HSM_DISABLE_PLUGINS": "all"})
    assert r.returncode == 0, r.stderr
    assert "sweep metadata: sent" in r.stdout
    # The hint names what installs the plugin (its directory in this checkout), not an unpublished name.
    assert "W&B runs not synced: no plugin provides them (install hsm-plugin-wandb-sync with: pip install " in r.stdout
    assert "/hsm_plugin_wandb_sync)" in r.stdout and "pip install hsm-plugin" not in r.stdout


# --------------------------------------------------------------------------------------------
# SSH targets
# --------------------------------------------------------------------------------------------


@pytest.mark.sshd
def test_ssh_target_one_connection_incremental(proj: Proj, ssh_host: LocalSshd, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    write_sync_config(proj.root, {"desktop": ssh_target(ssh_host, remote, parallel_transfers=4)}, default="desktop")
    before = auth_count(ssh_host)
    # A temporary directory of these syncs' own (short: it holds a socket), so that what other
    # tests running meanwhile make in /tmp is not taken for what these leave.
    own_tmp = Path(tempfile.mkdtemp(prefix="hs", dir="/tmp"))
    try:
        [report] = proj.sync_json("s1", "--sweep-only", env={"TMPDIR": str(own_tmp)})
        assert tree(remote / "sweeps" / "outputs" / "s1") == sweep_files(proj)
        assert report["where"] == f"{ssh_host.user}@127.0.0.1:{ssh_host.port}"
        # One SSH login for the whole sync (the ControlMaster), whatever the number of rsyncs.
        assert auth_count(ssh_host) - before == 1
        [again] = proj.sync_json("s1", "--sweep-only", env={"TMPDIR": str(own_tmp)})
        assert again["files"] == 0 and again["changed"] == []
        assert auth_count(ssh_host) - before == 2
        # No control socket (nor its private directory) is left behind.
        assert list(own_tmp.iterdir()) == []
    finally:
        shutil.rmtree(own_tmp, ignore_errors=True)


@pytest.mark.sshd
def test_multi_target_ssh_and_local_in_one_command(proj: Proj, ssh_host: LocalSshd, tmp_path: Path) -> None:
    write_sync_config(proj.root, {"desktop": ssh_target(ssh_host, tmp_path / "r"), "backup": local_target(tmp_path / "l")},
                      default="desktop")
    reports = proj.sync_json("s1", "--sweep-only", "--target", "desktop", "--target", "backup")
    assert [r["target"] for r in reports] == ["desktop", "backup"]
    for root in (tmp_path / "r", tmp_path / "l"):
        assert tree(root / "sweeps" / "outputs" / "s1") == sweep_files(proj)


@pytest.mark.sshd
def test_permission_denied_says_how_to_check(proj: Proj, ssh_host: LocalSshd, tmp_path: Path) -> None:
    bad_key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(bad_key)], check=True)
    entry = ssh_target(ssh_host, tmp_path / "r")
    entry["identity_file"] = str(bad_key)
    write_sync_config(proj.root, {"desktop": entry}, default="desktop")
    r = proj.hsm("sync", "to", "s1", "--sweep-only")
    assert r.returncode == 2, r.stdout + r.stderr
    line = r.stderr.strip()
    assert line.startswith("Error: permission denied connecting to target 'desktop'")
    assert f"ssh -p {ssh_host.port} -i {bad_key} {ssh_host.user}@127.0.0.1" in line and "ls -la" in line
    assert len(line.splitlines()) == 1


@pytest.mark.sshd
def test_unreachable_host_and_unknown_host_key(proj: Proj, ssh_host: LocalSshd, tmp_path: Path) -> None:
    entry = ssh_target(ssh_host, tmp_path / "r")
    entry["port"] = 1  # nothing listens there
    write_sync_config(proj.root, {"desktop": entry}, default="desktop")
    r = proj.hsm("sync", "to", "s1", "--sweep-only")
    assert r.returncode == 2 and "cannot reach target 'desktop'" in r.stderr, r.stderr
    entry = ssh_target(ssh_host, tmp_path / "r")
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    entry["known_hosts"] = str(empty)
    write_sync_config(proj.root, {"desktop": entry}, default="desktop")
    r = proj.hsm("sync", "to", "s1", "--sweep-only")
    assert r.returncode == 2 and "host key of target 'desktop'" in r.stderr and "not trusted" in r.stderr, r.stderr


def _rsync_children(pid: int) -> list[int]:
    """rsync processes started by process ``pid`` (ours: the hsm under test)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and cmd.endswith(b"rsync"):
            out.append(int(d.name))
    return out


@pytest.mark.sshd
@pytest.mark.parametrize("kind", ["ssh", "local"])
def test_interrupted_sync_keeps_the_good_file_and_a_rerun_completes(kind: str, tmp_path: Path, ssh_host: LocalSshd) -> None:
    p = make_project(tmp_path / "p", grid="x: [1]")
    big = p.sweep_dir / "tasks" / "task_001" / "results" / "big.bin"
    old = os.urandom(3_000_000)
    big.write_bytes(old)
    remote = tmp_path / "remote"
    entry = ssh_target(ssh_host, remote) if kind == "ssh" else local_target(remote)
    write_sync_config(p.root, {"t": entry}, default="t")
    p.sync_json("s1", "--sweep-only")
    target_big = remote / "sweeps" / "outputs" / "s1" / "tasks" / "task_001" / "results" / "big.bin"
    assert target_big.read_bytes() == old
    new = os.urandom(3_000_000)
    big.write_bytes(new)
    # 500 kB/s for this one: slow enough to be stopped mid-file.
    write_sync_config(p.root, {"t": {**entry, "rsync_options": ["--bwlimit=500"]}}, default="t")
    env = dict(os.environ, HSM_DISABLE_PLUGINS="all")
    proc = subprocess.Popen([sys.executable, "-m", "hsm_core", "sync", "to", "s1", "--sweep-only"], cwd=p.root,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    partial_seen = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        temps = list(target_big.parent.glob(".big.bin.*")) + list(target_big.parent.glob(".rsync-partial/*"))
        if any(t.stat().st_size > 100_000 for t in temps if t.exists()):
            partial_seen = True
            break
        time.sleep(0.05)
    if not partial_seen:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the transfer never got under way:\n{out}\n{err}")
    for pid in _rsync_children(proc.pid):
        os.kill(pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, out + err
    assert "was stopped (signal 9); run the sync again" in out
    time.sleep(0.5)  # the receiving side notices the sender is gone
    # The good file is still there, whole; the new data waits aside, never in its place.
    assert target_big.read_bytes() == old
    write_sync_config(p.root, {"t": entry}, default="t")
    p.sync_json("s1", "--sweep-only")
    assert target_big.read_bytes() == new
    assert not list(target_big.parent.glob(".big.bin.*"))
    assert not (target_big.parent / ".rsync-partial").exists()


# --------------------------------------------------------------------------------------------
# Pull (seed 003)
# --------------------------------------------------------------------------------------------


@pytest.mark.sshd
def test_pull_experiment_artifacts_from_a_remote_port(proj: Proj, ssh_host: LocalSshd, tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "artifacts" / "exp1"
    for rel, data in {
        "checkpoints/checkpoint_epoch_1.pt": b"1" * 1000,
        "checkpoints/checkpoint_epoch_2.pt": b"2" * 1000,
        "checkpoints/checkpoint_epoch_10.pt": b"10" * 500,
        "tensorboard/events.out.tfevents.1": b"tb" * 100,
        "logs/console.log": b"log\n",
    }.items():
        (shared / rel).parent.mkdir(parents=True, exist_ok=True)
        (shared / rel).write_bytes(data)
    for i, name in enumerate(["checkpoint_epoch_1.pt", "checkpoint_epoch_2.pt", "checkpoint_epoch_10.pt"]):
        os.utime(shared / "checkpoints" / name, (1_700_000_000 + i, 1_700_000_000 + i))
    entry = {"host": "127.0.0.1", "user": ssh_host.user, "port": ssh_host.port, "identity_file": str(ssh_host.key_file),
             "known_hosts": str(ssh_host.known_hosts)}
    write_sync_config(proj.root, {"isc": entry})
    out = tmp_path / "local"
    args = ("sync", "pull", "--from", f"isc:{shared}", "--only", "tensorboard,checkpoints", "--latest-checkpoint",
            "--dest", str(out), "--json")
    r = proj.hsm(*args, check=True)
    got = tree(out)
    assert sorted(got) == ["exp1/checkpoints/checkpoint_epoch_10.pt", "exp1/tensorboard/events.out.tfevents.1"]
    assert json.loads(r.stdout)["files"] == 2
    again = json.loads(proj.hsm(*args, check=True).stdout)
    assert again["files"] == 0  # incremental
    # A remote of hsm_config.yaml (distributed.remotes) works as well; everything is copied then.
    cfg = (proj.root / "hsm_config.yaml").read_text()
    try:
        (proj.root / "hsm_config.yaml").write_text(cfg + textwrap.dedent(f"""\
            distributed:
              remotes:
                ws:
                  host: 127.0.0.1
                  user: {ssh_host.user}
                  port: {ssh_host.port}
                  key: {ssh_host.key_file}
                  known_hosts: {ssh_host.known_hosts}
            """))
        r = proj.hsm("sync", "pull", "--from", f"ws:{shared}", "--dest", str(tmp_path / "all"), check=True)
    finally:
        (proj.root / "hsm_config.yaml").write_text(cfg)
    assert tree(tmp_path / "all" / "exp1") == tree(shared)
    assert "Copied 5 file(s)" in r.stdout
    r = proj.hsm("sync", "pull", "--from", f"isc:{shared}", "--only", "nope", "--dest", str(out))
    assert r.returncode == 2 and "exp1 has no nope/" in r.stderr and "checkpoints" in r.stderr
    r = proj.hsm("sync", "pull", "--from", f"isc:{tmp_path}/missing", "--dest", str(out))
    assert r.returncode == 2 and "does not exist" in r.stderr


# --------------------------------------------------------------------------------------------
# --continuous
# --------------------------------------------------------------------------------------------


def test_continuous_follows_a_running_sweep_until_it_is_done(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "train.py").write_text(SCRIPT)
    (root / "hsm_config.yaml").write_text(f"paths:\n  python_interpreter: {sys.executable}\n  train_script: train.py\n")
    (root / "sweeps").mkdir()
    (root / "sweeps" / "sweep.yaml").write_text("grid:\n  x: [1, 2, 3, 4]\n  sleep: [0.6]\n")
    p = Proj(root)
    dest = tmp_path / "dest"
    write_sync_config(root, {"b": local_target(dest)}, default="b")
    env = dict(os.environ, HSM_COUNT_DIR=str(root), HSM_DISABLE_PLUGINS="all")
    run = subprocess.Popen([sys.executable, "-m", "hsm_core", "run", "-c", "sweeps/sweep.yaml", "--sweep-id", "live",
                            "--sources", "local:1"], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not (root / "sweeps" / "outputs" / "live" / "sweep_metadata.yaml").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    r = p.hsm("sync", "to", "live", "--sweep-only", "--continuous", "--interval", "0.3", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    run.wait(timeout=60)
    assert "Sweep live is done" in r.stdout
    rounds = [ln for ln in r.stdout.splitlines() if ln.startswith("[round ")]
    assert len(rounds) >= 2  # it synced while tasks were still finishing
    status = {k: yaml.safe_load(v) for k, v in tree(dest / "sweeps" / "outputs" / "live").items() if k.endswith("status.yaml")}
    assert len(status) == 4 and all(s["state"] == "completed" for s in status.values())


# --------------------------------------------------------------------------------------------
# The hsm_sync_items hook (what the wandb plugin uses), in-process
# --------------------------------------------------------------------------------------------


def test_hsm_sync_items_hook_renames_fingerprints_and_skips(proj: Proj, tmp_path: Path) -> None:
    from hsm_core.plugin import SyncItem, hookimpl, locate_sweep
    from hsm_core.registry import build_registry
    from hsm_core.sync.config import load_sync_config
    from hsm_core.sync.transfers import SyncFlags, run_sync

    payload = tmp_path / "staging" / "tmpq1w2e3"
    payload.parent.mkdir()
    payload.write_bytes(b"checkpoint")
    run_dir = tmp_path / "runs" / "offline-run-20250101_000000-r1"
    (run_dir / "files").mkdir(parents=True)
    (run_dir / "files" / "out.txt").write_text("out\n")

    class Runs:
        def __init__(self) -> None:
            self.options: list[dict[str, Any]] = []

        @hookimpl
        def hsm_sync_items(self, sweep_id, sweep_dir, project_root, project_config, options):
            self.options.append(dict(options))
            return [
                SyncItem("wandb_run", "run r1", "wandb", [(run_dir, run_dir.name), (payload, "artifacts/r1/m/v0/ckpt.pt")],
                         size=20, fingerprint="r1.abc", details={"older artifact versions not sent (latest_only)": 2}),
                SyncItem("wandb_run", "run r2", "wandb", [], skip_reason="no files on this machine"),
            ]

    plugin = Runs()
    registry = build_registry(entry_points=False, extra=[("runs", plugin)])
    dest = tmp_path / "dest"
    write_sync_config(proj.root, {"b": local_target(dest, latest_only=False)}, default="b")
    cfg = load_sync_config(proj.root)
    loc = locate_sweep("s1", proj.root)
    [report] = run_sync(loc, cfg.select([]), SyncFlags(wandb_only=True), registry, show_progress=False)
    assert plugin.options[0]["latest_only"] is False and plugin.options[0]["target"] == "b"
    assert tree(dest / "wandb") == {
        "offline-run-20250101_000000-r1/files/out.txt": b"out\n",
        "artifacts/r1/m/v0/ckpt.pt": b"checkpoint",  # renamed on the way
        ".hsm-sync/r1.abc": b"",  # what check_remote_first lists next time
    }
    assert [i.label for i in report.sent] == ["run r1"] and report.skipped[0][1] == "no files on this machine"
    assert report.details() == {"older artifact versions not sent (latest_only)": 2}
    [again] = run_sync(loc, cfg.select([]), SyncFlags(wandb_only=True), registry, show_progress=False)
    assert again.sent == [] and [(i.label, r) for i, r in again.skipped] == [
        ("run r2", "no files on this machine"), ("run r1", "already on target")]


# --------------------------------------------------------------------------------------------
# The rsync transport passes the transport contract, locally and over SSH
# --------------------------------------------------------------------------------------------

from hsm_core.testing import SyncTransportContract  # noqa: E402


class TestRsyncLocal(SyncTransportContract):
    def make_transport(self, tmp_path: Path) -> Any:
        from hsm_core.sync.rsync import RsyncTransport

        return RsyncTransport("local", {})


@pytest.mark.sshd
class TestRsyncOverSsh(SyncTransportContract):
    @pytest.fixture(autouse=True)
    def _host(self, ssh_host: LocalSshd) -> None:
        self.host = ssh_host

    def make_transport(self, tmp_path: Path) -> Any:
        from hsm_core.sync.rsync import RsyncTransport

        return RsyncTransport("ssh", ssh_target(self.host, tmp_path))


def test_sync_group_alone_and_the_v2_project_push_spelling(proj: Proj) -> None:
    r = proj.hsm("sync")
    assert r.returncode == 0 and "hsm sync to SWEEP_ID" in r.stdout
    # `hsm sync --force --target ssh:NAME` (v2 guide) pushes the project: the ssh plugin's job.
    r = proj.hsm("sync", "--force", "--target", "ssh:server1")
    assert r.returncode == 2 and "needs the ssh plugin" in r.stderr and "hsm remote sync" in r.stderr
    r = proj.hsm("sync", "--target", "desktop")
    assert r.returncode == 2 and "give a sweep id" in r.stderr
