"""Real services for integration tests: a Slurm cluster and sshd instances on this machine.

hsm's integration tests run the real thing (DESIGN.md section 6). These helpers start it through the
project's scripts (``scripts/slurm.sh``, ``scripts/sshd.sh``), which are idempotent, so every test
may simply ask for what it needs::

    try:
        cluster = start_slurm(max_array_size=50)
    except ServiceUnavailable as exc:
        require_service("slurm", str(exc))
    subprocess.run(["sbatch", "--array=0-49", script], env=cluster.env, check=True)

When a service cannot be started (not installed, not root) the start functions raise
:class:`ServiceUnavailable`; :func:`require_service` then skips the test, or fails it under
``CI=true`` so that a skip cannot hide a broken install step.

What a test session starts, it stops: the test kit's pytest plugin (``hsm_core.testing.pytest_plugin``)
calls :func:`isolate_sshd` when the session starts (its sshd instances then live in a directory of
their own, so concurrent sessions on one machine never stop or restart each other's) and
:func:`stop_started_services` when it ends: every sshd instance this process started, and the Slurm
daemons and munged only if a test session started them and no other live session still uses them.
A cluster that was running before (started by an operator, or by CI) is left alone. Without the
plugin, the same is done when the process exits.

Stdlib only, and pytest is imported only inside :func:`require_service`: importing this module
costs nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NoReturn

__all__ = [
    "ServiceUnavailable",
    "SlurmCluster",
    "LocalSshd",
    "require_service",
    "scripts_dir",
    "isolate_sshd",
    "small_filesystem",
    "start_slurm",
    "start_sshd",
    "stop_started_services",
]

# slurm.sh gives up after 60 s and then prints log tails; leave it the time to do so.
_SLURM_TIMEOUT = 120.0
_SSHD_TIMEOUT = 30.0

_HOW_TO_GET = {
    "slurm": "as root, run scripts/install-test-services.sh, then scripts/slurm.sh start",
    "pbs": "as root, run scripts/install-test-services.sh (slurm-wlm-torque gives "
    "qsub/qstat/qdel), then scripts/slurm.sh start",
    "sshd": "as root, run scripts/install-test-services.sh, then scripts/sshd.sh start NAME",
    "rsync": "as root, run scripts/install-test-services.sh",
}


class ServiceUnavailable(Exception):
    """A test service could not be started; the message says why."""


def require_service(name: str, reason: str) -> NoReturn:
    """Give up on a test whose service *name* is missing: skip it, or fail it under ``CI=true``.

    The message names the service, the *reason* it is missing and the script that provides it.
    """
    import pytest

    hint = _HOW_TO_GET.get(name, "as root, run scripts/install-test-services.sh")
    message = f"test service {name!r} is not available: {reason}\nTo get it: {hint}."
    if os.environ.get("CI", "").strip().lower() in ("true", "1"):
        pytest.fail(
            message + "\nCI=true: a missing service fails the test instead of skipping it.",
            pytrace=False,
        )
    pytest.skip(message)


def scripts_dir() -> Path:
    """The directory with ``slurm.sh`` and ``sshd.sh``: the repository's ``scripts/``, else
    ``$HSM_SCRIPTS_DIR`` (for an hsm-core installed outside the repository).
    """
    repo_scripts = Path(__file__).resolve().parents[2] / "scripts"
    if (repo_scripts / "slurm.sh").is_file():
        return repo_scripts
    from_env = os.environ.get("HSM_SCRIPTS_DIR")
    if from_env:
        return Path(from_env)
    raise ServiceUnavailable(
        f"hsm's scripts/ directory is not at {repo_scripts} (hsm-core is not run from its "
        "repository); set HSM_SCRIPTS_DIR to the repository's scripts/ directory"
    )


def _run_script(script: str, args: list[str], timeout: float, env: dict[str, str] | None = None) -> str:
    """Run ``scripts/<script> <args>``; return its stdout or raise ServiceUnavailable."""
    path = scripts_dir() / script
    if not path.is_file():
        raise ServiceUnavailable(f"{path} does not exist")
    argv = ["bash", str(path), *args]
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        raise ServiceUnavailable(f"`{shlex.join(argv)}` did not finish in {timeout:.0f} s") from exc
    if proc.returncode != 0:
        raise ServiceUnavailable(
            f"`{shlex.join(argv)}` failed (exit {proc.returncode}):\n{proc.stderr.strip()}"
        )
    return proc.stdout


# --- Slurm ---------------------------------------------------------------------------------------


@dataclass
class SlurmCluster:
    """A running single-node Slurm cluster (with the Torque ``qsub``/``qstat``/``qdel`` front-end).

    ``env`` is a copy of ``os.environ`` with ``SLURM_CONF`` set: pass it to every Slurm or Torque
    command (``subprocess.run(["sbatch", ...], env=cluster.env)``).
    """

    conf: Path
    state_dir: Path
    env: dict[str, str]

    def run(
        self, argv: list[str], *, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a client command (``sbatch``, ``squeue``, ``qsub`` ...) against this cluster.

        Output is captured as text; with *check* a non-zero exit raises ``CalledProcessError``.
        """
        return subprocess.run(
            argv, env=self.env, capture_output=True, text=True, check=check, timeout=timeout
        )


