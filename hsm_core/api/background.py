"""A background controller for the Python API's ``wait=False``: the real ``hsm run`` /
``hsm complete`` in a session of its own, so that it outlives the notebook's kernel and ignores
its interrupts; its output goes to ``<output_dir>/.controllers/<sweep id>.log``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hsm_core.errors import HsmError

#: Where a background controller writes its output: ``<output_dir>/.controllers/<sweep id>.log``.
CONTROLLER_DIR = ".controllers"
#: How long ``wait=False`` waits for the background controller to be at work on the sweep (seconds).
START_TIMEOUT = 120.0


def start_controller(argv: list[str], root: Path, output_dir: Path, sweep_id: str, *,
                      new: bool) -> tuple[subprocess.Popen, bool]:
    """Start ``hsm ARGV`` as a background controller in its own session (it outlives the kernel and
    ignores its interrupts), and return ``(process, True)`` once it is at work on the sweep (holds
    its lease and has recorded its start in the metadata) or has already ended; if it fails first,
    its error line becomes an :class:`HsmError`. ``(process, False)``: it was not at work within
    :data:`START_TIMEOUT` and goes on starting (``sweep.wait()`` follows it)."""
    from hsm_core.lease import current_holder
    from hsm_core.state import INDEX_FILE, SweepDir

    log_dir = Path(output_dir) / CONTROLLER_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{sweep_id}.log"
    sweep_path = Path(output_dir) / sweep_id

    def last_start() -> Any:
        # hsm complete records "last_complete" when it starts its tasks, hsm run creates the
        # metadata; either then saves the index with every task (the sweep's tasks are visible).
        if not (sweep_path / "sweep_metadata.yaml").exists():
            return None
        try:
            meta = SweepDir(sweep_path).read_metadata()
            indexed = len(json.loads((sweep_path / INDEX_FILE).read_text(encoding="utf-8"))["tasks"])
        except (HsmError, OSError, ValueError, KeyError, TypeError):
            return None
        if indexed < int(meta.get("total_tasks") or 0):
            return None
        return meta.get("last_complete", "created")

    before = None if new else last_start()
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "hsm_core", *argv], cwd=root, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            if code in (0, 1):  # it ran (and ended already; 1: some tasks failed)
                return proc, True
            lines = [ln for ln in _read_text(log).splitlines() if ln.strip()]
            message = lines[-1].removeprefix("Error: ") if lines else f"hsm {argv[0]} exited with {code}"
            raise HsmError(f"{message} [the background hsm {argv[0]}'s output: {log}]")
        started = last_start()
        if started is not None and started != before:
            holder = current_holder(sweep_path)
            if holder is not None and str(holder.pid) == str(proc.pid):
                return proc, True
        time.sleep(0.1)
    return proc, False


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
