"""Chaos on the file system: the disk holding the sweep directory fills up at a random moment."""

from __future__ import annotations

import errno
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from chaos_support import (  # noqa: F401 - chaos is a fixture
    Chaos,
    assert_clean_exit,
    assert_exactly_once,
    chaos,
    completed_ids,
    hsm,
    hsm_popen,
    output_of,
    states,
    stop,
    wait_until,
    write_chaos_project,
)
from hsm_core.testing.services import small_filesystem


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 16 MiB tmpfs mounted for this test (needs root)."""
    with small_filesystem(tmp_path / "small", 16) as mnt:
        yield mnt


def fill(path: Path) -> int:
    """Write ``path`` until the file system is full; returns the bytes written."""
    written = 0
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as fh:
        while True:
            try:
                written += fh.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    # Also the last partial chunk: leave no byte free.
    with open(path, "ab", buffering=0) as fh:
        for size in (4096, 512, 1):
            while True:
                try:
                    written += fh.write(b"\0" * size)
                except OSError:
                    break
    return written


def test_disk_full_in_the_sweep_directory(chaos: Chaos, small_disk: Path, tmp_path: Path) -> None:
    """The file system of the sweep directory fills up completely at a random moment (before the
    sweep starts, while tasks start and end) for 0.2-2 s. `hsm run` ends cleanly (a full disk is
    one line naming the sweep, exit 2, or the sweep rides it out), `hsm status` keeps answering,
    and after the space is back `hsm complete --retry-failed` finishes the sweep. Every task runs
    to its end exactly once, except a task whose end could not be written anywhere (status and
    exit-code marker both refused): that one may run once more, and this is counted."""
    for r in range(chaos.rounds):
        with chaos.round(r) as rng:
            root = small_disk / f"r{r}"
            count = write_chaos_project(root, count_file=tmp_path / f"executions-{r}.log", parallel=rng.choice([2, 3]))
            n = rng.randint(6, 12)
            values = [round(rng.uniform(0.05, 0.5), 2) for _ in range(n)]
            cfg = root / "sweeps" / "sweep.yaml"
            cfg.parent.mkdir(parents=True, exist_ok=True)
            cfg.write_text(yaml.safe_dump({"paired": [{"p": {"x": list(range(n)), "sleep": values}}]}))
            sweep_id = f"f{r}"
            sweep_dir = root / "sweeps" / "outputs" / sweep_id
            filler = small_disk / "filler"
            # Its terminal is not on the full disk: output goes to tmp_path.
            proc = hsm_popen(root, "run", "--config", str(cfg), "--sweep-id", sweep_id, log_dir=tmp_path / f"logs-{r}")
            try:
                if rng.random() < 0.8:  # mostly while tasks run; sometimes while hsm starts
                    wait_until(lambda: (sweep_dir / "tasks").is_dir() or proc.poll() is not None, 60, "the sweep to start")
                try:
                    proc.wait(timeout=rng.uniform(0.0, 1.5))
                except subprocess.TimeoutExpired:
                    pass
                fill(filler)
                chaos.count("disk full")
                time.sleep(rng.uniform(0.2, 2.0))
                if (sweep_dir / "sweep_metadata.yaml").exists():
                    status = hsm(root, "status", sweep_id, "--json")
                    # A status that cannot save its index on a full disk still answers.
                    assert_clean_exit(status, (0,))
            finally:
                filler.unlink(missing_ok=True)
            stop(proc, timeout=120)
            text = output_of(proc)
            assert_clean_exit(proc, (0, 1, 2), text)
            if proc.returncode == 2:
                assert "no space left on device" in text.lower(), text
                chaos.count("runs stopped with 'no space left'")
            if not (sweep_dir / "sweep_metadata.yaml").exists():
                chaos.count("sweeps that never started (disk full first)")
                if sweep_dir.exists():
                    chaos.note(f"a sweep dir without metadata was left behind: {sorted(p.name for p in sweep_dir.iterdir())}")
                    sweep_id = f"{sweep_id}b"
                    sweep_dir = root / "sweeps" / "outputs" / sweep_id
                again = hsm(root, "run", "--config", str(cfg), "--sweep-id", sweep_id)
                assert_clean_exit(again, (0, 1))
            seen = completed_ids(sweep_dir)
            for _ in range(2):
                done = hsm(root, "complete", sweep_id, "--retry-failed")
                chaos.count("hsm complete runs")
                assert_clean_exit(done, (0, 1))
                if done.returncode == 0 and set(states(sweep_dir).values()) == {"completed"}:
                    break
            from collections import Counter

            from chaos_support import executions

            from chaos_support import read_state, task_ids

            twice = {t: k for t, k in Counter(executions(count)).items() if k > 1}
            if twice:
                # Allowed only for a task whose first end was never recorded: its history shows
                # an earlier attempt that is not "completed" (nothing said it had finished).
                by_id = {tid: name for name, tid in task_ids(sweep_dir).items()}
                for tid in twice:
                    attempts = (read_state(sweep_dir / "tasks" / by_id[tid]) or {}).get("attempts") or []
                    earlier = [a.get("state") for a in attempts[:-1]]
                    assert earlier and "completed" not in earlier, (tid, attempts)
                chaos.count("tasks run again because their end could not be written (disk full)", len(twice))
                count.write_text("".join(f"{t}\n" for t in dict.fromkeys(executions(count))))
            assert_exactly_once(sweep_dir, count, n, seen)
            chaos.count("tasks", n)
