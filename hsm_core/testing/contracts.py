"""Contract suites: behaviour every implementation of a plugin interface must show.

Subclass a contract in your plugin's tests and implement its factory method; pytest collects the
inherited tests (name your subclass ``Test...``)::

    from hsm_core.testing import ComputeSourceContract

    class TestMySource(ComputeSourceContract):
        def make_source(self, context, tmp_path):
            return MySource("mine", {"max_parallel_jobs": 2}, context)
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from hsm_core.plugin import ComputeSource, HealthReport, SourceContext, TaskState
from hsm_core.testing.helpers import make_sweep, read_task_status, run_until_final


class ComputeSourceContract:
    """Tests every :class:`~hsm_core.plugin.ComputeSource` must pass.

    Tasks run the test script :data:`hsm_core.testing.SCRIPT`; results are read from the task dirs
    in the local sweep directory, so a remote source must bring them back.
    """

    #: Seconds a whole task batch may take (schedulers are slower than local processes).
    timeout: float = 120.0
    #: States accepted after :meth:`ComputeSource.cancel`.
    cancelled_states = (TaskState.CANCELLED, TaskState.INTERRUPTED)

    def make_source(self, context: SourceContext, tmp_path: Path) -> ComputeSource:
        """Return the source under test (override this)."""
        raise NotImplementedError

    def project_config(self, tmp_path: Path) -> dict[str, Any]:
        """The ``hsm_config.yaml`` data the source sees (override to add clusters/remotes)."""
        return {}

    def python(self) -> str | None:
        """Interpreter recorded in command.json (None: the test's own)."""
        return None

    # -- helpers -------------------------------------------------------------------------------
    def _setup(self, tmp_path: Path, params: list[dict[str, Any]]):
        sweep, specs, context = make_sweep(
            tmp_path / "project", params, python=self.python(), project_config=self.project_config(tmp_path)
        )
        source = self.make_source(context, tmp_path)
        return sweep, specs, source

    # -- the contract ----------------------------------------------------------------------------
    def test_capacity_is_positive(self, tmp_path: Path) -> None:
        _, _, source = self._setup(tmp_path, [{"x": 1}])
        try:
            assert source.capacity() >= 1
        finally:
            source.close()

    def test_health_reports(self, tmp_path: Path) -> None:
        _, _, source = self._setup(tmp_path, [{"x": 1}])
        try:
            report = source.health()
            assert isinstance(report, HealthReport)
            assert report.healthy, report.message
        finally:
            source.close()

    def test_poll_without_tasks_is_empty(self, tmp_path: Path) -> None:
        _, _, source = self._setup(tmp_path, [{"x": 1}])
        try:
            assert source.poll() == []
        finally:
            source.close()

    def test_tasks_complete_with_status_logs_and_metrics(self, tmp_path: Path) -> None:
        _, specs, source = self._setup(tmp_path, [{"x": 1}, {"x": 2}])
        try:
            final = run_until_final(source, specs, timeout=self.timeout)
        finally:
            source.close()
        assert set(final.values()) == {TaskState.COMPLETED}
        for spec in specs:
            status = read_task_status(spec)
            assert status["state"] == "completed"
            assert status["exit_code"] == 0
            assert status["attempt"] >= 1 and status["start_time"] and status["end_time"]
            assert status["host"]
            out = (spec.task_dir / "stdout.log").read_text()
            assert f"x={spec.params['x']}" in out
            assert "error output" in (spec.task_dir / "stderr.log").read_text()
            metrics = json.loads((spec.task_dir / "metrics.json").read_text())
            assert metrics["score"] == spec.params["x"] * 2

    def test_environment_names_the_task(self, tmp_path: Path) -> None:
        _, specs, source = self._setup(tmp_path, [{"x": 3}])
        try:
            run_until_final(source, specs, timeout=self.timeout)
        finally:
            source.close()
        line = next(ln for ln in (specs[0].task_dir / "stdout.log").read_text().splitlines() if ln.startswith("ENV "))
        env = json.loads(line[4:])
        assert env["HSM_TASK_ID"] == specs[0].task_id
        assert env["HSM_SWEEP_ID"] == specs[0].sweep_id
        assert env["HSM_TASK_INDEX"] == "1"
        assert env["HSM_TASK_DIR"].endswith("tasks/task_001")
        assert env["HSM_OUTPUT_DIR"].endswith("tasks/task_001/results")

    def test_failing_task_is_failed_with_exit_code(self, tmp_path: Path) -> None:
        _, specs, source = self._setup(tmp_path, [{"x": 1, "exit": 7}])
        try:
            final = run_until_final(source, specs, timeout=self.timeout)
        finally:
            source.close()
        assert final[specs[0].task_id] == TaskState.FAILED
        status = read_task_status(specs[0])
        assert status["exit_code"] == 7

    def test_values_are_data_not_shell_code(self, tmp_path: Path) -> None:
        evil = "$(touch PWNED); touch PWNED2 `touch PWNED3` && echo"
        project = tmp_path / "project"
        _, specs, source = self._setup(tmp_path, [{"x": 1, "name": evil}])
        try:
            final = run_until_final(source, specs, timeout=self.timeout)
        finally:
            source.close()
        assert final[specs[0].task_id] == TaskState.COMPLETED
        argv_line = next(ln for ln in (specs[0].task_dir / "stdout.log").read_text().splitlines() if ln.startswith("ARGV "))
        assert f"name={evil}" in json.loads(argv_line[5:])
        for name in ("PWNED", "PWNED2", "PWNED3"):
            assert not list(project.rglob(name)) and not (Path.cwd() / name).exists()

    def test_cancel_stops_a_running_task(self, tmp_path: Path) -> None:
        _, specs, source = self._setup(tmp_path, [{"x": 1, "sleep": 300}])
        try:
            source.launch(specs)
            deadline = time.time() + self.timeout
            while read_task_status(specs[0]).get("state") != "running":
                assert time.time() < deadline, "task never started"
                source.poll()
                time.sleep(0.1)
            source.cancel([specs[0].task_id])
            final = run_until_final(source, specs, timeout=self.timeout, launch=False)
        finally:
            source.close()
        assert final[specs[0].task_id] in self.cancelled_states
        assert read_task_status(specs[0])["state"] in {s.value for s in self.cancelled_states}

    def test_cancel_of_unknown_task_is_ignored(self, tmp_path: Path) -> None:
        _, _, source = self._setup(tmp_path, [{"x": 1}])
        try:
            source.cancel(["no-such-task"])
        finally:
            source.close()


__all__ = ["ComputeSourceContract"]
