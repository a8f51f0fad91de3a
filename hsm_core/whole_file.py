"""Lock files that appear whole: create a file under a name unless that name exists, so that no
reader (and no kill of the writer) can ever find it empty or half written.

``open(O_CREAT | O_EXCL)`` then ``write`` has a window: a process killed between the two leaves an
empty file whose owner nobody can name, and a lock that names no one can only age out (a controller
lease or a task claim blocked for its whole timeout). So :func:`create_whole` does what NFS-safe
lock code has long done (open(2), "O_EXCL" notes):

1. write the content to a uniquely named temporary file in the same directory
   (``.<name>.<machine tag>.<pid>.<random>.part``: a name that starts with a dot and ends in
   ``.part``, which every listing of lock files skips, see :func:`is_temp_name`);
2. ``link`` it to the lock's name: atomic, and it fails with ``EEXIST`` when the name is taken, so
   the lock appears with all its content or not at all;
3. when ``link`` reports an error, look whether the link was made anyway (an NFS server may make it
   and fail to say so, link(2) BUGS): the temporary's link count went to 2, or the lock's name now
   points at the temporary's inode. Then the lock is ours;
4. remove the temporary.

A process killed during steps 1-3 leaves only a temporary, which blocks nobody (the lock name is
still free) and is removed by :func:`clean_stale_temps`. A filesystem that cannot make hard links
(some FUSE and SMB mounts: ``EPERM``, ``ENOTSUP``, ``ENOSYS``) gets today's ``O_EXCL`` create and
write instead, with its window, rather than an error.

Stdlib and :mod:`hsm_core.processes` only: this runs in every worker and controller.
"""

from __future__ import annotations

import errno
import hashlib
import os
import time
from pathlib import Path
from typing import Any

#: What every temporary's name ends with (and starts with a dot).
TEMP_SUFFIX = ".part"
#: ``link`` errors meaning "this filesystem makes no hard links": fall back to ``O_EXCL``.
_NO_LINKS = {errno.EPERM, errno.ENOSYS, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP), errno.EOPNOTSUPP}
#: Devices (``st_dev``) on which ``link`` was found unsupported: asked once per process.
_no_link_devices: set[int] = set()
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_tag: str | None = None


def machine_tag() -> str:
    """Eight hex digits naming this OS instance and pid namespace (a hash of
    :func:`hsm_core.processes.machine_id`): whose pid a temporary's name carries."""
    global _tag
    if _tag is None:
        from hsm_core.processes import machine_id

        _tag = hashlib.sha1(machine_id().encode("utf-8")).hexdigest()[:8]
    return _tag


def temp_path(path: Path) -> Path:
    """A fresh temporary name beside ``path`` (see the module's docstring). A long lock name is
    cut so the temporary's stays within the usual 255-byte limit (only its tail is ever parsed)."""
    return path.parent / f".{path.name[:200]}.{machine_tag()}.{os.getpid()}.{os.urandom(6).hex()}{TEMP_SUFFIX}"


def is_temp_name(name: str) -> bool:
    """True for the name of a temporary :func:`create_whole` writes (never a lock itself)."""
    return temp_owner(name) is not None


def temp_owner(name: str) -> tuple[str, int] | None:
    """(machine tag, pid) of the process that wrote the temporary called ``name``, or None when
    ``name`` is not a temporary's."""
    if not (name.startswith(".") and name.endswith(TEMP_SUFFIX)):
        return None
    parts = name[: -len(TEMP_SUFFIX)].rsplit(".", 3)
    if len(parts) != 4 or len(parts[1]) != 8 or not parts[2].isdigit():
        return None
    return parts[1], int(parts[2])


def create_whole(path: Path, data: bytes, *, mode: int = 0o666, fsync: bool = False) -> bool:
    """Create ``path`` holding ``data`` unless it exists: True when this call made it, False when
    the name was taken. The file appears with all of ``data`` or not at all (module docstring).
    ``mode`` is less the umask, as for any new file. ``fsync``: the data reaches the disk before
    the name appears (a record that must outlive a machine crash; a lock only has to outlive its
    process)."""
    path = Path(path)
    if _no_link_devices and os.stat(path.parent).st_dev in _no_link_devices:
        return _create_exclusive(path, data, mode, fsync)
    for _ in range(5):
        temp = temp_path(path)
        fd = os.open(temp, _FLAGS, mode)
        try:
            _write_all(fd, data)
            if fsync:
                os.fsync(fd)
            made = os.fstat(fd)
            try:
                os.link(temp, path)
                return True
            except OSError as exc:
                # Made, though reported failed (NFS)? On EEXIST the link count says it (the
                # classic check); on another error the name may also be looked at.
                if _linked(fd, None if exc.errno == errno.EEXIST else path, made):
                    return True
                if exc.errno == errno.EEXIST:
                    return False
                if exc.errno == errno.ENOENT and path.parent.is_dir():
                    continue  # our temporary was cleaned away (we were stopped for long): again
                if exc.errno in _NO_LINKS:
                    _no_link_devices.add(os.stat(path.parent).st_dev)
                    return _create_exclusive(path, data, mode, fsync)
                raise
        finally:
            os.close(fd)
            _unlink_quietly(temp)
    raise OSError(errno.EAGAIN, "temporary files keep vanishing before they are linked", str(path))


def _linked(fd: int, path: Path | None, made: os.stat_result) -> bool:
    """True when the link was made although ``link`` reported an error: the temporary open as
    ``fd`` has a second name (its link count rose to 2; only this call links it), or ``path`` (when
    given) points at its inode (which also holds when a cleaner removed the temporary's name)."""
    try:
        if os.fstat(fd).st_nlink >= 2:
            return True
        if path is None:
            return False
        st = os.stat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (made.st_dev, made.st_ino)


def _create_exclusive(path: Path, data: bytes, mode: int, fsync: bool = False) -> bool:
    """The fallback without hard links: ``O_EXCL`` create, then write (a kill between the two
    leaves an empty file, which readers treat as a lock of unknown owner)."""
    try:
        fd = os.open(path, _FLAGS, mode)
    except FileExistsError:
        return False
    try:
        _write_all(fd, data)
        if fsync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink_quietly(path)
        raise
    os.close(fd)
    return True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _unlink_quietly(path: Any) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def clean_stale_temps(directory: Path, older_than: float, now: float | None = None) -> int:
    """Remove temporaries that killed processes left in ``directory``; returns how many.

    Never one still being written: a temporary of this machine goes once the process its name
    carries is provably gone (a live pid, or one reused by another process, keeps it); one of another
    machine only once it is older than ``older_than`` seconds (``now``: the filesystem's clock). Even
    then its writer, were it alive (suspended for that long), only has to write a new one."""
    from hsm_core.processes import is_running

    now = time.time() if now is None else now
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    for entry in entries:
        parsed = temp_owner(entry.name)
        if parsed is None:
            continue
        tag, pid = parsed
        if tag == machine_tag():
            if pid == os.getpid() or is_running(f"{pid}:?") is not False:
                continue
        else:
            try:
                if now - entry.stat().st_mtime <= older_than:
                    continue
            except OSError:
                continue
        try:
            os.unlink(entry.path)
            removed += 1
        except OSError:
            pass
    return removed
