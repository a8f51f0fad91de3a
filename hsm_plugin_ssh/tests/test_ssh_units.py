"""Pure logic: quoting, settings from ~/.ssh/config, discovery candidates, file lists, sync verdicts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hsm_core.plugin import ConfigError

from hsm_plugin_ssh.commands import parse_health
from hsm_plugin_ssh.discovery import candidate_dirs, choose_python
from hsm_plugin_ssh.projectfiles import parse_porcelain, project_files, rsync_filters
from hsm_plugin_ssh.quoting import build_command
from hsm_plugin_ssh.settings import Hop, check_remote_name, parse_jump, resolve
from hsm_plugin_ssh.sync_check import compare

HOSTILE = ["$(touch X)", "; rm -rf /nonexistent", "`id`", "a\nb", "--foo", "it's", '"dq"', "*", "~", "$HOME", ""]


def test_build_command_round_trips_hostile_words_through_a_real_shell(tmp_path: Path) -> None:
    cmd = build_command(["printf", "%s\\0", *HOSTILE], cwd=str(tmp_path / "a dir $(x)"), env={"V": "$(touch Y)"})
    (tmp_path / "a dir $(x)").mkdir()
    out = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, check=True).stdout
    assert out.split("\0")[:-1] == HOSTILE
    env_out = subprocess.run(["sh", "-c", build_command(["sh", "-c", 'printf %s "$V"'], env={"V": "$(touch Y)"})],
                             capture_output=True, text=True, cwd=tmp_path).stdout
    assert env_out == "$(touch Y)"
    assert not list(tmp_path.glob("X")) and not list(tmp_path.glob("Y"))


@pytest.mark.parametrize("bad", [{"A B": "x"}, {"1A": "x"}, {"A;B": "x"}])
def test_build_command_rejects_bad_env_names(bad) -> None:
    with pytest.raises(ValueError):
        build_command(["true"], env=bad)


def test_build_command_rejects_nul_and_empty() -> None:
    with pytest.raises(ValueError):
        build_command(["echo", "a\0b"])
    with pytest.raises(ValueError):
        build_command([])


def test_settings_follow_ssh_config_and_config_wins(tmp_path: Path) -> None:
    key = tmp_path / "id_test"
    key.write_text("not read here")
    cfg = tmp_path / "config"
    cfg.write_text(
        f"Host blossom\n  HostName 10.1.2.3\n  User bob\n  Port 2222\n  IdentityFile {key}\n"
        f"  ProxyJump alice@gate:2200,inner\n  UserKnownHostsFile {tmp_path}/kh1 {tmp_path}/kh2\n"
    )
    s = resolve("blossom", {"host": "blossom", "ssh_config": str(cfg)})
    assert (s.hostname, s.user, s.port) == ("10.1.2.3", "bob", 2222)
    assert s.key_files == (str(key),) and not s.explicit_key
    assert s.proxy_jump == (Hop("gate", 2200, "alice"), Hop("inner", None, None))
    assert s.known_hosts[:2] == (tmp_path / "kh1", tmp_path / "kh2")
    assert s.known_hosts_name == "[10.1.2.3]:2222"
    s2 = resolve("b", {"host": "blossom", "ssh_config": str(cfg), "user": "carol", "port": 22,
                       "known_hosts": str(tmp_path / "mine"), "key": str(key)})
    assert (s2.user, s2.port, s2.explicit_key) == ("carol", 22, True)
    assert s2.known_hosts[0] == tmp_path / "mine" and s2.trust_file == tmp_path / "mine"
    assert s2.known_hosts_name == "10.1.2.3"
    assert "--trust-host-key" in s2.trust_command() and "ssh-keyscan 10.1.2.3 >>" in s2.keyscan_command()


def test_settings_errors_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="has no host"):
        resolve("x", {})
    with pytest.raises(ConfigError, match="does not exist"):
        resolve("x", {"host": "h", "key": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match="invalid port"):
        parse_jump("gate:abc")
    with pytest.raises(ConfigError):
        check_remote_name("a.b")
    assert check_remote_name("gpu-1_a") == "gpu-1_a"


def test_candidate_dirs() -> None:
    home = Path("/home/me")
    assert candidate_dirs(home / "code" / "p", home, "/users/me", None) == ["/users/me/code/p", "/home/me/code/p"]
    assert candidate_dirs(Path("/data/p"), home, "/users/me", None) == ["/data/p"]
    assert candidate_dirs(home / "p", home, "/users/me", "work/p") == ["/users/me/work/p"]
    assert candidate_dirs(home / "p", home, "/users/me", "~/x") == ["/users/me/x"]
    assert candidate_dirs(home / "p", home, "/users/me", "/abs") == ["/abs"]


def test_choose_python() -> None:
    assert choose_python({"python_interpreter": "/opt/py"}, {"paths": {"python_interpreter": "x"}}, "/p") == ("/opt/py", "configured")
    assert choose_python({}, {"paths": {"python_interpreter": ".venv/bin/python"}}, "/p") == (
        "/p/.venv/bin/python", "remote hsm_config.yaml")
    assert choose_python({}, {}, "/p") == ("python3", "default")


def test_parse_porcelain_skips_rename_sources() -> None:
    text = " M a.py\0R  new.py\0old.py\0?? untracked.txt\0"
    assert parse_porcelain(text) == ["a.py", "new.py", "untracked.txt"]


def test_parse_health() -> None:
    text = ("@load\n0.50 0.40 0.30 1/100 42\n@cpus\n8\n@disk\n/dev/sda1 100 50 2097152 50% /home\n"
            "@mem\nMemTotal:       16384000 kB\nMemAvailable:    8192000 kB\n"
            "@gpus\n0, NVIDIA A100, 35, 1000, 40000\n@tasks\n123 python -m hsm_core.runner /p/tasks/task_001\n")
    h = parse_health(text)
    assert h["load"] == [0.5, 0.4, 0.3] and h["cpus"] == 8 and h["disk_free_gb"] == 2.0
    assert h["mem_available_gb"] == 7.8 and h["gpus"][0]["name"] == "NVIDIA A100"
    assert h["tasks"] == ["python -m hsm_core.runner /p/tasks/task_001"]
    assert parse_health("@gpus\n@tasks\n")["gpus"] is None


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def test_project_files_without_git(tmp_path: Path) -> None:
    _tree(tmp_path, {
        "train.py": "", "src/m.py": "", ".gitignore": "data/\n*.log\n/ckpt\n", "data/x.bin": "", "a.log": "",
        "ckpt": "", "src/ckpt": "", "__pycache__/m.pyc": "", "sweeps/outputs/s/t": "", "sweeps/sweep.yaml": "",
        "hsm_config.yaml": "", ".hsm/sync_config.yaml": "", "wandb/run/x": "",
    })
    assert project_files(tmp_path, {}) == [".gitignore", "src/ckpt", "src/m.py", "sweeps/sweep.yaml", "train.py"]
    filters = rsync_filters(tmp_path, {})
    assert "--exclude=/sweeps/outputs/" in filters and "--filter=:- .gitignore" in filters
    assert "--exclude=/hsm_config.yaml" in filters


def test_project_files_with_git(tmp_path: Path) -> None:
    _tree(tmp_path, {"train.py": "", ".gitignore": "*.bin\n", "w.bin": "", "new.py": "", "sweeps/outputs/s/x": ""})
    git = ["git", "-C", str(tmp_path), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "train.py", ".gitignore"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    assert project_files(tmp_path, {}) == [".gitignore", "new.py", "train.py"]


def _remote_from(root: Path):
    """A remote_state() answering from another local directory (the verdict logic, no network)."""
    import hashlib
    import json

    from hsm_plugin_ssh.projectfiles import git_info

    def state(files, git):
        out = {"git": None, "hashes": {}}
        if git:
            info = git_info(root)
            if info:
                porcelain = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "-z", "--", "."],
                                           capture_output=True, text=True).stdout
                out["git"] = {"commit": info.commit, "branch": info.branch, "porcelain": porcelain}
        for rel in files or []:
            p = root / rel
            out["hashes"][rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
        return json.loads(json.dumps(out))

    return state


def test_compare_non_git_reports_differ_and_missing_not_extra(tmp_path: Path) -> None:
    here, there = tmp_path / "here", tmp_path / "there"
    _tree(here, {"a.py": "1", "b.py": "2", "c.py": "3", "sweeps/sweep.yaml": "edited"})
    _tree(there, {"a.py": "1", "b.py": "changed", "extra.dat": "remote data"})
    r = compare("srv", here, {}, _remote_from(there))
    assert r.ok is False and r.differ == ["b.py"] and r.missing == ["c.py"]
    assert "hsm remote sync srv" in "\n".join(r.lines())
    _tree(there, {"b.py": "2", "c.py": "3"})
    r = compare("srv", here, {}, _remote_from(there))
    assert r.ok is True and r.checked == 3  # sweep files are the controller's business


def test_compare_git_same_commit_checks_only_uncommitted(tmp_path: Path) -> None:
    here = tmp_path / "here"
    _tree(here, {"a.py": "1", "b.py": "2"})
    git = ["git", "-C", str(here), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    there = tmp_path / "there"
    subprocess.run(["git", "clone", "-q", str(here), str(there)], check=True)
    r = compare("srv", here, {}, _remote_from(there))
    assert r.ok is True and r.checked == 0
    (here / "a.py").write_text("edited")
    r = compare("srv", here, {}, _remote_from(there))
    assert r.ok is False and r.differ == ["a.py"]
    assert any("uncommitted changes here" in n for n in r.notes)
    subprocess.run([*git, "commit", "-qam", "y"], check=True)
    r = compare("srv", here, {}, _remote_from(there))
    assert r.ok is False and any("commit differs" in n for n in r.notes)
    (there / "a.py").write_text("edited")  # a pushed copy on top of the older clone
    r = compare("srv", here, {}, _remote_from(there))
    assert r.ok is True and any("commit differs" in n for n in r.notes)
