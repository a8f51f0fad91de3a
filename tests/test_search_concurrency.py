"""Asks at the same moment see each other (issue 18): several processes (workers, controllers)
asking for trials of one adaptive sweep at once never get the same configuration, because one
process asks at a time (:mod:`hsm_core.search_turn`) and every ask is told the trials still
running. With real Optuna (hsm-plugin-optuna's TPE) on a small discrete space.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest

pytest.importorskip("hsm_plugin_optuna", reason="the concurrency of asks is tested with Optuna's TPE (pip install ./hsm_plugin_optuna)")


def _ask_at_once(sweep_dir: str, number: int, go: str, out: str) -> None:
    """One asker (a worker or a controller about to start trial ``number``), started together."""
    from hsm_core.adaptive import AdaptiveSearch, section_settings
    from hsm_core.registry import build_registry
    from hsm_core.state import SweepDir

    registry = build_registry()
    settings = section_settings({"search": _SPACE}, registry)
    search = AdaptiveSearch(SweepDir(Path(sweep_dir)), settings, registry)
    while not os.path.exists(go):
        time.sleep(0.001)
    params = search.params_of(number, f"t{number}", Path(sweep_dir) / "tasks" / f"task_{number:03d}")
    Path(out).write_text(json.dumps(params, sort_keys=True))


#: A small discrete space: 2 x 3 configurations, TPE told nothing but pending trials.
_SPACE = {"strategy": "tpe", "metric": "loss", "trials": 6, "seed": 0,
          "params": {"opt": ["adam", "sgd"], "layers": [1, 2, 3]}}


@pytest.mark.parametrize("round_", range(3))
def test_asks_at_the_same_moment_never_get_the_same_configuration(tmp_path: Path, round_: int) -> None:
    """Six processes ask for trials 1..6 of a six-configuration space at once: the ask turn makes
    each see the others' pending trials, and none proposes a configuration one of them runs."""
    ctx = multiprocessing.get_context("spawn")
    sweep = tmp_path / f"sweep{round_}"
    go = tmp_path / "go"
    procs = [ctx.Process(target=_ask_at_once, args=(str(sweep), n, str(go), str(tmp_path / f"out{n}")))
             for n in range(1, 7)]
    for p in procs:
        p.start()
    time.sleep(3.0)  # every process has imported optuna and waits on the start file
    go.write_text("")
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    asked = [json.loads((tmp_path / f"out{n}").read_text(encoding="utf-8")) for n in range(1, 7)]
    configs = {json.dumps(a, sort_keys=True) for a in asked}
    assert len(configs) == 6, asked
    from hsm_core.adaptive import TrialLog

    log = TrialLog(sweep).asked()
    # each ask after the first knew the earlier ones as pending (they were not asked blind)
    assert sorted(a["running_before"] for a in log.values()) == [0, 1, 2, 3, 4, 5]
