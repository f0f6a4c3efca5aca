"""The status page at `/`: plain HTML (no script), readable in a terminal browser too.

The server gathers a Status; `render` turns it into the page. Nothing here knows HTTP or sockets.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from html import escape

RATE_WINDOW = 60.0  # seconds the lines/s and errors/s are averaged over
TREND_WINDOW = 3600.0  # seconds of history the charts show
CHART_POINTS = 120  # at most this many points a chart: older readings are averaged in groups


class Rates:
    """Lines and errors per second over the last minute, from counter readings taken every second."""

    def __init__(self) -> None:
        self._readings: deque[tuple[float, int, int]] = deque()

    def record(self, now: float, lines: int, errors: int) -> None:
        self._readings.append((now, lines, errors))
        while len(self._readings) > 2 and now - self._readings[1][0] >= RATE_WINDOW:
            self._readings.popleft()

    def per_second(self) -> tuple[float, float]:
        if len(self._readings) < 2:
            return 0.0, 0.0
        (start, lines0, errors0), (end, lines1, errors1) = self._readings[0], self._readings[-1]
        seconds = end - start
        return (lines1 - lines0) / seconds, (errors1 - errors0) / seconds


class Trends:
    """Readings taken every second for the last hour, for the status page's charts."""

    def __init__(self) -> None:
        # (time, lines, rejections, kernel drops, series held)
        self._readings: deque[tuple[float, int, int, int, int]] = deque()

    def record(self, now: float, lines: int, rejections: int, drops: int, series: int) -> None:
        self._readings.append((now, lines, rejections, drops, series))
        while now - self._readings[0][0] > TREND_WINDOW:
            self._readings.popleft()

    def series(self) -> dict[str, list[float]]:
        """Each chart's points, oldest first: rates between readings, and the series count."""
        readings = list(self._readings)
        pairs = list(itertools.pairwise(readings))
        charts: dict[str, list[float]] = {"lines/s": [], "rejections/s": [], "kernel drops/s": [], "series": []}
        for (t0, *before), (t1, *after) in pairs:
            seconds = (t1 - t0) or 1.0
            for name, old, new in zip(("lines/s", "rejections/s", "kernel drops/s"), before, after, strict=False):
                charts[name].append((new - old) / seconds)
            charts["series"].append(float(after[3]))
        return {name: _at_most(points, CHART_POINTS) for name, points in charts.items()}


def _at_most(points: list[float], count: int) -> list[float]:
    """`points` averaged in consecutive groups so that at most `count` remain (the newest group whole)."""
    if len(points) <= count:
        return points
    size = -(-len(points) // count)
    start = len(points) - size * (len(points) // size)
    groups = [points[:start]] * bool(start) + [points[i : i + size] for i in range(start, len(points), size)]
    return [sum(group) / len(group) for group in groups]


def chart(title: str, points: list[float], width: int = 360, height: int = 60) -> str:
    """A small inline SVG line chart (no script): the points scaled to the box, with the last and the peak."""
    peak = max(points, default=0.0)
    if len(points) < 2:
        body = f'<text x="4" y="{height // 2}" font-size="11">collecting readings</text>'
    else:
        step = width / (len(points) - 1)
        scale = (height - 4) / peak if peak > 0 else 0.0
        coordinates = " ".join(f"{i * step:.1f},{height - 2 - value * scale:.1f}" for i, value in enumerate(points))
        body = f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{coordinates}"/>'
    last = points[-1] if points else 0.0
    return (
        f'<figure class="chart" data-points="{len(points)}"><figcaption>{escape(title)}: {last:,.1f} now, '
        f"{peak:,.1f} peak (last hour)</figcaption>\n"
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}"><rect width="{width}" height="{height}" fill="#f4f6f8"/>{body}</svg></figure>'
    )


@dataclass
class Status:
    version: str
    uptime: float  # seconds
    listeners: dict[str, str]
    telemetry_path: str
    lines_per_second: float
    errors_per_second: float
    lines_total: int
    rejections: dict[str, int]  # reason -> count since start
    series_total: int
    max_series: int  # 0: no cap
    largest: list[tuple[str, str, int]]  # (metric, type, series), largest first
    mapping_file: str
    mapping_rules: int
    mapping_loaded: float  # wall-clock time
    reaper_label: str
    reaper_after: float
    reaper_interval: float
    reaper_sources: int
    reaper_last_sweep: float | None  # wall-clock time of the last reaper pass
    reaper_last_removed: int
    relays: list[tuple[str, int, int]] = field(default_factory=list)  # (target, lines, dropped)
    trends: dict[str, list[float]] = field(default_factory=dict)  # chart title -> points, oldest first


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    parts = [f"{days}d"] * bool(days) + [f"{hours}h"] * bool(hours) + [f"{minutes}m"] * bool(minutes)
    return " ".join([*parts, f"{seconds}s"])


def _when(wall: float | None) -> str:
    if wall is None:
        return "not yet"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(wall))
    return f"{stamp} ({_duration(time.time() - wall)} ago)"


