"""Slurm's states and outputs, read the way the source reads them."""

from __future__ import annotations

import pytest

from hsm_core.plugin import QueueState
from hsm_plugin_slurm.source import SLURM_STATES, SlurmSource, map_slurm_state, parse_max_array_size, parse_squeue

US = "\x1f"

EXPECTED = {
    "PENDING": "pending", "CONFIGURING": "pending", "REQUEUED": "pending", "REQUEUE_FED": "pending",
    "REQUEUE_HOLD": "pending", "RESV_DEL_HOLD": "pending", "SPECIAL_EXIT": "pending", "POWER_UP_NODE": "pending",
    "RUNNING": "running", "RESIZING": "running", "SIGNALING": "running",
    "SUSPENDED": "suspended", "STOPPED": "suspended",
    "COMPLETING": "completing", "STAGE_OUT": "completing",
    "COMPLETED": "completed", "FAILED": "failed", "CANCELLED": "cancelled", "REVOKED": "cancelled",
    "TIMEOUT": "timeout", "DEADLINE": "timeout", "PREEMPTED": "preempted",
    "NODE_FAIL": "node_fail", "BOOT_FAIL": "node_fail", "OUT_OF_MEMORY": "out_of_memory",
}  # fmt: skip


@pytest.mark.parametrize("word, state", sorted(EXPECTED.items()))
def test_every_slurm_state_maps(word: str, state: str) -> None:
    assert map_slurm_state(word) is QueueState(state)


def test_the_table_is_exactly_the_documented_states() -> None:
    assert set(SLURM_STATES) == set(EXPECTED)


def test_sacct_spellings_and_unknown_states() -> None:
    assert map_slurm_state("CANCELLED by 0") is QueueState.CANCELLED
    assert map_slurm_state("CANCELLED+") is QueueState.CANCELLED
    assert map_slurm_state("something_new") is QueueState.PENDING  # unknown: still active, never final


def test_squeue_lines_are_keyed_by_element_and_own_job_id() -> None:
    out = parse_squeue(
        f"100{US}100_2{US}PENDING{US}JobArrayTaskLimit\n"
        f"100{US}100_3{US}PENDING{US}JobArrayTaskLimit\n"
        f"102{US}100_1{US}RUNNING{US}None\n"
        f"101{US}100_0{US}TIMEOUT{US}TimeLimit\n"
    )
    assert out["100_1"].state is QueueState.RUNNING and out["102"].state is QueueState.RUNNING
    assert out["100_0"].state is QueueState.TIMEOUT and out["101"].raw == "TIMEOUT"
    assert out["100_2"].reason == "JobArrayTaskLimit"
    # The array's own id names no single element while it is pending.
    assert "100" not in out


def test_max_array_size_from_scontrol() -> None:
    text = "Configuration data as of 2026-01-01T00:00:00\nMaxArraySize            = 1001\nMaxJobCount             = 10000\n"
    assert parse_max_array_size(text) == 1001
    assert parse_max_array_size("nothing") is None


@pytest.mark.parametrize("out, job_id", [("12345\n", "12345"), ("12345;cluster2\n", "12345"), ("warning: x\n678\n", "678")])
def test_job_id_from_sbatch_parsable(out: str, job_id: str, tmp_path) -> None:
    from hsm_core.testing import make_sweep

    _, _, ctx = make_sweep(tmp_path, [{"x": 1}])
    assert SlurmSource("slurm", {}, ctx).parse_job_id(out) == job_id
    with pytest.raises(ValueError):
        SlurmSource("slurm", {}, ctx).parse_job_id("Submitted nothing")
