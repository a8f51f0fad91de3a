"""Real sweeps with known outcomes for the monitor, export and report tests.

:func:`outcome_project` makes a project whose ``train.py`` succeeds or fails on purpose, by the
``mode`` parameter: ``ok`` writes metrics, ``oom`` prints a CUDA out-of-memory traceback, ``value``
raises a ValueError whose message has numbers in it (different per task), ``kill`` SIGKILLs itself
(exit code 137, as the OOM killer would). :func:`run_outcome_sweep` runs it through ``hsm run``.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import yaml

from hsm_core.testing.project import Project, make_project, wait_for  # noqa: F401 (re-exported)

SCRIPT = r'''
import json, os, signal, sys, time
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
mode = args.get("mode", "ok")
lr = float(args.get("lr", 0.1))
opt = args.get("opt", "adam")
task_dir = os.environ["HSM_TASK_DIR"]
if "sleep" in args:
    time.sleep(float(args["sleep"]))
if mode == "oom":
    sys.stderr.write("Traceback (most recent call last):\n  File \"train.py\", line 12, in <module>\n")
    sys.stderr.write("torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate %.2f GiB "
                     "(GPU 0; 15.78 GiB total capacity)\n" % (lr * 30))
    sys.exit(1)
if mode == "value":
    raise ValueError(f"learning rate {lr} out of range at step {int(lr * 700) + 3}")
if mode == "kill":
    sys.stderr.write("loading shard 3 of 8\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
with open(os.path.join(task_dir, "metrics.json"), "w") as fh:
    json.dump({"loss": round(1.0 / (lr * 100) + (0.5 if opt != "adam" else 0.0), 4),
               "acc": {"top1": round(min(1.0, lr * 5), 4), "top5": 0.99}}, fh)
'''

#: mode x lr x opt: 4 ok tasks with metrics, 4 of each failure.
GRID = {"mode": ["ok", "oom", "value", "kill"], "lr": [0.001, 0.1], "opt": ["adam", "<i>sgd</i>"]}


def outcome_project(root: Path) -> Project:
    """A project at ``root`` with the outcome script and a local source of 2 slots."""
    return make_project(root, name="monitortest", script=SCRIPT)


def run_outcome_sweep(project: Project, sweep_id: str = "outcomes", grid: dict | None = None) -> Path:
    """Run the outcome grid through ``hsm run`` (some tasks fail, so it exits 1); the sweep dir."""
    cfg = project.write_sweep({"grid": grid or GRID}, name=f"{sweep_id}.yaml")
    proc = project.hsm("run", "--config", str(cfg), "--sources", "local:2", "--sweep-id", sweep_id)
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr
    return project.outputs / sweep_id


def set_age(sweep: Path, days: float) -> None:
    """Pretend the sweep was created and last updated ``days`` days ago."""
    import datetime as dt

    path = sweep / "sweep_metadata.yaml"
    meta = yaml.safe_load(path.read_text())
    then = (dt.datetime.now().astimezone() - dt.timedelta(days=days)).isoformat(timespec="seconds")
    meta["created"] = then
    meta["updated"] = then
    meta.pop("last_complete", None)
    path.write_text(yaml.safe_dump(meta, sort_keys=False))


def task_states(sweep: Path) -> dict[str, str]:
    """task dir name -> state from each status.yaml."""
    out = {}
    for d in sorted((sweep / "tasks").glob("task_*")):
        try:
            out[d.name] = (yaml.safe_load((d / "status.yaml").read_text()) or {}).get("state")
        except OSError:
            out[d.name] = None
    return out


# -- PNG decoding (stdlib only) for the headless-browser screenshots ----------------------------------


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """``(width, height, rows)`` of an 8-bit RGB/RGBA PNG, each row unfiltered bytes."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", 0
    height = color = depth = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", chunk[:10])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    assert depth == 8 and color in (2, 6), (depth, color)
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    i = 0
    for _ in range(height):
        ftype = raw[i]
        line = bytearray(raw[i + 1 : i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if ftype == 1:
                line[x] = (line[x] + a) & 0xFF
            elif ftype == 2:
                line[x] = (line[x] + b) & 0xFF
            elif ftype == 3:
                line[x] = (line[x] + ((a + b) >> 1)) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[x] = (line[x] + pred) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, [bytes(r[j] for j in range(len(r)) if j % bpp < 3) for r in rows]


def png_colour_stats(path: Path, step: int = 4) -> tuple[float, set[tuple[int, int, int]]]:
    """Share of sampled pixels that differ from the most common colour, and the colours seen
    (quantised to 32 levels), sampling every ``step``-th pixel of every ``step``-th row."""
    width, height, rows = png_pixels(path)
    counts: dict[tuple[int, int, int], int] = {}
    for y in range(0, height, step):
        row = rows[y]
        for x in range(0, width, step):
            px = (row[3 * x], row[3 * x + 1], row[3 * x + 2])
            counts[px] = counts.get(px, 0) + 1
    total = sum(counts.values())
    background = max(counts.values())
    colours = {(r // 32, g // 32, b // 32) for r, g, b in counts}
    return 1 - background / total, colours
