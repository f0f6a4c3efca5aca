"""Datagrams in, series updated: the hot loop that applies a line of a shape seen before straight from
its bytes, and the full path (parser -> mapper -> store) for any other, counting every outcome."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from bridge.ingest.outputs import LabelCollisionError, labels_of, missing_tag, value_of, when_holds
from bridge.logs import RateLimited
from bridge.mapping.router import Mapper, Target
from bridge.parsing.line import (
    ALL_DIALECTS,
    COUNTER,
    GAUGE,
    OBSERVER,
    SET,
    Dialects,
    LineError,
    Sample,
    TagStats,
    is_relative,
    parse_line,
)
from bridge.series.distinct import member_hash
from bridge.series.refusals import Refusals
from bridge.series.store import ConflictError, SeriesLimitError
from bridge.series.types import WHOLE_LIMIT, How, LabelKey, Series
from bridge.stats import Stats

logger = logging.getLogger("bridge.ingest")

SHAPE_CACHE_LIMIT = 100_000


class Shape:
    """A series and how a value changes it: what a line shape (the line without its value) resolved to,
    kept to apply the next line of that shape straight from its bytes; and each update the full path
    resolves."""

    __slots__ = ("divisor", "how", "mapped", "scale", "series", "signed", "tagged", "weight")

    def __init__(
        self, series: Series, how: How, weight: int, divisor: float, scale: float, mapped: int, tagged: bool
    ) -> None:
        # Any: `how` says which kind of series it is, which the hot loop trusts without a check
        self.series: Any = series
        self.how = how
        self.signed = how.allows_negative
        self.weight = weight  # statsd_exporter's events per line: int(1/rate) for a sampled observer
        self.divisor = divisor  # of the value sent: a counter's sample rate, 1000 for a timer
        self.scale = scale
        self.mapped = mapped  # events that count as mapped
        self.tagged = tagged


# What the full path hands back to the hot loop, which applies it: a shape, the value, whether relative
Update = tuple[Shape, float, bool]

# The hot loop's constants as module globals: reading an Enum member through its class costs about
# 150 ns (EnumType's descriptor), three of them a sizeable share of a one-line datagram.
_ADD, _SET, _DEFER = How.ADD, How.SET, How.DEFER
_UNDERSCORE, _SPACE, _NAN = ord("_"), ord(" "), math.nan
_NO_MORE: list[Update] = []  # a cached line's further updates: none (never appended to)


def how_of(metric_type: str, weight: int) -> How:
    """How a value of `weight` events changes a series of a metric of this type."""
    if metric_type == "histogram":
        return How.DEFER if weight == 1 else How.OBSERVE
    if metric_type == "summary":
        return How.OBSERVE
    return How.ADD if metric_type == "counter" else How.SET


class SeriesStore(Protocol):
    """What the ingest asks of a store: the series store of one process (bridge/series/store.py), or a
    receiving worker's (bridge/workers/handover.py)."""

    generation: int
    max_series: float
    max_series_per_metric: float

    def series(self, metric: Target, key: LabelKey, now: float) -> Series: ...
    def take_removed(self) -> set[int]: ...
    def holds(self, name: str) -> bool: ...
    def pending_tracker(self) -> Callable[[Any], None]: ...
    def add_pending(self, count: int) -> None: ...


