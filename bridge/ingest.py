"""Datagram or line in, series updated: parser -> mapper -> store, counting every outcome.

Transports call `Ingest.packet` / `Ingest.line`; nothing here touches a socket.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from bridge.logs import RateLimited, log
from bridge.mapping.router import Mapper, Route, Target, escape_name
from bridge.parsing.line import (
    ALL_DIALECTS,
    COUNTER,
    GAUGE,
    OBSERVER,
    Dialects,
    LineError,
    Sample,
    TagStats,
    parse_line,
)
from bridge.series.names import RESERVED_LABELS
from bridge.series.store import (
    FOLD_AFTER,
    ConflictError,
    CounterSeries,
    Histogram,
    MetricSeriesLimitError,
    Series,
    SeriesLimitError,
    Store,
    Summary,
)
from bridge.stats import Stats

logger = logging.getLogger("bridge.ingest")

SHAPE_CACHE_LIMIT = 100_000
SERIES_LIMIT_LOG_INTERVAL = 60.0
# client_golang adds a whole increment below 2**64 to an integer and any other to a float: the same split
WHOLE_LIMIT = 2.0**64


# How the fast path applies a cached line shape's value (Shape.apply). Plain ints, not an IntEnum: the
# hot loop compares them for every line, and an enum's comparison costs 3 % more instructions a line.
ADD = 0  # a counter's increment
SET = 1  # a gauge: set, or change by a signed value
OBSERVE = 2  # an observation applied at once (a summary, or a weighted histogram observation)
DEFER = 3  # a histogram observation of weight 1, into the buckets at the next fold
NOT = -1  # the line's value does not apply here (a negative increment): the full path says why

_KIND_APPLY = {COUNTER: ADD, GAUGE: SET, OBSERVER: OBSERVE}


class Shape:
    """What a line shape (the line without its value) resolved to last time: the series and how to apply."""

    __slots__ = ("apply", "divisor", "histogram", "mapped", "scale", "series", "tagged", "weight")

    def __init__(
        self,
        series: Series,
        kind: str,
        divisor: float,
        scale: float,
        weight: int,
        histogram: bool,
        mapped: bool,
        tagged: bool,
    ) -> None:
        # Any: `apply` says which kind of series it is, which the hot path trusts without a check
        self.series: Any = series
        self.apply = DEFER if histogram and weight == 1 else _KIND_APPLY[kind]
        self.divisor = divisor
        self.scale = scale
        self.weight = weight  # statsd_exporter's events per line: int(1/rate) for a sampled observer
        self.histogram = histogram
        self.mapped = weight if mapped else 0  # events that count as mapped
        self.tagged = tagged


class Ingest:
    def __init__(
        self,
        mapper: Mapper,
        store: Store,
        stats: Stats,
        clock: Callable[[], float] = time.monotonic,
        dialects: Dialects = ALL_DIALECTS,
    ) -> None:
        self.clock = clock  # tests pass a fake one to step through TTLs and summary windows
        self.dialects = dialects
        self.mapper = mapper
        self.store = store
        self.stats = stats
        self.tag_stats = TagStats()
        self._label_names: dict[str, str] = {}
        self._warn = RateLimited(logger)
        self._errors = RateLimited(logger)
        self._refused: Counter[str] = Counter()  # new series refused by the cap since the last warning
        self._refused_since = -math.inf
        # (name part, suffix after the value), as bytes -> Shape
        self._shapes: dict[tuple[bytes, bytes], Shape] = {}
        # whole counter lines (value included) -> (Shape, value): an increment of 1 parses nothing
        self._exact: dict[bytes, tuple[Shape, float]] = {}
        self.shape_limit = SHAPE_CACHE_LIMIT  # 0 turns both caches off (tests compare both paths)
        self._generation = store.generation
        self.now = clock()

    def packet(self, data: bytes) -> None:
        """All lines of one datagram; a bad line never costs its neighbours."""
        self.packets((data,))

    def packets(self, datagrams: Iterable[bytes]) -> None:
        """All lines of several datagrams, as the listeners read them in one go.

        This is the hot path. A line whose shape is cached is applied straight from its
        bytes (no decoding: its name and suffix are bytes already seen valid, and float()
        rejects anything but ASCII); the counts of such lines go to the stats once per call.
        """
        now = self.now = self.clock()
        self.stats.batches += 1
        if self.store.generation != self._generation:
            self._forget_removed()
        shapes = self._shapes
        exact = self._exact
        exact_room = self.shape_limit - len(exact)
        store = self.store
        last_seen = store.last_seen
        unfolded = store.unfolded
        # every line is counted, empty ones too, as statsd_exporter counts them: the fast path's, those of
        # the full path (slow) and those a bug cost (failed)
        counters = gauges = observers = observer_events = deferred = tagged = mapped = empty = slow = failed = 0
        # bound here so that the loop reads locals, not globals
        add, set_, defer, not_applied = ADD, SET, DEFER, NOT
        underscore, space = ord("_"), ord(" ")
        for data in datagrams:
            for line in data.split(b"\n"):
                if not line:
                    empty += 1
                    continue
                try:
                    hit = exact.get(line)
                    if hit is not None:  # a counter line seen before, value and all (a whole number)
                        shape, value = hit
                        series = shape.series
                        series.value += value
                        series.updated = now
                        if series.source is not None:
                            last_seen[series.source] = now
                        counters += 1
                        tagged += shape.tagged
                        mapped += shape.mapped
                        continue
                    name, _, rest = line.partition(b":")
                    value_text, _, suffix = rest.partition(b"|")
                    cached = shapes.get((name, suffix))
                    if cached is not None:
                        shape = cached
                        try:
                            value = float(value_text) / shape.divisor * shape.scale  # the full path's rounding
                        except ValueError:
                            value = math.nan
                        # non-finite values, and what float() takes but StatsD does not (underscores,
                        # surrounding spaces), get the full path. The byte values, not `b"_" in`, which
                        # would first try the needle as an integer and build and drop a TypeError: 7x the cost.
                        if value - value == 0.0 and (
                            value_text.isdigit()
                            or (underscore not in value_text and value_text[0] > space and value_text[-1] > space)
                        ):
                            series = shape.series
                            apply = shape.apply
                            if apply == add:
                                if value >= 0:
                                    # whole increments and fractions are summed apart, as client_golang's
                                    # counters do: the same total, to the last bit
                                    if value.is_integer() and value < WHOLE_LIMIT:
                                        series.value += value
                                        if exact_room > 0:  # counters mostly repeat one increment: remember it
                                            exact[line] = (shape, value)
                                            exact_room -= 1
                                    else:
                                        series.fraction += value
                                    counters += 1
                                else:
                                    apply = not_applied
                            elif apply == set_:
                                series.value = series.value + value if value_text[0] in b"+-" else value
                                gauges += 1
                            elif apply == defer:  # into the buckets at the next fold, with the series' other values
                                pending = series.pending
                                if not pending:
                                    unfolded.append(series)
                                pending.append(value)
                                deferred += 1
                            else:
                                if shape.histogram:
                                    series.observe(value, shape.weight)
                                else:
                                    series.observe(value, shape.weight, now)
                                observers += 1
                                observer_events += shape.weight
                            if apply != not_applied:
                                series.updated = now
                                if series.source is not None:
                                    last_seen[series.source] = now
                                tagged += shape.tagged
                                mapped += shape.mapped
                                continue
                    self.raw_line(line)
                    slow += 1
                except Exception:  # a bug: it costs this line only, counted and logged with its traceback
                    failed += 1
                    self._internal_error(line)
        stats = self.stats
        if deferred:
            store.pending_values += deferred
            if store.pending_values >= FOLD_AFTER:
                store.fold_pending()
        fast = counters + gauges + observers + deferred
        stats.lines += fast + empty + slow + failed
        if fast:
            stats.samples += fast
            stats.tags += tagged
            stats.events_unmapped += counters + gauges + observer_events + deferred - mapped
            if mapped:
                stats.actions["map"] += mapped
            events = stats.events
            if counters:
                events[COUNTER] += counters
            if gauges:
                events[GAUGE] += gauges
            if observer_events or deferred:
                events[OBSERVER] += observer_events + deferred

    def raw_line(self, raw: bytes) -> None:
        """One line by the full path: decoded on its own, so invalid UTF-8 costs only this line."""
        raw = raw.rstrip(b"\r")
        if not raw:
            return
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            self._reject(LineError("invalid_utf8", str(error)), repr(raw[:80]))
            return
        self._parse_line(line)

    def _internal_error(self, line: bytes) -> None:
        self.stats.internal_errors["ingest"] += 1
        self._errors.exception(
            "a line could not be handled (a bug); the rest of its datagram goes on",
            line=line[:200].decode("utf-8", "replace"),
        )

    def set_mapper(self, mapper: Mapper) -> None:
        self.mapper = mapper
        self._forget_shapes()

    def _forget_removed(self) -> None:
        """Some series were removed: forget the cached shapes that point at them, and the mapper's
        routes to metrics that are gone, keeping what still serves live series."""
        removed = self.store.take_removed()
        for key in [key for key, shape in self._shapes.items() if id(shape.series) in removed]:
            del self._shapes[key]
        for line in [line for line, (shape, _) in self._exact.items() if id(shape.series) in removed]:
            del self._exact[line]
        self.mapper.forget_gone(self.store.families.__contains__)
        self._generation = self.store.generation

    def _forget_shapes(self) -> None:
        self._shapes.clear()
        self._exact.clear()
        self._generation = self.store.generation

    def _parse_line(self, line: str) -> None:
        stats = self.stats
        tag_stats = self.tag_stats
        errors_before, tags_before, rates_before = tag_stats.errors, tag_stats.received, tag_stats.rate_errors
        try:
            samples, errors, _dialect = parse_line(line, tag_stats, self.dialects)
        except LineError as rejected:  # before any sample: statsd_exporter counts none
            self._reject(rejected, line)
            return
        finally:
            stats.tag_errors += tag_stats.errors - errors_before
            stats.tags += tag_stats.received - tags_before
            if tag_stats.rate_errors != rates_before:
                stats.sample_errors["invalid_sample_factor"] += tag_stats.rate_errors - rates_before
                self._warn(logging.WARNING, "unreadable sample rate, sample kept unscaled", line=line[:200])
        stats.samples += len(samples) + len(errors)
        for error in errors:
            self._reject(error, line)
        if len(samples) == 1 and not errors:
            applied = self.sample(samples[0])
            if applied is not None and tag_stats.errors == errors_before and tag_stats.rate_errors == rates_before:
                self._remember_shape(line, samples[0], *applied)
            return
        for sample in samples:
            self.sample(sample)

    def _remember_shape(self, line: str, sample: Sample, route: Route, series: Series) -> None:
        name, _, rest = line.partition(":")
        value_text, _, suffix = rest.partition("|")
        if ":" in value_text or "|T" in line or line.count("|@") > 1 or not self.shape_limit:
            return  # multi-value lines, timestamps that make every line's shape new, several rates
        if len(self._shapes) >= self.shape_limit:
            self._forget_shapes()
        self._shapes[(name.encode(), suffix.encode())] = Shape(
            series=series,
            kind=sample.kind,
            divisor=sample.divisor,
            scale=1.0 if route.targets[0].scale is None else route.targets[0].scale,
            weight=sample.weight,
            histogram=isinstance(series, Histogram),
            mapped=route.mapped,
            tagged=bool(sample.tags),
        )

    def _reject(self, error: LineError, line: str) -> None:
        self.stats.sample_errors[error.reason] += 1
        self._warn(logging.WARNING, "rejected line", reason=error.reason, detail=error.detail, line=line[:200])

    def _labels(self, sample: Sample, target: Target) -> tuple[tuple[str, str], ...]:
        if target.tags is not None:
            # only the tags the output names, under its label names; an absent one is ""
            labels = dict(target.labels)
            for label, tag in target.tags.items():
                labels[label] = sample.tags.get(tag, "")
            return self._without_reserved(labels, target)
        names = self._label_names
        labels = {}
        for key, value in sample.tags.items():
            name = names.get(key)
            if name is None:
                if len(names) > 100_000:
                    names.clear()
                name = names[key] = escape_name(key)
            labels[name] = value
        for name, value in target.labels.items():
            if target.honor_labels and name in labels:
                continue
            labels[name] = value
        return self._without_reserved(labels, target)

    def _without_reserved(self, labels: dict[str, str], target: Target) -> tuple[tuple[str, str], ...]:
        reserved = RESERVED_LABELS.get(target.type)
        if reserved in labels:
            del labels[reserved]  # the exposition writes le / quantile itself
            self.stats.tag_errors += 1
            self.tag_stats.errors += 1  # and keeps the line out of the shape cache, so each one counts
        return tuple(sorted(labels.items()))

    def sample(self, sample: Sample) -> tuple[Route, Series] | None:
        """Apply one sample to every target of its route.

        Returns the route and series when exactly one plain target took it, which is
        what the shape cache can replay; None otherwise.
        """
        stats = self.stats
        events = sample.weight  # statsd_exporter's events: a sampled observer's line stands for int(1/rate)
        route = self.mapper.map(sample.name, sample.kind)
        if route.drop:
            stats.actions["drop"] += events
            return None
        if not route.mapped:
            stats.events_unmapped += events
        elif any(target.name for target in route.targets):
            stats.actions["map"] += events  # an empty name is an event error, not a mapped event
        applied = [series for series in (self._apply(sample, target) for target in route.targets) if series]
        if not applied:
            return None
        stats.events[sample.kind] += events
        if len(route.targets) == 1 and not route.targets[0].extended:
            return route, applied[0]
        return None

    def _refuse_series(self, name: str) -> None:
        """Count a series the cap refused; say so once per interval, naming the metric that grew fastest."""
        self.stats.series_dropped[name] += 1
        self._refused[name] += 1
        if self.now - self._refused_since >= SERIES_LIMIT_LOG_INTERVAL:
            metric, count = self._refused.most_common(1)[0]
            log(
                logger,
                logging.WARNING,
                "series cap reached: new series are refused, existing ones still update",
                max_series=self.store.max_series,
                refused=sum(self._refused.values()),
                fastest_growing=metric,
                fastest_refused=count,
            )
            self._refused.clear()
            self._refused_since = self.now

    def _refuse_metric_series(self, name: str) -> None:
        self.stats.metric_series_dropped[name] += 1
        self._warn(
            logging.WARNING,
            "per-metric series cap reached: new series of this metric are refused",
            metric=name,
            max_series_per_metric=self.store.max_series_per_metric,
        )

    def _skip(self, target: Target, missing: str) -> None:
        self.stats.output_skips[(target.name, missing)] += 1
        self._warn(
            logging.WARNING, "output skipped: a required tag is missing or empty", metric=target.name, tag=missing
        )

    def _selected(self, sample: Sample, target: Target) -> bool:
        """Whether an extended target takes this sample: its `when` holds and its required tags are there."""
        tags = sample.tags
        for tag, wanted in target.when.items():
            if tags.get(tag) not in wanted:
                return False
        for tag in target.required:
            if tag not in tags:
                self._skip(target, tag)
                return False
        for tag in target.non_empty:
            if not tags.get(tag):
                self._skip(target, tag)
                return False
        return True

    def _value(self, sample: Sample, target: Target) -> float:
        if target.value == "count":
            return 1.0
        if target.value == "up_down":
            return 1.0 if sample.value == 1 else -1.0
        return sample.value if target.scale is None else sample.value * target.scale

    def _apply(self, sample: Sample, target: Target) -> Series | None:
        stats = self.stats
        if not target.name:
            stats.event_errors["empty_metric_name"] += sample.weight
            return None
        if target.extended and not self._selected(sample, target):
            return None
        value = self._value(sample, target)
        if target.type == "counter" and not value >= 0:
            stats.event_errors["illegal_negative_counter"] += 1
            return None
        key = self._labels(sample, target) if sample.tags or target.labels else ()
        try:
            series = self.store.series(target, key, self.now)
        except ConflictError as error:
            # the event's kind, as statsd_exporter labels it, once per event
            stats.conflicts[(sample.kind, target.name)] += sample.weight
            self._warn(logging.WARNING, "metric type conflict", metric=target.name, error=str(error))
            return None
        except MetricSeriesLimitError:
            self._refuse_metric_series(target.name)
            return None
        except SeriesLimitError:
            self._refuse_series(target.name)
            return None
        series.updated = self.now
        if series.source is not None:
            self.store.last_seen[series.source] = self.now
        if isinstance(series, Histogram):
            series.observe(value, sample.weight)
        elif isinstance(series, Summary):
            series.observe(value, sample.weight, self.now)
        elif target.value == "set":
            series.value = series.value + value if sample.relative else value
        elif target.type != "counter" or (value.is_integer() and value < WHOLE_LIMIT):
            series.value += value  # a counter's whole increments: summed apart, as client_golang's counters
        else:
            assert isinstance(series, CounterSeries)
            series.fraction += value
        return series
