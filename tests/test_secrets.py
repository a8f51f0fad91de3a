"""Secrets never leave the places they belong: W&B API keys (``WANDB_API_KEY`` in the environment,
or in a remote's ``env:``), passwords and SSH keys never appear in logs, job scripts, status files,
exports, reports or sweep_metadata, nor on any process's command line; files hsm writes that hold
them are readable by their owner only.

Each test runs the real thing (local processes with the real wandb in offline mode when installed,
the real Slurm, a real sshd) and then searches every file hsm wrote, and everything it printed, for
the secret. (Passphrases: hsm never asks for or stores one; see
hsm_plugin_ssh/tests/test_ssh_security.py for the passphrase-protected key case.)
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

import pytest
import yaml

from hsm_project import Project
from hsm_core.testing.services import ServiceUnavailable, require_service, start_slurm, start_sshd

API_KEY = "0123456789abcdef0123456789abcdef01234567"  # the shape of a W&B key (40 hex characters)
PASSWORD = "hunter2-correct-horse"

#: Logs whether the key reached it (never the key itself); uses wandb offline when installed, so
#: wandb's own files in the task dir are searched too.
TASK = r'''
import hashlib, json, os, sys
with open(os.path.join(os.environ["HSM_TASK_DIR"], "results", "seen.json"), "w") as fh:
    got = hashlib.sha256(os.environ.get("WANDB_API_KEY", "").encode()).hexdigest()
    json.dump({"key_present": got == KEY_SHA256}, fh)
try:
    import wandb
except ImportError:
    wandb = None
if wandb is not None and os.environ.get("USE_WANDB") == "1":
    run = wandb.init(config={"x": 1})
    run.log({"loss": 0.5})
    run.finish()
import time
time.sleep(float(dict(a.split("=", 1) for a in sys.argv[1:]).get("sleep", 0)))
print("done")
'''


def task_script() -> str:
    import hashlib

    return f"KEY_SHA256 = {hashlib.sha256(API_KEY.encode()).hexdigest()!r}\n" + TASK


def files_containing(secret: str, *roots: Path, skip_names: tuple[str, ...] = ()) -> list[Path]:
    hits = []
    for root in roots:
        for p in root.rglob("*"):
            if p.is_file() and not p.is_symlink() and p.name not in skip_names:
                try:
                    if secret.encode() in p.read_bytes():
                        hits.append(p)
                except OSError:
                    pass
    return hits


def command_lines_containing(secret: str) -> list[str]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                cmd = Path(f"/proc/{name}/cmdline").read_bytes()
            except OSError:
                continue
            if secret.encode() in cmd:
                out.append(cmd.replace(b"\0", b" ").decode(errors="replace"))
    return out


def assert_owner_only(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode & 0o077 == 0, f"{path} is {oct(mode)}"


def seen_key(task_dir: Path) -> bool:
    return json.loads((task_dir / "results" / "seen.json").read_text())["key_present"]


def test_wandb_api_key_in_the_environment_is_never_written(project: Project) -> None:
    (project.root / "train.py").write_text(task_script())
    cfg = project.write_sweep({"grid": {"x": [1, 2], "fail": [0]}})
    env = {"WANDB_API_KEY": API_KEY, "WANDB_MODE": "offline", "USE_WANDB": "1", "WANDB_SILENT": "true"}
    printed = []
    proc = project.hsm("run", "--config", str(cfg), "--sweep-id", "sec", env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    printed.append(proc.stdout + proc.stderr)
    sweep = project.outputs / "sec"
    assert all(seen_key(d) for d in (sweep / "tasks").iterdir())  # the task did get it
    for args in (("status", "sec", "--json"), ("export", "sec", "--format", "json"), ("export", "sec"),
                 ("report", "sec"), ("monitor", "errors", "sec"), ("monitor", "watch", "--once", "sec")):
        res = project.hsm(*args, env=env)
        assert res.returncode == 0, (args, res.stderr)
        printed.append(res.stdout + res.stderr)
    assert not any(API_KEY in text for text in printed)
    assert files_containing(API_KEY, project.root) == []
    # No secret reached the task dirs, so their files follow the umask (colleagues on shared storage
    # read them); a command.json that does hold a token is the owner's only (tests/test_file_modes.py).
    umask = os.umask(0o022)
    os.umask(umask)
    for d in (sweep / "tasks").iterdir():
        for name in ("command.json", "status.yaml", "params.yaml"):
            assert stat.S_IMODE((d / name).stat().st_mode) == 0o666 & ~umask, d / name


def test_wandb_api_key_never_reaches_slurm_job_scripts(tmp_path: Path) -> None:
    pytest.importorskip("hsm_plugin_slurm", reason="hsm-plugin-slurm is not installed")
    try:
        cluster = start_slurm()
    except ServiceUnavailable as exc:
        require_service("slurm", str(exc))
    from hsm_core.testing.project import make_project

    project = make_project(tmp_path / "proj", name="sec", script=task_script(),
                           config_extra='hpc:\n  system: slurm\n  default_walltime: "00:10:00"\n',
                           env={"SLURM_CONF": str(cluster.conf), "WANDB_API_KEY": API_KEY})
    cfg = project.write_sweep({"grid": {"x": [1, 2]}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", "slurm", "--sweep-id", "sec")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sweep = project.root / "sweeps" / "outputs" / "sec"
    assert all(seen_key(d) for d in (sweep / "tasks").iterdir())  # sbatch passed the environment on
    assert API_KEY not in proc.stdout + proc.stderr
    assert list((sweep / "scripts" / "job_scripts").glob("*.sh"))
    assert files_containing(API_KEY, project.root) == []


def test_secrets_of_an_ssh_remote_stay_off_command_lines_and_files(project: Project, tmp_path: Path) -> None:
    """A remote's ``env:`` carries WANDB_API_KEY; the entry also has a password (hsm never uses
    passwords: key authentication only). Neither appears on any command line while tasks run,
    nor in any file hsm writes here or there, nor in what it prints."""
    pytest.importorskip("hsm_plugin_ssh", reason="hsm-plugin-ssh is not installed")
    try:
        host = start_sshd("hsm-secrets")
    except ServiceUnavailable as exc:
        require_service("sshd", str(exc))
    (project.root / "train.py").write_text(task_script())
    remote_dir = tmp_path / "remote" / "proj"
    data = yaml.safe_load((project.root / "hsm_config.yaml").read_text())
    data["distributed"] = {"remotes": {"srv": {
        "host": host.host, "port": host.port, "user": host.user, "key": str(host.key_file),
        "known_hosts": str(host.known_hosts), "python_interpreter": sys.executable, "project_dir": str(remote_dir),
        "max_parallel_jobs": 2, "poll_interval": 1, "env": {"WANDB_API_KEY": API_KEY}, "password": PASSWORD,
    }}}
    (project.root / "hsm_config.yaml").write_text(yaml.safe_dump(data))
    os.chmod(project.root / "hsm_config.yaml", 0o600)
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "SSH_AUTH_SOCK": ""}
    printed = []
    for args in (("remote", "sync", "srv"), ("remote", "test", "srv"), ("remote", "list")):
        res = project.hsm(*args, env=env)
        assert res.returncode == 0, (args, res.stdout, res.stderr)
        printed.append(res.stdout + res.stderr)
    cfg = project.write_sweep({"grid": {"x": [1, 2], "sleep": [3]}})
    proc = project.popen("run", "--config", str(cfg), "--sources", "ssh:srv", "--sweep-id", "sec", env=env)
    try:
        # While the tasks run: no process (ssh, the remote runner, the task) has a secret in argv.
        deadline = time.time() + 60
        running = False
        while time.time() < deadline and not running:
            for st in (remote_dir / "sweeps" / "outputs" / "sec" / "tasks").glob("*/status.yaml"):
                running = running or "state: running" in st.read_text()
            time.sleep(0.1)
        assert running, "no task started remotely"
        assert command_lines_containing(API_KEY) == []
        assert command_lines_containing(PASSWORD) == []
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out + err
    printed.append(out + err)
    # The password is not used, and hsm says so (without printing it).
    assert "distributed.remotes.srv.password is not used" in printed[0]
    assert all(seen_key(d) for d in (project.outputs / "sec" / "tasks").iterdir())  # the env reached the task
    for secret in (API_KEY, PASSWORD):
        assert not any(secret in text for text in printed), secret
        # hsm_config.yaml itself (the user's file, and its copy on the remote) holds them, nothing else.
        assert files_containing(secret, project.root, remote_dir, skip_names=("hsm_config.yaml",)) == []
    if (remote_dir / "hsm_config.yaml").exists():
        assert_owner_only(remote_dir / "hsm_config.yaml")  # a copy keeps the owner-only mode


def test_private_key_material_never_reaches_the_sweep(project: Project, tmp_path: Path) -> None:
    """The key *file* is named in the config; its content is never copied anywhere."""
    pytest.importorskip("hsm_plugin_ssh", reason="hsm-plugin-ssh is not installed")
    try:
        host = start_sshd("hsm-secrets")
    except ServiceUnavailable as exc:
        require_service("sshd", str(exc))
    key_body = [ln for ln in host.key_file.read_text().splitlines() if ln and "PRIVATE KEY" not in ln]
    remote_dir = tmp_path / "remote" / "proj"
    data = yaml.safe_load((project.root / "hsm_config.yaml").read_text())
    data["distributed"] = {"remotes": {"srv": {
        "host": host.host, "port": host.port, "user": host.user, "key": str(host.key_file),
        "known_hosts": str(host.known_hosts), "python_interpreter": sys.executable, "project_dir": str(remote_dir)}}}
    (project.root / "hsm_config.yaml").write_text(yaml.safe_dump(data))
    env = {"HOME": str(tmp_path), "SSH_AUTH_SOCK": ""}
    assert project.hsm("remote", "sync", "srv", env=env).returncode == 0
    cfg = project.write_sweep({"grid": {"x": [1]}})
    proc = project.hsm("run", "--config", str(cfg), "--sources", "ssh:srv", "--sweep-id", "k", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for line in key_body:
        assert files_containing(line, project.root, remote_dir) == []
        assert line not in proc.stdout + proc.stderr


def test_config_set_of_a_secret_makes_the_file_owner_only(project: Project) -> None:
    path = project.root / "hsm_config.yaml"
    os.chmod(path, 0o644)
    res = project.hsm("config", "set", "compute.health_check_interval", "60")
    assert res.returncode == 0, res.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # an ordinary key keeps the file's mode
    assert project.hsm("config", "set", "distributed.remotes.srv.host", "gpu1.example.org").returncode == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    res = project.hsm("config", "set", "distributed.remotes.srv.env.WANDB_API_KEY", API_KEY)
    assert res.returncode == 0, res.stderr
    assert API_KEY not in res.stdout + res.stderr and "WANDB_API_KEY: (hidden)" in res.stdout
    assert_owner_only(path)
    assert yaml.safe_load(path.read_text())["distributed"]["remotes"]["srv"]["env"]["WANDB_API_KEY"] == API_KEY


def test_config_show_hides_secret_values(project: Project) -> None:
    assert project.hsm("config", "set", "distributed.remotes.srv.host", "gpu1.example.org").returncode == 0
    assert project.hsm("config", "set", "distributed.remotes.srv.env.WANDB_API_KEY", API_KEY).returncode == 0
    for args in (("config", "show"), ("config", "show", "--json")):
        res = project.hsm(*args)
        assert res.returncode == 0, res.stderr
        assert API_KEY not in res.stdout + res.stderr
        assert "WANDB_API_KEY" in res.stdout and "(hidden)" in res.stdout
        assert "gpu1.example.org" in res.stdout  # only the secret is hidden