def _rows(pairs: list[tuple[str, str]]) -> str:
    return "\n".join(f"<tr><th>{escape(key)}</th><td>{escape(value)}</td></tr>" for key, value in pairs)


def _table(caption: str, header: tuple[str, ...], rows: list[tuple], empty: str) -> str:
    if not rows:
        return f"<h2>{escape(caption)}</h2>\n<p>{escape(empty)}</p>"
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
    body = "\n".join("<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<h2>{escape(caption)}</h2>\n<table>\n<tr>{head}</tr>\n{body}\n</table>"


def render(status: Status) -> str:
    cap = "none"
    if status.max_series:
        used = 100 * status.series_total / status.max_series
        cap = f"{status.series_total:,} of {status.max_series:,} ({used:.1f} %)"
    summary = _rows(
        [
            ("version", status.version),
            ("uptime", _duration(status.uptime)),
            *((f"listener {name}", address) for name, address in status.listeners.items()),
            ("lines/s (last minute)", f"{status.lines_per_second:,.1f}"),
            ("errors/s (last minute)", f"{status.errors_per_second:,.1f}"),
            ("lines since start", f"{status.lines_total:,}"),
            ("series", f"{status.series_total:,}"),
            ("series cap", cap),
            ("mapping file", status.mapping_file or "none (every metric unmapped)"),
            ("mapping rules", str(status.mapping_rules)),
            ("mapping loaded", _when(status.mapping_loaded)),
        ]
    )
    if status.reaper_label:
        reaper = _rows(
            [
                ("label", status.reaper_label),
                ("silent after", _duration(status.reaper_after)),
                ("sweeps every", _duration(status.reaper_interval)),
                ("sources tracked", f"{status.reaper_sources:,}"),
                ("last sweep", _when(status.reaper_last_sweep)),
                ("series removed by it", f"{status.reaper_last_removed:,}"),
            ]
        )
        reaper_html = f"<h2>Reaper</h2>\n<table>\n{reaper}\n</table>"
    else:
        reaper_html = "<h2>Reaper</h2>\n<p>off (no reap label)</p>"
    rejections = sorted(status.rejections.items(), key=lambda item: (-item[1], item[0]))
    path = escape(status.telemetry_path)
    sections = [
        f'<h1>statsd-bridge</h1>\n<p>StatsD in, Prometheus out. <a href="{path}">Metrics ({path})</a></p>',
        f"<table>\n{summary}\n</table>",
        "<h2>Last hour</h2>\n" + "\n".join(chart(title, points) for title, points in status.trends.items()),
        _table("Rejections by reason", ("reason", "count"), [(r, f"{c:,}") for r, c in rejections], "none"),
        _table(
            "Largest metrics",
            ("metric", "type", "series"),
            [(name, kind, f"{count:,}") for name, kind, count in status.largest],
            "no series yet",
        ),
        reaper_html,
    ]
    if status.relays:
        rows = [(target, f"{lines:,}", f"{dropped:,}") for target, lines, dropped in status.relays]
        sections.append(_table("Relays", ("target", "lines", "dropped"), rows, ""))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>statsd-bridge</title>\n'
        "<style>body{font-family:sans-serif;margin:2em}th{text-align:left;padding-right:1.5em}"
        "td{padding-right:1.5em;font-variant-numeric:tabular-nums}"
        "figure.chart{display:inline-block;margin:0 1.5em 1em 0}figcaption{font-size:90%}</style></head>\n<body>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )
