"""The series store: metric families of series (bridge/series/types.py), and the indexes kept over them.

The event loop is the only writer; the web worker threads read snapshots
(`list(dict.values())` is atomic under the GIL).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from bridge.series.names import SAMPLE_SUFFIXES, is_legacy, underscored
from bridge.series.native_histogram import pick_schema
from bridge.series.quantiles import SummaryOptions
from bridge.series.types import CounterSeries, Histogram, LabelKey, Scalar, Series, SetSeries, Summary


class Metric(Protocol):
    """What the store needs to know of a metric to hold its series (the mapper's Target is one)."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...  # counter, gauge, histogram or summary
    @property
    def help(self) -> str: ...
    @property
    def buckets(self) -> tuple[float, ...]: ...
    @property
    def native(self) -> tuple[float, int]: ...  # (bucket factor, max buckets); factor <= 1: classic buckets only
    @property
    def summary(self) -> SummaryOptions: ...
    @property
    def ttl(self) -> float: ...
    @property
    def set_window(self) -> float: ...  # a gauge of a StatsD set's distinct values over this window; 0: no set


# About 0.4 GiB of counters at the ~800 bytes a series measured: room on a small machine.
DEFAULT_MAX_SERIES = 500_000
# Pending histogram observations folded in at once: about 2 MB of floats, a few milliseconds of work.
FOLD_AFTER = 65_536


class SeriesLimitError(Exception):
    """A new series would pass the store's cap; the argument is the metric name."""


class MetricSeriesLimitError(SeriesLimitError):
    """A new series would pass the per-metric cap of its metric."""


class ConflictError(Exception):
    """An event names a metric that exists with another type, or whose sample names are taken."""


class Names:
    """The rule that keeps metrics apart: a name has one type, and no two metrics write the same sample name
    (a counter `x_sum` and a summary `x`). The store holds one; a receiving worker holds a copy, fed with
    the store's changes, to refuse at once what the store would refuse."""

    def __init__(self) -> None:
        self.types: dict[str, str] = {}  # metric name -> its type
        # every sample name a metric writes -> that metric's name ("" for the self-metrics')
        self.claims: dict[str, str] = {}
        # ("+" or "-", name, type) since the last take_changes, kept once a worker copies them (None: nobody does)
        self.changes: list[tuple[str, str, str]] | None = None

    def reserve(self, names: Iterable[str]) -> None:
        """Sample names written by someone else (the self-metrics), which no metric may take."""
        self.claims.update(dict.fromkeys(names, ""))

    def check(self, name: str, metric_type: str) -> None:
        """Raise ConflictError unless a metric `name` of this type may exist beside the others."""
        known = self.types.get(name)
        if known is not None:
            if known != metric_type:
                raise ConflictError(f"{name} is a {known}, not a {metric_type}")
            return
        for sample in _sample_names(name, metric_type):
            if sample in self.claims:
                owner = self.claims[sample] or "statsd-bridge itself"
                raise ConflictError(f"{name} ({metric_type}) would write {sample}, which {owner} writes")

    def claim(self, name: str, metric_type: str) -> None:
        if self.types.get(name) == metric_type:
            return
        self.types[name] = metric_type
        for sample in _sample_names(name, metric_type):
            self.claims[sample] = name
        if self.changes is not None:
            self.changes.append(("+", name, metric_type))

    def release(self, name: str, metric_type: str) -> None:
        if self.types.get(name) != metric_type:
            return
        del self.types[name]
        for sample in _sample_names(name, metric_type):
            if self.claims.get(sample) == name:
                del self.claims[sample]
        if self.changes is not None:
            self.changes.append(("-", name, metric_type))

    def take_changes(self) -> list[tuple[str, str, str]]:
        changes, self.changes = self.changes or [], []
        return changes


def _gauge_of(set_window: float) -> str:
    """What a gauge counts: a window's distinct values (one window a name: its buckets are of one width)."""
    return f"a set's distinct values over {set_window:g}s" if set_window else "values"


def _sample_names(name: str, metric_type: str) -> list[str]:
    """The sample names a metric writes, and, for a name that is not legacy-valid (--statsd.utf8-names), the
    underscores forms a Prometheus 2 scraper reads too: `a.b` claims `a_b`, so that the first of two names
    that would read alike there keeps it and the other is refused as a conflict."""
    samples = [name + suffix for suffix in SAMPLE_SUFFIXES[metric_type]] + [name]
    if is_legacy(name):
        return samples
    return samples + [underscored(sample) for sample in samples]


class Family:
    """The series of one metric name. Like statsd_exporter's registry, which keeps one vector per set of
    label names, each set of label names keeps the buckets or summary options of the rule that first
    made a series with it; a later label set with those names gets the same, whatever rule it came by."""

    __slots__ = ("help", "legacy", "name", "read_as", "series", "set_window", "type", "vectors")

    def __init__(self, metric: Metric) -> None:
        self.name = metric.name
        # whether its name and every label name it has held are legacy-valid: then no escaping scheme
        # changes them, and the exposition serves the family as it is
        self.legacy = is_legacy(metric.name)
        self.type = metric.type
        self.help = metric.help
        # a gauge family of a StatsD set's distinct values (SetSeries): the window of its first rule
        self.set_window = metric.set_window
        self.series: dict[LabelKey, Series] = {}
        # label names -> the vector: its live series and the options of its first; it goes with its last
        # series, so that a churn of label-name sets holds no memory
        self.vectors: dict[tuple[str, ...], Vector] = {}
        # once a label name is not legacy-valid (--statsd.utf8-names): each series' labels as a Prometheus 2
        # scraper reads them -> its key, so that two series that would read as one are not served as one
        self.read_as: dict[LabelKey, LabelKey] | None = None

    def new_series(self, key: LabelKey, now: float, metric: Metric) -> tuple[Series, bool]:
        """A series for `key`, and whether it made a new vector (a set of label names with no live series).
        Raises ConflictError for labels a Prometheus 2 scraper would read as another series' labels."""
        names = tuple(name for name, _ in key)
        legacy_labels = all(map(is_legacy, names))
        if self.read_as is not None or not legacy_labels:
            self._claim_reading(key)
        vector = self.vectors.get(names)
        created = vector is None
        if vector is None:
            factor, max_buckets = metric.native
            native = (pick_schema(factor), max_buckets) if factor > 1 else None
            vector = self.vectors[names] = Vector(metric.buckets, native, metric.summary)
            self.legacy = self.legacy and legacy_labels
        vector.series += 1
        return self.make(key, now, vector), created

    def make(self, key: LabelKey, now: float, vector: Vector) -> Series:
        if self.type == "counter":
            return CounterSeries(key, now)
        if self.type == "gauge":
            return SetSeries(key, now, self.set_window) if self.set_window else Scalar(key, now)
        if self.type == "histogram":
            return Histogram(key, now, vector.buckets, vector.native)
        return Summary(key, now, vector.summary)

    def _claim_reading(self, key: LabelKey) -> None:
        if self.read_as is None:  # the first label name that is not legacy-valid: the series before it too
            self.read_as = {_read_as(held): held for held in self.series}
        reading = _read_as(key)
        holder = self.read_as.setdefault(reading, key)
        if holder != key:
            shown = ",".join(f"{name}={value!r}" for name, value in holder)
            raise ConflictError(f"{self.name}: its labels read as those of {{{shown}}} to a Prometheus 2 scraper")

    def forget(self, series: Series) -> None:
        """`series` is gone from `self.series`: its vector goes with its last series."""
        if self.read_as is not None:
            reading = _read_as(series.key)
            if self.read_as.get(reading) == series.key:
                del self.read_as[reading]
        names = tuple(name for name, _ in series.key)
        vector = self.vectors.get(names)
        if vector is not None:
            vector.series -= 1
            if vector.series <= 0:
                del self.vectors[names]


def _read_as(key: LabelKey) -> LabelKey:
    return tuple(sorted((underscored(name), value) for name, value in key))


class Vector:
    """A set of label names of one family: how many series it holds, and the options of its first."""

    __slots__ = ("buckets", "native", "series", "summary")

    def __init__(self, buckets: tuple[float, ...], native: tuple[int, int] | None, summary: SummaryOptions) -> None:
        self.buckets = buckets
        self.native = native  # (schema, max buckets) or None: classic buckets only
        self.summary = summary
        self.series = 0


class Store:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.families: dict[str, Family] = {}
        self.names = Names()  # which name is which type, and who writes which sample name
        # series with a TTL -> their family, checked by sweep()
        self._expiring: dict[int, tuple[Family, Series, float]] = {}
        self.series_count = 0
        # the start timestamp of each counter, histogram and summary made (a series made again after its
        # removal starts anew); wall-clock time, as scrapers read it, where `now` is monotonic
        self.wall_clock: Callable[[], float] = time.time
        self.max_series: float = DEFAULT_MAX_SERIES  # inf: no cap
        self.max_series_per_metric: float = math.inf  # one runaway tag can't take every metric's room
        self.generation = 0  # bumped whenever a series is removed, so caches of series know to let go
        self._removed: set[int] = set()  # ids of series removed since take_removed(), for those caches
        # The reaper: series indexed by the value of one label (a worker, a host), so that
        # dropping a silent source costs its own series, never a walk over all of them. A source was
        # last seen when the latest of its series was updated.
        self.reap_label = ""
        self._by_source: dict[str, dict[int, tuple[Family, Series]]] = {}
        self.reaped_series = 0
        self.reaped_sources = 0
        # Vectors (a name, a type and a set of label names: statsd_exporter's "metrics") created, by type:
        # its metrics_total{type}, never lowered. Counted as each comes into being, never remembered once
        # its last series goes (statsd_exporter keeps every one it made, and its memory grows with them).
        self.vectors_created: dict[str, int] = {}  # a type appears once it has one, as there
        # Histograms holding pending observations (Histogram.pending), and how many values wait in all:
        # the ingest defers bucket updates so that a batch costs a sort and a few bisections; they are
        # folded in once FOLD_AFTER values wait, and before every render.
        self._unfolded: list[Histogram] = []
        self._pending_values = 0
        # the gauges of StatsD sets, whose count moves with the clock: refreshed before every render
        self._sets: dict[int, SetSeries] = {}
        self.clock = clock  # the ingest's (tests step a fake one through windows)

    def reserve(self, names: Iterable[str]) -> None:
        """Sample names written by someone else (the self-metrics), which no family may take."""
        self.names.reserve(names)

    def holds(self, name: str) -> bool:
        """Whether a metric of this name has series (a cache of routes to it may keep them)."""
        return name in self.families

    def family(self, metric: Metric) -> Family:
        family = self.families.get(metric.name)
        if family is not None and family.type == metric.type:
            if family.set_window != metric.set_window:
                raise ConflictError(
                    f"{metric.name} is a gauge of {_gauge_of(family.set_window)}, not of {_gauge_of(metric.set_window)}"
                )
            return family
        self.names.check(metric.name, metric.type)
        self.names.claim(metric.name, metric.type)
        family = self.families[metric.name] = Family(metric)
        return family

    def series(self, metric: Metric, key: LabelKey, now: float) -> Series:
        """The series of `metric` with labels `key`, created if need be.

        Raises ConflictError when the name is taken by another type, SeriesLimitError when a
        new series would pass `max_series`, MetricSeriesLimitError when it would pass
        `max_series_per_metric` (existing series still update).
        """
        family = self.families.get(metric.name)
        if family is not None and family.type == metric.type and family.set_window == metric.set_window:
            series = family.series.get(key)
            if series is not None:
                return series
        if self.series_count >= self.max_series:
            raise SeriesLimitError(metric.name)
        if family is not None and len(family.series) >= self.max_series_per_metric:
            raise MetricSeriesLimitError(metric.name)
        if family is None or family.type != metric.type or family.set_window != metric.set_window:
            family = self.family(metric)
        series, new_vector = family.new_series(key, now, metric)
        if family.type != "gauge":
            series.created = self.wall_clock()  # type: ignore[union-attr]  # every other type has one
        family.series[key] = series
        self.series_count += 1
        if new_vector:
            self.vectors_created[family.type] = self.vectors_created.get(family.type, 0) + 1
        if metric.ttl > 0:
            self._expiring[id(series)] = (family, series, metric.ttl)
        if isinstance(series, SetSeries):
            self._sets[id(series)] = series
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
            family.forget(series)
            self.series_count -= 1
            self.generation += 1
            self._removed.add(id(series))
        self._expiring.pop(id(series), None)
        self._sets.pop(id(series), None)
        if series.source is not None:
            indexed = self._by_source.get(series.source)
            if indexed is not None:
                indexed.pop(id(series), None)
                if not indexed:
                    del self._by_source[series.source]
        if not family.series:
            self._drop_family(family)

    def clear(self, selected: Callable[[str], Callable[[LabelKey], bool] | None] | None = None) -> int:
        """Drop every series, or those `selected` picks: given a metric's name, the test of its series'
        labels, or None for none of them. They go by the path ttl and the reaper take (indexes, vectors,
        caps and workers' sids follow); return how many went."""
        chosen: list[tuple[Family, Any]] = []
        for family in list(self.families.values()):
            test = _every if selected is None else selected(family.name)
            if test is not None:
                chosen.extend((family, series) for series in list(family.series.values()) if test(series.key))
        for family, series in chosen:
            self.remove(family, series)
        return len(chosen)

    def take_removed(self) -> set[int]:
        """Ids of the series removed since the last call. A cache holding a series keeps it alive,
        so an id in here can't have been reused by a series the cache also holds."""
        removed, self._removed = self._removed, set()
        return removed

    def _drop_family(self, family: Family) -> None:
        if self.families.get(family.name) is family:
            del self.families[family.name]
            self.names.release(family.name, family.type)

    def sweep(self, now: float) -> int:
        """Drop series not updated within their TTL; return how many went."""
        stale = [(family, series) for family, series, ttl in self._expiring.values() if now - series.updated > ttl]
        for family, series in stale:
            self.remove(family, series)
        return len(stale)

    @property
    def sources(self) -> int:
        """Sources (values of the reap label) the reaper is watching: those with a series."""
        return len(self._by_source)

    def reap(self, now: float, after: float) -> int:
        """Drop every series of every source none of whose series was updated for `after` seconds;
        return how many series went. A live source costs a look at series until a fresh one."""
        silent = [
            source
            for source, indexed in self._by_source.items()
            if all(now - series.updated > after for _, series in indexed.values())
        ]
        removed = 0
        for source in silent:
            for family, series in list(self._by_source.pop(source).values()):
                series.source = None  # already out of the index
                self.remove(family, series)
                removed += 1
        self.reaped_series += removed
        self.reaped_sources += len(silent)
        return removed

    def pending_tracker(self) -> Callable[[Histogram], None]:
        """What the ingest calls when a histogram gets its first pending observation (How.DEFER), so
        that the store folds it in: a callable rather than a method, as the hot loop calls it."""
        return self._unfolded.append

    def add_pending(self, count: int) -> None:
        """`count` more observations wait in histograms' pending lists: fold them all once FOLD_AFTER do."""
        self._pending_values += count
        if self._pending_values >= FOLD_AFTER:
            self._fold()

    @property
    def pending(self) -> int:
        return self._pending_values

    def fold_pending(self) -> None:
        """Put every pending histogram observation into its buckets, and count each set's distinct values
        as of now. Only the ingesting thread may call this (the event loop: it folds before handing a
        render to a web worker thread)."""
        self.refresh_sets(self.clock())
        self._fold()

    def _fold(self) -> None:
        unfolded = self._unfolded[:]
        self._unfolded.clear()  # in place: the ingest holds its append
        for series in unfolded:
            series.fold()
        self._pending_values = 0

    def refresh_sets(self, now: float) -> None:
        """Each set's gauge: the distinct values of its window as of `now`, the same for every scrape in
        one bucket of the window."""
        for series in list(self._sets.values()):
            series.value = float(series.window.count(now))

    def count_by_type(self) -> dict[str, int]:
        counts = dict.fromkeys(SAMPLE_SUFFIXES, 0)
        for family in list(self.families.values()):
            counts[family.type] += len(family.series)
        return counts


def _every(key: LabelKey) -> bool:
    return True
