"""The search plots of the report as inline SVG: parallel coordinates and optimisation history.

Like :mod:`hsm_core.monitor.svg`: pure functions from values to markup, no script, nothing
fetched, every label escaped.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any, Mapping, Sequence

from hsm_core.monitor.svg import AXIS_COLOR, GRID_COLOR, MAX_POINTS, POINT_COLOR, _fmt, _label, _svg, nice_ticks

BEST_COLOR = "#dc2626"
#: Colours of a line by its rank (good: dark blue, bad: pale grey-blue).
_GOOD, _BAD = (29, 78, 216), (203, 213, 225)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def _axis_positions(values: Sequence[Any]) -> tuple[Any, list[str]]:
    """A function value -> position in [0, 1] for one axis, and its tick labels ``(pos, text)``.
    Numbers spread linearly (log when they span two decades or more and are all positive);
    anything else is a category, evenly spaced in sorted order."""
    present = [v for v in values if v is not None]
    if present and all(_is_number(v) for v in present):
        nums = [float(v) for v in present]
        lo, hi = min(nums), max(nums)
        log = lo > 0 and hi / lo >= 100
        if log:
            lo, hi = math.log10(lo), math.log10(hi)
        span = (hi - lo) or 1.0

        def pos(v: Any) -> float | None:
            if not _is_number(v):
                return None
            x = math.log10(float(v)) if log else float(v)
            return (x - lo) / span if hi != lo else 0.5

        if log:
            ticks = [(pos(10 ** e), _fmt(10 ** e)) for e in range(math.ceil(lo), math.floor(hi) + 1)]
        else:
            ticks = [(pos(t), _fmt(t)) for t in nice_ticks(lo, hi, 4)] if hi != lo else [(0.5, _fmt(lo))]
        return pos, [(p, t) for p, t in ticks if p is not None and -1e-9 <= p <= 1 + 1e-9]
    cats = sorted({repr(v) for v in present})
    shown = {repr(v): v for v in present}
    index = {c: i for i, c in enumerate(cats)}
    n = max(1, len(cats) - 1)

    def cat_pos(v: Any) -> float | None:
        if v is None:
            return None
        return index[repr(v)] / n if len(cats) > 1 else 0.5

    return cat_pos, [(index[c] / n if len(cats) > 1 else 0.5, _label(shown[c], 12)) for c in cats[:12]]


def parallel_coordinates(rows: Sequence[Mapping[str, Any]], axes: Sequence[str], metric: str, *,
                         descending: bool = False, width: int = 760, height: int = 300) -> str:
    """One polyline per run across one vertical axis per parameter and a last one for ``metric``.

    ``rows`` map axis names to values; colour by rank (dark: best), the best run in red on top.
    A run missing a parameter skips that axis."""
    rows = [r for r in rows if _is_number(r.get(metric))]
    if len(rows) > MAX_POINTS:  # evenly sampled, as the other plots; the best is always drawn
        step = len(rows) / MAX_POINTS
        keep = [rows[int(i * step)] for i in range(MAX_POINTS)]
        best_row = (max if descending else min)(rows, key=lambda r: float(r[metric]))
        rows = keep + ([best_row] if best_row not in keep else [])
    names = [*axes, metric]
    left, right, top, bottom = 40, 60, 26, 34
    pw, ph = width - left - right, height - top - bottom
    xs = [left + pw * i / max(1, len(names) - 1) for i in range(len(names))]
    scales = [_axis_positions([r.get(n) for r in rows]) for n in names]
    order = sorted(rows, key=lambda r: float(r[metric]), reverse=not descending)  # worst first, best drawn last
    parts: list[str] = []
    for i, (name, (_, ticks)) in enumerate(zip(names, scales)):
        x = xs[i]
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + ph}" stroke="{AXIS_COLOR}"/>')
        for p, text in ticks:
            yy = top + ph * (1 - p)
            parts.append(f'<text x="{x - 4:.1f}" y="{yy + 3:.1f}" text-anchor="end" font-size="10" fill="{AXIS_COLOR}">'
                         f'{escape(text)}</text>')
        weight = ' font-weight="600"' if name == metric else ""
        parts.append(f'<text x="{x:.1f}" y="{top - 10}" text-anchor="middle" font-size="11" fill="#111827"{weight}>'
                     f'{escape(_label(name, 18))}</text>')
    n = len(order)
    for rank, row in enumerate(order):
        pts = []
        for x, name, (pos, _) in zip(xs, names, scales):
            p = pos(row.get(name))
            if p is not None:
                pts.append(f"{x:.1f},{top + ph * (1 - p):.1f}")
        if len(pts) < 2:
            continue
        best = rank == n - 1
        share = rank / max(1, n - 1)  # 0: worst, 1: best
        rgb = tuple(round(b + (g - b) * share) for g, b in zip(_GOOD, _BAD))
        color = BEST_COLOR if best else f"rgb{rgb}"
        parts.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="{color}" '
                     f'stroke-width="{2.2 if best else 1.1}" stroke-opacity="{1 if best else 0.75}"/>')
    parts.append(f'<text x="{left}" y="{height - 8}" font-size="11" fill="{AXIS_COLOR}">one line per run; darker: '
                 f'better {escape(_label(metric, 24))}; red: the best</text>')
    return _svg(width, height, f"parallel coordinates of {metric}", parts)


def optimisation_history(values: Sequence[tuple[int, float]], metric: str, *, descending: bool = False,
                         width: int = 560, height: int = 260) -> str:
    """Each trial's value (dots, by trial number) and the best value so far (red steps)."""
    pts = sorted((int(n), float(v)) for n, v in values if _is_number(v))
    if not pts:
        return ""
    left, right, top, bottom = 60, 14, 14, 46
    pw, ph = width - left - right, height - top - bottom
    ns = [n for n, _ in pts]
    vs = [v for _, v in pts]
    nlo, nhi = min(ns), max(ns)
    lo, hi = min(vs), max(vs)
    pad = (hi - lo) * 0.06 or abs(lo) * 0.1 or 1.0
    lo, hi = lo - pad, hi + pad

    def X(n: float) -> float:
        return left + pw * ((n - nlo) / (nhi - nlo) if nhi != nlo else 0.5)

    def Y(v: float) -> float:
        return top + ph * (1 - (v - lo) / (hi - lo))

    parts: list[str] = []
    for t in nice_ticks(lo, hi):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{Y(t):.1f}" y2="{Y(t):.1f}" stroke="{GRID_COLOR}"/>')
        parts.append(f'<text x="{left - 6}" y="{Y(t) + 4:.1f}" text-anchor="end" font-size="11" fill="{AXIS_COLOR}">'
                     f'{escape(_fmt(t))}</text>')
    for t in nice_ticks(nlo, nhi, 6):
        if float(t).is_integer():
            parts.append(f'<text x="{X(t):.1f}" y="{top + ph + 16}" text-anchor="middle" font-size="11" '
                         f'fill="{AXIS_COLOR}">{int(t)}</text>')
    parts.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + ph}" stroke="{AXIS_COLOR}"/>'
                 f'<line x1="{left}" x2="{width - right}" y1="{top + ph}" y2="{top + ph}" stroke="{AXIS_COLOR}"/>')
    for n, v in pts:
        parts.append(f'<circle cx="{X(n):.1f}" cy="{Y(v):.1f}" r="3" fill="{POINT_COLOR}" fill-opacity="0.6">'
                     f'<title>trial {n}: {escape(_fmt(v))}</title></circle>')
    best = None
    steps = []
    for n, v in pts:
        if best is None or (v > best if descending else v < best):
            best = v
        steps.append((n, best))
    path = [f"M{X(steps[0][0]):.1f},{Y(steps[0][1]):.1f}"]
    for (n0, b0), (n1, b1) in zip(steps, steps[1:]):
        path.append(f"H{X(n1):.1f}V{Y(b1):.1f}")
    parts.append(f'<path d="{"".join(path)}" fill="none" stroke="{BEST_COLOR}" stroke-width="2"/>')
    parts.append(f'<text x="{left + pw / 2:.1f}" y="{height - 6}" text-anchor="middle" font-size="12" fill="#111827">'
                 f'trial (dots: {escape(_label(metric, 20))}; red: best so far)</text>')
    return _svg(width, height, f"optimisation history of {metric}", parts)
