"""The report's search views: best runs, parallel coordinates, optimisation history.

A section of ``completion_report.html`` (:mod:`hsm_core.monitor.report`), built from the export
table the report already holds: the best runs by the sweep's ``metric:`` (else the report's
metric, lower taken as better), one parallel-coordinates plot of every completed run, and for an
adaptive (``search:``) sweep each trial's value with the best so far.
"""

from __future__ import annotations

from html import escape
from typing import Any

from hsm_core.monitor import svg_search
from hsm_core.monitor.export import Table
from hsm_core.state import SweepDir
from hsm_core.sweep_metric import SweepMetric, declared_metric, metric_number

#: Rows of the best-runs table.
TOP = 10
#: Parameters drawn as axes of the parallel-coordinates plot (the first that vary).
MAX_AXES = 12


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def report_metric(sweep: SweepDir, chosen: str | None) -> tuple[SweepMetric | None, bool]:
    """The metric the search views rank by, and whether the sweep declared it (``metric:``).
    The report's own metric (``--metric`` or the first found) when the sweep declares another."""
    declared = declared_metric(sweep.path)
    if declared is not None and (chosen is None or chosen == declared.name):
        return declared, True
    return (SweepMetric(chosen), False) if chosen else (None, False)


def best_section(sweep: SweepDir, table: Table, chosen: str | None) -> str:
    """The HTML of the section ('' when no task has a number for the metric)."""
    metric, declared = report_metric(sweep, chosen)
    if metric is None or metric.name not in table.metric_columns:
        return ""
    col = table.metric_columns[metric.name]
    done = [r for r in table.rows if r.get("status") == "completed" and metric_number(r.get(col)) is not None]
    if not done:
        return ""
    done.sort(key=lambda r: float(r[col]), reverse=metric.descending)
    varying = [p for p, c in table.param_columns.items() if len({repr(r.get(c)) for r in done}) > 1]
    shown = varying or list(table.param_columns)
    how = (f"the sweep's metric, {escape(metric.goal)}" if declared
           else "lower taken as better; declare <code>metric: {name, goal}</code> in the sweep file to choose")
    html = [f'<h2 id="best">Best runs</h2><p>By <b>{escape(metric.name)}</b> ({how}): the {min(TOP, len(done))} best '
            f'of {len(done)} completed run(s). <code>hsm export --sort {escape(metric.name)}'
            f'{" --desc" if metric.descending else ""} --top N</code> gives them as CSV.</p>']
    html.append("<table><tr><th class=num>#</th><th>Task</th>"
                f"<th class=num>{escape(metric.name)}</th>"
                + "".join(f"<th>{escape(p)}</th>" for p in shown) + "</tr>")
    for i, row in enumerate(done[:TOP], 1):
        html.append(f"<tr><td class=num>{i}</td><td>{escape(str(row['task']))}</td>"
                    f"<td class=num>{escape(_fmt(row[col]))}</td>"
                    + "".join(f"<td>{escape(_fmt(row.get(table.param_columns[p])))}</td>" for p in shown) + "</tr>")
    html.append("</table>")
    axes = varying[:MAX_AXES]
    if axes and len(done) >= 2:
        rows = [{**{p: r.get(table.param_columns[p]) for p in axes}, metric.name: float(r[col])} for r in done]
        plot = svg_search.parallel_coordinates(rows, axes, metric.name, descending=metric.descending)
        more = f" The first {MAX_AXES} varying parameters are drawn." if len(varying) > MAX_AXES else ""
        html.append(f'<h3>Parallel coordinates</h3><div class="plots"><div class="plot-box">{plot}'
                    f"<p>Each completed run across its parameters and {escape(metric.name)}.{more}</p></div></div>")
    history = _history(sweep, table, col)
    if history:
        plot = svg_search.optimisation_history(history, metric.name, descending=metric.descending)
        html.append(f'<h3>Optimisation history</h3><div class="plots"><div class="plot-box">{plot}'
                    f"<p>{len(history)} trial(s) of the adaptive search, in the order asked.</p></div></div>")
    return "\n".join(html)


def _history(sweep: SweepDir, table: Table, col: str) -> list[tuple[int, float]]:
    """(trial number, value) of an adaptive sweep's completed trials; [] for any other sweep."""
    from hsm_core.adaptive import TrialLog

    asked = TrialLog(sweep.path).asked()
    if not asked:
        return []
    number_of = {a.get("task_id"): n for n, a in asked.items()}
    out = []
    for row in table.rows:
        n, value = number_of.get(row.get("id")), metric_number(row.get(col))
        if n is not None and value is not None and row.get("status") == "completed":
            out.append((n, value))
    return out
