"""The built-in local source passes the compute-source contract, plus local-only behaviour."""

from __future__ import annotations

import json
from pathlib import Path

from hsm_core.builtin.local import LocalSource
from hsm_core.plugin import SourceContext, TaskState
from hsm_core.testing import ComputeSourceContract, make_sweep, run_until_final


class TestLocalSourceContract(ComputeSourceContract):
    timeout = 30.0

    def make_source(self, context: SourceContext, tmp_path: Path) -> LocalSource:
        return LocalSource("local", {"max_parallel_jobs": 2, "kill_grace": 2}, context)


def test_each_running_task_gets_its_own_gpu_slot(tmp_path: Path) -> None:
    sweep, specs, context = make_sweep(tmp_path, [{"x": i, "sleep": 0.3} for i in range(2)])
    source = LocalSource("local", {"gpus": [0, 1, 2, 3], "gpus_per_task": 2}, context)
    assert source.capacity() == 2
    final = run_until_final(source, specs, timeout=30)
    assert set(final.values()) == {TaskState.COMPLETED}
    seen = []
    for spec in specs:
        env_line = next(ln for ln in (spec.task_dir / "stdout.log").read_text().splitlines() if ln.startswith("ENV "))
        seen.append(json.loads(env_line[4:])["CUDA_VISIBLE_DEVICES"])
    assert set(seen) == {"0,1", "2,3"}
