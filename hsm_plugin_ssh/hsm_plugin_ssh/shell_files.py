"""File look-ups and small writes through remote commands, for SSH servers without SFTP.

Some servers run without the SFTP subsystem (``Subsystem sftp`` left out of ``sshd_config``, or a
locked-down login node). :class:`~hsm_plugin_ssh.host.SshHost` then does what discovery and the
array-job sources need (home directory, does a path exist, read a small file, write one) with POSIX
commands instead: one round trip each, every path passed as its own quoted argument (never
interpolated into the script). Trees are copied with rsync, which needs no SFTP either.
"""

from __future__ import annotations

from typing import Any

_EXISTS = 'if [ -d "$1" ]; then echo dir; elif [ -e "$1" ]; then echo file; else echo none; fi'
# Same directory, then rename: readers never see half a file (as the SFTP path does).
_WRITE = 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1.hsm-tmp.$$" && mv -f -- "$1.hsm-tmp.$$" "$1"'


def _last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def home(host: Any) -> str:
    """The directory commands start in: the remote user's home (what SFTP's ``.`` is)."""
    res = host.run(["pwd"], timeout=60)
    where = _last_line(res.stdout)
    if res.returncode != 0 or not where.startswith("/"):
        from hsm_core.plugin import HsmError

        raise HsmError(f"cannot find the home directory on {host.describe()}: pwd exited {res.returncode}: "
                       f"{(res.stderr or res.stdout).strip()[-200:]}")
    return where


def exists(host: Any, path: str) -> str | None:
    """``"dir"``, ``"file"`` or None."""
    res = host.run(["sh", "-c", _EXISTS, "sh", path], timeout=60)
    kind = _last_line(res.stdout)
    return kind if res.returncode == 0 and kind in ("dir", "file") else None


def read_text(host: Any, path: str, limit: int) -> str | None:
    """The first ``limit`` bytes of a file as text, or None when it cannot be read."""
    res = host.run(["sh", "-c", '[ -f "$1" ] && [ -r "$1" ] && head -c "$2" -- "$1"', "sh", path, str(limit)],
                   timeout=60)
    return res.stdout if res.returncode == 0 else None


def write_text(host: Any, path: str, text: str) -> None:
    """Write a file atomically (its directory is created)."""
    res = host.run(["sh", "-c", _WRITE, "sh", path], input=text, timeout=120)
    if res.returncode != 0:
        from hsm_core.plugin import HsmError

        raise HsmError(f"cannot write {path} on {host.describe()} (exit {res.returncode}): "
                       f"{(res.stderr or res.stdout).strip()[-200:]}")
