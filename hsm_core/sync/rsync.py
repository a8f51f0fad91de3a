"""The core ``rsync`` sync transport: the system rsync, to a local path or over SSH.

Safety, whatever the caller asks:

* never ``--delete`` (nor ``--inplace``/``--append``): nothing on the target is removed or
  rewritten in place;
* rsync writes each file under a temporary name and renames it when complete, and
  ``--partial-dir`` keeps the data of an interrupted file aside, so an interrupted sync leaves no
  half-written file where a good one was, and the next run picks up where it stopped;
* ``--copy-unsafe-links``: ``wandb.save`` leaves absolute symlinks in a run's ``files/``; the
  target gets the files they point to, not dangling links.

A transfer takes ``(local path, relative destination)`` pairs: a private directory of symlinks
(one per pair, at its relative destination) is handed to one rsync with ``--files-from`` and
``--copy-dirlinks``. That renames on the fly (artifact payloads leave wandb's staging dir under their
real names), copies many runs in one rsync, and leaves the attributes of existing directories on
the target alone (``--no-implied-dirs``).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from hsm_core.plugin import HsmError, SyncTransport, TransferResult

PARTIAL_DIR = ".rsync-partial"
#: exit codes: 23 partial transfer (some files could not be copied), 24 source files vanished.
PARTIAL_CODES = (23, 24)

_BASE_ARGS = (
    "--archive",
    "--recursive",  # --files-from turns -a's recursion off
    "--copy-dirlinks",  # the symlinks of our private tree stand for directories
    "--copy-unsafe-links",  # wandb.save symlinks: send what they point to
    "--no-implied-dirs",  # leave existing directories on the target as they are
    f"--partial-dir={PARTIAL_DIR}",
    "--chmod=Du+rwx,Fu+rw",  # wandb's staging copies are read-only: keep the target's files manageable
    # Compare times to the nanosecond: a checkpoint rewritten within the second of the last sync,
    # with the same size, is still seen as changed (receivers >= 3.1.3; override in rsync_options).
    "--modify-window=-1",
    "--out-format=%i %l %n",
    "--stats",
)

_STATS = {
    "files": re.compile(r"^Number of regular files transferred:\s*([\d,.]+)", re.M),
    "bytes": re.compile(r"^Total transferred file size:\s*([\d,.]+)", re.M),
    "sent": re.compile(r"^Total bytes sent:\s*([\d,.]+)", re.M),
}


def _num(text: str) -> int:
    return int(re.sub(r"[^\d]", "", text) or 0)


@dataclass
class Entry:
    """One line of rsync's ``--out-format='%i %l %n'`` output."""

    change: str
    size: int
    path: str

    @property
    def is_file_sent(self) -> bool:
        """A regular file whose data was (or in a dry run would be) sent."""
        return self.change[:2] in (">f", "<f")


def parse_line(line: str) -> Entry | None:
    """An itemized line, or None for other output (``created directory ...``)."""
    parts = line.rstrip("\n").split(" ", 2)
    if len(parts) != 3 or len(parts[0]) < 9 or not parts[1].replace(",", "").isdigit():
        return None
    return Entry(parts[0], _num(parts[1]), parts[2])


def rsync_version() -> tuple[int, ...] | None:
    """The local rsync's version, or None when rsync is not installed."""
    exe = shutil.which("rsync")
    if exe is None:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"version\s+v?(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else (0,)