def start_slurm(max_array_size: int | None = None, cred_expire: int | None = None) -> SlurmCluster:
    """Start the local Slurm cluster, or reuse it when it already runs with these settings.

    Each call states the whole configuration; settings left out return to their defaults, so a
    test that changed them need not restore them. *max_array_size* is Slurm's ``MaxArraySize``
    (default 100001: the largest index is one less). *cred_expire* (seconds, at least 5; default 10
    here, 120 in Slurm) also sets how long a requeued job waits before it can run again
    (cred_expire + 1 s). A change restarts the daemons (about 0.2 s; jobs survive it) because
    slurmctld reads both only at startup. The cluster is shared by every test session on the
    machine: a changed setting holds for all of them until the next call.

    Raises ServiceUnavailable when Slurm is not installed or cannot be started (e.g. not root and
    not already running with these settings).
    """
    if shutil.which("sbatch") is None or shutil.which("slurmctld") is None:
        raise ServiceUnavailable("Slurm is not installed (no sbatch/slurmctld on PATH)")
    args = ["start"]
    if max_array_size is not None:
        args += ["--max-array-size", str(max_array_size)]
    if cred_expire is not None:
        args += ["--cred-expire", str(cred_expire)]
    _join_slurm_users()
    stdout = _run_script("slurm.sh", args, _SLURM_TIMEOUT)
    _note_slurm_started()
    conf = _parse_slurm_conf(stdout)
    env = dict(os.environ)
    env["SLURM_CONF"] = str(conf)
    return SlurmCluster(conf=conf, state_dir=conf.parent, env=env)


def _parse_slurm_conf(stdout: str) -> Path:
    """The path in slurm.sh's ``export SLURM_CONF=...`` line."""
    for line in stdout.splitlines():
        if line.startswith("export SLURM_CONF="):
            words = shlex.split(line[len("export ") :])
            return Path(words[0].split("=", 1)[1])
    raise ServiceUnavailable(f"slurm.sh start printed no `export SLURM_CONF=` line: {stdout!r}")


# --- SSH -----------------------------------------------------------------------------------------


@dataclass
class LocalSshd:
    """One sshd instance on 127.0.0.1 standing in for a remote host.

    Log in with ``[*host.ssh_argv(), host.destination, "command"]``; for rsync use
    ``["rsync", "-e", host.rsh(), ...]``. :meth:`stop` and :meth:`start` take the "host" down and
    bring it back on the same port with the same host key.
    """

    name: str
    host: str
    port: int
    user: str
    key_file: Path
    known_hosts: Path
    sftp: bool = True  #: False: started without the SFTP subsystem

    @property
    def destination(self) -> str:
        """``user@host`` for ssh, scp and rsync."""
        return f"{self.user}@{self.host}"

    def ssh_argv(self) -> list[str]:
        """The ``ssh`` command and options (key, port, this host's known_hosts, strict host key
        checking, batch mode) without the destination."""
        return [
            "ssh",
            "-i", str(self.key_file),
            "-p", str(self.port),
            "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes",
            # Only our key: keys from a developer's ssh-agent would count as failed attempts.
            "-o", "IdentitiesOnly=yes",
        ]  # fmt: skip

    def rsh(self) -> str:
        """:meth:`ssh_argv` as one shell string, for ``rsync -e``."""
        return shlex.join(self.ssh_argv())

    def stop(self) -> None:
        """Stop this sshd and drop its open connections (and the commands they run), like a host
        that goes down."""
        _run_script("sshd.sh", ["stop", self.name], _SSHD_TIMEOUT)

    def start(self) -> None:
        """Start this sshd again on the same port (a no-op when it runs)."""
        args = ["start", self.name, "--port", str(self.port)] + ([] if self.sftp else ["--no-sftp"])
        stdout = _run_script("sshd.sh", args, _SSHD_TIMEOUT)
        port = int(stdout.split()[-1])
        if port != self.port:  # the script honours --port or fails; guard against a future change
            raise ServiceUnavailable(
                f"sshd {self.name!r} came back on port {port}, not {self.port}"
            )


