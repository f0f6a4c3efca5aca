"""Streaming quantiles over a sliding time window, for summaries.

client_golang's summaries (and so statsd_exporter's) report quantiles of the
last `max_age`, kept in `age_buckets` rotating streams. We keep the same
window with one DDSketch per age bucket and merge them at scrape time, so an
observation costs one sketch insert rather than one per bucket.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from ddsketch import DDSketch

# DDSketch bounds the relative error of the value returned for a quantile;
# 1 % is finer than the rank errors statsd_exporter's default objectives allow
# at the tails that matter (p90, p99) for latency-like data.
RELATIVE_ACCURACY = 0.01

DEFAULT_QUANTILES = ((0.5, 0.05), (0.9, 0.01), (0.99, 0.001))
DEFAULT_MAX_AGE = 600.0  # seconds, as client_golang's summaries
DEFAULT_AGE_BUCKETS = 5


@dataclass(frozen=True)
class SummaryOptions:
    quantiles: tuple[tuple[float, float], ...] = DEFAULT_QUANTILES
    max_age: float = DEFAULT_MAX_AGE
    age_buckets: int = DEFAULT_AGE_BUCKETS


class QuantileWindow:
    __slots__ = ("_buckets", "_lock", "age_buckets", "width")

    def __init__(self, max_age: float, age_buckets: int) -> None:
        self.age_buckets = age_buckets
        self.width = max_age / age_buckets
        self._buckets: list[tuple[int, DDSketch]] = []
        # Scrapes read from a web worker thread while the event loop inserts.
        self._lock = threading.Lock()

    def _index(self, now: float) -> int:
        return int(now // self.width)

    def observe(self, value: float, weight: int, now: float) -> None:
        index = self._index(now)
        with self._lock:
            if not self._buckets or self._buckets[-1][0] != index:
                self._buckets.append((index, DDSketch(RELATIVE_ACCURACY)))
                oldest = index - self.age_buckets
                self._buckets = [b for b in self._buckets if b[0] > oldest]
            self._buckets[-1][1].add(value, weight)

    def take(self) -> list[tuple[int, DDSketch]]:
        """The age buckets observed so far, handed over and forgotten here (a receiving worker's)."""
        with self._lock:
            buckets, self._buckets = self._buckets, []
        return buckets

    def absorb(self, buckets: list[tuple[int, DDSketch]], width: float) -> None:
        """Merge another window's age buckets (of `width` seconds) into this one's. Buckets start at absolute
        times, multiples of the width on the monotonic clock every process shares, so a bucket merges with
        the one of its index, and the merged sketch is the one all the observations would have made."""
        if not buckets:
            return
        with self._lock:
            mine = dict(self._buckets)
            for start, sketch in buckets:
                index = start if width == self.width else self._index(start * width)
                into = mine.get(index)
                if into is None:
                    mine[index] = sketch
                else:
                    into.merge(sketch)
            newest = max(mine)
            self._buckets = sorted(item for item in mine.items() if item[0] > newest - self.age_buckets)

    def quantiles(self, wanted: tuple[float, ...], now: float) -> list[float]:
        """Each wanted quantile over the window; NaN when nothing was observed in it."""
        oldest = self._index(now) - self.age_buckets
        merged = DDSketch(RELATIVE_ACCURACY)
        with self._lock:
            for index, sketch in self._buckets:
                if index > oldest:
                    merged.merge(sketch)
        if merged.count == 0:
            return [math.nan] * len(wanted)
        return [_quantile(merged, q) for q in wanted]


def _quantile(sketch: DDSketch, quantile: float) -> float:
    try:
        return _clamp(sketch.get_quantile_value(_sketch_rank(quantile, sketch.count)), sketch)
    except OverflowError:
        # the rank fell in a bin near float's limit (values ~1e308), whose midpoint overflows
        # to compute: that bin's values are all within the sketch's accuracy of the largest seen
        return float(sketch._max)


def _sketch_rank(quantile: float, count: float) -> float:
    """The sketch's quantile that lands on client_golang's rank for `quantile`.

    client_golang's summaries (so statsd_exporter's) answer with the observation of
    1-based rank ceil(q * n): the 0.9 quantile of 10, 20, 30 is 30. DDSketch reads rank
    q * (n - 1) from 0 and takes the first bin whose running count exceeds it, so aim
    half an observation below the wanted one's top.
    """
    if count <= 1:
        return quantile
    rank = max(1.0, math.ceil(quantile * count))
    return min(1.0, (rank - 0.5) / (count - 1))


def _clamp(value: float | None, sketch: DDSketch) -> float:
    if value is None:
        return math.nan
    # the sketch's bucket midpoint may lie just outside what was observed
    return float(min(max(value, sketch._min), sketch._max))
