"""A controller in a process of its own, for the contract tests that kill it.

``python -m hsm_core.testing.controller REQUEST.json`` builds the compute source the request
names (``"module:attr"`` of its class, its name, options and context), writes its pid to the
request's ``pid_file``, launches the request's tasks and then, as ``hsm run`` does, either polls
for ever (``mode: watch``: until the test kills it) or asks ``detach()``, closes the source and
exits (``mode: detach``: ``hsm run --no-wait``). Every step is a line in the ``events`` file.

:class:`ControllerProcess` is the test's side: it starts one, waits for its events, kills it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from hsm_core.plugin import ComputeSource, SourceContext, TaskSpec, load_object


def _event(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _build(req: Mapping[str, Any]) -> tuple[ComputeSource, list[TaskSpec]]:
    ctx = req["context"]
    context = SourceContext(
        sweep_id=ctx["sweep_id"],
        sweep_dir=Path(ctx["sweep_dir"]),
        project_root=Path(ctx["project_root"]),
        project_config=ctx["project_config"],
    )
    source = load_object(req["factory"])(req["name"], req["options"], context)
    specs = [
        TaskSpec(t["task_id"], t["index"], t["params"], Path(t["task_dir"]), ctx["sweep_id"], Path(ctx["sweep_dir"]))
        for t in req["tasks"]
    ]
    return source, specs


def main(argv: Sequence[str] | None = None) -> int:
    """Run the controller a request file describes (see the module's docstring)."""
    args = list(sys.argv[1:] if argv is None else argv)
    req = json.loads(Path(args[0]).read_text())
    events = Path(req["events"])
    source, specs = _build(req)
    tmp = Path(req["pid_file"] + ".tmp")
    tmp.write_text(str(os.getpid()))
    os.replace(tmp, req["pid_file"])
    _event(events, "built")
    source.launch(specs)
    _event(events, "launched")
    if req["mode"] == "detach":
        _event(events, f"detach {bool(source.detach())}")
        source.close()
        _event(events, "closed")
        return 0
    while True:
        for upd in source.poll():
            _event(events, f"update {upd.task_id} {upd.state.value}")
        time.sleep(min(max(float(source.poll_interval), 0.05), 1.0))


class ControllerProcess:
    """A controller process started by a test (see the module's docstring)."""

    def __init__(self, workdir: Path, *, factory: str, name: str, options: Mapping[str, Any],
                 context: SourceContext, tasks: Sequence[TaskSpec], mode: str = "watch",
                 pid_file: Path | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.events = workdir / "controller.events"
        self.log = workdir / "controller.log"
        self.pid_file = pid_file or workdir / "controller.pid"
        request = {
            "factory": factory,
            "name": name,
            "options": dict(options),
            "context": {
                "sweep_id": context.sweep_id,
                "sweep_dir": str(context.sweep_dir),
                "project_root": str(context.project_root),
                "project_config": dict(context.project_config),
            },
            "tasks": [{"task_id": s.task_id, "index": s.index, "params": dict(s.params), "task_dir": str(s.task_dir)}
                      for s in tasks],
            "mode": mode,
            "events": str(self.events),
            "pid_file": str(self.pid_file),
        }
        req_file = workdir / "controller.json"
        req_file.write_text(json.dumps(request, default=str))
        # The child imports whatever this process can import (a source class defined in a test
        # support module, a plugin installed in editable mode).
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p] + [env.get("PYTHONPATH", "")]).strip(os.pathsep)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hsm_core.testing.controller", str(req_file)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                cwd=str(context.project_root), start_new_session=True,
            )

    def lines(self) -> list[str]:
        """The events so far."""
        try:
            return self.events.read_text().splitlines()
        except FileNotFoundError:
            return []

    def wait_for(self, word: str, timeout: float) -> str:
        """The first event starting with ``word``; AssertionError (with the controller's log) when
        it does not come within ``timeout`` s or the controller ends first."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines():
                if line.split()[0] == word:
                    return line
            if self.proc.poll() is not None and not any(ln.split()[0] == word for ln in self.lines()):
                raise AssertionError(f"the controller process ended (exit {self.proc.returncode}) before '{word}':\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no '{word}' from the controller process within {timeout:.0f}s:\n{self.tail()}")
            time.sleep(0.01)

    def kill(self) -> None:
        """``kill -9`` the controller, as a crash or the OOM killer would, and reap it."""
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()

    def wait_exit(self, timeout: float) -> int:
        """Wait for the controller to end by itself; its exit code."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the controller process did not end within {timeout:.0f}s:\n{self.tail()}") from None

    def tail(self, lines: int = 30) -> str:
        """The end of the controller's output (for failure messages)."""
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return "(no output)"
        return "\n".join(text.splitlines()[-lines:]) or "(no output)"


if __name__ == "__main__":  # pragma: no cover - run as a process by ControllerProcess
    sys.exit(main())
