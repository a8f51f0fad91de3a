"""W&B runs a task wrote into its output dir (``wandb.init(dir=os.environ["HSM_OUTPUT_DIR"])``).

A training script that puts everything it writes under its output dir passes that dir to
``wandb.init(dir=...)``, which wins over the ``WANDB_DIR`` the plugin sets: its runs are in
``tasks/<task>/results/wandb/``. ``hsm wandb list`` and ``hsm sync to`` find them there like the
runs of ``tasks/<task>/wandb/``, and a second sync sends none of them again. Real offline wandb
runs made by a real ``hsm run``; the sync target is a directory on this machine.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from wandb_project import WandbProject, wandb_env

from hsm_core.testing.sync import local_target, write_sync_config

TRAIN = r'''
import os, sys, wandb
run = wandb.init(dir=os.environ["HSM_OUTPUT_DIR"], config=dict(a.split("=", 1) for a in sys.argv[1:]))
run.log({"loss": 0.5})
run.finish()
'''


@pytest.fixture
def output_dir_project(tmp_path: Path) -> WandbProject:
    pytest.importorskip("wandb")
    root = tmp_path / "proj"
    (root / "sweeps").mkdir(parents=True)
    (root / "train.py").write_text(TRAIN)
    (root / "hsm_config.yaml").write_text(textwrap.dedent(f"""\
        project:
          name: outdir
        paths:
          python_interpreter: {sys.executable}
          train_script: train.py
        compute:
          local:
            max_parallel_jobs: 2
        """))
    (root / "sweeps" / "sweep.yaml").write_text("grid:\n  lr: [0.1, 0.2]\n")
    proj = WandbProject(root, wandb_env(tmp_path), sweep_id="sweep_out")
    proj.hsm("run", "-c", "sweeps/sweep.yaml", "--sweep-id", "sweep_out", "--sources", "local:2")
    return proj


def test_runs_in_the_tasks_output_dir_are_listed_and_synced_once(output_dir_project: WandbProject, tmp_path: Path) -> None:
    p = output_dir_project
    run_dirs = sorted(p.sweep_dir.glob("tasks/*/results/wandb/offline-run-*"))
    assert len(run_dirs) == 2  # where the script put them
    listing = p.hsm("wandb", "list", "sweep_out").stdout
    assert "W&B runs of sweep_out: 2" in listing, listing
    dest = tmp_path / "desktop"
    write_sync_config(p.root, {"desktop": local_target(dest)}, default="desktop")
    first = json.loads(p.hsm("sync", "to", "sweep_out", "--json").stdout)[0]
    assert sorted(d.name for d in (dest / "wandb").glob("offline-run-*")) == sorted(d.name for d in run_dirs)
    again = json.loads(p.hsm("sync", "to", "sweep_out", "--json").stdout)[0]
    assert first["kinds"]["wandb_run"]["sent"] == 2
    assert again["kinds"]["wandb_run"]["sent"] == 0 and not [c for c in again["changed"] if "offline-run" in c]
