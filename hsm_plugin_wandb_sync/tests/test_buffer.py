"""``hsm worker --wandb-buffer`` lives in this plugin: the hook that provides it, and how it finds a
run's offline directories (the worker end to end is in hsm's tests/test_workers.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from hsm_core.plugin import WorkerFeature
from hsm_plugin_wandb_sync import plugin
from hsm_plugin_wandb_sync.buffer import WandbBuffer, offline_run_dirs


def test_the_plugin_provides_the_wandb_buffer_worker_option_only() -> None:
    lines: list[str] = []
    feature = plugin.hsm_worker_feature(name="wandb-buffer", log=lines.append)
    assert isinstance(feature, WandbBuffer) and isinstance(feature, WorkerFeature)
    assert plugin.hsm_worker_feature(name="something-else", log=lines.append) is None


def test_offline_dirs_of_a_resumed_run_are_found_by_its_id_oldest_first(tmp_path: Path) -> None:
    for i, name in enumerate(["offline-run-20250101_000000-ab-c", "offline-run-20250102_000000-ab-c",
                              "offline-run-20250101_000000-other"]):
        d = tmp_path / "wandb" / name
        d.mkdir(parents=True)
        run_id = "other" if "other" in name else "ab-c"  # an id with a '-' in it
        (d / f"run-{run_id}.wandb").write_text("")
        os.utime(d, (time.time() - 100 + i, time.time() - 100 + i))
    found = offline_run_dirs(tmp_path, "ab-c")
    assert [p.name for p in found] == ["offline-run-20250101_000000-ab-c", "offline-run-20250102_000000-ab-c"]


def test_the_task_runs_offline_in_its_own_dir_unless_wandb_dir_is_set(tmp_path: Path) -> None:
    buffer = WandbBuffer(lambda line: None, command=["wandb"])
    assert buffer.task_env(tmp_path / "t", tmp_path, {}) == {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path / "t")}
    assert buffer.task_env(tmp_path / "t", tmp_path, {"WANDB_DIR": "runs"}) == {"WANDB_MODE": "offline"}
    buffer.task_started(tmp_path / "t", tmp_path / "ck", {"WANDB_RUN_ID": "r1"})
    assert buffer._run_id == "r1" and buffer._wandb_dir == tmp_path / "runs"
