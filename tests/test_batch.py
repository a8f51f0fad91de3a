"""The array-job toolkit of hsm_core.plugin: resources, chunking and the state table shared by the scheduler plugins."""

from __future__ import annotations

import pytest

from hsm_core.plugin import (
    QueueState,
    Resources,
    chunk_ranges,
    finish_directives,
    format_memory,
    format_walltime,
    parse_memory,
    parse_resource_string,
    parse_walltime,
    resolve_task_state,
    resources_from_options,
)
from hsm_core.plugin import ConfigError, TaskState


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("04:00:00", 4 * 3600),
        ("1-02:03:04", 86400 + 2 * 3600 + 3 * 60 + 4),
        ("100:00:00", 100 * 3600),
        ("02:30", 2 * 3600 + 30 * 60),
        ("90m", 5400),
        ("4h", 4 * 3600),
        ("2d", 2 * 86400),
        (30, 30 * 60),
        ("45", 45 * 60),
    ],
)
def test_walltime_forms(text, seconds) -> None:
    assert parse_walltime(text) == seconds


@pytest.mark.parametrize("text", ["", "4 hours and a bit", "00:61:00", "-5", 0, True, "00:00:00"])
def test_bad_walltimes_are_config_errors(text) -> None:
    with pytest.raises(ConfigError):
        parse_walltime(text)


def test_walltime_is_written_as_hh_mm_ss() -> None:
    assert format_walltime(4 * 3600) == "04:00:00"
    assert format_walltime(100 * 3600 + 61) == "100:01:01"


@pytest.mark.parametrize(
    "text, mb", [("16gb", 16384), ("16G", 16384), ("500mb", 500), ("500M", 500), ("2TB", 2 * 1024 * 1024), (4000, 4000), ("1.5g", 1536)]
)
def test_memory_forms(text, mb) -> None:
    assert parse_memory(text) == mb


def test_memory_is_written_per_scheduler() -> None:
    assert format_memory(16384, "G") == "16G" and format_memory(16384, "gb") == "16gb"
    assert format_memory(500, "G") == "500M" and format_memory(500, "gb") == "500mb"
    assert format_memory(500, "slurm") == "500M" and format_memory(500, "pbs") == "500mb"  # API 1.0 spellings


def test_pbs_pro_torque_and_generic_resource_strings() -> None:
    assert parse_resource_string("select=1:ncpus=4:mem=16gb") == {"nodes": 1, "cpus": 4, "memory_mb": 16384}
    assert parse_resource_string("select=2:ncpus=8:ngpus=2,walltime=01:00:00") == {"nodes": 2, "cpus": 8, "gpus": 2, "walltime": 3600}
    assert parse_resource_string("nodes=1:ppn=4:gpus=1,mem=8gb") == {"nodes": 1, "cpus": 4, "gpus": 1, "memory_mb": 8192}
    assert parse_resource_string("cpus=2, mem=500M") == {"cpus": 2, "memory_mb": 500}


@pytest.mark.parametrize("text", ["select=1:ncpus=4:scratch=10gb", "ncpus", "ncpus=zero", "mem=lots", "queue=a b"])
def test_bad_resource_strings_name_the_key(text) -> None:
    with pytest.raises(ConfigError) as err:
        parse_resource_string(text)
    assert "default_resources" in str(err.value)


def test_explicit_keys_win_over_defaults_and_resource_strings() -> None:
    res = resources_from_options(
        {
            "default_resources": "select=1:ncpus=4:mem=16gb",
            "default_walltime": "04:00:00",
            "default_queue": "workq",
            "walltime": "00:30:00",  # hsm sweep --walltime
            "memory": "2gb",
            "partition": "debug",
            "account": "proj",
        }
    )
    assert res == Resources(walltime=1800, cpus=4, memory_mb=2048, nodes=1, partition="debug", account="proj")


def test_chunks_respect_the_maximum_and_cover_every_task() -> None:
    assert chunk_ranges(25, 10) == [(0, 10), (10, 10), (20, 5)]
    assert chunk_ranges(10, 10) == [(0, 10)]
    assert chunk_ranges(1, 1000) == [(0, 1)]
    assert chunk_ranges(0, 10) == []
    ranges = chunk_ranges(10_000, 1001)
    assert sum(n for _, n in ranges) == 10_000 and max(n for _, n in ranges) == 1001


def test_escape_hatches() -> None:
    lines = ["#SBATCH --mem=16G", "#SBATCH --time=01:00:00"]
    out = finish_directives("#SBATCH", lines, extra=["--mail-type=END", "#SBATCH --exclusive", "  "], skip=["--mem"])
    assert out == ["#SBATCH --time=01:00:00", "#SBATCH --mail-type=END", "#SBATCH --exclusive"]
    with pytest.raises(ConfigError):
        finish_directives("#SBATCH", lines, extra=["--x\n#SBATCH --uid=0"])


