"""Hostile values never run as shell code on the remote; keys and passphrases never leak."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ssh_support import Project, push, remote_entry

pytestmark = pytest.mark.sshd

HOSTILE_VALUES = [
    "$(touch PWNED_PARAM1)",
    "; touch PWNED_PARAM2 #",
    "`touch PWNED_PARAM3`",
    "line1\nline2 && touch PWNED_PARAM4",
    "--foo",
    "' ; touch PWNED_PARAM5; '",
]


def pwned_files(*roots: Path) -> list[Path]:
    """Files a shell injection would have created under ``roots`` (recursively), or directly in
    the remote login directory and the current directory (where a remote or local shell starts)."""
    found: list[Path] = []
    for root in roots:
        if root.is_dir():
            found += [p for p in root.rglob("PWNED*")]
    for start in (Path.home(), Path.cwd()):
        found += list(start.glob("PWNED*"))
    return found


def test_hostile_params_paths_and_remote_name(project: Project, sshd, tmp_path: Path) -> None:
    name = "r$(touch PWNED_NAME);x`touch PWNED_NAME2`"
    # The remote project lives under a path full of shell syntax.
    project.remote_dir = tmp_path / "remote $(touch PWNED_DIR) ; rm -rf nothing" / "--proj"
    project.set_remote(name, remote_entry(sshd, project.remote_dir))
    push(project, name)
    assert (project.remote_dir / "train.py").is_file()
    project.write_sweep({"grid": {"name": HOSTILE_VALUES}})
    proc = project.hsm("run", "--config", "sweeps/sweep.yaml", "--sources", f"ssh:{name}", "--sweep-id", "evil")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tasks = project.outputs / "evil" / "tasks"
    seen = []
    for d in sorted(tasks.iterdir()):
        status = yaml.safe_load((d / "status.yaml").read_text())
        assert status["state"] == "completed" and status["source"] == name
        argv = json.loads(next(ln[5:] for ln in (d / "stdout.log").read_text().splitlines() if ln.startswith("ARGV ")))
        seen.append(argv[0].split("=", 1)[1])
    assert sorted(seen) == sorted(HOSTILE_VALUES)
    assert pwned_files(tmp_path) == []
    # Commands on the hostile path and name work too.
    for args in (("remote", "test", name), ("remote", "health", name), ("collect-results", "evil")):
        res = project.hsm(*args)
        assert res.returncode == 0, (args, res.stdout, res.stderr)
    assert pwned_files(tmp_path) == []


def test_keys_never_reach_logs_or_status_files(project: Project, sshd) -> None:
    project.set_remote("srv", remote_entry(sshd, project.remote_dir))
    push(project)
    project.write_sweep({"grid": {"x": [1, 2]}})
    proc = project.hsm("run", "--config", "sweeps/sweep.yaml", "--sources", "ssh:srv", "--sweep-id", "k1")
    assert proc.returncode == 0, proc.stderr
    secret_lines = [ln for ln in sshd.key_file.read_text().splitlines() if ln and "PRIVATE KEY" not in ln]
    texts = [proc.stdout, proc.stderr]
    for f in (project.outputs / "k1").rglob("*"):
        if f.is_file():
            texts.append(f.read_text(errors="replace"))
    for text in texts:
        assert "PRIVATE KEY" not in text
        assert not any(line in text for line in secret_lines)
    status = yaml.safe_load((project.outputs / "k1" / "tasks" / "task_001" / "status.yaml").read_text())

    def names(value: object) -> list[str]:
        if isinstance(value, dict):
            return [str(k) for k in value] + [n for v in value.values() for n in names(v)]
        return [n for v in value for n in names(v)] if isinstance(value, list) else []

    # No setting of the connection in the task's record (the key file, a passphrase), by name or
    # by value (its paths may well contain the word "key": this test's own name does).
    assert not [n for n in names(status) if any(w in n.lower() for w in ("key", "identity", "passphrase", "password"))]
    assert str(sshd.key_file) not in json.dumps(status)


def test_passphrase_protected_key_says_to_use_the_agent(project: Project, sshd, tmp_path: Path) -> None:
    key = tmp_path / "locked_key"
    passphrase = "correct horse battery staple"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-f", str(key)], check=True)
    project.set_remote("srv", remote_entry(sshd, project.remote_dir, key=str(key)))
    proc = project.hsm("remote", "test", "srv")
    assert proc.returncode == 1
    assert "protected by a passphrase" in proc.stdout and f"ssh-add {key}" in proc.stdout
    assert passphrase not in proc.stdout + proc.stderr


def test_known_hosts_trust_never_automatic_in_python_api(sshd, tmp_path: Path) -> None:
    """The Host provider used by scheduler plugins refuses unknown hosts just the same."""
    from hsm_core.testing import host_for

    from hsm_plugin_ssh.host import HostKeyError

    known = tmp_path / "kh"
    known.write_text("")
    cfg = {"distributed": {"remotes": {"login": remote_entry(sshd, known_hosts=str(known))}}}
    host = host_for("login", cfg)
    with pytest.raises(HostKeyError, match="is not known"):
        host.run(["true"])
    assert known.read_text() == ""
    cfg["distributed"]["remotes"]["login"]["known_hosts"] = str(sshd.known_hosts)
    host = host_for("login", cfg)
    res = host.run([sys.executable, "-c", "import sys; print(sys.argv[1:])", "$(id)", "a b"], cwd=str(tmp_path),
                   env={"HSM_X": "$(touch PWNED_ENV)"})
    assert res.returncode == 0 and res.stdout.strip() == "['$(id)', 'a b']"
    assert pwned_files(tmp_path) == []
    host.close()
