"""Test helpers for hsm and its plugins (public API, like :mod:`hsm_core.plugin`).

* :func:`fresh_registry` / the ``hsm_registry`` fixture: a plugin registry built for one test.
* :func:`make_sweep`: a sweep directory with task dirs ready to hand to a compute source.
* :func:`run_until_final`: launch tasks on a source and poll until each is final.
* Contract suites, one per kind of component; subclass one in your plugin's tests:
  :class:`ComputeSourceContract` (implement ``make_source``; it covers what exactly-once depends
  on: tasks that outlive a killed controller, ``attach``, ``interrupt``, ``detach``, ``cancel``),
  :class:`ExpanderContract` (set ``expander`` and the example sections) and
  :class:`SyncTransportContract` (implement ``make_transport``); pruners:
  :func:`check_pruner_contract` (give it the pruner's factory and settings).
* :mod:`hsm_core.testing.observer`: the contract tests' task script and what it logs;
  :mod:`hsm_core.testing.runlog`: counting executions from the tasks' own log.
* :func:`run_sweep` / :func:`host_for` / :func:`before_run`: a sweep run, a host by name, and
  core's checks of a run's sources before it starts, in-process (:mod:`hsm_core.testing.inprocess`).
* :mod:`hsm_core.testing.services`: start a real Slurm / sshd for integration tests.
* :mod:`hsm_core.testing.slurm_signals`: :func:`~hsm_core.testing.slurm_signals.poke_tasks` does
  to running tasks of a sweep on the real Slurm what a cluster does to array elements (the
  ``USR1`` warning to the batch shell, ``scontrol requeue``, ``scancel``).
* :mod:`hsm_core.testing.recording_scheduler`:
  :class:`~hsm_core.testing.recording_scheduler.RecordingArrayJobSource`, an array-job source
  made of plain commands that keeps every array job it was handed (chunks, throttles, lanes).

The fixtures come from the pytest plugin ``hsm_core.testing.pytest_plugin``, which is opt-in (hsm-core
declares no ``pytest11`` entry point, so it changes no other project's pytest sessions): a test
directory's ``conftest.py`` says ``pytest_plugins = ["hsm_core.testing.pytest_plugin"]``.
"""

from typing import Any

from hsm_core.testing.helpers import (
    SCRIPT,
    fresh_registry,
    make_sweep,
    read_task_status,
    run_until_final,
)
from hsm_core.testing.inprocess import before_run, host_for, run_sweep

# The contract suites need pytest; they are imported when first named, so that the services and
# helpers of this package (used by benchmarks too) do not.
_CONTRACTS = {
    "ComputeSourceContract": "hsm_core.testing.contracts",
    "ContractCase": "hsm_core.testing.contracts",
    "ExpanderContract": "hsm_core.testing.expanders",
    "SyncTransportContract": "hsm_core.testing.sync",
    "check_pruner_contract": "hsm_core.testing.pruners",
    "check_task_env_batch": "hsm_core.testing.task_env",
}


def __getattr__(name: str) -> Any:
    if name in _CONTRACTS:
        from importlib import import_module

        return getattr(import_module(_CONTRACTS[name]), name)
    raise AttributeError(f"module 'hsm_core.testing' has no attribute {name!r}")


__all__ = [
    "ComputeSourceContract",
    "ContractCase",
    "ExpanderContract",
    "SCRIPT",
    "SyncTransportContract",
    "check_pruner_contract",
    "check_task_env_batch",
    "fresh_registry",
    "make_sweep",
    "read_task_status",
    "run_until_final",
    "run_sweep",
    "host_for",
    "before_run",
]
