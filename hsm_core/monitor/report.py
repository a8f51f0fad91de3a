"""Sweep reports: ``reports/completion_report.html``, ``reports/error_analysis.html`` and
``reports/performance_analysis.yaml`` (plus the ``logs/errors/*.yaml`` of the error analysis).

The HTML pages are self-contained: inline CSS and inline SVG plots (:mod:`hsm_core.monitor.svg`),
no script, nothing loaded from the network, every value from the sweep HTML-escaped.

:func:`write_reports` is what the engine calls when a sweep ends: it never raises (a report must
not turn a finished sweep into an error) and logs a warning instead.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import statistics
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any, Mapping, Sequence

from hsm_core import __version__
from hsm_core.atomic import atomic_write_text, atomic_write_yaml
from hsm_core.durations import fmt_duration
from hsm_core.monitor import svg
from hsm_core.monitor.errors import CATEGORY_TITLES, ErrorReport, analyze, write_error_files
from hsm_core.monitor.export import Table, build_table
from hsm_core.monitor.logs import parse_time
from hsm_core.monitor.snapshot import Snapshot, load_records, take_snapshot
from hsm_core.plugin import HsmError
from hsm_core.state import SweepDir, TaskRecord, now_iso
from hsm_core.taskdir import METRICS_FILE, STDERR_LOG

log = logging.getLogger("hsm.report")

COMPLETION_REPORT = "completion_report.html"
ERROR_REPORT = "error_analysis.html"
PERFORMANCE_FILE = "performance_analysis.yaml"
STATE_COLORS = {
    "completed": "#16a34a",
    "failed": "#dc2626",
    "running": "#2563eb",
    "queued": "#7c3aed",
    "pending": "#d1d5db",
    "stopped": "#f59e0b",
    "pruned": "#0891b2",
}

CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #111827; background: #f9fafb; margin: 0; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; } h1 code { font-size: 0.85em; } h2 { font-size: 18px; margin: 32px 0 10px; border-bottom: 1px solid #e5e7eb; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
pre { background: #111827; color: #e5e7eb; padding: 10px 12px; border-radius: 6px; overflow-x: auto; white-space: pre-wrap; word-break: break-word; }
.meta { color: #4b5563; margin: 0 0 12px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 14px 0; }
.card { background: #fff; border: 1px solid #e5e7eb; border-radius: 8px; padding: 10px 14px; min-width: 110px; }
.card .n { font-size: 22px; font-weight: 600; } .card .l { color: #6b7280; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.bar { display: flex; height: 16px; border-radius: 8px; overflow: hidden; background: #e5e7eb; margin: 6px 0 4px; }
.bar span { display: block; height: 100%; }
.legend span { display: inline-block; margin-right: 14px; color: #4b5563; font-size: 12px; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; vertical-align: -1px; }
table { border-collapse: collapse; background: #fff; border: 1px solid #e5e7eb; margin: 6px 0 10px; }
th, td { padding: 5px 10px; border-bottom: 1px solid #f3f4f6; text-align: left; vertical-align: top; }
th { background: #f3f4f6; font-weight: 600; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.plots { display: flex; flex-wrap: wrap; gap: 14px; }
.plot-box { background: #fff; border: 1px solid #e5e7eb; border-radius: 8px; padding: 8px; }
.plot-box p { margin: 2px 4px 0; color: #6b7280; font-size: 12px; }
.muted { color: #6b7280; } .ok { color: #16a34a; } .bad { color: #dc2626; } .warn { color: #b45309; }
.mini { display: inline-flex; width: 140px; height: 10px; border-radius: 5px; overflow: hidden; background: #e5e7eb; vertical-align: middle; }
.mini span { display: block; height: 100%; }
.dot { font-weight: 700; } .h-healthy { color: #16a34a; } .h-degraded { color: #b45309; } .h-disabled { color: #dc2626; } .h-unknown { color: #6b7280; }
footer { margin-top: 40px; color: #6b7280; font-size: 12px; }
"""


# -- data ---------------------------------------------------------------------------------------------


