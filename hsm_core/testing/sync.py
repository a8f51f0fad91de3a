"""Helpers for tests of ``hsm sync`` and of plugins that add to it (stdlib + PyYAML only).

::

    host = start_sshd("sync")                       # hsm_core.testing.services
    write_sync_config(project, {"desktop": ssh_target(host, tmp / "desktop")}, default="desktop")
    subprocess.run(["hsm", "sync", "to", "sweep_1", "--json"], cwd=project)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import yaml

__all__ = ["SyncTransportContract", "auth_count", "local_target", "ssh_target", "tree", "write_sync_config"]


def ssh_target(host: Any, root: Path, **options: Any) -> dict[str, Any]:
    """A ``sync_targets`` entry reaching ``root`` on an :class:`~hsm_core.testing.services.LocalSshd`
    (its port, user, key and known_hosts), with ``paths.sweeps``/``paths.wandb`` under ``root``."""
    entry: dict[str, Any] = {
        "host": host.host,
        "user": host.user,
        "port": host.port,
        "identity_file": str(host.key_file),
        "known_hosts": str(host.known_hosts),
        "paths": {"sweeps": str(Path(root) / "sweeps"), "wandb": str(Path(root) / "wandb")},
    }
    if options:
        entry["options"] = dict(options)
    return entry


def local_target(root: Path, **options: Any) -> dict[str, Any]:
    """A ``sync_targets`` entry for a directory on this machine."""
    entry: dict[str, Any] = {"paths": {"sweeps": str(Path(root) / "sweeps"), "wandb": str(Path(root) / "wandb")}}
    if options:
        entry["options"] = dict(options)
    return entry


def write_sync_config(project_root: Path, targets: Mapping[str, Any], default: str | None = None) -> Path:
    """Write ``<project_root>/.hsm/sync_config.yaml``."""
    data: dict[str, Any] = {}
    if default:
        data["default_target"] = default
    data["sync_targets"] = dict(targets)
    path = Path(project_root) / ".hsm" / "sync_config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def auth_count(host: Any) -> int:
    """SSH logins the sshd instance has accepted so far (from its log, beside its known_hosts)."""
    log = Path(host.known_hosts).parent / "sshd.log"
    try:
        return log.read_text(errors="replace").count("Accepted publickey")
    except FileNotFoundError:
        return 0


def tree(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` (relative path -> content), symlinks followed."""
    out: dict[str, bytes] = {}
    root = Path(root)
    if not root.exists():
        return out
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


class SyncTransportContract:
    """Tests every :class:`~hsm_core.plugin.SyncTransport` must pass (``hsm sync`` relies on them).

    Subclass it (``class TestMine(SyncTransportContract)``) and implement :meth:`make_transport`:
    a transport whose target paths are directories of this machine (directly, or through a local
    sshd), so that the test can look at what arrived.
    """

    def make_transport(self, tmp_path: Path) -> Any:
        """Return the transport under test, not yet opened (override this)."""
        raise NotImplementedError

    def _open(self, tmp_path: Path) -> Any:
        t = self.make_transport(tmp_path)
        t.open()
        return t

    @staticmethod
    def _source(tmp_path: Path) -> Path:
        src = tmp_path / "src" / "run-a"
        (src / "files").mkdir(parents=True)
        (src / "files" / "out.txt").write_text("out\n")
        outside = tmp_path / "outside.txt"
        outside.write_text("saved\n")
        (src / "files" / "saved.txt").symlink_to(outside)  # what wandb.save leaves
        (src / "files" / "skip.tmp").write_text("x")
        return src

    def test_send_copies_renames_follows_outside_links_and_repeats_as_a_no_op(self, tmp_path: Path) -> None:
        src = self._source(tmp_path)
        payload = tmp_path / "staging" / "tmp123"
        payload.parent.mkdir()
        payload.write_bytes(b"ckpt")
        dest = tmp_path / "dest" / "deep" / "wandb"
        t = self._open(tmp_path)
        try:
            first = t.send([(src, "run-a"), (payload, "artifacts/a/model/v0/ckpt.pt")], str(dest), excludes=["*.tmp"])
            assert tree(dest) == {"run-a/files/out.txt": b"out\n", "run-a/files/saved.txt": b"saved\n",
                                  "artifacts/a/model/v0/ckpt.pt": b"ckpt"}
            assert not (dest / "run-a" / "files" / "saved.txt").is_symlink()
            assert first.files == 3 and sorted(first.changed) == sorted(tree(dest))
            again = t.send([(src, "run-a"), (payload, "artifacts/a/model/v0/ckpt.pt")], str(dest), excludes=["*.tmp"])
            assert again.files == 0 and again.changed == []
        finally:
            t.close()

    def test_send_never_deletes_and_dry_run_changes_nothing(self, tmp_path: Path) -> None:
        src = self._source(tmp_path)
        dest = tmp_path / "dest"
        (dest / "run-a" / "files").mkdir(parents=True)
        (dest / "run-a" / "files" / "theirs.txt").write_text("keep me\n")
        t = self._open(tmp_path)
        try:
            dry = t.send([(src, "run-a")], str(dest), dry_run=True)
            assert dry.files >= 1 and tree(dest) == {"run-a/files/theirs.txt": b"keep me\n"}
            t.send([(src, "run-a")], str(dest))
            assert (dest / "run-a" / "files" / "theirs.txt").read_text() == "keep me\n"
        finally:
            t.close()

    def test_list_remote_and_pull(self, tmp_path: Path) -> None:
        remote = tmp_path / "remote" / "exp"
        (remote / "tb").mkdir(parents=True)
        (remote / "tb" / "events").write_text("e")
        (remote / "log.txt").write_text("l")
        t = self._open(tmp_path)
        try:
            assert t.list_remote(str(remote)) == ["log.txt", "tb"]
            assert t.list_remote(str(tmp_path / "missing")) == []
            got = t.pull(str(remote) + "/", tmp_path / "local")
            assert tree(tmp_path / "local") == {"log.txt": b"l", "tb/events": b"e"} and got.files == 2
            assert t.pull(str(remote) + "/", tmp_path / "local").files == 0
        finally:
            t.close()
