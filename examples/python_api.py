"""hsm from a notebook: each block below is one notebook cell (docs/python-api.md).

Run it as a script in a copy of the demo project::

    cp -r examples/demo_project /tmp/demo && python examples/python_api.py /tmp/demo

It starts a sweep and waits for it, reads its tasks (parameters, state, metrics), makes a table,
extends the sweep with more learning rates in the background, and loads it again as a later
notebook would. The tests run it (tests/test_python_api.py).
"""

import sys

import hsm

project = sys.argv[1] if len(sys.argv) > 1 else "."

# %% Start a sweep and wait for it: the cell returns when every task has ended.
sweep = hsm.run(
    {"grid": {"learning_rate": [0.001, 0.01], "batch_size": [32, 64]}},
    project=project,
    sources="local:4",
)
print(sweep)  # <Sweep sweep_...: completed, 4/4 (100.0%)>

# %% Every task: its parameters, its state and what its metrics.json says.
for task in sweep:
    print(task.name, task.params, task.state, task.metrics.get("loss"))
best = min((t for t in sweep if t.state == "completed"), key=lambda t: t.metrics["loss"])
print("best:", best.name, best.params, "loss", best.metrics["loss"])

# %% A table: a pandas DataFrame with the columns of `hsm export` (plain dicts without pandas).
try:
    table = sweep.to_dataframe()
    print(table.sort_values("loss")[["task", "learning_rate", "batch_size", "status", "loss"]].to_string(index=False))
except hsm.HsmError as no_pandas:
    print(no_pandas)
    for row in sweep.rows():
        print(row["task"], row["learning_rate"], row["batch_size"], row["status"], row["loss"])

# %% More learning rates, in the background: only the new combinations run; the cell returns at once.
sweep.complete(
    config={"grid": {"learning_rate": [0.001, 0.01, 0.5], "batch_size": [32, 64]}},
    wait=False,
)
print("running in the background:", sweep)
sweep.wait()  # blocks until the controller is done (interrupting the wait stops nothing)
print(sweep, sweep.counts)

# %% What failed, and why (the last line of each failed task's stderr).
for task in sweep:
    if task.state == "failed":
        print(task.name, task.params, "->", task.stderr().strip().splitlines()[-1])

# %% Later, in another notebook: the latest sweep of the project, as `hsm status` sees it.
again = hsm.load_sweep("latest", project=project)
print(again.id == sweep.id, f"{again.progress:.1f}% done", again.counts)