@dataclass
class ReportData:
    """Everything the reports show, computed once."""

    sweep: SweepDir
    records: dict[str, TaskRecord]
    snapshot: Snapshot
    errors: ErrorReport
    table: Table
    metric: str | None
    metrics: list[str]  #: metric names with at least one finite number


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def numeric_metrics(table: Table) -> list[str]:
    """Metric names (in column order) with at least one finite numeric value."""
    out = []
    for name, col in table.metric_columns.items():
        if any(_number(row.get(col)) is not None for row in table.rows):
            out.append(name)
    return out


def collect(sweep: SweepDir, *, metric: str | None = None, records: dict[str, TaskRecord] | None = None,
            strict: bool = True) -> ReportData:
    """Read a sweep for its reports. ``metric`` must exist when ``strict`` (else the first is used)."""
    records = records if records is not None else load_records(sweep)
    snapshot = take_snapshot(sweep, cache=_FixedRecords(records))
    errors = analyze(sweep, records.values())
    table = build_table(sweep, records.values())
    names = numeric_metrics(table)
    if metric is not None and metric not in names:
        if strict:
            raise HsmError(
                f"no metric {metric!r} in sweep {sweep.sweep_id}",
                hint=f"metrics found: {', '.join(names)}" if names else f"no task has written {METRICS_FILE} or METRIC lines",
            )
        metric = None
    if metric is None and names:
        metric = names[0]
    return ReportData(sweep, records, snapshot, errors, table, metric, names)


class _FixedRecords:
    """A record source for :func:`take_snapshot` that hands out records already read."""

    def __init__(self, records: dict[str, TaskRecord]) -> None:
        self._records = records

    def load(self) -> dict[str, TaskRecord]:
        return self._records


def duration_stats(values: Sequence[float]) -> dict[str, Any]:
    """count/mean/median/min/max/total of durations in seconds (rounded to ms)."""
    if not values:
        return {"count": 0, "mean": None, "median": None, "min": None, "max": None, "total": 0.0}
    return {
        "count": len(values),
        "mean": round(statistics.fmean(values), 3),
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "total": round(sum(values), 3),
    }


def _end_time(record: TaskRecord) -> _dt.datetime | None:
    end, start, duration = parse_time(record.end_time), parse_time(record.start_time), _number(record.duration)
    if start is not None and duration is not None:
        by_duration = start + _dt.timedelta(seconds=float(duration))
        return by_duration if end is None or by_duration > end else end
    return end


def performance(data: ReportData) -> dict[str, Any]:
    """The content of ``performance_analysis.yaml``."""
    recs = list(data.records.values())
    done = [r for r in recs if r.state == "completed" and _number(r.duration) is not None]
    per_source: dict[str, list[float]] = {}
    for r in done:
        per_source.setdefault(r.source or "unknown", []).append(float(r.duration))  # type: ignore[arg-type]
    starts = [t for t in (parse_time(r.start_time) for r in recs) if t is not None]
    # Times are stored to the second, durations to the millisecond: a task ends no earlier than its
    # start plus its duration, so a sweep that ran within one clock second still has a wall time.
    ends = [t for t in (_end_time(r) for r in recs) if t is not None]
    wall = (max(ends) - min(starts)).total_seconds() if starts and ends and max(ends) > min(starts) else None
    caps = {row.name: row.capacity for row in data.snapshot.sources}
    sources: dict[str, Any] = {}
    for row in data.snapshot.sources:
        durs = per_source.get(row.name, [])
        busy = sum(float(r.duration) for r in recs if r.source == row.name and _number(r.duration) is not None)  # type: ignore[arg-type]
        entry: dict[str, Any] = {
            "tasks": sum(row.counts.values()),
            "completed": row.counts.get("completed", 0),
            "failed": sum(row.counts.get(s, 0) for s in ("failed", "timeout", "lost", "preempted")),
            "max_tasks": caps.get(row.name),
            "durations": duration_stats(durs),
            "busy_seconds": round(busy, 3),
        }
        if wall and caps.get(row.name):
            entry["utilization"] = round(busy / (wall * caps[row.name]), 3)  # type: ignore[operator]
        sources[row.name] = entry
    return {
        "sweep_id": data.sweep.sweep_id,
        "generated": now_iso(),
        "status": data.snapshot.status,
        "tasks": {"total": data.snapshot.total, **dict(sorted(data.snapshot.counts.items()))},
        "wall_time_seconds": round(wall, 3) if wall else None,
        "completed_per_hour": round(len(done) / wall * 3600, 2) if wall else None,
        "durations": {
            "completed": duration_stats([float(r.duration) for r in done]),  # type: ignore[arg-type]
            "per_source": {name: duration_stats(v) for name, v in sorted(per_source.items())},
        },
        "sources": sources,
    }


