"""Plots as inline SVG text: no plotting library, no JavaScript, nothing fetched from the network.

Pure functions from numbers to markup, so a report opens anywhere (a laptop offline, a cluster's
login node through a file browser) and can be tested without a browser.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any, Sequence

POINT_COLOR = "#2563eb"
MEAN_COLOR = "#dc2626"
AXIS_COLOR = "#6b7280"
GRID_COLOR = "#e5e7eb"
MAX_POINTS = 2000
#: Numeric parameters with at most this many distinct values are drawn as categories (a grid's
#: three learning rates read better evenly spaced than squeezed at one end of a linear axis).
MAX_NUMERIC_CATEGORIES = 10


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e5 or a < 1e-3:
        return f"{v:.1e}"
    if a >= 100:
        return f"{v:.0f}"
    return f"{v:.4g}"


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step - 1e-9) * step
    ticks = []
    t = start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def _label(v: Any, limit: int = 14) -> str:
    text = _fmt(float(v)) if _is_number(v) and isinstance(v, float) else str(v)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _sample(points: Sequence[tuple[Any, float]], limit: int) -> list[tuple[Any, float]]:
    if len(points) <= limit:
        return list(points)
    step = len(points) / limit
    return [points[int(i * step)] for i in range(limit)]


class _Frame:
    """Plot area geometry and the y axis."""

    def __init__(self, width: int, height: int, ys: Sequence[float], rotate: bool) -> None:
        self.w, self.h = width, height
        self.left, self.right, self.top = 60, 14, 14
        self.bottom = 64 if rotate else 46
        lo, hi = min(ys), max(ys)
        if hi == lo:
            pad = abs(lo) * 0.1 or 1.0
            lo, hi = lo - pad, hi + pad
        else:
            pad = (hi - lo) * 0.06
            lo, hi = lo - pad, hi + pad
        self.ylo, self.yhi = lo, hi

    @property
    def pw(self) -> float:
        return self.w - self.left - self.right

    @property
    def ph(self) -> float:
        return self.h - self.top - self.bottom

    def y(self, v: float) -> float:
        return self.top + self.ph * (1 - (v - self.ylo) / (self.yhi - self.ylo))

    def y_axis(self, label: str, *, integer: bool = False) -> list[str]:
        parts = []
        ticks = nice_ticks(self.ylo, self.yhi)
        if integer:  # counts: no "1.5 tasks"
            ticks = [t for t in ticks if float(t).is_integer()]
        for t in ticks:
            yy = self.y(t)
            parts.append(f'<line x1="{self.left}" x2="{self.w - self.right}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="{GRID_COLOR}"/>')
            parts.append(f'<text x="{self.left - 6}" y="{yy + 4:.1f}" text-anchor="end" font-size="11" fill="{AXIS_COLOR}">{escape(_fmt(t))}</text>')
        parts.append(
            f'<line x1="{self.left}" x2="{self.left}" y1="{self.top}" y2="{self.top + self.ph}" stroke="{AXIS_COLOR}"/>'
            f'<line x1="{self.left}" x2="{self.w - self.right}" y1="{self.top + self.ph}" y2="{self.top + self.ph}" stroke="{AXIS_COLOR}"/>'
        )
        cy = self.top + self.ph / 2
        parts.append(
            f'<text x="14" y="{cy:.1f}" transform="rotate(-90 14 {cy:.1f})" text-anchor="middle" font-size="12" fill="#111827">{escape(_label(label, 28))}</text>'
        )
        return parts

    def x_label(self, label: str) -> str:
        return (
            f'<text x="{self.left + self.pw / 2:.1f}" y="{self.h - 6}" text-anchor="middle" font-size="12" '
            f'fill="#111827">{escape(_label(label, 40))}</text>'
        )


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    return (
        f'<svg class="plot" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title, quote=True)}"><title>{escape(title)}</title>' + "".join(body) + "</svg>"
    )


def _category_key(v: Any) -> tuple[int, Any]:
    return (0, float(v)) if _is_number(v) else (1, str(v))


def is_categorical(xs: Sequence[Any]) -> bool:
    """Strings, booleans, mixed values, or a handful of distinct numbers: drawn as categories."""
    if not all(_is_number(x) for x in xs):
        return True
    return len({float(x) for x in xs}) <= MAX_NUMERIC_CATEGORIES


def metric_plot(
    points: Sequence[tuple[Any, float]],
    *,
    x_label: str,
    y_label: str,
    width: int = 380,
    height: int = 260,
    max_points: int = MAX_POINTS,
) -> str:
    """A strip plot (categorical x, with the mean of each category) or a scatter plot (numeric x,
    log scale when the values span two orders of magnitude) of ``(x, y)`` points."""
    pts = [(x, float(y)) for x, y in points if _is_number(y)]
    title = f"{y_label} vs {x_label}"
    if not pts:
        return _svg(width, 60, title, [f'<text x="10" y="30" font-size="12" fill="{AXIS_COLOR}">no finite values</text>'])
    shown = _sample(pts, max_points)
    if is_categorical([x for x, _ in pts]):
        return _strip(pts, shown, x_label, y_label, width, height, title)
    return _scatter(shown, x_label, y_label, width, height, title)


def _strip(all_pts: list[tuple[Any, float]], shown: list[tuple[Any, float]], x_label: str, y_label: str,
           width: int, height: int, title: str) -> str:
    cats: dict[Any, list[float]] = {}
    for x, y in all_pts:
        key = x if _is_number(x) or isinstance(x, str) else str(x)
        cats.setdefault(key, []).append(y)
    order = sorted(cats, key=_category_key)
    rotate = len(order) > 6 or any(len(_label(c)) > 8 for c in order)
    frame = _Frame(width, height, [y for _, y in all_pts], rotate)
    band = frame.pw / len(order)
    pos = {c: frame.left + band * (i + 0.5) for i, c in enumerate(order)}
    body = frame.y_axis(y_label)
    for c in order:
        cx = pos[c]
        ty = frame.top + frame.ph + 14
        text = escape(_label(c))
        if rotate:
            body.append(f'<text x="{cx:.1f}" y="{ty:.1f}" transform="rotate(-35 {cx:.1f} {ty:.1f})" text-anchor="end" font-size="11" fill="{AXIS_COLOR}">{text}</text>')
        else:
            body.append(f'<text x="{cx:.1f}" y="{ty:.1f}" text-anchor="middle" font-size="11" fill="{AXIS_COLOR}">{text}</text>')
    jitter = min(band * 0.3, 24)
    for i, (x, y) in enumerate(shown):
        key = x if _is_number(x) or isinstance(x, str) else str(x)
        # Deterministic jitter (golden-ratio sequence): the same report twice is the same file.
        dx = (((i * 0.6180339887) % 1.0) - 0.5) * jitter
        body.append(f'<circle cx="{pos[key] + dx:.1f}" cy="{frame.y(y):.1f}" r="3.2" fill="{POINT_COLOR}" fill-opacity="0.65"/>')
    for c in order:
        ys = cats[c]
        m = sum(ys) / len(ys)
        half = min(band * 0.35, 30)
        body.append(
            f'<line x1="{pos[c] - half:.1f}" x2="{pos[c] + half:.1f}" y1="{frame.y(m):.1f}" y2="{frame.y(m):.1f}" '
            f'stroke="{MEAN_COLOR}" stroke-width="2.5"><title>mean {escape(_fmt(m))} (n={len(ys)})</title></line>'
        )
    body.append(frame.x_label(x_label))
    return _svg(width, height, title, body)


def _scatter(pts: list[tuple[Any, float]], x_label: str, y_label: str, width: int, height: int, title: str) -> str:
    xs = [float(x) for x, _ in pts]
    log = min(xs) > 0 and max(xs) / min(xs) >= 100
    tx = [math.log10(x) for x in xs] if log else xs
    lo, hi = min(tx), max(tx)
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    pad = (hi - lo) * 0.05
    lo, hi = lo - pad, hi + pad
    frame = _Frame(width, height, [y for _, y in pts], False)

    def X(v: float) -> float:
        return frame.left + frame.pw * (v - lo) / (hi - lo)

    body = frame.y_axis(y_label)
    if log:
        ticks = [float(t) for t in range(math.ceil(lo), math.floor(hi) + 1)]
        labels = [_fmt(10**t) for t in ticks]
    else:
        ticks = nice_ticks(lo, hi)
        labels = [_fmt(t) for t in ticks]
    for t, text in zip(ticks, labels):
        xx = X(t)
        body.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{frame.top}" y2="{frame.top + frame.ph}" stroke="{GRID_COLOR}"/>')
        body.append(f'<text x="{xx:.1f}" y="{frame.top + frame.ph + 14}" text-anchor="middle" font-size="11" fill="{AXIS_COLOR}">{escape(text)}</text>')
    for v, (_, y) in zip(tx, pts):
        body.append(f'<circle cx="{X(v):.1f}" cy="{frame.y(y):.1f}" r="3.2" fill="{POINT_COLOR}" fill-opacity="0.65"/>')
    body.append(frame.x_label(x_label + (" (log scale)" if log else "")))
    return _svg(width, height, title, body)


def histogram(values: Sequence[float], *, x_label: str, width: int = 380, height: int = 200, bins: int = 20) -> str:
    """A histogram of ``values`` (e.g. task durations)."""
    vals = [float(v) for v in values if _is_number(v)]
    title = f"histogram of {x_label}"
    if not vals:
        return _svg(width, 60, title, [f'<text x="10" y="30" font-size="12" fill="{AXIS_COLOR}">no values</text>'])
    lo, hi = min(vals), max(vals)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    bins = max(1, min(bins, len(vals)))
    width_bin = (hi - lo) / bins
    counts = [0] * bins
    for v in vals:
        counts[min(bins - 1, int((v - lo) / width_bin))] += 1
    frame = _Frame(width, height, [0.0, float(max(counts))], False)
    frame.ylo = 0.0
    body = frame.y_axis("tasks", integer=True)
    bw = frame.pw / bins
    for i, c in enumerate(counts):
        if not c:
            continue
        y0 = frame.y(c)
        body.append(
            f'<rect x="{frame.left + i * bw + 1:.1f}" y="{y0:.1f}" width="{max(1.0, bw - 2):.1f}" '
            f'height="{frame.top + frame.ph - y0:.1f}" fill="{POINT_COLOR}" fill-opacity="0.75">'
            f"<title>{escape(_fmt(lo + i * width_bin))}–{escape(_fmt(lo + (i + 1) * width_bin))}: {c}</title></rect>"
        )
    for t in nice_ticks(lo, hi):
        xx = frame.left + frame.pw * (t - lo) / (hi - lo)
        body.append(f'<text x="{xx:.1f}" y="{frame.top + frame.ph + 14}" text-anchor="middle" font-size="11" fill="{AXIS_COLOR}">{escape(_fmt(t))}</text>')
    body.append(frame.x_label(x_label))
    return _svg(width, height, title, body)
