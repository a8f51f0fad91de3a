"""Sync: ``hsm sync`` of a 200-run sweep vs plain ``rsync -a`` of the same tree, over real SSH.

The sweep has N task dirs, each with one W&B run (made by the real wandb library offline: a few
real runs, cloned under new ids to reach N) logging metrics and 4 checkpoint versions. The target
is a directory reached through a local sshd (``scripts/sshd.sh``; a local-path target when sshd
cannot be started). Figures, each from one run on the same machine:

* first sync: ``hsm sync to --wandb-only`` (parallel_transfers 4) vs one ``rsync -a`` of the same
  files (the run dirs and latest payloads, gathered by hand into a tree of symlinks);
* second sync with nothing new vs a bare ``rsync -a`` no-op of that same tree;
* parallel_transfers 1 vs 4 (first sync into empty targets);
* bytes sent with latest_only vs --all-versions.

    python bench/bench_sync.py [--runs 200] [--real-runs 8] [--ckpt-kb 256]

Needs hsm-plugin-wandb-sync and wandb installed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MAKE_RUNS = r'''
import os, sys, wandb
n, kb = int(sys.argv[1]), int(sys.argv[2])
for i in range(n):
    run = wandb.init(id=f"real{i:03d}", group="bench_sweep")
    for step in range(50):
        run.log({"loss": 1.0 / (step + 1), "acc": step / 50})
    for v in range(4):
        path = os.path.join(os.environ["PAYLOADS"], f"ckpt{i}_{v}.pt")
        with open(path, "wb") as fh:
            fh.write(os.urandom(kb * 1024))
        art = wandb.Artifact(f"model-{run.id}", type="model")
        art.add_file(path, name="ckpt.pt")
        run.log_artifact(art)
    run.finish()
'''


def wandb_env(base: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_CONSOLE="off", WANDB__DISABLE_STATS="true",
               WANDB__DISABLE_META="true", WANDB_DISABLE_GIT="true", WANDB_DISABLE_CODE="true",
               WANDB_CACHE_DIR=str(base / "wcache"), WANDB_CONFIG_DIR=str(base / "wconfig"),
               WANDB_DATA_DIR=str(base / "wdata"), WANDB_DIR=str(base / "made"), PAYLOADS=str(base / "payloads"),
               WANDB_PROJECT="bench")
    return env


def build(base: Path, runs: int, real: int, kb: int) -> Path:
    """A project with sweep ``bench_sweep`` of ``runs`` tasks, one W&B run each."""
    root = base / "proj"
    sweep = root / "sweeps" / "outputs" / "bench_sweep"
    (base / "payloads").mkdir(parents=True)
    (base / "made").mkdir()
    subprocess.run([sys.executable, "-c", MAKE_RUNS, str(real), str(kb)], env=wandb_env(base), check=True, timeout=900)
    made = sorted((base / "made" / "wandb").glob("offline-run-*"))
    (sweep / "tasks").mkdir(parents=True)
    (root / "hsm_config.yaml").write_text("project:\n  name: bench\n")
    (sweep / "sweep_metadata.yaml").write_text("sweep_id: bench_sweep\nstatus: completed\n")
    for i in range(runs):
        src = made[i % len(made)]
        old_id = next(src.glob("run-*.wandb")).name[4:-6]
        new_id = f"r{i:04d}x"
        task = sweep / "tasks" / f"task_{i + 1:03d}"
        (task / "wandb").mkdir(parents=True)
        (task / "params.yaml").write_text(f"task_id: t{i}\nindex: {i + 1}\nparams:\n  x: {i}\n")
        (task / "status.yaml").write_text("state: completed\n")
        dst = task / "wandb" / src.name.replace(old_id, new_id)
        shutil.copytree(src, dst, symlinks=True)
        (dst / f"run-{old_id}.wandb").rename(dst / f"run-{new_id}.wandb")
    return root


def hsm(root: Path, *args: str) -> tuple[float, Any]:
    start = time.perf_counter()
    env = dict(os.environ, HSM_LOAD_PLUGINS="wandb_sync")  # only what is measured
    proc = subprocess.run([sys.executable, "-m", "hsm_core", *args, "--json"], cwd=root, capture_output=True, text=True,
                          env=env)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"hsm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return took, json.loads(proc.stdout)


def same_files(root: Path, farm: Path) -> None:
    """A tree of symlinks to exactly what ``hsm sync`` sends (run dirs + latest payloads), for the
    plain-rsync peer: what a user would have to gather by hand."""
    from hsm_core.plugin import locate_sweep
    from hsm_plugin_wandb_sync.items import sync_items

    loc = locate_sweep("bench_sweep", root)
    for item in sync_items(loc.sweep_id, loc.sweep_dir, loc.project_root, loc.project_config, {"latest_only": True}):
        for local, rel in item.entries:
            (farm / rel).parent.mkdir(parents=True, exist_ok=True)
            (farm / rel).symlink_to(Path(local).absolute())


def _time_help(root: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hsm_core", "--help"], cwd=root, capture_output=True, check=True,
                   env=dict(os.environ, HSM_LOAD_PLUGINS="wandb_sync"))
    return time.perf_counter() - start


def rsync(src: Path, dest: str, rsh: list[str] | None) -> float:
    argv = ["rsync", "-a", "--copy-links"] + (["-e", " ".join(rsh)] if rsh else []) + [f"{src}/", dest]
    start = time.perf_counter()
    subprocess.run(argv, check=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--real-runs", type=int, default=8, help="runs made by wandb itself; the rest are clones")
    ap.add_argument("--ckpt-kb", type=int, default=256, help="size of each checkpoint version")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from hsm_core.testing.services import ServiceUnavailable, start_sshd
    from hsm_core.testing.sync import local_target, ssh_target, write_sync_config

    with tempfile.TemporaryDirectory(prefix="hsm-bench-sync-") as tmp:
        base = Path(tmp)
        t0 = time.perf_counter()
        root = build(base, args.runs, args.real_runs, args.ckpt_kb)
        print(f"built {args.runs} runs ({args.real_runs} made by wandb, the rest cloned) in {time.perf_counter() - t0:.1f}s")
        try:
            host = start_sshd("hsm-bench-sync")
            where = f"ssh {host.user}@127.0.0.1:{host.port}"

            def target(name: str, **opts: Any) -> dict[str, Any]:
                return ssh_target(host, base / name, **opts)

            rsh = host.ssh_argv()

            def spec(path: Path) -> str:
                return f"{host.destination}:{path}"
        except ServiceUnavailable as exc:
            print(f"(no sshd: {exc.args[0].splitlines()[0]}; using a local target)")
            where = "local path"

            def target(name: str, **opts: Any) -> dict[str, Any]:
                return local_target(base / name, **opts)

            rsh = None

            def spec(path: Path) -> str:
                return str(path)

        targets = {
            "p4": target("t_p4", parallel_transfers=4),
            "p1": target("t_p1", parallel_transfers=1),
            "all": target("t_all", parallel_transfers=4, latest_only=False),
        }
        write_sync_config(root, targets, default="p4")
        # Warm the page cache and hsm's parsed-log cache the same way for everyone.
        hsm(root, "sync", "to", "bench_sweep", "--wandb-only", "--dry-run")

        first_p4, rep_p4 = hsm(root, "sync", "to", "bench_sweep", "--wandb-only", "--target", "p4")
        second, rep_second = hsm(root, "sync", "to", "bench_sweep", "--wandb-only", "--target", "p4")
        first_p1, _ = hsm(root, "sync", "to", "bench_sweep", "--wandb-only", "--target", "p1")
        first_all, rep_all = hsm(root, "sync", "to", "bench_sweep", "--wandb-only", "--target", "all")
        farm = base / "farm"
        same_files(root, farm)
        (base / "bare").mkdir()
        bare_first = rsync(farm, spec(base / "bare"), rsh)
        bare_noop = min(rsync(farm, spec(base / "bare"), rsh) for _ in range(3))
        second_best = min([second] + [hsm(root, "sync", "to", "bench_sweep", "--wandb-only", "--target", "p4")[0] for _ in range(2)])

        startup = min(_time_help(root) for _ in range(3))
        latest_bytes = rep_p4[0]["bytes"]
        all_bytes = rep_all[0]["bytes"]
        assert rep_second[0]["files"] == 0, rep_second
        rows = [
            ("first sync, parallel_transfers 4", f"{first_p4:.2f} s", f"rsync -a {bare_first:.2f} s", f"{first_p4 / bare_first:.2f}x"),
            ("second sync, nothing new (best of 3)", f"{second_best:.2f} s", f"rsync -a no-op {bare_noop:.2f} s",
             f"{second_best / bare_noop:.2f}x"),
            ("first sync, parallel 1 vs 4", f"{first_p1:.2f} s vs {first_p4:.2f} s", "", f"{first_p1 / first_p4:.2f}x"),
            ("bytes sent, latest_only vs all versions", f"{latest_bytes / 1e6:.1f} MB vs {all_bytes / 1e6:.1f} MB", "",
             f"{latest_bytes / all_bytes:.2f}x"),
        ]
        print(f"\n{args.runs} W&B runs, 4 checkpoint versions of {args.ckpt_kb} kB each, target: {where}")
        print(f"{'measure':42} {'hsm sync':28} {'peer':24} ratio")
        for name, a, b, r in rows:
            print(f"{name:42} {a:28} {b:24} {r}")
        print(f"\nhsm start-up alone (hsm --help, best of 3): {startup:.2f} s, part of every hsm figure")
        print(f"second sync: {rep_second[0]['files']} files sent, "
              f"{rep_second[0]['kinds']['wandb_run']['skipped'].get('already on target', 0)} runs skipped after one listing")


if __name__ == "__main__":
    main()