#: The name of :class:`LocalSshd` before plugin API 1.2 (it read like the ssh plugin's own
#: ``SshHost``, a configured remote); kept for third-party test suites until 2.0.
SshHost = LocalSshd


def start_sshd(name: str, port: int | None = None, *, sftp: bool = True) -> LocalSshd:
    """Start sshd instance *name* on 127.0.0.1, or reuse it when it already runs.

    Without *port* it keeps the port of its last run, else picks a free one. ``sftp=False``
    starts it without the SFTP subsystem (a running instance with the other setting is restarted).
    The user is the current user (root when tests run as root). Raises ServiceUnavailable when
    openssh-server is missing or the instance cannot be started.
    """
    if not Path("/usr/sbin/sshd").is_file() or shutil.which("ssh") is None:
        raise ServiceUnavailable("OpenSSH is not installed (no /usr/sbin/sshd or no ssh on PATH)")
    base = _sshd_base()
    was_running = _sshd_running(name)
    args = ["start", name] + (["--port", str(port)] if port is not None else []) + ([] if sftp else ["--no-sftp"])
    stdout = _run_script("sshd.sh", args, _SSHD_TIMEOUT)
    try:
        actual_port = int(stdout.split()[-1])
    except (IndexError, ValueError) as exc:
        raise ServiceUnavailable(f"sshd.sh start {name} printed no port: {stdout!r}") from exc
    if not was_running:
        _STARTED_SSHD.setdefault(name, base)
        _stop_at_exit()
    return LocalSshd(
        name=name,
        host="127.0.0.1",
        port=actual_port,
        user=_current_user(),
        key_file=base / "client_key",
        known_hosts=base / name / "known_hosts",
        sftp=sftp,
    )


def _current_user() -> str:
    """The login name sshd.sh allows (``id -un``): the effective user, not $USER."""
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


