"""How hsm shows a length of time (``2h 15m``): one spelling for ``hsm status``, ``hsm monitor``,
the report and the outage lines the engine prints."""

from __future__ import annotations

__all__ = ["fmt_duration"]


def fmt_duration(seconds: float | None) -> str:
    """``2h 15m``, ``4m 10s``, ``12.5s``, ``3d 4h``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    s = float(seconds)
    if s < 60:
        return f"{s:.1f}s" if s < 10 else f"{int(s)}s"
    m, sec = divmod(int(round(s)), 60)
    h, m = divmod(m, 60)
    d, h = divmod(h, 24)
    if d:
        return f"{d}d {h}h"
    return f"{h}h {m}m" if h else f"{m}m {sec}s"