S = TaskState
Q = QueueState

# status.yaml state, scheduler state, stopping -> reported state, final, hsm writes it
TABLE = [
    ("completed", Q.RUNNING, None, S.COMPLETED, True, False),
    ("completed", None, None, S.COMPLETED, True, False),
    ("failed", Q.FAILED, None, S.FAILED, True, False),
    ("failed", None, S.CANCELLED, S.FAILED, True, False),
    ("cancelled", None, None, S.CANCELLED, True, False),
    ("timeout", None, None, S.TIMEOUT, True, False),
    ("lost", None, None, S.LOST, True, False),
    ("interrupted", None, None, S.INTERRUPTED, True, False),
    ("submitted", Q.PENDING, None, S.SUBMITTED, False, False),
    (None, Q.PENDING, None, S.SUBMITTED, False, False),
    ("submitted", Q.RUNNING, None, S.RUNNING, False, False),
    ("running", Q.RUNNING, None, S.RUNNING, False, False),
    ("running", Q.SUSPENDED, None, S.RUNNING, False, False),
    ("running", Q.COMPLETING, None, S.RUNNING, False, False),
    ("submitted", Q.COMPLETING, None, S.SUBMITTED, False, False),
    ("preempted", Q.PENDING, None, S.SUBMITTED, False, False),  # requeued: the next attempt waits
    ("preempted", Q.RUNNING, None, S.RUNNING, False, False),
    ("running", Q.PENDING, None, S.SUBMITTED, False, False),  # requeued after a hard kill
    ("running", Q.RUNNING, S.CANCELLED, S.RUNNING, False, False),  # cancel asked, job still ending
    ("running", Q.CANCELLED, S.CANCELLED, S.CANCELLED, True, True),
    ("preempted", Q.CANCELLED, S.CANCELLED, S.CANCELLED, True, True),
    ("submitted", None, S.CANCELLED, S.CANCELLED, True, True),
    ("running", Q.CANCELLED, S.INTERRUPTED, S.INTERRUPTED, True, True),
    ("running", Q.TIMEOUT, None, S.TIMEOUT, True, True),
    ("preempted", Q.TIMEOUT, None, S.TIMEOUT, True, True),  # the runner saw SIGTERM; Slurm says why
    ("running", Q.PREEMPTED, None, S.PREEMPTED, True, True),
    ("running", Q.CANCELLED, None, S.CANCELLED, True, True),  # scancel by hand
    ("running", Q.NODE_FAIL, None, S.LOST, True, True),
    ("running", Q.OUT_OF_MEMORY, None, S.FAILED, True, True),
    ("submitted", Q.FAILED, None, S.FAILED, True, True),  # setup commands failed, runner never ran
    ("preempted", Q.ENDED, None, S.PREEMPTED, True, True),
    ("preempted", Q.FAILED, None, S.PREEMPTED, True, True),  # a warning signal (USR1) the task died of
    ("preempted", Q.COMPLETED, None, S.PREEMPTED, True, True),
    ("preempted", None, None, S.PREEMPTED, True, True),  # nobody can tell: unconfirmed
    ("running", Q.COMPLETED, None, S.LOST, True, True),
    ("running", None, None, S.LOST, True, True),
    ("submitted", None, None, S.LOST, True, True),
    ("submitted", Q.ENDED, None, S.LOST, True, True),
]


@pytest.mark.parametrize("status, queue, stopping, state, final, write", TABLE)
def test_state_table(status, queue, stopping, state, final, write) -> None:
    v = resolve_task_state(status, queue, stopping=stopping)
    assert (v.state, v.final, v.write) == (state, final, write)
    # Anything hsm decides from the scheduler's side is confirmed by a second look first.
    assert v.confirm == write
    if write:
        assert v.message


def test_only_a_signal_nobody_can_name_is_unconfirmed() -> None:
    unconfirmed = [(s, q) for s, q, *_ in TABLE if resolve_task_state(s, q).unconfirmed]
    assert unconfirmed == [("preempted", None)]


def test_only_node_failure_sends_a_task_elsewhere() -> None:
    flagged = {q for q in QueueState if resolve_task_state("running", q).infrastructure}
    assert flagged == {QueueState.NODE_FAIL}


def test_every_queue_state_is_in_the_table() -> None:
    covered = {row[1] for row in TABLE}
    assert set(QueueState) <= covered | {None}


def test_the_task_runner_started_by_every_array_element_stays_light() -> None:
    # Each array job element starts a fresh interpreter for the runner, so every module it imports
    # is paid once per task: the plugin API, pluggy, click, rich and jsonschema must stay out.
    import subprocess
    import sys

    heavy = ["pluggy", "click", "rich", "jsonschema", "hsm_core.plugin", "hsm_core.registry", "hsm_core.engine"]
    code = f"import sys, hsm_core.runner; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
