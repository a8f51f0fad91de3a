"""The real test services start and do what hsm's integration tests rely on.

Slurm (sbatch arrays, MaxArraySize reconfiguration, requeue), the Torque front-end (qsub -t), and
sshd instances (ssh, rsync, a host going down and coming back on the same port). Each test skips
when its service cannot be started, and fails instead under CI=true (DESIGN.md section 6).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from hsm_core.testing.services import (
    ServiceUnavailable,
    SlurmCluster,
    LocalSshd,
    require_service,
    start_slurm,
    start_sshd,
)

SSHD_NAME = "test-services"


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll *predicate* until it holds; fail with *what* after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def slurm_or_skip(**settings: int) -> SlurmCluster:
    try:
        return start_slurm(**settings)
    except ServiceUnavailable as exc:
        require_service("slurm", str(exc))


@pytest.fixture
def slurm() -> SlurmCluster:
    """The local cluster with the default configuration (restores it if a test changed it)."""
    return slurm_or_skip()


@pytest.fixture(scope="module")
def ssh_host() -> Iterator[LocalSshd]:
    try:
        host = start_sshd(SSHD_NAME)
    except ServiceUnavailable as exc:
        require_service("sshd", str(exc))
    yield host
    host.stop()


def write_script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)
    return path


@pytest.mark.slurm
def test_sbatch_array_runs_every_task(slurm: SlurmCluster, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "task.sh",
        'echo "$SLURM_ARRAY_JOB_ID $SLURM_ARRAY_TASK_ID" > "$OUT_DIR/done.$SLURM_ARRAY_TASK_ID"\n',
    )
    env_args = f"--export=ALL,OUT_DIR={tmp_path}"
    job_id = slurm.run(
        ["sbatch", "--parsable", "--array=0-3", env_args, "-o", str(tmp_path / "o_%a"), str(script)]
    ).stdout.strip()
    assert job_id.isdigit(), job_id

    done = [tmp_path / f"done.{i}" for i in range(4)]
    wait_for(lambda: all(f.exists() and f.read_text() for f in done), 30, "4 array tasks")
    assert [f.read_text().split() for f in done] == [[job_id, str(i)] for i in range(4)]


@pytest.mark.slurm
def test_max_array_size_can_be_changed_and_restored(tmp_path: Path) -> None:
    cluster = slurm_or_skip(max_array_size=50)
    config = cluster.run(["scontrol", "show", "config"]).stdout
    assert any(line.split() == ["MaxArraySize", "=", "50"] for line in config.splitlines())

    too_big = cluster.run(["sbatch", "--array=0-50", "--hold", "--wrap=true"], check=False)
    assert too_big.returncode != 0
    assert "Invalid job array specification" in too_big.stderr
    fits = cluster.run(
        ["sbatch", "--parsable", "--array=0-49", "--hold", "-o", "/dev/null", "--wrap=true"]
    )
    cluster.run(["scancel", fits.stdout.strip()])

    cluster = slurm_or_skip()
    config = cluster.run(["scontrol", "show", "config"]).stdout
    assert any(line.split() == ["MaxArraySize", "=", "100001"] for line in config.splitlines())


@pytest.mark.slurm
@pytest.mark.slow
def test_requeued_array_task_runs_again_with_restart_count(
    slurm: SlurmCluster, tmp_path: Path
) -> None:
    # The first run of task 1 waits to be requeued; its second run and task 0 finish at once. The
    # cluster's cred_expire of 10 s makes the requeued task wait 11 s (Slurm's default: 121 s).
    script = write_script(
        tmp_path / "task.sh",
        'echo "${SLURM_RESTART_COUNT:-none}" >> "$OUT_DIR/runs.$SLURM_ARRAY_TASK_ID"\n'
        'if [ "$SLURM_ARRAY_TASK_ID" = 1 ] && [ -z "${SLURM_RESTART_COUNT:-}" ]; then\n'
        "  sleep 60\n"
        "fi\n",
    )
    job_id = slurm.run(
        ["sbatch", "--parsable", "--array=0-1", f"--export=ALL,OUT_DIR={tmp_path}",
         "-o", "/dev/null", str(script)]
    ).stdout.strip()  # fmt: skip
    try:
        runs = tmp_path / "runs.1"
        wait_for(runs.exists, 20, "task 1 to start")
        slurm.run(["scontrol", "requeue", f"{job_id}_1"])
        wait_for(lambda: runs.read_text().split() == ["none", "1"], 30, "task 1 to run again")
        # Same array job, same task id; only task 1 ran twice.
        assert (tmp_path / "runs.0").read_text().split() == ["none"]
    finally:
        slurm.run(["scancel", job_id], check=False)


@pytest.mark.slurm
def test_torque_qsub_array(slurm: SlurmCluster, tmp_path: Path) -> None:
    if shutil.which("qsub") is None:
        require_service("pbs", "qsub is not on PATH (package slurm-wlm-torque)")
    # The Slurm front-end sets only SLURM_ARRAY_TASK_ID in array tasks; real PBS Pro / Torque set
    # PBS_ARRAY_INDEX / PBS_ARRAYID. A PBS job script reads the first one that is set.
    script = write_script(
        tmp_path / "pbs_task.sh",
        "#PBS -N hsm-torque-test\n"
        "#PBS -l walltime=00:05:00\n"
        'i="${PBS_ARRAY_INDEX:-${PBS_ARRAYID:-$SLURM_ARRAY_TASK_ID}}"\n'
        f'echo "$i" > "{tmp_path}/pbs.$i"\n',
    )
    # qsub writes NAME.oJOB.TASK / NAME.eJOB.TASK into its working directory.
    job_id = subprocess.run(
        ["qsub", "-t", "0-3", str(script)],
        env=slurm.env, cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert job_id.isdigit(), job_id

    done = [tmp_path / f"pbs.{i}" for i in range(4)]
    wait_for(lambda: all(f.exists() and f.read_text() for f in done), 30, "4 qsub array tasks")
    assert [f.read_text().strip() for f in done] == ["0", "1", "2", "3"]
    qstat = slurm.run(["qstat", job_id]).stdout
    assert "hsm-torque-test" in qstat


@pytest.mark.sshd
def test_ssh_runs_a_command(ssh_host: LocalSshd) -> None:
    result = subprocess.run(
        [*ssh_host.ssh_argv(), ssh_host.destination, "echo ok"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"


@pytest.mark.sshd
def test_sshd_goes_down_and_comes_back_on_the_same_port(ssh_host: LocalSshd) -> None:
    argv = [*ssh_host.ssh_argv(), ssh_host.destination, "echo ok"]
    port = ssh_host.port

    ssh_host.stop()
    down = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert down.returncode == 255  # ssh's own failure code: connection refused
    assert "refused" in down.stderr

    ssh_host.start()
    assert ssh_host.port == port
    up = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert up.returncode == 0, up.stderr  # same host key: known_hosts still matches
    assert up.stdout == "ok\n"


@pytest.mark.sshd
def test_rsync_over_sshd(ssh_host: LocalSshd, tmp_path: Path) -> None:
    if shutil.which("rsync") is None:
        require_service("rsync", "rsync is not on PATH")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "result.txt").write_text("42\n")
    dst = tmp_path / "dst"

    subprocess.run(
        ["rsync", "-a", "-e", ssh_host.rsh(), f"{src}/", f"{ssh_host.destination}:{dst}/"],
        check=True, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert (dst / "sub" / "result.txt").read_text() == "42\n"


# -- what a test session started, it stops ---------------------------------------------------------


@pytest.mark.sshd
def test_a_session_stops_the_sshd_instances_it_started_and_only_those(tmp_path: Path) -> None:
    """A pytest session in a subprocess starts an instance and reuses one that already ran: at
    its end the first is stopped (its private directory removed), the second still runs."""
    import os
    import sys
    import textwrap

    shared = tmp_path / "shared-sshd"
    env = dict(os.environ, HSM_SSHD_DIR=str(shared))
    try:
        before = start_sshd_in(shared, "already-running")
        (tmp_path / "conftest.py").write_text('pytest_plugins = ["hsm_core.testing.pytest_plugin"]\n')
        test = tmp_path / "test_inner.py"
        test.write_text(textwrap.dedent(f"""
            import os
            from hsm_core.testing.services import start_sshd

            def test_start():
                mine = start_sshd("started-here")
                again = start_sshd("already-running")
                assert again.port == {before.port}
                open({str(tmp_path / "mine")!r}, "w").write(str(mine.known_hosts.parent))
        """))
        res = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(test)],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "stopped the test services this session started: sshd started-here" in res.stdout, res.stdout
        status = subprocess.run(["bash", str(Path(__file__).parents[2] / "scripts" / "sshd.sh"), "status", "started-here"],
                                env=env, capture_output=True, text=True)
        assert status.returncode == 3, status.stdout  # stopped
        still = subprocess.run(["bash", str(Path(__file__).parents[2] / "scripts" / "sshd.sh"), "status", "already-running"],
                               env=env, capture_output=True, text=True)
        assert still.returncode == 0, still.stdout  # not this session's to stop
    finally:
        subprocess.run(["bash", str(Path(__file__).parents[2] / "scripts" / "sshd.sh"), "stop", "already-running"],
                       env=env, capture_output=True)
        subprocess.run(["bash", str(Path(__file__).parents[2] / "scripts" / "sshd.sh"), "stop", "started-here"],
                       env=env, capture_output=True)


def start_sshd_in(base: Path, name: str) -> LocalSshd:
    import os

    old = os.environ.get("HSM_SSHD_DIR")
    os.environ["HSM_SSHD_DIR"] = str(base)
    try:
        return start_sshd(name)
    except ServiceUnavailable as exc:
        require_service("sshd", str(exc))
    finally:
        if old is None:
            del os.environ["HSM_SSHD_DIR"]
        else:
            os.environ["HSM_SSHD_DIR"] = old


def _fake_daemon(conf: Path, name: str) -> subprocess.Popen:
    """A process whose command line is ``NAME ... -f CONF ...``, as slurm.sh recognises its daemons."""
    import sys

    code = "import time; time.sleep(600)"
    proc = subprocess.Popen(["bash", "-c", f'exec -a {name} "$0" -c "{code}" -f {conf} x', sys.executable])
    (conf.parent / f"{name}.pid").write_text(f"{proc.pid}\n")
    return proc


def test_the_last_session_out_stops_the_slurm_daemons_a_test_session_started(tmp_path: Path, monkeypatch) -> None:
    """The lease logic, on a Slurm directory of its own (HSM_SLURM_DIR) with stand-in daemons, so
    the machine's real cluster is never touched: a cluster found stopped and started by this
    session is stopped when the session ends, unless another live session still uses it; a
    cluster this session found running is left alone."""
    from hsm_core.testing import services

    slurm_dir = tmp_path / "slurm"
    slurm_dir.mkdir()
    conf = slurm_dir / "slurm.conf"
    conf.write_text("# stand-in\n")
    monkeypatch.setenv("HSM_SLURM_DIR", str(slurm_dir))
    # This session's own lease on the real cluster (if a test used it) is kept aside.
    for name in ("_slurm_lease", "_slurm_was_running", "_munge_was_running"):
        monkeypatch.setattr(services, name, None if name == "_slurm_lease" else True)
    daemons = []
    try:
        # Found stopped (slurm.sh status fails here), "started" by this session, another session
        # still in: nothing is stopped; that one, last out, stops it.
        services._join_slurm_users()
        assert services._slurm_was_running is False
        services._munge_was_running = True  # munged is not what this test is about
        daemons = [_fake_daemon(conf, "slurmctld"), _fake_daemon(conf, "slurmd")]
        services._note_slurm_started()
        other = subprocess.Popen(["sleep", "600"])
        try:
            lease = slurm_dir / services._LEASES / f"{other.pid}-x"
            lease.write_text(services._identity(other.pid) + "\n")
            assert services._leave_slurm() == []
            assert all(d.poll() is None for d in daemons)
        finally:
            other.kill()
            other.wait()
        services._join_slurm_users()  # the other session, leaving last (its peer is gone)
        assert services._leave_slurm() == ["slurmctld and slurmd"]
        for d in daemons:
            d.wait(timeout=20)  # stopped by slurm.sh stop
        assert not (slurm_dir / services._STARTED_MARKER).exists()

        # Found running (no marker: no test session started it): left alone.
        daemons = [_fake_daemon(conf, "slurmctld"), _fake_daemon(conf, "slurmd")]
        services._join_slurm_users()
        services._slurm_was_running = services._munge_was_running = True
        services._note_slurm_started()
        assert services._leave_slurm() == []
        assert all(d.poll() is None for d in daemons)
    finally:
        for d in daemons:
            d.kill()
            d.wait()
