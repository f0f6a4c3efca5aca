"""The Prometheus protobuf exposition: length-delimited MetricFamily messages, as client_golang writes them.

The one format with a place for native histograms (schema, zero bucket, spans and deltas beside
the classic buckets). Messages come from client_model's metrics.proto (bridge/exposition/metrics_pb2.py,
`make proto`); `encoding=text` gives the same messages in protobuf's text form, for people.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from typing import Any, cast

from google.protobuf import text_format
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from bridge.exposition import metrics_pb2 as pb
from bridge.exposition.escaping import DEFAULT, family_as_served
from bridge.series.native_histogram import ZERO_THRESHOLD, spans_and_deltas
from bridge.series.store import Family, Store
from bridge.series.types import Histogram, Summary

MEDIA_TYPE = "application/vnd.google.protobuf"
PROTO = "io.prometheus.client.MetricFamily"
DELIMITED = f"{MEDIA_TYPE}; proto={PROTO}; encoding=delimited"
TEXT = f"{MEDIA_TYPE}; proto={PROTO}; encoding=text"

_TYPES = {"counter": pb.COUNTER, "gauge": pb.GAUGE, "summary": pb.SUMMARY, "histogram": pb.HISTOGRAM}


def render(store: Store, extra: Collector, now: float, encoding: str = "delimited", escaping: str = DEFAULT) -> bytes:
    """Every family of the store, then `extra`'s (the self-metrics), delimited or as protobuf text, with
    names escaped by the scheme the scraper asked for."""
    for cache in (_LABELS, _CREATED):
        if len(cache) > 2 * store.series_count + 10_000:
            cache.clear()  # label sets or start times of series gone since: start afresh rather than track them
    families = list(_families(store, extra, now, escaping))
    if encoding == "text":
        return "".join(text_format.MessageToString(_message(family)) for family in families).encode("utf-8")
    out = bytearray()
    for family in families:
        body = family if isinstance(family, bytes) else family.SerializeToString()
        out += _varint(len(body))
        out += body
    return bytes(out)


def _message(family: pb.MetricFamily | bytes) -> pb.MetricFamily:
    return family if isinstance(family, pb.MetricFamily) else pb.MetricFamily.FromString(family)


# Counters and gauges are most of any page: their MetricFamily is written here byte for byte as
# the protobuf library writes it (fields in number order, every set field present), 4-5x faster
# than building messages, with each label set encoded once (_LABELS: label text -> its Metric.label
# fields, kept here so that a web worker thread writes nothing into the series it renders) and each
# counter's start timestamp once (_CREATED).
# tests/unit/test_native_histograms.py checks the bytes against the library's for every shape of family.
_PACK_DOUBLE = struct.Struct("<d").pack
_GAUGE_TAG = b"\x12\x09\x09"  # Metric.gauge {value}
_LABELS: dict[str, bytes] = {}
_CREATED: dict[float, bytes] = {}  # a start time -> its Counter.created_timestamp field


def _scalar_family(family: Family, series_list: list) -> bytes:
    parts = [_string_field(1, family.name), _string_field(2, family.help), b"\x18", _varint(_TYPES[family.type])]
    counter = family.type == "counter"
    for series in series_list:
        labels = _LABELS.get(series.label_text)
        if labels is None:
            labels = _LABELS[series.label_text] = b"".join(_label_pair(name, value) for name, value in series.key)
        if counter:
            created = _CREATED.get(series.created)
            if created is None:
                created = _CREATED[series.created] = _timestamp_field(3, series.created)
            body = labels + _COUNTER_TAGS[len(created)] + _PACK_DOUBLE(series.total) + created
        else:
            body = labels + _GAUGE_TAG + _PACK_DOUBLE(series.total)
        parts.append(b"\x22")  # MetricFamily.metric
        parts.append(_varint(len(body)))
        parts.append(body)
    return b"".join(parts)


def _label_pair(name: str, value: str) -> bytes:
    pair = _string_field(1, name) + _string_field(2, value)
    return b"\x0a" + _varint(len(pair)) + pair  # Metric.label


def _timestamp_field(number: int, when: float) -> bytes:
    """A google.protobuf.Timestamp field; nothing for 0 (a series made outside a store: no known start)."""
    if not when:
        return b""
    seconds, nanos = _seconds_nanos(when)
    timestamp = (b"\x08" + _varint(seconds) if seconds else b"") + (b"\x10" + _varint(nanos) if nanos else b"")
    return bytes(((number << 3) | 2,)) + _varint(len(timestamp)) + timestamp


def _seconds_nanos(when: float) -> tuple[int, int]:
    seconds = math.floor(when)
    return seconds, min(round((when - seconds) * 1e9), 999_999_999)


def _string_field(number: int, text: str) -> bytes:
    data = text.encode("utf-8")
    return bytes(((number << 3) | 2,)) + _varint(len(data)) + data


def _families(store: Store, extra: Collector, now: float, escaping: str) -> Iterator[pb.MetricFamily | bytes]:
    for family in sorted(list(store.families.values()), key=lambda f: f.name):
        message = _family(family_as_served(family, escaping), now)
        if message is not None:
            yield message
    for metric in extra.collect():
        yield _self_family(metric)


def _family(family: Family, now: float) -> pb.MetricFamily | bytes | None:
    series_list = list(family.series.values())
    if not series_list:
        return None
    if family.type in ("counter", "gauge"):
        return _scalar_family(family, series_list)
    message = pb.MetricFamily(name=family.name, help=family.help, type=_TYPES[family.type])
    for series in series_list:
        metric = message.metric.add()
        for name, text in series.key:
            metric.label.add(name=name, value=text)
        if family.type == "summary":  # a family's type says what its series are
            _summary(metric.summary, cast(Summary, series), now)
        else:
            _histogram(metric.histogram, cast(Histogram, series))
    return message


def _set_created(timestamp: Any, when: float) -> None:
    if when:
        timestamp.seconds, timestamp.nanos = _seconds_nanos(when)


def _summary(summary: pb.Summary, series: Summary, now: float) -> None:
    summary.sample_count, summary.sample_sum = series.count, series.sum
    for quantile, value in zip(series.quantiles, series.window.quantiles(series.quantiles, now), strict=True):
        summary.quantile.add(quantile=quantile, value=value)
    _set_created(summary.created_timestamp, series.created)


def _histogram(histogram: pb.Histogram, series: Histogram) -> None:
    _set_created(histogram.created_timestamp, series.created)
    cumulative = 0
    for bound, count in zip(series.bounds, series.counts, strict=False):  # the +Inf bucket is implicit
        cumulative += count
        histogram.bucket.add(cumulative_count=cumulative, upper_bound=bound)
    histogram.sample_count = cumulative + series.counts[-1]
    histogram.sample_sum = series.sum
    native = series.native
    if native is None:
        return
    histogram.schema = native.schema
    histogram.zero_threshold = ZERO_THRESHOLD
    histogram.zero_count = native.zero_count
    for spans, deltas, buckets in (
        (histogram.positive_span, histogram.positive_delta, native.positive),
        (histogram.negative_span, histogram.negative_delta, native.negative),
    ):
        found_spans, found_deltas = spans_and_deltas(buckets)
        for offset, length in found_spans:
            spans.add(offset=offset, length=length)
        deltas.extend(found_deltas)


def _self_family(metric: Metric) -> pb.MetricFamily:
    """A prometheus_client family (the self-metrics), its sample names as the text format writes them."""
    kind = {"counter": pb.COUNTER, "gauge": pb.GAUGE, "info": pb.GAUGE, "stateset": pb.GAUGE}.get(
        metric.type, pb.UNTYPED
    )
    name = metric.name + "_total" if metric.type == "counter" else metric.name
    message = pb.MetricFamily(name=name, help=metric.documentation, type=kind)
    for sample in metric.samples:
        if sample.name.endswith("_created"):
            continue
        entry = message.metric.add()
        for label, text in sorted(sample.labels.items()):
            entry.label.add(name=label, value=text)
        value = float(sample.value)
        if kind == pb.COUNTER:
            entry.counter.value = value
        elif kind == pb.GAUGE:
            entry.gauge.value = value
        else:
            entry.untyped.value = value
    return message


def _varint(number: int) -> bytes:
    """Protobuf's base-128 varint, the length prefix of each delimited message."""
    if number < 128:
        return _SMALL_VARINTS[number]
    out = bytearray()
    while number >= 128:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


_SMALL_VARINTS = [bytes((number,)) for number in range(128)]
# by the length of its created_timestamp field (at most 2 + 11 + 6 bytes): Metric.counter's tag and length,
# then Counter.value's tag
_COUNTER_TAGS = [b"\x1a" + _varint(9 + length) + b"\x09" for length in range(20)]