# -- HTML pieces -----------------------------------------------------------------------------------


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body><main>\n{body}\n"
        f"<footer>Generated by hsm {escape(__version__)} at {escape(now_iso())}. "
        "This page is self-contained: no scripts, nothing loaded from the network.</footer>\n"
        "</main></body></html>\n"
    )


def _fmt_value(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _params_text(params: Mapping[str, Any], limit: int = 120) -> str:
    text = ", ".join(f"{k}={_fmt_value(v)}" for k, v in params.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _stacked_bar(parts: Sequence[tuple[str, int]], total: int, css: str = "bar") -> str:
    if total <= 0:
        return f'<div class="{css}"></div>'
    spans = "".join(
        f'<span style="width:{100.0 * n / total:.3f}%;background:{STATE_COLORS[k]}" title="{escape(k)}: {n}"></span>'
        for k, n in parts
        if n
    )
    return f'<div class="{css}">{spans}</div>' if css == "bar" else f'<span class="{css}">{spans}</span>'


def _state_parts(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    def n(*states: str) -> int:
        return sum(counts.get(s, 0) for s in states)

    return [
        ("completed", n("completed")),
        ("pruned", n("pruned")),
        ("failed", n("failed", "timeout", "lost", "preempted")),
        ("running", n("running")),
        ("queued", n("submitted")),
        ("stopped", n("interrupted", "cancelled")),
        ("pending", n("pending")),
    ]


def _summary_section(data: ReportData) -> str:
    s = data.snapshot
    cards = [
        ("Tasks", s.total, ""),
        ("Completed", s.completed, "ok"),
        ("Failed", s.failed, "bad" if s.failed else ""),
        ("Running", s.running + s.queued, ""),
        ("Pending", s.pending, ""),
    ]
    if s.stopped:
        cards.append(("Interrupted", s.stopped, "warn"))
    if s.pruned:
        cards.append(("Pruned", s.pruned, ""))
    html = ['<h2 id="summary">Status summary</h2><div class="cards">']
    for label, n, cls in cards:
        html.append(f'<div class="card"><div class="n {cls}">{n}</div><div class="l">{escape(label)}</div></div>')
    html.append("</div>")
    parts = _state_parts(s.counts)
    html.append(_stacked_bar(parts, s.total))
    html.append('<div class="legend">' + "".join(
        f'<span><i style="background:{STATE_COLORS[k]}"></i>{escape(k)} {n}</span>' for k, n in parts if n
    ) + "</div>")
    rows = [
        ("Status", s.status),
        ("Progress", s.progress_text),
        ("Duration", fmt_duration(s.elapsed)),
        ("Mean task duration", fmt_duration(s.mean_duration)),
    ]
    if not s.finished:
        rows.append(("ETA", fmt_duration(s.eta)))
    states = ", ".join(f"{k}: {v}" for k, v in sorted(s.counts.items()))
    rows.append(("Tasks per state", states or "–"))
    html.append("<table>" + "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows) + "</table>")
    return "\n".join(html)


def _source_section(data: ReportData, perf: Mapping[str, Any]) -> str:
    rows = data.snapshot.sources
    html = ['<h2 id="sources">Per-source utilization</h2>']
    if not rows:
        return html[0] + '<p class="muted">No task has been assigned to a source yet.</p>'
    html.append(
        "<table><tr><th>Source</th><th class=num>Tasks</th><th class=num>Completed</th><th class=num>Failed</th>"
        "<th class=num>Active / max</th><th class=num>Mean</th><th class=num>Median</th><th class=num>Max</th>"
        "<th class=num>Utilization</th><th>Tasks by state</th><th>Health</th></tr>"
    )
    for row in rows:
        p = perf["sources"].get(row.name, {})
        d = p.get("durations", {})
        total = sum(row.counts.values())
        util = p.get("utilization")
        health = _health_html(row.health)
        html.append(
            f"<tr><td><b>{escape(row.name)}</b></td><td class=num>{total}</td><td class=num>{p.get('completed', 0)}</td>"
            f"<td class=num>{p.get('failed', 0)}</td><td class=num>{row.active}/{row.capacity if row.capacity is not None else '–'}</td>"
            f"<td class=num>{escape(fmt_duration(d.get('mean')))}</td><td class=num>{escape(fmt_duration(d.get('median')))}</td>"
            f"<td class=num>{escape(fmt_duration(d.get('max')))}</td>"
            f"<td class=num>{'–' if util is None else f'{100 * util:.0f}%'}</td>"
            f"<td>{_stacked_bar(_state_parts(row.counts), total, 'mini')}</td><td>{health}</td></tr>"
        )
    html.append("</table>")
    html.append('<p class="muted">Utilization: task time on the source / (wall time × its max tasks).</p>')
    return "\n".join(html)


_HEALTH_WORDS = {"healthy": "Healthy", "degraded": "Degraded", "disabled": "Disabled", "unknown": "not checked"}


def _health_html(h: Any) -> str:
    # Words and a coloured dot rather than emoji: emoji fonts are missing on many cluster nodes.
    word = _HEALTH_WORDS.get(h.state, h.state)
    msg = f' <span class="muted">— {escape(_clip(h.message, 80))}</span>' if h.message else ""
    return f'<span class="h-{escape(h.state)}"><span class="dot">●</span> {escape(word)}</span>{msg}'


def _errors_section(data: ReportData) -> str:
    e = data.errors
    html = ['<h2 id="errors">Error patterns</h2>']
    if not e.failed:
        html.append('<p class="ok">No failed tasks.</p>')
        return "\n".join(html)
    cats = ", ".join(f"{CATEGORY_TITLES.get(c, c)}: {n}" for c, n in e.by_category().items())
    html.append(f"<p>{len(e.failed)} failed task(s) — {escape(cats)}. Details: "
                f'<a href="{ERROR_REPORT}">error analysis</a>, <code>logs/errors/error_patterns.yaml</code>.</p>')
    html.append("<table><tr><th class=num>Tasks</th><th>Pattern</th><th>Category</th><th>Example</th><th>Which</th></tr>")
    for i, g in enumerate(e.groups):
        names = ", ".join(f.record.name for f in g.tasks[:8]) + (f" … (+{g.count - 8})" if g.count > 8 else "")
        html.append(
            f"<tr><td class=num>{g.count}</td><td><a href=\"{ERROR_REPORT}#pattern-{i + 1}\"><code>{escape(g.pattern)}</code></a></td>"
            f"<td>{escape(CATEGORY_TITLES.get(g.category, g.category))}</td><td><code>{escape(_clip(g.example, 140))}</code></td>"
            f"<td>{escape(names)}</td></tr>"
        )
    html.append("</table>")
    return "\n".join(html)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _metric_section(data: ReportData) -> str:
    html = ['<h2 id="metrics">Metrics</h2>']
    if data.metric is None:
        html.append(f'<p class="muted">No metrics found: write <code>$HSM_TASK_DIR/{METRICS_FILE}</code> or print '
                    "<code>METRIC name=value</code> lines from your script.</p>")
        return "\n".join(html)
    col = data.table.metric_columns[data.metric]
    rows = [r for r in data.table.rows if _number(r.get(col)) is not None]
    others = [m for m in data.metrics if m != data.metric]
    html.append(
        f"<p>Metric <b>{escape(data.metric)}</b> of {len(rows)} task(s) against each parameter "
        "(one dot per task; red line: mean per value)."
        + (f' <span class="muted">Other metrics: {escape(", ".join(others[:20]))}'
           f"{' …' if len(others) > 20 else ''} (choose with <code>hsm report SWEEP_ID --metric NAME</code>).</span>" if others else "")
        + "</p>"
    )
    if len(rows) > svg.MAX_POINTS:
        html.append(f'<p class="muted">Plots show {svg.MAX_POINTS:,} of {len(rows):,} tasks (evenly sampled); means use all.</p>')
    html.append('<div class="plots">')
    constant = []
    for pname, pcol in data.table.param_columns.items():
        points = [(r.get(pcol), float(r[col])) for r in rows]
        distinct = {repr(x) for x, _ in points}
        if len(distinct) <= 1:
            constant.append(pname)
            continue
        html.append(f'<div class="plot-box">{svg.metric_plot(points, x_label=pname, y_label=data.metric)}</div>')
    html.append("</div>")
    if constant:
        html.append(f'<p class="muted">Not plotted (one value only): {escape(", ".join(constant))}.</p>')
    ranked = sorted(rows, key=lambda r: float(r[col]))
    if ranked:
        if len(ranked) <= 10:
            title, picks = f"All tasks by {data.metric}", [("", r) for r in ranked]
        else:
            title = f"Lowest and highest {data.metric}"
            picks = [("lowest", r) for r in ranked[:5]] + [("highest", r) for r in ranked[-5:]]
        html.append(f"<h3>{escape(title)}</h3><table><tr><th></th><th>Task</th>"
                    f"<th class=num>{escape(data.metric)}</th><th>Parameters</th></tr>")
        for label, r in picks:
            params = {p: r.get(c) for p, c in data.table.param_columns.items()}
            html.append(f"<tr><td class=muted>{label}</td><td>{escape(r['task'])}</td><td class=num>{escape(_fmt_value(r[col]))}</td>"
                        f"<td><code>{escape(_params_text(params))}</code></td></tr>")
        html.append("</table>")
    return "\n".join(html)


def _duration_section(data: ReportData) -> str:
    durs = [float(r.duration) for r in data.records.values() if r.state == "completed" and _number(r.duration) is not None]  # type: ignore[arg-type]
    if not durs:
        return ""
    return (
        '<h2 id="durations">Task durations</h2><div class="plots"><div class="plot-box">'
        + svg.histogram(durs, x_label="duration of completed tasks (s)")
        + f"<p>{len(durs)} completed task(s); details in <code>reports/{PERFORMANCE_FILE}</code>.</p></div></div>"
    )


def completion_html(data: ReportData, perf: Mapping[str, Any]) -> str:
    """The completion report page."""
    s = data.snapshot
    meta = s.metadata
    facts = [
        f"status <b>{escape(s.status)}</b>",
        f"created {escape(str(meta.get('created') or '–'))}",
        f"duration {escape(fmt_duration(s.elapsed))}",
    ]
    if meta.get("sources"):
        facts.append(f"sources <code>{escape(str(meta['sources']))}</code>")
    if meta.get("strategy"):
        facts.append(f"strategy {escape(str(meta['strategy']))}")
    desc = (meta.get("metadata") or {}).get("description") if isinstance(meta.get("metadata"), dict) else None
    body = [
        f"<h1>Sweep <code>{escape(s.sweep_id)}</code></h1>",
        f'<p class="meta">{" · ".join(facts)}</p>',
    ]
    if desc:
        body.append(f"<p>{escape(str(desc))}</p>")
    body += [
        _summary_section(data),
        _source_section(data, perf),
        _errors_section(data),
        _metric_section(data),
        _duration_section(data),
    ]
    return _page(f"Sweep {s.sweep_id}: completion report", "\n".join(b for b in body if b))


def error_html(data: ReportData) -> str:
    """The error analysis page: every pattern, its tasks and the end of their stderr."""
    e = data.errors
    body = [f"<h1>Error analysis: <code>{escape(e.sweep_id)}</code></h1>",
            f'<p class="meta">{len(e.failed)} failed task(s) of {data.snapshot.total}. '
            f'<a href="{COMPLETION_REPORT}">Completion report</a>.</p>']
    if not e.failed:
        body.append('<p class="ok">No failed tasks.</p>')
        return _page(f"Sweep {e.sweep_id}: error analysis", "\n".join(body))
    body.append("<h2>By category</h2><table><tr><th>Category</th><th class=num>Tasks</th></tr>")
    for cat, n in e.by_category().items():
        body.append(f"<tr><td>{escape(CATEGORY_TITLES.get(cat, cat))}</td><td class=num>{n}</td></tr>")
    body.append("</table>")
    for i, g in enumerate(e.groups):
        body.append(f'<h2 id="pattern-{i + 1}">{i + 1}. <code>{escape(g.pattern)}</code></h2>')
        body.append(f"<p>{g.count} task(s) · {escape(CATEGORY_TITLES.get(g.category, g.category))} · example: "
                    f"<code>{escape(_clip(g.example, 300))}</code></p>")
        body.append("<table><tr><th>Task</th><th>State</th><th class=num>Exit code</th><th>Source</th><th>Host</th>"
                    "<th class=num>Duration</th><th>Parameters</th><th>Message</th></tr>")
        for f in g.tasks[:200]:
            r = f.record
            body.append(
                f"<tr><td>{escape(r.name)}</td><td>{escape(r.state)}</td><td class=num>{escape(_fmt_value(r.exit_code))}</td>"
                f"<td>{escape(str(r.source or '–'))}</td><td>{escape(str(r.host or '–'))}</td>"
                f"<td class=num>{escape(fmt_duration(r.duration if _number(r.duration) is not None else None))}</td>"
                f"<td><code>{escape(_params_text(r.params))}</code></td>"
                f"<td><code>{escape(_clip(f.diagnosis.message, 160))}</code></td></tr>"
            )
        body.append("</table>")
        if g.count > 200:
            body.append(f'<p class="muted">… and {g.count - 200} more (all in logs/errors/failed_tasks.yaml).</p>')
        for f in g.tasks[:2]:
            tail = "\n".join(f.tail[-15:]) or f"({STDERR_LOG} is empty)"
            body.append(f"<h3>{escape(f.record.name)}: end of <code>{STDERR_LOG}</code></h3><pre>{escape(tail)}</pre>")
    return _page(f"Sweep {e.sweep_id}: error analysis", "\n".join(body))


# -- writing ---------------------------------------------------------------------------------------


def build_reports(sweep: SweepDir, *, metric: str | None = None, records: dict[str, TaskRecord] | None = None,
                  strict: bool = True, output_dir: Path | None = None) -> list[Path]:
    """Write every report of ``sweep`` (into ``output_dir``, default the sweep's ``reports/``) and
    return the paths written. Raises on errors; the sweep's ``logs/errors/*.yaml`` are written
    too when the sweep can be written to (they are a by-product: a read-only sweep gets its
    reports elsewhere all the same)."""
    data = collect(sweep, metric=metric, records=records, strict=strict)
    reports = Path(output_dir) if output_dir is not None else sweep.path / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    try:
        written = write_error_files(sweep, data.errors)
    except OSError:
        if output_dir is None:
            raise
        written = []
    perf = performance(data)
    atomic_write_yaml(reports / PERFORMANCE_FILE, perf, fsync=False)
    atomic_write_text(reports / ERROR_REPORT, error_html(data), fsync=False)
    atomic_write_text(reports / COMPLETION_REPORT, completion_html(data, perf), fsync=False)
    return written + [reports / PERFORMANCE_FILE, reports / ERROR_REPORT, reports / COMPLETION_REPORT]


def write_reports(sweep_dir: Path | SweepDir, *, metric: str | None = None) -> list[Path]:
    """Write the reports of a sweep and return their paths, for the end of a run.

    Never raises: a failure is logged as a warning (and in ``logs/sweep.log``) and gives ``[]``.
    An unknown ``metric`` falls back to the first metric found.
    """
    sweep: SweepDir | None = None
    try:
        sweep = sweep_dir if isinstance(sweep_dir, SweepDir) else SweepDir(Path(sweep_dir))
        return build_reports(sweep, metric=metric, strict=False)
    except Exception as exc:  # a broken report must never fail a finished sweep
        log.warning("hsm: could not write the reports of %s: %r", sweep_dir, exc)
        if sweep is not None:
            try:
                sweep.log("sweep.log", f"warning: reports not written: {exc!r}")
            except Exception:
                pass
        return []
