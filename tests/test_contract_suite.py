"""The contract suites catch what they promise to catch.

Each deliberately broken component of broken_components.py has one defect; the suite is run
against it in a pytest of its own (pytester) and must fail, naming the check that catches the
defect. The unbroken template source (and the unbroken test expander) run through the same
harness and pass the same checks: the failures come from the defects, not from the harness.
"""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytester"]

SUPPORT = Path(__file__).resolve().parent / "support"  # broken_components.py

SOURCE_SUITE = """
from hsm_core.testing import ComputeSourceContract
import broken_components
from hsm_plugin_example.source import ExampleSource


class TestUnderContract(ComputeSourceContract):
    timeout = 15.0

    def make_source(self, context, tmp_path):
        return getattr(broken_components, "{name}", ExampleSource)("example", {{"kill_grace": 1}}, context)
"""

EXPANDER_SUITE = """
from hsm_core.testing import ExpanderContract


class TestUnderContract(ExpanderContract):
    expander = "{name}"

    def valid_sections(self):
        return [{{"a": [0, 3], "b": [1, 3]}}, {{"p": [0, 10], "q": [0, 10], "r": [5, 7]}}]

    def invalid_sections(self):
        return [({{"a": [3, 1]}}, "start must be below stop")]

    def huge_section(self):
        return {{f"p{{i}}": [0, 10] for i in range(9)}}
"""


def _run(pytester: pytest.Pytester, suite: str, name: str, checks: list[str]) -> dict[str, Any]:
    """Run ``suite`` against component ``name``, only ``checks`` (test names, ``[param]`` allowed).
    Returns each test's outcome (``passed``, ``failed``, ``skipped``) and its failure text."""
    pytester.makepyfile(test_under_contract=textwrap.dedent(suite.format(name=name)))
    # An entry point for the test expanders, found by hsm like an installed plugin's.
    dist = pytester.path / "broken_components-0.1.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-components\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[hsm]\nbroken_components = broken_components\n")
    selected = [f"test_under_contract.py::TestUnderContract::{c}" for c in checks]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(SUPPORT), str(pytester.path), os.environ.get("PYTHONPATH")])))
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA", *selected, timeout=600)
    text = "\n".join(result.outlines)
    outcomes = {}
    for check in checks:
        m = re.search(rf"^(PASSED|FAILED|SKIPPED|ERROR) [^\n]*::{re.escape(check)}(?=\s|$)", text, re.M)
        outcomes[check] = m.group(1).lower() if m else "missing"
    return {"outcomes": outcomes, "text": text}


BROKEN_SOURCES = {
    # defect: the checks that must fail, and words of the failure they must give
    # (Its two queued copies start together: the second either runs beside the first, or takes
    # the first's record for a leftover attempt and stops it; either way a copy is caught.)
    "NoSubmittedSource": (["test_launch_records_each_task_before_it_can_start",
                           "test_tasks_survive_the_controller_dying[right_after_launch]"],
                          ["when launch() returned", ("ran 2 times", "and never ended")]),
    "ForgetsSourceDataSource": (["test_source_data_survives_every_rewrite"],
                                ["lost the source_data another source kept"]),
    "NoAttachSource": (["test_tasks_survive_the_controller_dying[while_tasks_run]",
                        "test_cancel_stops_attached_tasks"],
                       ["cannot attach them"]),
    "CancelDoesNothingSource": (["test_cancel_stops_a_running_task",
                                 "test_cancel_right_after_launch_stops_a_queued_task"],
                                ["never reported a final state"]),
    "SilentPollSource": (["test_tasks_complete_with_status_logs_and_metrics"],
                         ["tasks not final after"]),
    "InterruptLeavesProcessesSource": (["test_interrupt_stops_every_task_and_records_final_states"],
                                       ["still running"]),
    "FalseDetachSource": (["test_detach_is_true_only_when_tasks_outlive_the_controller"],
                          ["detach() said True, but the tasks did not run to their end"]),
}


@pytest.mark.parametrize("name", sorted(BROKEN_SOURCES))
def test_the_source_contract_fails_a_broken_source(pytester: pytest.Pytester, name: str) -> None:
    checks, words = BROKEN_SOURCES[name]
    run = _run(pytester, SOURCE_SUITE, name, checks)
    assert set(run["outcomes"].values()) == {"failed"}, f"{name}: {run['outcomes']}\n{run['text'][-3000:]}"
    for w in words:
        # A tuple: any one of these words will do.
        assert any(one in run["text"] for one in ((w,) if isinstance(w, str) else w)), \
            f"{name}: the failure does not say {w!r}:\n{run['text'][-3000:]}"


def test_the_unbroken_template_source_passes_the_same_checks(pytester: pytest.Pytester) -> None:
    checks = sorted({c for checks, _ in BROKEN_SOURCES.values() for c in checks})
    run = _run(pytester, SOURCE_SUITE, "ExampleSource", checks)
    assert set(run["outcomes"].values()) == {"passed"}, f"{run['outcomes']}\n{run['text'][-3000:]}"


BROKEN_EXPANDERS = {
    "setorder": (["test_expansion_is_the_same_every_time_and_in_every_process"], ["expands the examples differently"]),
    "miscounting": (["test_count_agrees_with_the_expansion"], ["count() says"]),
    "expandingcount": (["test_count_needs_no_memory"], ["count() allocated"]),
}


@pytest.mark.parametrize("name", sorted(BROKEN_EXPANDERS))
def test_the_expander_contract_fails_a_broken_expander(pytester: pytest.Pytester, name: str) -> None:
    checks, words = BROKEN_EXPANDERS[name]
    run = _run(pytester, EXPANDER_SUITE, name, checks)
    assert set(run["outcomes"].values()) == {"failed"}, f"{name}: {run['outcomes']}\n{run['text'][-3000:]}"
    for w in words:
        # A tuple: any one of these words will do.
        assert any(one in run["text"] for one in ((w,) if isinstance(w, str) else w)), \
            f"{name}: the failure does not say {w!r}:\n{run['text'][-3000:]}"


def test_a_plugin_expander_passes_the_whole_expander_contract(pytester: pytest.Pytester) -> None:
    """A third-party expander that raises ConfigError(key=where) gets file:line from core, and
    passes every check (the control for the broken ones above)."""
    checks = ["test_examples_are_valid", "test_count_agrees_with_the_expansion",
              "test_expansion_is_the_same_every_time_and_in_every_process", "test_task_ids_are_distinct",
              "test_bad_input_is_one_line_with_file_and_line", "test_count_needs_no_memory"]
    run = _run(pytester, EXPANDER_SUITE, "ranges", checks)
    assert set(run["outcomes"].values()) == {"passed"}, f"{run['outcomes']}\n{run['text'][-3000:]}"
