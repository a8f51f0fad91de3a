"""Test helpers for hsm and its plugins (public API, like :mod:`hsm_core.plugin`).

* :func:`fresh_registry` / the ``hsm_registry`` fixture: a plugin registry built for one test.
* :func:`make_sweep`: a sweep directory with task dirs ready to hand to a compute source.
* :func:`run_until_final`: launch tasks on a source and poll until each is final.
* :class:`ComputeSourceContract`: the contract suite every compute source passes; subclass it and
  implement :meth:`ComputeSourceContract.make_source`.
* :func:`run_sweep` / :func:`host_for`: a sweep run and a host by name, in-process
  (:mod:`hsm_core.testing.inprocess`).
* :mod:`hsm_core.testing.services`: start a real Slurm / sshd for integration tests.

The fixtures come from the pytest plugin ``hsm_core.testing.pytest_plugin``, which is opt-in (hsm-core
declares no ``pytest11`` entry point, so it changes no other project's pytest sessions): a test
directory's ``conftest.py`` says ``pytest_plugins = ["hsm_core.testing.pytest_plugin"]``.
"""

from hsm_core.testing.contracts import ComputeSourceContract
from hsm_core.testing.helpers import (
    SCRIPT,
    fresh_registry,
    make_sweep,
    read_task_status,
    run_until_final,
)
from hsm_core.testing.inprocess import host_for, run_sweep

__all__ = [
    "ComputeSourceContract",
    "SCRIPT",
    "fresh_registry",
    "make_sweep",
    "read_task_status",
    "run_until_final",
    "run_sweep",
    "host_for",
]
