"""A real sshd started without the SFTP subsystem (some servers run so): hsm does not need SFTP
when rsync is there on both sides, and says exactly what is missing when it would need it."""

from __future__ import annotations

import pytest

from hsm_core.testing.services import ServiceUnavailable, require_service, start_sshd
from ssh_support import Project, remote_entry

pytestmark = pytest.mark.sshd

NAME = "hsm-plugin-ssh-nosftp"


@pytest.fixture
def nosftp():
    try:
        return start_sshd(NAME, sftp=False)
    except ServiceUnavailable as exc:
        require_service("sshd", str(exc))


def test_the_server_really_has_no_sftp(nosftp, tmp_path) -> None:
    import subprocess

    res = subprocess.run(["sftp", "-b", "-", "-i", str(nosftp.key_file), "-P", str(nosftp.port),
                          "-o", f"UserKnownHostsFile={nosftp.known_hosts}", "-o", "BatchMode=yes",
                          "-o", "IdentitiesOnly=yes", nosftp.destination],
                         input="pwd\n", capture_output=True, text=True, timeout=60)
    assert res.returncode != 0, res.stdout + res.stderr
    ok = subprocess.run([*nosftp.ssh_argv(), nosftp.destination, "true"], capture_output=True, timeout=60)
    assert ok.returncode == 0, ok.stderr


def test_a_sweep_runs_on_a_server_without_sftp(project: Project, nosftp) -> None:
    project.set_remote("nosftp", remote_entry(nosftp, project.remote_dir, max_parallel_jobs=2))
    synced = project.hsm("remote", "sync", "nosftp")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    tested = project.hsm("remote", "test", "nosftp")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    project.write_sweep({"grid": {"x": [1, 2, 3]}})
    run = project.hsm("run", "--config", "sweeps/sweep.yaml", "--sources", "ssh:nosftp", "--sweep-id", "n1")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Done: 3 completed" in run.stdout
    statuses = project.statuses(project.outputs / "n1")
    assert all(s["state"] == "completed" and s["source"] == "nosftp" for s in statuses.values()), statuses
    # Copied back, as from any host.
    assert all((project.outputs / "n1" / "tasks" / name / "stdout.log").is_file() for name in statuses)


def test_without_sftp_and_without_rsync_the_error_says_what_is_missing(project: Project, nosftp) -> None:
    project.set_remote("nosftp", remote_entry(nosftp, project.remote_dir, transfer="sftp"))
    synced = project.hsm("remote", "sync", "nosftp")
    assert synced.returncode == 2, synced.stdout + synced.stderr
    err = synced.stderr
    assert "Traceback" not in err and "Channel closed" not in err, err
    assert "has no SFTP subsystem" in err and "Subsystem sftp" in err and "transfer: sftp is set" in err, err
    assert len(err.strip().splitlines()) == 1, err
