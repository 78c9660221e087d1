"""Server-rendered SVG charts (no script, no CDN): the geometry here, the markup in
``templates/detect/_chart.html``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 220, 48, 28, 12
COLOURS = ("#1f5fa8", "#b3261e", "#2e7d32", "#8e5a00", "#6a1b9a", "#00796b", "#5d4037", "#455a64")


@dataclass(frozen=True)
class Line:
    metric: str
    colour: str
    points: str
    """SVG polyline points."""
    total: int


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    lines: list[Line]
    ticks: list[tuple[float, str]]
    """x position and day label."""
    y_ticks: list[tuple[float, int]]
    top: int
    left: int
    bottom: int


def daily_chart(
    series: dict[str, dict[dt.date, int]], start: dt.date, end: dt.date, *, limit: int = 8
) -> Chart:
    """Lines of the ``limit`` largest metrics, one point per day from ``start`` to ``end``."""
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    ranked = sorted(series.items(), key=lambda kv: -sum(kv[1].values()))[:limit]
    peak = max((max(v.values(), default=0) for _, v in ranked), default=0) or 1
    inner_w, inner_h = WIDTH - LEFT - 8, HEIGHT - TOP - BOTTOM
    step = inner_w / max(len(days) - 1, 1)

    def x(i: int) -> float:
        return round(LEFT + i * step, 1)

    def y(v: int) -> float:
        return round(TOP + inner_h - v / peak * inner_h, 1)

    lines = [
        Line(
            metric=name,
            colour=COLOURS[i % len(COLOURS)],
            points=" ".join(f"{x(j)},{y(values.get(d, 0))}" for j, d in enumerate(days)),
            total=sum(values.values()),
        )
        for i, (name, values) in enumerate(ranked)
    ]
    every = max(len(days) // 6, 1)
    ticks = [(x(j), d.strftime("%m-%d")) for j, d in enumerate(days) if j % every == 0]
    y_ticks = [(y(v), v) for v in sorted({0, peak // 2, peak})]
    return Chart(WIDTH, HEIGHT, lines, ticks, y_ticks, TOP, LEFT, BOTTOM)
