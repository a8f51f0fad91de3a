"""Chaos over SSH (a real sshd on 127.0.0.1, our own instance "hsm-chaos"): the host's sshd stopped
and restarted mid-sweep, and the remote task runner SIGKILLed."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
import yaml

from chaos_support import (  # noqa: F401 - chaos is a fixture
    Chaos,
    assert_clean_exit,
    assert_exactly_once,
    chaos,
    cmdline,
    completed_ids,
    hsm,
    hsm_popen,
    output_of,
    process_of,
    read_state,
    same_process,
    states,
    stop,
    wait_until,
    write_chaos_project,
)
from hsm_core.testing.services import ServiceUnavailable, LocalSshd, require_service, start_sshd

pytest.importorskip("hsm_plugin_ssh", reason="hsm-plugin-ssh is not installed")

SSHD_NAME = "hsm-chaos"
REMOTE = "chaos"


@pytest.fixture(scope="module")
def host() -> LocalSshd:
    try:
        return start_sshd(SSHD_NAME)
    except ServiceUnavailable as exc:
        require_service("sshd", str(exc))


def _ssh_project(root: Path, host: LocalSshd, tmp: Path, parallel: int) -> tuple[Path, Path, dict[str, str]]:
    """A project with remote ``chaos`` (the project copied to another dir over ssh); returns
    (count file, remote project dir, environment for hsm)."""
    count = write_chaos_project(root)
    remote_dir = tmp / "remote" / root.name
    data = yaml.safe_load((root / "hsm_config.yaml").read_text())
    data["distributed"] = {"remotes": {REMOTE: {
        "host": host.host, "port": host.port, "user": host.user, "key": str(host.key_file),
        "known_hosts": str(host.known_hosts), "python_interpreter": sys.executable,
        "project_dir": str(remote_dir), "max_parallel_jobs": parallel, "poll_interval": 1,
    }}}
    (root / "hsm_config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    env = {"HOME": str(home), "SSH_AUTH_SOCK": ""}  # never the developer's ~/.ssh or agent
    synced = hsm(root, "remote", "sync", REMOTE, env=env)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    return count, remote_dir, env


def _sweep(root: Path, rng, n: int, sleep: tuple[float, float]) -> Path:
    values = [round(rng.uniform(*sleep), 2) for _ in range(n)]
    path = root / "sweeps" / "sweep.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"paired": [{"p": {"x": list(range(n)), "sleep": values}}]}))
    return path


def _complete(chaos: Chaos, root: Path, sweep_id: str, sources: str, env: dict[str, str]) -> None:
    for _ in range(2):
        done = hsm(root, "complete", sweep_id, "--sources", sources, env=env)
        chaos.count("hsm complete runs")
        assert_clean_exit(done, (0, 1))
        if done.returncode == 0 and all(s == "completed" for s in states(root / "sweeps" / "outputs" / sweep_id).values()):
            return
    raise AssertionError(f"hsm complete {sweep_id} did not finish the sweep:\n{done.stdout}\n{done.stderr}")


def test_sshd_stopped_and_restarted_mid_sweep(chaos: Chaos, host: LocalSshd, tmp_path: Path) -> None:
    """The remote host's sshd goes down 1-2 times at a random moment, for a random 0.5-6 s (its
    connections cut; the detached remote runners keep going), with tasks on the remote alone or
    on the remote and local processes. The controller rides it out (or stops cleanly), `hsm
    complete` finishes, and every task runs to its end exactly once."""
    for r in range(chaos.rounds):
        with chaos.round(r) as rng:
            root = tmp_path / f"r{r}"
            count, remote_dir, env = _ssh_project(root, host, tmp_path, parallel=rng.choice([2, 3]))
            n = rng.randint(4, 8)
            cfg = _sweep(root, rng, n, (0.3, 1.5))
            sources = rng.choice([f"ssh:{REMOTE}", f"ssh:{REMOTE},local:1"])
            sweep_id = f"s{r}"
            proc = hsm_popen(root, "run", "--config", str(cfg), "--sweep-id", sweep_id, "--sources", sources, env=env)
            try:
                for _ in range(rng.randint(1, 2)):
                    try:
                        proc.wait(timeout=rng.uniform(0.5, 4.0))
                        break
                    except Exception:
                        pass
                    host.stop()
                    chaos.count("sshd outages")
                    down = rng.uniform(0.5, 6.0)
                    chaos.count("sshd seconds down", round(down))
                    time.sleep(down)
                    host.start()
                stop(proc, timeout=240)
            finally:
                host.start()
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            # 0: rode it out; 1: some task failed/lost; 2: all sources down, "hsm complete" next.
            assert_clean_exit(proc, (0, 1, 2))
            if proc.returncode:
                chaos.count(f"runs that exited {proc.returncode}")
            if not (root / "sweeps" / "outputs" / sweep_id / "sweep_metadata.yaml").exists():
                # The host went down while hsm was still looking at it: nothing was written, and
                # the one-line error says the connection was lost (not that Python is broken).
                text = output_of(proc)
                assert proc.returncode == 2 and "check the interpreter" not in text, text
                chaos.count("runs stopped before the sweep existed (host unreachable)")
                again = hsm(root, "run", "--config", str(cfg), "--sweep-id", sweep_id, "--sources", sources, env=env)
                assert_clean_exit(again, (0, 1))
            seen = completed_ids(root / "sweeps" / "outputs" / sweep_id)
            _complete(chaos, root, sweep_id, sources, env)
            assert_exactly_once(root / "sweeps" / "outputs" / sweep_id, count, n, seen)
            chaos.count("tasks", n)


def _remote_processes(remote_dir: Path, skip: set[str] = frozenset()) -> list[tuple[str, int, str]]:
    """("runner" | "wrapper", pid, task dir name) of every task process running under ``remote_dir``."""
    out = []
    tasks = remote_dir / "sweeps" / "outputs"
    for d in tasks.glob("*/tasks/task_*"):
        if d.name in skip:
            continue
        st = read_state(d)
        proc = process_of(st) if st and st.get("state") == "running" else None
        if proc and same_process(*proc) and "hsm-task" in cmdline(proc[0]):
            out.append(("wrapper", proc[0], d.name))
        for name in os.listdir("/proc"):
            if name.isdigit():
                args = cmdline(int(name))
                if "hsm_core.runner" in args and str(d) in args:
                    out.append(("runner", int(name), d.name))
    return out


def test_sigkill_of_the_remote_task_runner(chaos: Chaos, host: LocalSshd, tmp_path: Path) -> None:
    """On the remote, the task runner of 1-3 running tasks is SIGKILLed at a random moment: the
    Python runner (its command runs on and leaves its exit code: recorded as it ended) or the
    shell wrapper under it (the command is stopped with it: recorded lost). `hsm complete` finishes
    the sweep; no task runs to its end twice."""
    for r in range(chaos.rounds):
        with chaos.round(r) as rng:
            root = tmp_path / f"r{r}"
            count, remote_dir, env = _ssh_project(root, host, tmp_path, parallel=3)
            n = rng.randint(4, 7)
            cfg = _sweep(root, rng, n, (0.5, 1.5))
            sweep_id = f"t{r}"
            proc = hsm_popen(root, "run", "--config", str(cfg), "--sweep-id", sweep_id, "--sources", f"ssh:{REMOTE}", env=env)
            hit: set[str] = set()  # one kill per task: both runner processes of one task is another fault
            try:
                for _ in range(rng.randint(1, 2)):
                    found = wait_until(lambda: _remote_processes(remote_dir, hit) or proc.poll() is not None, 60,
                                       "a remote task")
                    if found is True:
                        break
                    time.sleep(rng.uniform(0.0, 0.5))
                    kind, pid, name = rng.choice(_remote_processes(remote_dir, hit) or [("none", 0, "")])
                    if pid:
                        try:
                            os.kill(pid, signal.SIGKILL)
                            hit.add(name)
                            chaos.count(f"remote {kind} SIGKILLs")
                        except ProcessLookupError:
                            pass
                stop(proc, timeout=240)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            assert_clean_exit(proc, (0, 1))
            seen = completed_ids(root / "sweeps" / "outputs" / sweep_id)
            _complete(chaos, root, sweep_id, f"ssh:{REMOTE}", env)
            assert_exactly_once(root / "sweeps" / "outputs" / sweep_id, count, n, seen)
            chaos.count("tasks", n)
