"""Daemons that leave the task's session: stopped with the task, and never left running beside a
new attempt (docs/reliability.md, "Stops").

The task script (:data:`SCRIPT`) starts, on its first execution only, a daemon that appends a
``tick`` line to the task's own log every 50 ms until it is killed (a data-loader server, a
logging service): either ``nohup setsid python ... &`` (``escape=setsid``) or a double fork with
``setsid`` in between (``escape=double``). Neither is in the process group or session of hsm's
wrapper any more. A later execution resumes without starting it again, so whatever ticks after
that execution started is a copy of the task running beside another.

Everything is judged from the log and from /proc (pid + start ticks), never from hsm's records:
the daemon ticks no more once ``hsm run`` has exited after Ctrl-C / ``hsm cancel``, and after a
SIGKILL of the controller and the script, ``hsm complete`` starts the second execution only once
the daemon stopped ticking. Unrelated processes of the same user (another ``HSM_TASK_DIR``, none
at all) live on through all of it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from chaos_support import output_of, read_state  # noqa: E402
from stop_observer import FAST_WORKERS, Observer, alive, start_ticks, wait_for, write_project, write_sweep  # noqa: E402

#: Seconds a command may take beyond what it must wait for (start-up on a loaded 2-core machine).
SLACK = 10.0

SCRIPT = r'''
import os, subprocess, sys, time
LOG_DIR = {log_dir!r}
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
key = "d" + args["x"]
path = os.path.join(LOG_DIR, key + ".log")


def log(*words):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (" ".join(str(w) for w in words) + "\n").encode())
    finally:
        os.close(fd)


def serve():
    """The daemon: say who it is (pid, session, start ticks), then tick until killed."""
    me = os.getpid()
    with open("/proc/%d/stat" % me) as fh:
        ticks = fh.read().rsplit(")", 1)[1].split()[19]
    log("daemon", key, me, os.getsid(0), ticks)
    for _ in range(2400):  # 120 s at most: a leak outlives no test run by much
        log("tick", key, me, repr(time.monotonic()))
        time.sleep(0.05)
    os._exit(0)


if "--serve" in sys.argv:
    serve()

me = os.getpid()
with open(path, "a+") as fh:
    fh.seek(0)
    earlier = any(line.startswith("start ") for line in fh)
log("start", key, me, repr(time.monotonic()), os.getppid())
if not earlier:
    if args["escape"] == "setsid":
        devnull = subprocess.DEVNULL
        subprocess.Popen(["nohup", "setsid", sys.executable, __file__, "--serve", "x=" + args["x"]],
                         stdin=devnull, stdout=devnull, stderr=devnull)
    else:
        child = os.fork()
        if child == 0:
            os.setsid()
            if os.fork() == 0:
                serve()
            os._exit(0)
        os.waitpid(child, 0)
time.sleep(float(args["resume"] if earlier else args["run"]))
log("end", key, me, repr(time.monotonic()))
'''


def setup(tmp_path: Path, escapes: list[str], *, grace: float = 2.0, name: str | None = None) -> tuple[Observer, Path]:
    obs = Observer(tmp_path / "p")
    write_project(obs.root, parallel=len(escapes), grace=grace)
    (obs.root / "train.py").write_text(SCRIPT.format(log_dir=str(obs.root / "observed")))
    plans = [{"x": x, "escape": how, "run": 60, "resume": 0.3} for x, how in enumerate(escapes)]
    return obs, write_sweep(obs.root, plans, name=name)


class Log:
    """One task's log: its executions, its daemon, the daemon's ticks (in file order)."""

    def __init__(self, path: Path) -> None:
        lines = [line.split() for line in path.read_text().splitlines()]
        self.lines = [w for w in lines if w]
        self.starts = [(i, int(w[2]), float(w[3]), int(w[4])) for i, w in enumerate(self.lines) if w[0] == "start"]
        self.ends = [(i, int(w[2]), float(w[3])) for i, w in enumerate(self.lines) if w[0] == "end"]
        found = [w for w in self.lines if w[0] == "daemon"]
        self.daemon = (int(found[0][2]), int(found[0][3]), found[0][4]) if found else None  # pid, session, ticks
        self.ticks = [(i, float(w[3])) for i, w in enumerate(self.lines) if w[0] == "tick"]


def log_of(obs: Observer, key: str) -> Log:
    path = obs.root / "observed" / f"{key}.log"
    return Log(path) if path.exists() else None  # type: ignore[return-value]


def daemons_up(obs: Observer, keys: list[str]) -> dict[str, Log]:
    """Wait until every task's daemon ticks; check that it really left the wrapper's session."""
    def ready() -> dict[str, Log] | None:
        logs = {k: log_of(obs, k) for k in keys}
        return logs if all(lg and lg.daemon and lg.ticks for lg in logs.values()) else None

    logs = wait_for(ready, 30, "the daemons to tick")
    for key, lg in logs.items():
        pid, session, _ = lg.daemon
        wrapper = lg.starts[0][3]
        assert session != os.getsid(wrapper), f"{key}: its daemon {pid} is still in the wrapper's session"
    return logs


def strangers(obs: Observer, task_dir: Path) -> list[tuple[str, subprocess.Popen, str | None]]:
    """Same-user processes that are not the task's: another task dir (a sibling, the sweep dir
    above it) in HSM_TASK_DIR, and none at all; each in a session of its own, like the daemons."""
    base = {k: v for k, v in os.environ.items() if k != "HSM_TASK_DIR"}
    out = []
    for what, value in (("a sibling task dir", f"{task_dir}-other"), ("the sweep dir", str(task_dir.parent.parent)),
                        ("no HSM_TASK_DIR", None)):
        env = dict(base, HSM_TASK_DIR=value) if value else base
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], env=env, start_new_session=True)
        obs.strangers.append(p)
        out.append((what, p, None))
    wait_for(lambda: all(start_ticks(p.pid) for _, p, _ in out), 10, "the strangers to start")
    return [(what, p, start_ticks(p.pid)) for what, p, _ in out]


def check_strangers_alive(found: list[tuple[str, subprocess.Popen, str | None]], when: str) -> None:
    for what, p, ticks in found:
        assert alive(p.pid, ticks), f"{when}: hsm killed an unrelated process of the same user ({what})"


def last_tick(obs: Observer, key: str) -> float:
    return log_of(obs, key).ticks[-1][1]


def task_dir_of(obs: Observer, key: str, sweep_id: str = "s") -> Path:
    return obs.task_dirs(obs.root / "sweeps" / "outputs" / sweep_id)["t" + key[1:]]


def no_overlap(obs: Observer, key: str) -> Log:
    """The second execution started only after the first one's daemon ticked for the last time,
    by the clock and by the order of the lines; it ran once, to its end."""
    lg = log_of(obs, key)
    assert len(lg.starts) == 2, f"{key}: {len(lg.starts)} executions, expected 2: {lg.lines}"
    second_line, _, second_at, _ = lg.starts[1]
    late = [(i, t) for i, t in lg.ticks if i > second_line or t >= second_at]
    assert not late, (f"{key}: the first execution's daemon ticked {len(late)} times after the second execution "
                      f"started ({late[-1][1] - second_at:.2f}s after it): two copies of the task ran side by side")
    assert len(lg.ends) == 1 and lg.ends[0][1] == lg.starts[1][1], f"{key}: ends {lg.ends}"
    return lg


def dead(lg: Log) -> bool:
    pid, _, ticks = lg.daemon
    return not alive(pid, ticks)


def test_ctrl_c_stops_daemons_that_left_the_session_and_nothing_else(tmp_path: Path) -> None:
    obs, cfg = setup(tmp_path, ["setsid", "double"])
    with obs:
        proc = obs.start("run", "--config", str(cfg), "--sweep-id", "s")
        logs = daemons_up(obs, ["d0", "d1"])
        others = strangers(obs, task_dir_of(obs, "d0"))
        proc.send_signal(signal.SIGINT)
        exited = obs.wait_exit(proc, 2 + SLACK, "after Ctrl-C")
        assert proc.returncode == 130 and "Traceback" not in output_of(proc), output_of(proc)
        for key, lg in logs.items():
            assert dead(lg), f"{key}: its daemon {lg.daemon[0]} ({key}) outlived Ctrl-C of hsm run"
            assert last_tick(obs, key) <= exited, f"{key}: its daemon ticked after hsm run exited"
        check_strangers_alive(others, "Ctrl-C")
        # The next run resumes each task once, with nothing of the first execution beside it.
        done = obs.run("complete", "s", bound=30 + SLACK, why="resuming")
        assert done.returncode == 0, output_of(done)
        for key in logs:
            no_overlap(obs, key)
        check_strangers_alive(others, "hsm complete")


def test_hsm_cancel_from_a_second_terminal_stops_the_daemons(tmp_path: Path) -> None:
    obs, cfg = setup(tmp_path, ["setsid", "double"])
    with obs:
        proc = obs.start("run", "--config", str(cfg), "--sweep-id", "s")
        logs = daemons_up(obs, ["d0", "d1"])
        others = strangers(obs, task_dir_of(obs, "d1"))
        cancel = obs.run("cancel", "s", bound=2 + SLACK, why="from a second terminal")
        assert cancel.returncode == 0, output_of(cancel)
        obs.wait_exit(proc, 2 + SLACK, "after hsm cancel")
        for key, lg in logs.items():
            wait_for(lambda lg=lg: dead(lg), 2, f"{key}'s daemon to be stopped by hsm cancel")
            assert (read_state(task_dir_of(obs, key)) or {}).get("state") == "cancelled"
        check_strangers_alive(others, "hsm cancel")


def test_hsm_complete_after_a_sigkill_of_everything_but_the_daemons_never_runs_beside_them(tmp_path: Path) -> None:
    """The controller, the wrappers and the scripts are SIGKILLed (``kill -9`` of hsm and the
    training processes); only the daemons live. ``hsm complete`` stops them before it runs each
    task again, and the log shows no tick once the second execution has started."""
    obs, cfg = setup(tmp_path, ["setsid", "double"])
    with obs:
        proc = obs.start("run", "--config", str(cfg), "--sweep-id", "s")
        logs = daemons_up(obs, ["d0", "d1"])
        others = strangers(obs, task_dir_of(obs, "d0"))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        for lg in logs.values():
            _, script, _, wrapper = lg.starts[0]
            for pid in (wrapper, script):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        wait_for(lambda: not any(start_ticks(lg.starts[0][1]) for lg in logs.values()), 10, "the scripts to die")
        assert not any(dead(lg) for lg in logs.values()), "the daemons died with their scripts: nothing to test"
        done = obs.run("complete", "s", bound=30 + SLACK, why="after the SIGKILL")
        assert done.returncode == 0, output_of(done)
        for key, lg in logs.items():
            no_overlap(obs, key)
            assert dead(lg), f"{key}: the first execution's daemon still runs after hsm complete"
            assert (read_state(task_dir_of(obs, key)) or {}).get("state") == "completed"
        check_strangers_alive(others, "hsm complete after the SIGKILL")


def test_a_preempted_worker_stops_the_daemon_and_the_next_worker_runs_the_task_alone(tmp_path: Path) -> None:
    """A worker SIGTERMed by its scheduler (a preemption) forwards the signal to its task's
    session; the daemon that left it is stopped too before the worker exits, so the next worker's
    execution never runs beside it."""
    obs, cfg = setup(tmp_path, ["setsid"], name="pre")
    with obs:
        w1 = obs.start("worker", "--sweep", str(cfg), env=FAST_WORKERS)
        logs = daemons_up(obs, ["d0"])
        others = strangers(obs, task_dir_of(obs, "d0", "pre"))
        w1.send_signal(signal.SIGTERM)
        exited = obs.wait_exit(w1, 2 + SLACK, "a worker after SIGTERM")
        assert w1.returncode == 143, output_of(w1)
        assert dead(logs["d0"]), "the daemon outlived its preempted worker"
        assert last_tick(obs, "d0") <= exited, "the daemon ticked after its worker exited"
        w2 = obs.run("worker", "--sweep", str(cfg), bound=30 + SLACK, why="the next worker", env=FAST_WORKERS)
        assert w2.returncode == 0, output_of(w2)
        no_overlap(obs, "d0")
        assert (read_state(task_dir_of(obs, "d0", "pre")) or {}).get("state") == "completed"
        check_strangers_alive(others, "the workers")


def test_the_job_runner_stops_the_daemon_when_its_scheduler_stops_the_job(tmp_path: Path) -> None:
    """``hsm-task`` (the runner of array jobs and remote tasks) SIGTERMed by a scancel or a
    preemption forwards the stop to the daemon that left the task's session as well, and kills it
    once the command ended: a daemon reparented to init escapes a scheduler without cgroups."""
    import json

    task = tmp_path / "tasks" / "task_000"
    task.mkdir(parents=True)
    log = tmp_path / "d0.log"
    code = SCRIPT.format(log_dir=str(tmp_path))
    (tmp_path / "train.py").write_text(code)
    argv = [sys.executable, str(tmp_path / "train.py"), "x=0", "escape=double", "run=60", "resume=0.3"]
    (task / "command.json").write_text(json.dumps({"argv": argv, "task_id": "t0", "index": 0, "cwd": str(tmp_path)}))
    runner = subprocess.Popen([sys.executable, "-m", "hsm_core.runner", str(task), "--source", "local"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def up() -> Log | None:
            lg = Log(log) if log.exists() else None
            return lg if lg and lg.daemon and lg.ticks else None

        lg = wait_for(up, 30, "the daemon to tick")
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=30)
        exited = time.monotonic()
        wait_for(lambda: dead(lg), 3, "the daemon to be stopped with the job")
        assert Log(log).ticks[-1][1] <= exited, "the daemon ticked after the job's runner exited"
        assert (read_state(task) or {}).get("state") in ("preempted", "interrupted", "failed"), read_state(task)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        for line in log.read_text().splitlines() if log.exists() else []:
            w = line.split()
            if w[0] == "daemon" and alive(int(w[2]), w[4]):
                os.kill(int(w[2]), signal.SIGKILL)

