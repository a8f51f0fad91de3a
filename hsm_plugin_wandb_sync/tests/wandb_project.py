"""A project whose sweep ``sweep_1`` logged real W&B runs (wandb offline), for the plugin's tests.

Built once per test session by ``conftest.py`` (about 10 s): ``hsm run`` with the plugin installed,
so the per-task ``WANDB_*`` environment is the plugin's own. Tasks (grid ``mode``):

* ``ckpt``: metrics, ``wandb.save`` of a file outside the run dir, three versions of a checkpoint
  artifact (v1 tagged ``best``), finished;
* ``resume``: fails on its first attempt (exit record with code 1, one checkpoint), resumed by
  ``hsm complete`` under the same run id (a second directory, another checkpoint), finished;
* ``crash``: killed right after ``wandb.init`` on every attempt: unfinished.

Plus runs in the project's shared ``wandb/`` dir: ``group=sweep_1`` (member, with a checkpoint),
``config.sweep_id=sweep_1`` (member), and ``group=sweep_10``, ``tags=[sweep_10]``,
``config.sweep_id=sweep_10`` (not members: ``sweep_1`` must not match ``sweep_10``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

TRAIN = r'''
import os, sys, wandb
args = dict(a.split("=", 1) for a in sys.argv[1:])
mode = args["mode"]
task_dir = os.environ["HSM_TASK_DIR"]
results = os.path.join(task_dir, "results")
os.makedirs(results, exist_ok=True)
run = wandb.init(config={"mode": mode})
if mode == "crash":
    os._exit(3)
for i in range(5):
    run.log({"loss": 1.0 / (i + 1), "step": i})

def checkpoint(v, size=40000, aliases=None):
    path = os.path.join(results, "ckpt.pt")
    with open(path, "wb") as fh:
        fh.write(bytes([v % 256]) * size + os.urandom(64))
    art = wandb.Artifact("model-" + run.id, type="model")
    art.add_file(path, name="ckpt.pt")
    run.log_artifact(art, aliases=aliases)

if mode == "ckpt":
    notes = os.path.join(results, "notes.txt")
    with open(notes, "w") as fh:
        fh.write("saved with wandb.save\n")
    wandb.save(notes, base_path=results)
    for v in range(3):
        checkpoint(v, aliases=["best"] if v == 1 else None)
    run.finish()
elif mode == "resume":
    marker = os.path.join(task_dir, "attempt1.marker")
    if not os.path.exists(marker):
        open(marker, "w").close()
        checkpoint(0)
        run.finish(exit_code=1)
        sys.exit(1)
    checkpoint(1)
    run.finish()
'''

SHARED = r'''
import os, sys, wandb
def make(run_id, **kw):
    run = wandb.init(id=run_id, **kw)
    run.log({"acc": 0.5})
    if kw.pop("ckpt", None) or run_id in ("shared-g1", "shared-g10"):
        path = os.path.join(os.environ["WANDB_DATA_TMP"], run_id + ".bin")
        with open(path, "wb") as fh:
            fh.write(os.urandom(3000))
        art = wandb.Artifact("data-" + run_id, type="dataset")
        art.add_file(path, name="data.bin")
        run.log_artifact(art)
    run.finish()
make("shared-g1", group="sweep_1")
make("shared-cfg1", config={"sweep_id": "sweep_1"})
make("shared-g10", group="sweep_10")
make("shared-tag10", tags=["sweep_10"])
make("shared-cfg10", config={"sweep_id": "sweep_10"})
'''


def wandb_env(base: Path) -> dict[str, str]:
    """Fast, quiet, offline wandb that writes nothing outside ``base``."""
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("WANDB_"):
            del env[k]
    env.update(
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        WANDB_CONSOLE="off",
        WANDB__DISABLE_STATS="true",
        WANDB__DISABLE_META="true",
        WANDB_DISABLE_GIT="true",
        WANDB_DISABLE_CODE="true",
        WANDB_DISABLE_JOB_CREATION="true",
        WANDB_CACHE_DIR=str(base / ".wandb-cache"),
        WANDB_CONFIG_DIR=str(base / ".wandb-config"),
        WANDB_PROJECT="hsmtest",
        HSM_LOAD_PLUGINS="wandb_sync",  # only this plugin: others installed here are not under test
    )
    return env


@dataclass
class WandbProject:
    """The built project."""

    root: Path
    env: dict[str, str]
    sweep_id: str = "sweep_1"
    task_runs: dict[str, str] = field(default_factory=dict)  #: mode -> run id

    @property
    def sweep_dir(self) -> Path:
        return self.root / "sweeps" / "outputs" / self.sweep_id

    def hsm(self, *args: str, check: bool = True, env: dict[str, str] | None = None,
            timeout: float = 180) -> subprocess.CompletedProcess[str]:
        full = dict(self.env)
        full.update(env or {})
        proc = subprocess.run([sys.executable, "-m", "hsm_core", *args], cwd=self.root, env=full,
                              capture_output=True, text=True, timeout=timeout)
        # Other plugins installed here may warn at start-up; what is under test is the rest.
        proc.stderr = "".join(ln for ln in proc.stderr.splitlines(keepends=True) if not ln.startswith("hsm: warning:"))
        if check and proc.returncode != 0:
            raise AssertionError(f"hsm {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc


def build(base: Path) -> WandbProject:
    """Create the project under ``base`` and run the sweep (see the module docstring)."""
    root = base / "proj"
    (root / "sweeps").mkdir(parents=True)
    (root / "train.py").write_text(TRAIN)
    (root / "hsm_config.yaml").write_text(textwrap.dedent(f"""\
        project:
          name: wbproj
        paths:
          python_interpreter: {sys.executable}
          train_script: train.py
        compute:
          local:
            max_parallel_jobs: 3
        wandb:
          project: hsmtest
        """))
    (root / "sweeps" / "sweep.yaml").write_text("grid:\n  mode: [ckpt, resume, crash]\n")
    proj = WandbProject(root, wandb_env(base))
    first = proj.hsm("run", "-c", "sweeps/sweep.yaml", "--sweep-id", "sweep_1", "--sources", "local:3", check=False)
    assert first.returncode == 1, first.stdout + first.stderr  # resume and crash fail
    again = proj.hsm("complete", "sweep_1", "--retry-failed", "--sources", "local:3", check=False)
    assert again.returncode == 1, again.stdout + again.stderr  # crash fails again
    shared_env = dict(proj.env)
    shared_env["WANDB_DATA_TMP"] = str(base / "shared-payloads")
    shared_env["WANDB_DATA_DIR"] = str(base / "shared-data")
    (base / "shared-payloads").mkdir()
    subprocess.run([sys.executable, "-c", SHARED], cwd=root, env=shared_env, check=True, timeout=120)
    import json

    for task in sorted((proj.sweep_dir / "tasks").iterdir()):
        command = json.loads((task / "command.json").read_text())
        mode = command["argv"][-1].split("=", 1)[1]
        proj.task_runs[mode] = command["env"]["WANDB_RUN_ID"]
    return proj
