"""A task that completes on its own: what it left running ends with it, as on Slurm, where the
job's cgroup is killed at the job's end (docs/reliability.md, "What a task leaves running when it
ends"; hsm_core/ended_task_processes.py).

The script of tests/test_escaped_daemons.py starts a daemon (``nohup setsid`` or a double fork)
that ticks into the task's own log every 50 ms, then ends on its own after ``run`` seconds. Judged
from that log and /proc: no tick once ``hsm run`` has exited, unrelated processes of the same user
(a sibling task dir, the sweep dir, none) live on, and the task's stderr.log says what was stopped.
"""

from __future__ import annotations

from pathlib import Path

from chaos_support import output_of  # noqa: E402
from stop_observer import Observer, write_project, write_sweep  # noqa: E402
from test_escaped_daemons import SCRIPT, SLACK, check_strangers_alive, daemons_up, dead, last_tick, strangers, task_dir_of


def _setup(tmp_path: Path, escapes: list[str], run: float) -> tuple[Observer, Path]:
    obs = Observer(tmp_path / "p")
    write_project(obs.root, parallel=len(escapes), grace=2.0)
    (obs.root / "train.py").write_text(SCRIPT.format(log_dir=str(obs.root / "observed")))
    plans = [{"x": x, "escape": how, "run": run, "resume": 0.3} for x, how in enumerate(escapes)]
    return obs, write_sweep(obs.root, plans)


def test_daemons_of_a_task_that_completed_end_with_it_and_nothing_else(tmp_path: Path) -> None:
    obs, cfg = _setup(tmp_path, ["setsid", "double"], run=4.0)
    with obs:
        proc = obs.start("run", "--config", str(cfg), "--sweep-id", "s")
        logs = daemons_up(obs, ["d0", "d1"])
        others = strangers(obs, task_dir_of(obs, "d0"))
        exited = obs.wait_exit(proc, 4 + SLACK, "the tasks ending on their own")
        assert proc.returncode == 0, output_of(proc)
        for key, lg in logs.items():
            assert dead(lg), f"{key}: its daemon {lg.daemon[0]} outlived the task that started it"
            assert last_tick(obs, key) <= exited, f"{key}: its daemon ticked after hsm run exited"
            said = (task_dir_of(obs, key) / "stderr.log").read_text()
            assert f"pid {lg.daemon[0]}" in said and "left 1 process(es) running" in said, said
        check_strangers_alive(others, "the end of the tasks")
