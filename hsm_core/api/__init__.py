"""hsm from Python (notebooks, scripts): load sweeps, read their tasks, start and complete sweeps.

``import hsm`` gives the same names (the ``hsm`` package re-exports this package)::

    import hsm

    sw = hsm.load_sweep()                       # the latest sweep of the project at the cwd
    for task in sw:                             # parameters, state and metrics of every task
        print(task.name, task.params, task.state, task.metrics.get("loss"))
    df = sw.to_dataframe()                      # the columns of `hsm export` (needs pandas)

    sw = hsm.run("sweeps/sweep.yaml", sources="local:4")            # blocks until the sweep ends
    sw = hsm.run("sweeps/sweep.yaml", wait=False); sw.wait()        # runs in the background
    sw.complete(retry_failed=True)

Reading never changes a task or a sweep (it may be running, or belong to a colleague). Everything
is imported when first used, so ``import hsm`` costs almost nothing. Errors are
:class:`~hsm_core.errors.HsmError` with the same one-line message the command prints.
"""

from __future__ import annotations

from hsm_core.api.sweeps import Sweep, Task, list_sweeps, load_sweep, run
from hsm_core.errors import HsmError

__all__ = ["HsmError", "Sweep", "Task", "list_sweeps", "load_sweep", "run"]
