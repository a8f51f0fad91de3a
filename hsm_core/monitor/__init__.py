"""Monitoring and results: what ``hsm monitor``, ``hsm export``, ``hsm report`` and ``hsm cleanup`` show.

Everything here reads the sweep directory only (the index, the logs, the task dirs of failed
tasks), so it works the same for a sweep that runs right now, one that ran last month, and one
whose controller died.

* :mod:`.logs` — reading ``source_utilization.log`` and ``health_status.log``.
* :mod:`.snapshot` — counts, duration, ETA and per-source rows of one sweep, cheaply.
* :mod:`.errors` — failed tasks grouped by error pattern; ``logs/errors/*.yaml``.
* :mod:`.export` — one row per task (parameters, status, metrics) as CSV or JSON.
* :mod:`.report` — ``reports/*.html`` and ``performance_analysis.yaml``; :func:`write_reports`.
* :mod:`.svg` — the plots of the report, rendered as inline SVG.
* :mod:`.view` — the rich renderables of ``hsm monitor``.
* :mod:`.cleanup` — which old sweeps ``hsm cleanup`` may delete.
* :mod:`.status` — what ``hsm status`` counts of a sweep; where a project's sweeps are.
* :mod:`.watch` — which sweeps ``hsm monitor watch`` follows, round by round, and when it is over.
"""
