"""Durations as Go and Prometheus write them (`1m30s`, `250ms`, `0`), for flags and configuration files."""

from __future__ import annotations

import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d|w|y)")
_DURATION_UNITS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
    "d": 86400.0, "w": 604800.0, "y": 31536000.0,
}  # fmt: skip


def parse_duration(text: str | int | float) -> float:
    """Seconds in a Go / Prometheus duration such as `1m30s`, `250ms` or `0`."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text == 0:
            return 0.0
        raise ValueError(f"duration {text!r} needs a unit, e.g. {text}s")
    if not isinstance(text, str) or not text:
        raise ValueError(f"not a duration: {text!r}")
    if text == "0":
        return 0.0
    position, total = 0, 0.0
    for part in _DURATION_PART.finditer(text):
        if part.start() != position:
            break
        total += float(part.group(1)) * _DURATION_UNITS[part.group(2)]
        position = part.end()
    if position != len(text) or position == 0:
        raise ValueError(f"not a duration: {text!r} (use e.g. 250ms, 30s, 5m, 1h)")
    return total
