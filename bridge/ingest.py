"""Datagram or line in, series updated: parser -> mapper -> store, counting every outcome.

Transports call `Ingest.packet` / `Ingest.line`; nothing here touches a socket.
"""

from __future__ import annotations

import logging
import time

from bridge.line import COUNTER, GAUGE, LineError, Sample, TagStats, parse_line, split_datagram
from bridge.logs import RateLimited
from bridge.mapper import Mapper, Target, escape_name
from bridge.store import RESERVED_LABELS, ConflictError, Histogram, Store, Summary

logger = logging.getLogger("bridge.ingest")


class Ingest:
    def __init__(self, mapper: Mapper, store: Store, stats, clock=time.monotonic) -> None:
        self.clock = clock  # tests pass a fake one to step through TTLs and summary windows
        self.mapper = mapper
        self.store = store
        self.stats = stats
        self.tag_stats = TagStats()
        self._label_names: dict[str, str] = {}
        self._warn = RateLimited(logger)
        self.now = clock()

    def packet(self, data: bytes) -> None:
        """All lines of one datagram; a bad line never costs its neighbours."""
        self.now = self.clock()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            for raw in split_datagram(data):  # only the undecodable lines are lost
                self.raw_line(raw)
            return
        for line in text.split("\n"):
            if line:
                if line[-1] == "\r":
                    line = line.rstrip("\r")
                    if not line:
                        continue
                self.line(line)

    def raw_line(self, raw: bytes) -> None:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            self.stats.lines += 1
            self._reject(LineError("invalid_utf8", str(error)), repr(raw[:80]))
            return
        self.line(line)

    def line(self, line: str) -> None:
        stats = self.stats
        stats.lines += 1
        tag_stats = self.tag_stats
        errors_before, tags_before = tag_stats.errors, tag_stats.received
        try:
            samples, errors, _dialect = parse_line(line, tag_stats)
        except LineError as error:
            stats.samples += 1
            self._reject(error, line)
            return
        finally:
            stats.tag_errors += tag_stats.errors - errors_before
            stats.tags += tag_stats.received - tags_before
        stats.samples += len(samples) + len(errors)
        for error in errors:
            self._reject(error, line)
        for sample in samples:
            self.sample(sample)

    def _reject(self, error: LineError, line: str) -> None:
        self.stats.sample_errors[error.reason] += 1
        self._warn(logging.WARNING, "rejected line", reason=error.reason, detail=error.detail, line=line[:200])

    def _labels(self, sample: Sample, target: Target) -> tuple[tuple[str, str], ...]:
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
        reserved = RESERVED_LABELS.get(target.type)
        if reserved in labels:
            del labels[reserved]  # the exposition writes le / quantile itself
            self.stats.tag_errors += 1
        return tuple(sorted(labels.items()))

    def sample(self, sample: Sample) -> None:
        stats = self.stats
        target = self.mapper.map(sample.name, sample.kind)
        if target.drop:
            stats.actions["drop"] += 1
            return
        if target.mapped:
            stats.actions["map"] += 1
        else:
            stats.events_unmapped += 1
        if not target.name:
            stats.event_errors["empty_metric_name"] += 1
            return
        value = sample.value if target.scale is None else sample.value * target.scale
        if sample.kind == COUNTER and not value >= 0:
            stats.event_errors["illegal_negative_counter"] += 1
            return
        key = self._labels(sample, target) if sample.tags or target.labels else ()
        try:
            series = self.store.series(target, key, self.now)
        except ConflictError as error:
            stats.conflicts[(target.type, target.name)] += 1
            self._warn(logging.WARNING, "metric type conflict", metric=target.name, error=str(error))
            return
        series.updated = self.now
        if sample.kind == COUNTER:
            series.value += value
        elif sample.kind == GAUGE:
            series.value = series.value + value if sample.relative else value
        elif isinstance(series, Histogram):
            series.observe(value, sample.weight)
        elif isinstance(series, Summary):
            series.observe(value, sample.weight, self.now)
        stats.events[sample.kind] += 1