class RsyncTransport(SyncTransport):
    """rsync to a directory on this machine (no ``host``) or over SSH with one master connection."""

    def __init__(self, name: str, settings: Mapping[str, Any]) -> None:
        self.name = name
        self.settings = dict(settings)
        self.rsync_options = list(self.settings.get("rsync_options") or [])
        self.ssh = None
        if self.settings.get("host"):
            from hsm_core.sync.ssh import SshConnection

            self.ssh = SshConnection(self.settings, label=f"target {name!r}")
        self._made: set[str] = set()
        self._listed: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen[str]] = set()

    # -- connection ------------------------------------------------------------------------------
    def open(self) -> None:
        if shutil.which("rsync") is None:
            raise HsmError("the 'rsync' command is not installed", hint="install rsync (apt install rsync)")
        if self.ssh is not None:
            self.ssh.open()

    def close(self) -> None:
        if self.ssh is not None:
            self.ssh.close()

    def interrupt(self) -> None:
        """Stop running rsyncs with SIGINT (they keep partial data in the partial dir)."""
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            try:
                proc.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass

    def describe(self, path: str = "") -> str:
        """``user@host:port:path`` or the local path."""
        if self.ssh is None:
            return path or "this machine"
        return self.ssh.describe() + (f":{path}" if path else "")

    def check_command(self, path: str) -> str:
        if self.ssh is None:
            return shlex.join(["ls", "-la", path])
        return self.ssh.check_command(path)

    def _spec(self, path: str) -> str:
        # rsync's own argument protection (3.2.4+, or -s on older versions on our side) keeps
        # spaces in remote paths intact; a leading "-" must not look like an option.
        if self.ssh is None:
            return path if not path.startswith("-") else "./" + path
        return f"{self.ssh.destination}:{path}"

    def _base(self) -> list[str]:
        argv = ["rsync", *_BASE_ARGS]
        if self.ssh is not None:
            argv += ["-e", self.ssh.rsh()]
        argv += self.rsync_options
        return argv

    # -- remote filesystem ----------------------------------------------------------------------
    def ensure_dir(self, path: str) -> None:
        """Create ``path`` (and parents) on the target once per transport."""
        with self._lock:
            if path in self._made:
                return
        if self.ssh is None:
            try:
                Path(path).mkdir(parents=True, exist_ok=True)
            except PermissionError as exc:
                raise HsmError(f"permission denied creating {path} on target {self.name!r}: {exc.strerror}",
                               hint=f"check access with: {self.check_command(str(Path(path).parent))}") from None
            except OSError as exc:
                raise HsmError(f"cannot create {path} on target {self.name!r}: {exc.strerror or exc}") from None
        else:
            proc = self.ssh.run(shlex.join(["mkdir", "-p", "--", path]))
            if proc.returncode != 0:
                self._remote_failure(proc.returncode, proc.stderr, path)
        with self._lock:
            self._made.add(path)

    def prepare(self, make: Sequence[str] = (), listing: Sequence[str] = ()) -> None:
        """Create ``make`` and list ``listing`` in one round trip; :meth:`list_remote` then answers
        those listings from memory (once)."""
        if self.ssh is None:
            for p in make:
                self.ensure_dir(p)
            return
        with self._lock:
            make = [p for p in make if p not in self._made]
        if not make and not listing:
            return
        parts = []
        if make:
            parts.append(shlex.join(["mkdir", "-p", "--", *make]) + " || exit 3")
        for d in listing:
            parts.append(f"echo {shlex.quote(_SECTION + d)}; (cd {shlex.quote(d)} 2>/dev/null && ls -1A)")
        proc = self.ssh.run("; ".join(parts) + "; exit 0" if listing else "; ".join(parts))
        if proc.returncode != 0:
            self._remote_failure(proc.returncode, proc.stderr, (list(make) or list(listing))[0])
        current: list[str] | None = None
        found: dict[str, list[str]] = {}
        for line in proc.stdout.splitlines():
            if line.startswith(_SECTION):
                current = found.setdefault(line[len(_SECTION) :], [])
            elif current is not None and line:
                current.append(line)
        with self._lock:
            self._made.update(make)
            for d in listing:
                self._listed[d] = sorted(found.get(d, []))

    def write_markers(self, directory: str, names: Sequence[str]) -> None:
        """Create empty files ``directory/<name>`` (what ``check_remote_first`` lists later)."""
        names = [_safe_rel(n) for n in names]
        if self.ssh is None:
            Path(directory).mkdir(parents=True, exist_ok=True)
            for n in names:
                Path(directory, n).touch()
            return
        for i in range(0, len(names), 500):  # keep each remote command line short
            part = names[i : i + 500]
            cmd = f"mkdir -p -- {shlex.quote(directory)} && cd {shlex.quote(directory)} && touch -- {shlex.join(part)}"
            proc = self.ssh.run(cmd)
            if proc.returncode != 0:
                self._remote_failure(proc.returncode, proc.stderr, directory)

    def list_remote(self, path: str) -> list[str]:
        """Names directly under ``path`` on the target; empty when it does not exist."""
        with self._lock:
            if path in self._listed:
                return self._listed.pop(path)
        if self.ssh is None:
            try:
                return sorted(os.listdir(path))
            except FileNotFoundError:
                return []
            except PermissionError as exc:
                raise HsmError(f"permission denied listing {path} on target {self.name!r}: {exc.strerror}",
                               hint=f"check access with: {self.check_command(path)}") from None
        cmd = f"cd {shlex.quote(path)} 2>/dev/null || exit 0; ls -1A"
        proc = self.ssh.run(cmd)
        if proc.returncode != 0:
            self._remote_failure(proc.returncode, proc.stderr, path)
        return sorted(x for x in proc.stdout.splitlines() if x)

    def list_entries(self, path: str) -> list[tuple[str, int, float, bool]]:
        """``(name, size, mtime, is_dir)`` of the entries directly under ``path`` on the target."""
        if self.ssh is None:
            out = []
            try:
                with os.scandir(path) as it:
                    for e in it:
                        st = e.stat()
                        out.append((e.name, st.st_size, st.st_mtime, e.is_dir()))
            except FileNotFoundError:
                return []
            return sorted(out)
        # find's -printf is GNU only; stat -c works on GNU and busybox, which is what clusters run.
        cmd = (f"cd {shlex.quote(path)} 2>/dev/null || exit 0; "
               "for f in * .[!.]*; do [ -e \"$f\" ] && stat -c '%s %Y %F %n' -- \"$f\"; done; exit 0")
        proc = self.ssh.run(cmd)
        if proc.returncode != 0:
            self._remote_failure(proc.returncode, proc.stderr, path)
        out = []
        for line in proc.stdout.splitlines():
            m = re.match(r"^(\d+) (\d+) (.+?) (\S.*)$", line)
            if not m:
                continue
            size, mtime, kind, name = m.groups()
            # "%F %n" is ambiguous only for names with spaces after a kind with spaces: the kinds
            # are known, so split on them.
            for k in ("directory", "regular file", "regular empty file", "symbolic link"):
                if f"{kind} {name}".startswith(k + " "):
                    kind, name = k, f"{kind} {name}"[len(k) + 1 :]
                    break
            out.append((name, int(size), float(mtime), kind == "directory"))
        return sorted(out)

    def _remote_failure(self, code: int, stderr: str, path: str) -> None:
        text = " ".join(stderr.split())
        if code == 255 and self.ssh is not None:
            from hsm_core.sync.ssh import ssh_error

            raise ssh_error(f"target {self.name!r}", self.ssh.describe(), stderr, self.check_command(path))
        if "permission denied" in text.lower():
            raise HsmError(f"permission denied on target {self.name!r} ({self.describe(path)}): {text}",
                           hint=f"check access with: {self.check_command(path)}")
        raise HsmError(f"command on target {self.name!r} failed ({self.describe(path)}): {text or f'exit {code}'}")

    # -- transfers ------------------------------------------------------------------------------
    def send(
        self,
        entries: Sequence[tuple[Path, str]],
        dest: str,
        *,
        dry_run: bool = False,
        excludes: Sequence[str] = (),
        on_file: Callable[[str, int], None] | None = None,
        prune_empty_dirs: bool = False,
    ) -> TransferResult:
        """One rsync copying every ``(local, relative)`` pair to ``dest/relative``."""
        if not entries:
            return TransferResult()
        if not dry_run and self.ssh is None:
            self.ensure_dir(dest)
        farm = tempfile.mkdtemp(prefix="hsm-sync-")
        try:
            names: list[str] = []
            for local, rel in entries:
                rel = _safe_rel(rel)
                link = Path(farm, rel)
                link.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(os.path.abspath(local), link)
                names.append(rel)
            list_file = os.path.join(farm, ".hsm-files")
            with open(list_file, "w", encoding="utf-8") as fh:
                fh.write("\0".join(names) + "\0")
            argv = self._base() + ["--from0", f"--files-from={list_file}", "--exclude=/.hsm-files"]
            for pattern in excludes:
                argv.append(f"--exclude={pattern}")
            if prune_empty_dirs:
                argv.append("--prune-empty-dirs")
            if dry_run:
                argv.append("--dry-run")
            argv += [farm + "/", self._spec(dest.rstrip("/") + "/")]
            try:
                return self._run(argv, dest, on_file)
            except _MissingDest:
                # Remote directories are made only when rsync finds them missing: in the common
                # case (they exist since the first sync) that saves a round trip per sync.
                self.ensure_dir(dest)
                return self._run(argv, dest, on_file)
        finally:
            shutil.rmtree(farm, ignore_errors=True)

    def push(self, sources: Sequence[Path], dest: str, *, dry_run: bool = False) -> TransferResult:
        """Copy files or directories into ``dest`` (each keeps its name)."""
        return self.send([(Path(s), Path(s).name) for s in sources], dest, dry_run=dry_run)

    def pull(
        self,
        source: str,
        dest: Path,
        *,
        dry_run: bool = False,
        excludes: Sequence[str] = (),
        includes: Sequence[str] = (),
        on_file: Callable[[str, int], None] | None = None,
    ) -> TransferResult:
        """Copy the target's ``source`` directory (or file) into the local ``dest`` directory."""
        dest = Path(dest)
        if not dry_run:
            dest.mkdir(parents=True, exist_ok=True)
        argv = ["rsync", *(a for a in _BASE_ARGS if a not in ("--copy-dirlinks", "--no-implied-dirs"))]
        if self.ssh is not None:
            argv += ["-e", self.ssh.rsh()]
        argv += self.rsync_options
        for pattern in includes:
            argv.append(f"--include={pattern}")
        for pattern in excludes:
            argv.append(f"--exclude={pattern}")
        if dry_run:
            argv.append("--dry-run")
        argv += [self._spec(source), str(dest) + "/"]
        return self._run(argv, source, on_file, direction="from")

    def _run(
        self,
        argv: list[str],
        where: str,
        on_file: Callable[[str, int], None] | None,
        *,
        direction: str = "to",
    ) -> TransferResult:
        result = TransferResult()
        env = dict(os.environ)
        env["LC_ALL"] = "C"  # plain numbers in --stats
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, errors="replace", env=env)
        with self._lock:
            self._procs.add(proc)
        err_chunks: list[str] = []
        reader = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        tail: list[str] = []
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                entry = parse_line(line)
                if entry is None:
                    tail.append(line)
                    continue
                if entry.is_file_sent:
                    result.changed.append(entry.path)
                    if on_file is not None:
                        on_file(entry.path, entry.size)
            code = proc.wait()
        finally:
            with self._lock:
                self._procs.discard(proc)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        reader.join(timeout=10)
        stats = "".join(tail)
        stderr = "".join(err_chunks)
        for key, rx in _STATS.items():
            m = rx.search(stats)
            if m and key == "files":
                result.files = _num(m.group(1))
            elif m and key == "bytes":
                result.bytes = _num(m.group(1))
        if code == 0:
            return result
        if code in (3, 11) and re.search(r'mkdir ".*" failed: No such file or directory', stderr):
            raise _MissingDest(stderr)
        if code in PARTIAL_CODES:
            lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("rsync error:")]
            if any("permission denied" in ln.lower() for ln in lines):
                raise self._permission_error(stderr, where, direction)
            result.messages += lines[:5] or [f"rsync exit {code}: some files could not be copied"]
            return result
        if code == 20 or code < 0:
            sig = f"signal {-code}" if code < 0 else "SIGINT"
            raise HsmError(f"rsync {direction} target {self.name!r} was stopped ({sig}); run the sync again to finish it")
        raise self._failure(code, stderr, where, direction)

    def _permission_error(self, stderr: str, where: str, direction: str) -> HsmError:
        line = next((ln.strip() for ln in stderr.splitlines() if "permission denied" in ln.lower()), "")
        side = self.describe(where) if direction == "to" else f"{self.describe(where)} (source)"
        check_path = where if direction == "to" else where
        return HsmError(f"permission denied on target {self.name!r} ({side}): {line}",
                        hint=f"check access with: {self.check_command(check_path)}")

    def _failure(self, code: int, stderr: str, where: str, direction: str) -> HsmError:
        text = " ".join(ln.strip() for ln in stderr.splitlines() if ln.strip())
        low = text.lower()
        if "permission denied" in low and ("publickey" in low or "password" in low) and self.ssh is not None:
            from hsm_core.sync.ssh import ssh_error

            return ssh_error(f"target {self.name!r}", self.ssh.describe(), stderr, self.check_command(where))
        if "permission denied" in low:
            return self._permission_error(stderr, where, direction)
        if code == 255 and self.ssh is not None:
            from hsm_core.sync.ssh import ssh_error

            return ssh_error(f"target {self.name!r}", self.ssh.describe(), stderr, self.check_command(where))
        if "command not found" in low or code == 127:
            return HsmError(f"rsync is not installed on target {self.name!r} ({self.describe()})",
                            hint="install rsync there (apt install rsync / yum install rsync)")
        if ("no such file" in low or "change_dir" in low) and direction == "from":
            return HsmError(f"{self.describe(where)} does not exist", hint=f"check the path with: {self.check_command(str(Path(where).parent))}")
        short = text if len(text) < 400 else text[:397] + "..."
        return HsmError(f"rsync {direction} target {self.name!r} failed (exit {code}): {short}")


_SECTION = "::hsm-listing::"


class _MissingDest(Exception):
    """rsync could not create the destination because its parent is missing."""


def _safe_rel(rel: str) -> str:
    parts = [p for p in rel.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise HsmError(f"refusing to copy to {rel!r}: not a plain relative path")
    return "/".join(parts)
