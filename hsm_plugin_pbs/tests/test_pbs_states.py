"""PBS job states and qstat output (PBS Pro, Torque and Slurm's front-end)."""

from __future__ import annotations

import pytest

from hsm_core.plugin import QueueState
from hsm_plugin_pbs.source import PBS_STATES, PbsSource, map_pbs_state, parse_qstat_full, parse_qstat_listing

EXPECTED = {
    "Q": "pending", "H": "pending", "W": "pending", "T": "pending", "M": "pending",
    "R": "running", "B": "running", "E": "completing", "S": "suspended", "U": "suspended",
    "C": "ended", "F": "ended", "X": "ended",
}  # fmt: skip


@pytest.mark.parametrize("letter, state", sorted(EXPECTED.items()))
def test_every_state_letter_maps(letter: str, state: str) -> None:
    assert map_pbs_state(letter) is QueueState(state)


def test_the_table_is_exactly_the_documented_letters() -> None:
    assert set(PBS_STATES) == set(EXPECTED)


def test_exit_status_of_finished_jobs() -> None:
    assert map_pbs_state("F", "0", "pbs") is QueueState.COMPLETED
    assert map_pbs_state("F", "-29", "pbs") is QueueState.TIMEOUT  # PBS Pro JOB_EXEC_KILL_WALLTIME
    assert map_pbs_state("C", "-11", "torque") is QueueState.TIMEOUT  # Torque JOB_EXEC_KILL_WALLTIME
    assert map_pbs_state("F", "271", "pbs") is QueueState.ENDED
    assert map_pbs_state("R", "0", "pbs") is QueueState.RUNNING


FRONTEND = """Job Id:\t95
\tJob_Name = pbstest
\tJob_Owner = root@localhost
\tjob_state = C
\tqueue = debug

Job Id:\t96
\tJob_Name = pbstest
\tjob_state = R
"""

PBS_PRO = """Job Id: 1234[].pbs01.cluster.org
    Job_Name = hsm_sweep_x_001
    job_state = B
    array = True
    array_indices_remaining = 3-9

Job Id: 1234[1].pbs01.cluster.org
    Job_Name = hsm_sweep_x_001
    job_state = F
    Exit_status = -29

Job Id: 1234[2].pbs01.cluster.org
    job_state = R
"""


def test_front_end_qstat_f() -> None:
    out = parse_qstat_full(FRONTEND)
    assert out["95"].state is QueueState.ENDED and out["96"].state is QueueState.RUNNING


def test_pbs_pro_qstat_f_with_subjobs() -> None:
    out = parse_qstat_full(PBS_PRO, "pbs")
    assert out["1234[].pbs01.cluster.org"].state is QueueState.RUNNING
    assert out["1234[1]"].state is QueueState.TIMEOUT and out["1234[1]"].raw == "F exit=-29"
    assert out["1234[2]"].state is QueueState.RUNNING


@pytest.mark.parametrize("out, job_id", [("1234[].pbs01\n", "1234[].pbs01"), ("95\n", "95"), ("5678.server.org\n", "5678.server.org")])
def test_job_ids_from_qsub(out: str, job_id: str, tmp_path) -> None:
    from hsm_core.testing import make_sweep

    _, _, ctx = make_sweep(tmp_path, [{"x": 1}])
    src = PbsSource("pbs", {}, ctx)
    assert src.parse_job_id(out) == job_id
    with pytest.raises(ValueError):
        src.parse_job_id("There was an error running the Slurm sbatch command.")


def test_element_ids_of_pbs_arrays(tmp_path) -> None:
    from hsm_core.testing import make_sweep

    _, _, ctx = make_sweep(tmp_path, [{"x": 1}])
    src = PbsSource("pbs", {}, ctx)
    assert src.element_keys("1234[].pbs01", 7) == ["1234[7].pbs01", "1234[7]"]
    assert src.element_keys("95", 3) == []  # Slurm's front-end: known once the element runs
    assert src.status_keys({"job_id": "1234[7].pbs01.cluster.org"}) == ["1234[7].pbs01.cluster.org", "1234[7]"]


# Slurm's front-end's `qstat` listing (slurm-wlm-torque's print_job_brief), other users' jobs included.
FRONTEND_LISTING = """Job id              Name             Username        Time Use S Queue          
------------------- ---------------- --------------- -------- - ---------------
1601                other job        alice           00:00:00 Q debug          
95                  hsm_sweep_x_001  root            00:00:00 C debug          
96                  hsm_sweep_x_001  root            00:00:01 R debug          
97                  hsm_sweep_x_001  root            00:00:00 Q debug          
"""


def test_front_end_qstat_listing_gives_the_rows_asked_for() -> None:
    out = parse_qstat_listing(FRONTEND_LISTING, ["95", "96", "98"], "torque")
    assert set(out) == {"95", "96"}  # 1601 and 97 not asked for, 98 not listed (gone)
    assert out["95"].state is QueueState.ENDED and out["96"].state is QueueState.RUNNING and out["96"].raw == "R"


def _source_following(tmp_path, array_id: str, flavour: str, listing: str) -> tuple[PbsSource, list[list[str]]]:
    """A source following a two-task array job ``array_id``, whose qstat answers ``listing``."""
    from hsm_core.plugin import CommandResult, SubmittedChunk
    from hsm_core.testing import make_sweep

    _, specs, ctx = make_sweep(tmp_path, [{"x": 1}, {"x": 2}])
    src = PbsSource(flavour, {"system": flavour}, ctx)
    chunk = SubmittedChunk(job_id=array_id, name="hsm_sweep_x_001", script="s.sh", list_file="s.list",
                           task_ids=[s.task_id for s in specs])
    src.watcher.follow_chunk(chunk, specs)
    calls: list[list[str]] = []

    def run(argv, **kw):
        calls.append(list(argv))
        return CommandResult(0, listing, "")

    src.run = run  # type: ignore[method-assign]
    return src, calls


@pytest.mark.parametrize("flavour", ["torque", "pbs"])
def test_on_slurms_front_end_jobs_are_read_from_one_plain_qstat_listing(tmp_path, flavour: str) -> None:
    # A plain-number array id is the front-end's: one `qstat`, no -f with every id (which costs
    # the front-end a regex per job and id) and no -t / -x it would refuse first.
    src, calls = _source_following(tmp_path, "95", flavour, FRONTEND_LISTING)
    assert src.on_slurm_front_end()
    out = src.query(["95", "96"])
    assert calls == [["qstat"]]
    assert out["95"].state is QueueState.ENDED and out["96"].state is QueueState.RUNNING


def test_real_pbs_and_torque_arrays_are_still_queried_with_qstat_f(tmp_path) -> None:
    src, calls = _source_following(tmp_path, "1234[].pbs01", "pbs", PBS_PRO)
    assert not src.on_slurm_front_end()
    out = src.query(["1234[].pbs01"])
    assert calls == [["qstat", "-f", "-x", "-t", "1234[].pbs01"]]
    assert out["1234[2]"].state is QueueState.RUNNING
