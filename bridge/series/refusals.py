"""What the store refuses, counted and said in the log: a series of a name another type holds (a type
conflict), a new series past the store's cap or its metric's. One process's ingest and the main
process's merge of the workers' hand-overs both count refusals here, so that they count and word them
alike. Each kind of refusal has its own limit in the log, so that none hides another."""

from __future__ import annotations

import logging
import math
from collections import Counter
from typing import Protocol

from bridge.logs import RateLimited, log
from bridge.reasons import COUNTER, GAUGE, OBSERVER
from bridge.series.store import ConflictError, MetricSeriesLimitError, SeriesLimitError
from bridge.stats import Stats

logger = logging.getLogger("bridge.series")

# The store's cap is said at most this often (seconds), naming the metric refused most meanwhile
SERIES_LIMIT_LOG_INTERVAL = 60.0
# The kind of StatsD event a series of each type takes: statsd_exporter labels a type conflict with it
EVENT_KIND = {"counter": COUNTER, "gauge": GAUGE, "histogram": OBSERVER, "summary": OBSERVER}


class Caps(Protocol):
    max_series: float
    max_series_per_metric: float


class Refusals:
    """Counts the store's refusals in `stats` (conflicts, series_dropped, metric_series_dropped) and logs them."""

    def __init__(self, stats: Stats, caps: Caps) -> None:
        self.stats = stats
        self.caps = caps
        self._warn = RateLimited(logger)
        self._refused: Counter[str] = Counter()  # new series refused by the store's cap since the last warning
        self._refused_since = -math.inf

    def count(
        self, refusal: ConflictError | SeriesLimitError, kind: str, metric: str, events: int, samples: int, now: float
    ) -> None:
        """One refusal of a series of `metric`, asked for by `samples` samples of `events` StatsD events of `kind`."""
        stats = self.stats
        if isinstance(refusal, ConflictError):
            if events:
                stats.conflicts[(kind, metric)] += events
            self._warn(logging.WARNING, "metric type conflict", metric=metric, error=str(refusal))
        elif isinstance(refusal, MetricSeriesLimitError):
            if samples:
                stats.metric_series_dropped[metric] += samples
            self._warn(
                logging.WARNING,
                "per-metric series cap reached: new series of this metric are refused",
                metric=metric,
                max_series_per_metric=self.caps.max_series_per_metric,
            )
        else:
            if samples:
                stats.series_dropped[metric] += samples
            self._store_cap(metric, samples, now)

    def _store_cap(self, metric: str, samples: int, now: float) -> None:
        """Said once per interval, naming the metric that grew fastest: a cap refuses many metrics at once."""
        self._refused[metric] += samples
        if now - self._refused_since < SERIES_LIMIT_LOG_INTERVAL:
            return
        fastest, count = self._refused.most_common(1)[0]
        log(
            logger,
            logging.WARNING,
            "series cap reached: new series are refused, existing ones still update",
            max_series=self.caps.max_series,
            refused=sum(self._refused.values()),
            fastest_growing=fastest,
            fastest_refused=count,
        )
        self._refused.clear()
        self._refused_since = now