class Ingest:
    def __init__(
        self,
        mapper: Mapper,
        store: SeriesStore,
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
        self._warn = RateLimited(logger)  # a limit for each warning, so that a flood of one hides no other
        self.refusals = Refusals(stats, store)
        # (name part, suffix after the value), as bytes -> Shape
        self._shapes: dict[tuple[bytes, bytes], Shape] = {}
        # whole counter lines (value included) -> (Shape, value): an increment of 1 parses nothing
        self._exact: dict[bytes, tuple[Shape, float]] = {}
        self.shape_limit = SHAPE_CACHE_LIMIT  # 0 turns both caches off (tests compare both paths)
        self._generation = store.generation
        self._track_pending = store.pending_tracker()
        self.now = clock()

    def packet(self, data: bytes) -> None:
        """All lines of one datagram; a bad line never costs its neighbours."""
        self.packets((data,))

    def packets(self, datagrams: Iterable[bytes]) -> None:
        """All lines of several datagrams, as the listeners read them in one go.

        This is the hot path, and the one place a series changes. A line whose shape is cached is
        applied straight from its bytes (no decoding: its name and suffix are bytes already seen
        valid, and float() rejects anything but ASCII); any other takes the full path, which parses,
        maps and counts it and hands back its updates, applied here in the line's order. The counts
        of cached lines go to the stats once per call.
        """
        now = self.now = self.clock()
        self.stats.batches += 1
        if self.store.generation != self._generation:
            self._forget_removed()
        shapes = self._shapes
        exact = self._exact
        exact_room = self.shape_limit - len(exact)
        track_pending = self._track_pending
        full_path = self._full_path
        # every line is counted, empty ones too, as statsd_exporter counts them: the cached path's, those
        # of the full path (slow) and those a bug cost (failed)
        counters = gauges = observers = observer_events = deferred = tagged = mapped = empty = slow = failed = 0
        deferred_cached = 0
        # bound here so that the loop reads locals, not globals
        add, set_, defer = _ADD, _SET, _DEFER
        underscore, space, nan = _UNDERSCORE, _SPACE, _NAN
        no_more = _NO_MORE
        for data in datagrams:
            for line in data.split(b"\n"):
                if not line:
                    empty += 1
                    continue
                try:
                    hit = exact.get(line)
                    if hit is not None:
                        # a counter line seen before, value and all, whose whole increment the update below
                        # added once: replayed here, the one update written outside it, because the most
                        # frequent line of all can't afford its dispatch (a fifth more instructions a line)
                        shape, value = hit
                        series = shape.series
                        series.value += value
                        series.updated = now
                        counters += 1
                        tagged += shape.tagged
                        mapped += shape.mapped
                        continue
                    name, _, rest = line.partition(b":")
                    value_text, _, suffix = rest.partition(b"|")
                    # Any: where `known` is None, `value` stays NaN and the checks below stop before it
                    known: Any = shapes.get((name, suffix))
                    value = nan
                    if known is not None:
                        try:
                            value = float(value_text) / known.divisor * known.scale  # the full path's rounding
                        except ValueError:
                            value = nan
                    # non-finite values, negative increments, and what float() takes but StatsD does not
                    # (underscores, surrounding spaces) get the full path. The byte values, not `b"_" in`,
                    # which would first try the needle as an integer and build and drop a TypeError.
                    if (
                        value - value == 0.0
                        and (value >= 0.0 or known.signed)
                        and (
                            value_text.isdigit()
                            or (underscore not in value_text and value_text[0] > space and value_text[-1] > space)
                        )
                    ):
                        shape = known
                        relative = shape.how is set_ and is_relative(value_text)
                        fresh, cached, more = line, 1, no_more
                    else:
                        more = full_path(line)  # counted there; last first
                        slow += 1
                        if not more:
                            continue
                        shape, value, relative = more.pop()
                        fresh, cached = None, 0
                    while True:  # once for a cached line; once per update for a line by the full path
                        series = shape.series
                        how = shape.how
                        if how is add:
                            # whole increments and fractions are summed apart, as client_golang's counters
                            # do: the same total, to the last bit
                            if value.is_integer() and value < WHOLE_LIMIT:
                                series.value += value
                                if fresh is not None and exact_room > 0:  # counters mostly repeat one increment
                                    exact[fresh] = (shape, value)
                                    exact_room -= 1
                            else:
                                series.fraction += value
                            counters += cached
                        elif how is set_:
                            if relative:
                                series.value += value
                            else:
                                series.value = value
                                series.set_at = now
                            gauges += cached
                        elif how is defer:  # into the buckets at the next fold, with the series' other values
                            pending = series.pending
                            if not pending:
                                track_pending(series)
                            pending.append(value)
                            deferred += 1
                            deferred_cached += cached
                        else:
                            series.observe(value, shape.weight, now)
                            if cached:
                                observers += 1
                                observer_events += shape.weight
                        series.updated = now
                        if cached:
                            tagged += shape.tagged
                            mapped += shape.mapped
                        if not more:
                            break
                        shape, value, relative = more.pop()
                except Exception:  # a bug: it costs this line only, counted and logged with its traceback
                    failed += 1
                    self._internal_error(line)
        stats = self.stats
        if deferred:
            self.store.add_pending(deferred)
        fast = counters + gauges + observers + deferred_cached
        stats.lines += fast + empty + slow + failed
        if fast:
            stats.samples += fast
            stats.tags += tagged
            stats.events_unmapped += counters + gauges + observer_events + deferred_cached - mapped
            if mapped:
                stats.actions["map"] += mapped
            events = stats.events
            if counters:
                events[COUNTER] += counters
            if gauges:
                events[GAUGE] += gauges
            if observer_events or deferred_cached:
                events[OBSERVER] += observer_events + deferred_cached

    def _full_path(self, raw: bytes) -> list[Update]:
        """A line the caches can't take, decoded on its own (invalid UTF-8 costs only this line), parsed,
        mapped and resolved to series, every outcome counted: its updates, last first."""
        raw = raw.rstrip(b"\r")
        if not raw:
            return []
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            self._reject(LineError("invalid_utf8", str(error)), repr(raw[:80]))
            return []
        updates = self._parse_line(line)
        updates.reverse()
        return updates

    def _internal_error(self, line: bytes) -> None:
        self.stats.internal_errors["ingest"] += 1
        self._warn.exception(
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
        self.mapper.forget_gone(self.store.holds)
        self._label_names.clear()  # tag keys of series that may be gone; escaping one again is cheap
        self._generation = self.store.generation

    def _forget_shapes(self) -> None:
        self._shapes.clear()
        self._exact.clear()
        self._generation = self.store.generation

    def _parse_line(self, line: str) -> list[Update]:
        stats = self.stats
        tag_stats = self.tag_stats
        errors_before, tags_before, rates_before = tag_stats.errors, tag_stats.received, tag_stats.rate_errors
        try:
            samples, errors, _dialect = parse_line(line, tag_stats, self.dialects, self.mapper.takes_sets)
        except LineError as rejected:  # before any sample: statsd_exporter counts none
            self._reject(rejected, line)
            return []
        finally:
            stats.tag_errors += tag_stats.errors - errors_before
            stats.tags += tag_stats.received - tags_before
            if tag_stats.rate_errors != rates_before:
                stats.sample_errors["invalid_sample_factor"] += tag_stats.rate_errors - rates_before
                self._warn(logging.WARNING, "unreadable sample rate, sample kept unscaled", line=line[:200])
        stats.samples += len(samples) + len(errors)
        for error in errors:
            self._reject(error, line)
        updates: list[Update] = []
        cacheable = False
        for sample in samples:
            cacheable = self.sample(sample, updates)
        if (
            cacheable
            and len(samples) == 1
            and not errors
            and tag_stats.errors == errors_before
            and tag_stats.rate_errors == rates_before
        ):
            self._remember_shape(line, updates[0][0])
        return updates

    def _remember_shape(self, line: str, shape: Shape) -> None:
        name, _, rest = line.partition(":")
        value_text, _, suffix = rest.partition("|")
        if ":" in value_text or "|T" in line or line.count("|@") > 1 or not self.shape_limit:
            return  # multi-value lines, timestamps that make every line's shape new, several rates
        if len(self._shapes) >= self.shape_limit:
            self._forget_shapes()
        self._shapes[(name.encode(), suffix.encode())] = shape

    def _reject(self, error: LineError, line: str) -> None:
        self.stats.sample_errors[error.reason] += 1
        self._warn(
            logging.WARNING,
            "rejected line",
            kind=error.reason,
            reason=error.reason,
            detail=error.detail,
            line=line[:200],
        )

    def sample(self, sample: Sample, updates: list[Update]) -> bool:
        """Add the updates of one sample to `updates`, one per target that takes it, counting each
        outcome. Returns whether its shape can be cached: one plain target took it."""
        stats = self.stats
        events = sample.weight  # statsd_exporter's events: a sampled observer's line stands for int(1/rate)
        route = self.mapper.map(sample.name, sample.kind)
        if route.drop:
            stats.actions["drop"] += events
            return False
        targets = route.targets
        if sample.kind == SET:
            targets = [target for target in targets if target.set_window]
            if not targets:  # the parser reads sets for another rule's sake: this one has no window
                self._reject(LineError("set_unsupported", "no set_window in the rule that matches"), sample.name)
                return False
        if not route.mapped:
            stats.events_unmapped += events
        elif any(target.name for target in route.targets):
            stats.actions["map"] += events  # an empty name is an event error, not a mapped event
        before = len(updates)
        for target in targets:
            update = self._update(sample, target, events if route.mapped else 0)
            if update is not None:
                updates.append(update)
        if len(updates) == before:
            return False
        stats.events[sample.kind] += events
        # a set's member is text, which the cached path doesn't read
        return len(targets) == 1 and not targets[0].extended and sample.kind != SET

    def _skip(self, target: Target, missing: str) -> None:
        self.stats.output_skips[(target.name, missing)] += 1
        self._warn(
            logging.WARNING, "output skipped: a required tag is missing or empty", metric=target.name, tag=missing
        )

    def _update(self, sample: Sample, target: Target, mapped: int) -> Update | None:
        stats = self.stats
        if not target.name:
            stats.event_errors["empty_metric_name"] += sample.weight
            return None
        if target.extended:
            if not when_holds(sample, target):
                return None
            missing = missing_tag(sample, target)
            if missing is not None:
                self._skip(target, missing)
                return None
        if target.set_window:
            value, how = member_hash(sample.member), How.COLLECT
        else:
            value, how = value_of(sample, target), how_of(target.type, sample.weight)
        if not (value >= 0.0 or how.allows_negative):  # before the series: statsd_exporter makes none
            stats.event_errors["illegal_negative_counter"] += 1
            return None
        key: LabelKey = ()
        if sample.tags or target.labels:
            try:
                key, dropped = labels_of(sample, target, self._label_names, self.mapper.config.utf8_names)
            except LabelCollisionError as error:
                stats.event_errors["label_name_collision"] += sample.weight
                self._warn(
                    logging.WARNING,
                    "label names that read alike",
                    kind="label_name_collision",
                    metric=target.name,
                    labels=str(error),
                )
                return None
            if dropped:  # le / quantile: the exposition writes it itself
                stats.tag_errors += 1
                self.tag_stats.errors += 1  # and keeps the line out of the shape cache, so each one counts
        try:
            series = self.store.series(target, key, self.now)
        except (ConflictError, SeriesLimitError) as refusal:
            # a conflict counts the event's kind, as statsd_exporter labels it, once per event
            self.refusals.count(refusal, sample.kind, target.name, sample.weight, 1, self.now)
            return None
        scale = 1.0 if target.scale is None else target.scale
        shape = Shape(series, how, sample.weight, sample.divisor, scale, mapped, bool(sample.tags))
        return shape, value, sample.relative if target.value == "set" else True  # a gauge's add, count, up_down
