"""The series store: metric families of plain series objects.

Series are plain slotted objects rather than prometheus_client children: an
update is an attribute write, and the exporter renders them at scrape time.
The event loop is the only writer; the web worker threads read snapshots
(`list(dict.values())` is atomic under the GIL).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from typing import Protocol

from bridge.series.names import SAMPLE_SUFFIXES
from bridge.series.native_histogram import NativeHistogram, pick_schema
from bridge.series.quantiles import QuantileWindow, SummaryOptions

LabelKey = tuple[tuple[str, str], ...]


class Metric(Protocol):
    """What the store needs to know of a metric to hold its series (the mapper's Target is one)."""

    name: str
    type: str  # counter, gauge, histogram or summary
    help: str
    buckets: tuple[float, ...]
    native: tuple[float, int]  # (bucket factor, max buckets); factor <= 1: classic buckets only
    summary: SummaryOptions
    ttl: float


# About 0.4 GiB of counters at the ~800 bytes a series measured: room on a small machine.
DEFAULT_MAX_SERIES = 500_000
# Pending histogram observations folded in at once: about 2 MB of floats, a few milliseconds of work.
FOLD_AFTER = 65_536
# A series with fewer pending values than this takes them one by one: cheaper than sorting (instructions
# counted under cachegrind on the production load).
FOLD_ONE_BY_ONE_BELOW = 8


class SeriesLimitError(Exception):
    """A new series would pass the store's cap; the argument is the metric name."""


class MetricSeriesLimitError(SeriesLimitError):
    """A new series would pass the per-metric cap of its metric."""


class ConflictError(Exception):
    """An event names a metric that exists with another type, or whose sample names are taken."""


def escape_label_value(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def render_labels(key: LabelKey) -> str:
    return ",".join(f'{name}="{escape_label_value(value)}"' for name, value in key)


class Scalar:
    """A gauge series, and the base of a counter's."""

    __slots__ = ("key", "label_proto", "label_text", "source", "updated", "value")

    def __init__(self, key: LabelKey, now: float) -> None:
        self.key = key
        self.source: str | None = None  # the reap label's value, set by the store
        self.label_text = render_labels(key)
        self.label_proto: bytes | None = None  # the labels in protobuf, made at the first protobuf scrape
        self.value = 0.0
        self.updated = now

    @property
    def total(self) -> float:
        return self.value


class CounterSeries(Scalar):
    """A counter series. client_golang adds a whole increment (below 2**64) to an integer and any other
    to a float, and reports their sum; `value` holds the whole increments (exactly, up to 2**53) and
    `fraction` the others, so that the total is statsd_exporter's to the last bit (0.1 + 1 + 0.2 is
    1.3 there, where one float gives 1.3000000000000003)."""

    __slots__ = ("fraction",)

    def __init__(self, key: LabelKey, now: float) -> None:
        super().__init__(key, now)
        self.fraction = 0.0

    @property
    def total(self) -> float:
        return self.fraction + self.value


class Histogram:
    __slots__ = ("bounds", "counts", "key", "label_text", "native", "pending", "source", "sum", "updated")

    def __init__(self, key: LabelKey, now: float, bounds: tuple[float, ...], native: tuple[int, int] | None) -> None:
        self.key = key
        self.source: str | None = None
        self.label_text = render_labels(key)
        self.updated = now
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # per bucket, not cumulative; the last is +Inf
        self.sum = 0.0
        # the native part beside the classic buckets, from (schema, max buckets); None: classic only
        self.native = NativeHistogram(*native) if native is not None else None
        # finite observations of weight 1 not yet in the buckets, in arrival order (folded by Store.fold_pending)
        self.pending: list[float] = []

    def observe(self, value: float, weight: int) -> None:
        if self.pending:
            self.fold()  # keep the arrival order: the sum's rounding and the native schema depend on it
        # Prometheus buckets are upper-inclusive: le="0.5" counts 0.5
        self.counts[bisect.bisect_left(self.bounds, value)] += weight
        self.sum += value * weight
        if self.native is not None:
            self.native.observe(value, weight)

    def fold(self) -> None:
        """Put the pending observations into the buckets, as observing them one by one would.

        Sorted, the values of one bucket are a run: a bisection per bucket bound counts them, so a
        batch costs about a sort and a few bisections rather than a bucket search per value.
        """
        values = self.pending
        if not values:
            return
        self.pending = []
        if len(values) < FOLD_ONE_BY_ONE_BELOW:
            for value in values:
                self.observe(value, 1)
            return
        total = self.sum
        for value in values:  # in arrival order, so the sum rounds exactly as one by one
            total += value
        self.sum = total
        ordered = sorted(values)
        counts, start, end = self.counts, 0, len(ordered)
        for index, bound in enumerate(self.bounds):
            stop = bisect.bisect_right(ordered, bound, start)
            counts[index] += stop - start
            start = stop
            if start == end:
                break
        counts[-1] += end - start
        if self.native is not None:
            self.native.observe_many(values, ordered)


class Summary:
    __slots__ = ("count", "key", "label_text", "quantiles", "source", "sum", "updated", "window")

    def __init__(self, key: LabelKey, now: float, options: SummaryOptions) -> None:
        self.key = key
        self.source: str | None = None
        self.label_text = render_labels(key)
        self.updated = now
        self.quantiles = tuple(quantile for quantile, _ in options.quantiles)
        self.window = QuantileWindow(options.max_age, options.age_buckets)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float, weight: int, now: float) -> None:
        self.window.observe(value, weight, now)
        self.count += weight
        self.sum += value * weight


Series = Scalar | CounterSeries | Histogram | Summary


class Family:
    """The series of one metric name. Like statsd_exporter's registry, which keeps one vector per set of
    label names, each set of label names keeps the buckets or summary options of the rule that first
    made a series with it; a later label set with those names gets the same, whatever rule it came by."""

    __slots__ = ("help", "name", "series", "type", "vectors")

    def __init__(self, metric: Metric) -> None:
        self.name = metric.name
        self.type = metric.type
        self.help = metric.help
        self.series: dict[LabelKey, Series] = {}
        # label names -> (buckets, native (schema, max buckets) or None, summary options) of the first
        self.vectors: dict[tuple[str, ...], tuple[tuple[float, ...], tuple[int, int] | None, SummaryOptions]] = {}

    def new_series(self, key: LabelKey, now: float, metric: Metric) -> Series:
        if self.type == "counter":
            return CounterSeries(key, now)
        if self.type == "gauge":
            return Scalar(key, now)
        names = tuple(name for name, _ in key)
        options = self.vectors.get(names)
        if options is None:
            factor, max_buckets = metric.native
            native = (pick_schema(factor), max_buckets) if factor > 1 else None
            options = self.vectors[names] = (metric.buckets, native, metric.summary)
        buckets, native, summary = options
        if self.type == "histogram":
            return Histogram(key, now, buckets, native)
        return Summary(key, now, summary)


class Store:
    def __init__(self) -> None:
        self.families: dict[str, Family] = {}
        # every sample name a family exposes -> that family's name, so that a
        # counter "x_sum" and a summary "x" never both write "x_sum"
        self._claims: dict[str, str] = {}
        # series with a TTL -> their family, checked by sweep()
        self._expiring: dict[int, tuple[Family, Series, float]] = {}
        self.series_count = 0
        self.max_series: float = DEFAULT_MAX_SERIES  # inf: no cap
        self.max_series_per_metric: float = math.inf  # one runaway tag can't take every metric's room
        self.generation = 0  # bumped whenever a series is removed, so caches of series know to let go
        self._removed: set[int] = set()  # ids of series removed since take_removed(), for those caches
        # The reaper: series indexed by the value of one label (a worker, a host), so that
        # dropping a silent source costs its own series, never a walk over all of them.
        self.reap_label = ""
        self.last_seen: dict[str, float] = {}
        self._by_source: dict[str, dict[int, tuple[Family, Series]]] = {}
        self.reaped_series = 0
        self.reaped_sources = 0
        # (name, type, label names) of every series created: statsd_exporter's "metrics" (its vectors),
        # which its statsd_exporter_metrics_total{type} counts and never lowers
        self._vectors: set[tuple[str, str, tuple[str, ...]]] = set()
        self.vectors_created: dict[str, int] = {}  # a type appears once it has one, as there
        # Histograms holding pending observations (Histogram.pending), and how many values wait in all:
        # the ingest defers bucket updates so that a batch costs a sort and a few bisections, and
        # folds them in once FOLD_AFTER values wait, and before every render.
        self.unfolded: list[Histogram] = []
        self.pending_values = 0

    def reserve(self, names: Iterable[str]) -> None:
        """Sample names written by someone else (the self-metrics), which no family may take."""
        self._claims.update(dict.fromkeys(names, ""))

    def family(self, metric: Metric) -> Family:
        family = self.families.get(metric.name)
        if family is not None:
            if family.type != metric.type:
                raise ConflictError(f"{metric.name} is a {family.type}, not a {metric.type}")
            return family
        names = [metric.name + suffix for suffix in SAMPLE_SUFFIXES[metric.type]] + [metric.name]
        for name in names:
            if name in self._claims:
                owner = self._claims[name] or "statsd-bridge itself"
                raise ConflictError(f"{metric.name} ({metric.type}) would write {name}, which {owner} writes")
        for name in names:
            self._claims[name] = metric.name
        family = self.families[metric.name] = Family(metric)
        return family

    def series(self, metric: Metric, key: LabelKey, now: float) -> Series:
        """The series of `metric` with labels `key`, created if need be.

        Raises ConflictError when the name is taken by another type, SeriesLimitError when a
        new series would pass `max_series`, MetricSeriesLimitError when it would pass
        `max_series_per_metric` (existing series still update).
        """
        family = self.families.get(metric.name)
        if family is not None and family.type == metric.type:
            series = family.series.get(key)
            if series is not None:
                return series
        if self.series_count >= self.max_series:
            raise SeriesLimitError(metric.name)
        if family is not None and len(family.series) >= self.max_series_per_metric:
            raise MetricSeriesLimitError(metric.name)
        if family is None or family.type != metric.type:
            family = self.family(metric)
        series = family.series[key] = family.new_series(key, now, metric)
        self.series_count += 1
        vector = (family.name, family.type, tuple(name for name, _ in key))
        if vector not in self._vectors:
            self._vectors.add(vector)
            self.vectors_created[family.type] = self.vectors_created.get(family.type, 0) + 1
        if metric.ttl > 0:
            self._expiring[id(series)] = (family, series, metric.ttl)
        if self.reap_label:
            self._index_source(family, series)
        return series

    def _index_source(self, family: Family, series: Series) -> None:
        for name, value in series.key:
            if name == self.reap_label:
                series.source = value
                self._by_source.setdefault(value, {})[id(series)] = (family, series)
                return

    def remove(self, family: Family, series: Series) -> None:
        if family.series.get(series.key) is series:
            del family.series[series.key]
            self.series_count -= 1
            self.generation += 1
            self._removed.add(id(series))
        self._expiring.pop(id(series), None)
        if series.source is not None:
            indexed = self._by_source.get(series.source)
            if indexed is not None:
                indexed.pop(id(series), None)
        if not family.series:
            self._drop_family(family)

    def take_removed(self) -> set[int]:
        """Ids of the series removed since the last call. A cache holding a series keeps it alive,
        so an id in here can't have been reused by a series the cache also holds."""
        removed, self._removed = self._removed, set()
        return removed

    def _drop_family(self, family: Family) -> None:
        if self.families.get(family.name) is family:
            del self.families[family.name]
            for suffix in ("", *SAMPLE_SUFFIXES[family.type]):
                self._claims.pop(family.name + suffix, None)

    def sweep(self, now: float) -> int:
        """Drop series not updated within their TTL; return how many went."""
        stale = [(family, series) for family, series, ttl in self._expiring.values() if now - series.updated > ttl]
        for family, series in stale:
            self.remove(family, series)
        return len(stale)

    def reap(self, now: float, after: float) -> int:
        """Drop every series of every source not seen for `after` seconds; return how many series went."""
        silent = [source for source, seen in self.last_seen.items() if now - seen > after]
        removed = 0
        for source in silent:
            del self.last_seen[source]
            for family, series in list(self._by_source.pop(source, {}).values()):
                series.source = None  # already out of the index
                self.remove(family, series)
                removed += 1
        self.reaped_series += removed
        self.reaped_sources += len(silent)
        return removed

    def fold_pending(self) -> None:
        """Put every pending histogram observation into its buckets. Only the ingesting thread may
        call this (the event loop: it folds before handing a render to a web worker thread)."""
        unfolded = self.unfolded[:]
        self.unfolded.clear()  # in place: the ingest loop holds its append
        for series in unfolded:
            series.fold()
        self.pending_values = 0

    def count_by_type(self) -> dict[str, int]:
        counts = dict.fromkeys(SAMPLE_SUFFIXES, 0)
        for family in list(self.families.values()):
            counts[family.type] += len(family.series)
        return counts
