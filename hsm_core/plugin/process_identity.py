"""Process identity (part of :mod:`hsm_core.plugin`): the module :mod:`hsm_core.processes` itself.

``from hsm_core.plugin import processes`` gives the module every decision of hsm about processes
goes through: ``processes.identity(pid)`` (``"PID:START"``, so a reused pid is never mistaken for
the process it was), ``processes.is_running(identity)`` (True, False, or None when it cannot be
checked: never start a second copy of a task on None), ``processes.group_alive(pgid)``,
``processes.signal_group``, ``processes.stop_group`` (with ``task_dir=``: also the task's daemons
that left its session), ``processes.escaped(task_dir)`` (those daemons), ``processes.wait_gone``,
``processes.cmdline`` and ``processes.machine_id()``. It is exported as the module, not copied, so
a plugin and core always agree.
"""

from __future__ import annotations

from hsm_core import processes

__all__ = ["processes"]