@contextlib.contextmanager
def small_filesystem(path: Path, size_mib: int) -> Iterator[Path]:
    """Mount a tmpfs of *size_mib* MiB at *path* (created) for the ``with`` block, to fill it up:
    a disk-full fault. Needs root; otherwise the test is skipped (or fails under ``CI=true``)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        require_service("tmpfs mount", "mounting a small filesystem needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        require_service("tmpfs mount", proc.stderr.strip())
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


# --- stopping what a test session started ------------------------------------------------------

#: sshd instances this process started: name -> the HSM_SSHD_DIR they live in.
_STARTED_SSHD: dict[str, Path] = {}
_isolated_sshd = False
_private_sshd_dir: Path | None = None
#: This process's lease on the shared Slurm cluster (a file named after it), once it asked for it.
_slurm_lease: Path | None = None
_slurm_was_running = True
_munge_was_running = True

#: Under HSM_SLURM_DIR: one file per live test session using the cluster, and what test sessions
#: started (lines "slurm", "munge"), so that the last session to leave stops only that.
_LEASES = "test-sessions"
_STARTED_MARKER = "started-by-test-sessions"


_at_exit = False


def _stop_at_exit() -> None:
    """Stop what this process started when it exits, should nothing have done it before (a
    session without the pytest plugin; the plugin does it earlier, and then there is nothing left)."""
    global _at_exit
    if not _at_exit:
        _at_exit = True
        atexit.register(stop_started_services)


def isolate_sshd() -> None:
    """Have this process's sshd instances live in a directory of their own (made on first use)
    unless ``HSM_SSHD_DIR`` says where: another test session on this machine then never stops or
    restarts them, nor this one its instances."""
    global _isolated_sshd
    _isolated_sshd = True


def _sshd_base() -> Path:
    global _private_sshd_dir
    if os.environ.get("HSM_SSHD_DIR"):
        return Path(os.environ["HSM_SSHD_DIR"])
    if _isolated_sshd:
        # Short and under /tmp: sshd and ssh put socket paths under it.
        _private_sshd_dir = Path(tempfile.mkdtemp(prefix="hsm-sshd-", dir="/tmp"))
        os.environ["HSM_SSHD_DIR"] = str(_private_sshd_dir)  # scripts and hsm subprocesses see it
        return _private_sshd_dir
    return Path("/tmp/hsm-sshd")


def _sshd_running(name: str) -> bool:
    path = scripts_dir() / "sshd.sh"
    if not path.is_file():
        return False
    proc = subprocess.run(["bash", str(path), "status", name], capture_output=True, text=True,
                          timeout=_SSHD_TIMEOUT, stdin=subprocess.DEVNULL)
    return proc.returncode == 0


def _slurm_dir() -> Path:
    return Path(os.environ.get("HSM_SLURM_DIR", "/tmp/hsm-slurm"))


def _identity(pid: int) -> str | None:
    """``PID:START`` of a live process (a reused pid is another process), else None."""
    from hsm_core.plugin import processes

    return processes.identity(pid)


@contextlib.contextmanager
def _sessions_lock() -> Iterator[None]:
    path = _slurm_dir() / f"{_LEASES}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _works(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=30, stdin=subprocess.DEVNULL).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _join_slurm_users() -> None:
    """Before this process first starts (or reuses) the cluster: say that it uses it, and note
    whether the daemons and munged were running already (then they are not ours to stop)."""
    global _slurm_lease, _slurm_was_running, _munge_was_running
    if _slurm_lease is not None:
        return
    ident = _identity(os.getpid())
    if ident is None:
        return
    try:
        with _sessions_lock():
            script = scripts_dir() / "slurm.sh"
            _slurm_was_running = _works(["bash", str(script), "status"])
            _munge_was_running = _works(["sh", "-c", "munge -n | unmunge"])
            lease = _slurm_dir() / _LEASES / ident.replace(":", "-")
            lease.parent.mkdir(parents=True, exist_ok=True)
            lease.write_text(ident + "\n")
            _slurm_lease = lease
            _stop_at_exit()
    except OSError:
        pass  # cannot keep a lease (read-only dir): this process then never stops the cluster


def _note_slurm_started() -> None:
    """After a successful start: record what this process found stopped and started."""
    started = [name for name, was in (("slurm", _slurm_was_running), ("munge", _munge_was_running)) if not was]
    if not started or _slurm_lease is None:
        return
    with _sessions_lock():
        marker = _slurm_dir() / _STARTED_MARKER
        try:
            known = set(marker.read_text().split())
        except OSError:
            known = set()
        marker.write_text("\n".join(sorted(known | set(started))) + "\n")


def _leave_slurm() -> list[str]:
    """Drop this process's lease; the last test session to leave stops what test sessions started."""
    global _slurm_lease
    lease, _slurm_lease = _slurm_lease, None
    if lease is None:
        return []
    with _sessions_lock():
        lease.unlink(missing_ok=True)
        others = []
        for other in (lease.parent.iterdir() if lease.parent.is_dir() else []):
            try:
                ident = other.read_text().strip()
            except OSError:
                continue
            pid = ident.split(":")[0]
            if pid.isdigit() and _identity(int(pid)) == ident:
                others.append(other)
            else:
                other.unlink(missing_ok=True)  # a session that died without leaving
        if others:
            return []  # the last one to leave stops the cluster
        marker = _slurm_dir() / _STARTED_MARKER
        try:
            started = set(marker.read_text().split())
        except OSError:
            return []  # no test session started it: not ours to stop
        stopped = []
        if "slurm" in started:
            _run_script("slurm.sh", ["stop"], _SLURM_TIMEOUT)
            stopped.append("slurmctld and slurmd")
        if "munge" in started:
            _run_script("slurm.sh", ["stop-munge"], _SLURM_TIMEOUT)
            stopped.append("munged")
        marker.unlink(missing_ok=True)
        return stopped


def stop_started_services() -> list[str]:
    """Stop what this process started: its sshd instances (their directory too, when it was made
    for them), and the Slurm daemons and munged if a test session started them and no other live
    session uses them. Returns what was stopped; a failure to stop one does not keep the others."""
    global _private_sshd_dir
    stopped: list[str] = []
    for name, base in list(_STARTED_SSHD.items()):
        try:
            _run_script("sshd.sh", ["stop", name], _SSHD_TIMEOUT, env=dict(os.environ, HSM_SSHD_DIR=str(base)))
            stopped.append(f"sshd {name}")
        except ServiceUnavailable:
            pass
    _STARTED_SSHD.clear()
    if _private_sshd_dir is not None:
        shutil.rmtree(_private_sshd_dir, ignore_errors=True)
        if os.environ.get("HSM_SSHD_DIR") == str(_private_sshd_dir):
            del os.environ["HSM_SSHD_DIR"]
        _private_sshd_dir = None
    try:
        stopped += _leave_slurm()
    except (OSError, ServiceUnavailable):
        pass
    return stopped
