"""A second, throw-away local Slurm cluster WITH accounting: MariaDB + slurmdbd + slurmctld + slurmd.

The shared test cluster (:func:`hsm_core.testing.services.start_slurm`) has no accounting
(``AccountingStorageType=accounting_storage/none``: ``sacct`` fails), as many real sites; what
hsm reads from ``sacct`` when it exists (final states of jobs the queue forgot, elapsed time, peak
memory, CPU efficiency, nodes) is tested on this one::

    with accounting_cluster(tmp_path / "acct") as cluster:
        subprocess.run(["sbatch", ...], env=cluster.env)
        ...  # sacct answers

Everything lives in one directory (database, state, logs, pid files) and listens on free ports of
127.0.0.1, so it runs next to the shared cluster (whose munged it uses: that cluster is started
first) without touching it. Leaving the ``with`` stops every daemon it started, by pid. Start-up
takes a few seconds; it needs root (slurmdbd runs as SlurmUser root here) and the Debian packages
``slurmdbd`` and ``mariadb-server`` (``scripts/install-test-services.sh`` installs them), else
:class:`~hsm_core.testing.services.ServiceUnavailable`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

from hsm_core.testing.services import ServiceUnavailable, SlurmCluster, start_slurm

#: The node and cluster names of the accounting cluster (not the shared cluster's).
CLUSTER = "hsmacct"
NODE = "acctnode"
_DAEMONS = ("mariadbd", "slurmdbd", "slurmctld", "slurmd")


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _run(argv: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise ServiceUnavailable(f"{' '.join(argv)} did not finish in {timeout:.0f} s") from exc
    if proc.returncode != 0:
        raise ServiceUnavailable(f"{' '.join(argv)} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[:500]}")
    return proc


def _wait(what: str, check, timeout: float = 30.0, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    tail = ""
    if log is not None and log.is_file():
        tail = ": " + " | ".join(log.read_text(errors="replace").splitlines()[-5:])
    raise ServiceUnavailable(f"{what} did not come up in {timeout:.0f} s{tail}")


def _answers(argv: list[str], env: dict[str, str]) -> bool:
    try:
        return subprocess.run(argv, env=env, capture_output=True, timeout=10, stdin=subprocess.DEVNULL).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _write_configs(root: Path, ports: list[int]) -> Path:
    db_port, dbd_port, ctld_port, d_port = ports
    host = socket.gethostname()
    (root / "slurmdbd.conf").write_text("\n".join([
        "AuthType=auth/munge", "DbdHost=localhost", f"DbdPort={dbd_port}", "SlurmUser=root",
        "StorageType=accounting_storage/mysql", "StorageHost=127.0.0.1", f"StoragePort={db_port}",
        "StorageUser=root", "StorageLoc=slurm_acct_db", f"PidFile={root}/run/slurmdbd.pid",
        f"LogFile={root}/log/slurmdbd.log", "",
    ]))
    (root / "slurmdbd.conf").chmod(0o600)  # slurmdbd refuses a config others can read
    conf = root / "slurm.conf"
    conf.write_text("\n".join([
        f"ClusterName={CLUSTER}", f"SlurmctldHost={host}", f"SlurmctldPort={ctld_port}", f"SlurmdPort={d_port}",
        "AuthType=auth/munge", "CredType=cred/munge", "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core", "SchedulerType=sched/backfill",
        "SchedulerParameters=bf_interval=1,sched_min_interval=100000", "SlurmdParameters=config_overrides",
        "SlurmUser=root", "ReturnToService=2", "JobCompType=jobcomp/none", "MpiDefault=none",
        "AccountingStorageType=accounting_storage/slurmdbd", "AccountingStorageHost=localhost",
        f"AccountingStoragePort={dbd_port}",
        # Samples each step's memory and CPU every second: what sacct's MaxRSS and TotalCPU show.
        "JobAcctGatherType=jobacct_gather/linux", "JobAcctGatherFrequency=1",
        f"SlurmctldPidFile={root}/run/slurmctld.pid", f"SlurmdPidFile={root}/run/slurmd.pid",
        f"StateSaveLocation={root}/state", f"SlurmdSpoolDir={root}/spool",
        f"SlurmctldLogFile={root}/log/slurmctld.log", f"SlurmdLogFile={root}/log/slurmd.log",
        f"NodeName={NODE} NodeHostname={host} NodeAddr=127.0.0.1 CPUs=4 RealMemory=4000 State=UNKNOWN",
        f"PartitionName=debug Nodes={NODE} Default=YES MaxTime=INFINITE State=UP", "",
    ]))
    return conf


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _stop(root: Path, started: dict[str, int]) -> None:
    """SIGTERM every daemon this cluster started (by pid), then SIGKILL what is left after 10 s."""
    for name in reversed(_DAEMONS):
        pid = started.get(name)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for name in reversed(_DAEMONS):
        pid = started.get(name)
        while pid and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def accounting_cluster(root: Path) -> Iterator[SlurmCluster]:
    """Start the accounting cluster in ``root`` (a fresh directory), yield it, stop it."""
    if os.geteuid() != 0:
        raise ServiceUnavailable("the accounting cluster runs slurmdbd as root: run the tests as root")
    missing = [b for b in ("mariadbd", "mariadb-install-db", "slurmdbd", "slurmctld", "slurmd", "sacctmgr", "sacct")
               if shutil.which(b) is None and not Path(f"/usr/sbin/{b}").exists()]
    if missing:
        raise ServiceUnavailable(f"not installed: {', '.join(missing)} (apt-get install slurmdbd mariadb-server)")
    start_slurm()  # the shared cluster's munged authenticates this one too
    root = Path(root)
    for sub in ("db", "run", "log", "state", "spool"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    ports = _free_ports(4)
    conf = _write_configs(root, ports)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    started: dict[str, int] = {}
    sbin = lambda b: shutil.which(b) or f"/usr/sbin/{b}"  # noqa: E731
    try:
        _run([sbin("mariadb-install-db"), f"--datadir={root}/db", "--user=root", "--auth-root-authentication-method=normal",
              "--skip-test-db"], env)
        db = subprocess.Popen([sbin("mariadbd"), "--no-defaults", f"--datadir={root}/db", f"--socket={root}/run/db.sock",
                               f"--port={ports[0]}", "--bind-address=127.0.0.1", "--user=root",
                               f"--pid-file={root}/run/db.pid", f"--log-error={root}/log/mariadb.log",
                               "--innodb-buffer-pool-size=32M"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
        started["mariadbd"] = db.pid
        _wait("MariaDB", lambda: (root / "run" / "db.sock").exists(), log=root / "log" / "mariadb.log")
        _run([sbin("slurmdbd")], env)
        _wait("slurmdbd", lambda: _pid(root / "run" / "slurmdbd.pid") is not None, log=root / "log" / "slurmdbd.log")
        started["slurmdbd"] = _pid(root / "run" / "slurmdbd.pid") or 0
        _wait("slurmdbd answering", lambda: _answers(["sacctmgr", "-n", "list", "cluster"], env), log=root / "log" / "slurmdbd.log")
        _run(["sacctmgr", "-i", "add", "cluster", CLUSTER], env)
        _run([sbin("slurmctld")], env)
        started["slurmctld"] = _pid(root / "run" / "slurmctld.pid") or 0
        _run([sbin("slurmd"), "-N", NODE], env)
        started["slurmd"] = _pid(root / "run" / "slurmd.pid") or 0
        _wait("the accounting cluster's node", lambda: "idle" in subprocess.run(
            ["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True).stdout, log=root / "log" / "slurmctld.log")
        started.update({k: v for k, v in ((n, _pid(root / "run" / f"{n}.pid")) for n in ("slurmctld", "slurmd")) if v})
        yield SlurmCluster(conf=conf, state_dir=root, env=env)
    finally:
        _stop(root, started)
