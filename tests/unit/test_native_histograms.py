"""Native histograms and the protobuf exposition: the arithmetic and the bytes, without sockets."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.exposition import metrics_pb2 as pb
from bridge.exposition import protobuf as protobuf_format
from bridge.mapping.loader import load_mapping
from bridge.mapping.router import Target
from bridge.series.native_histogram import BOUNDS, NativeHistogram, bucket_key, pick_schema, spans_and_deltas
from bridge.series.store import Store
from tests.conftest import pipeline

# --- the arithmetic, without sockets ---


@pytest.mark.parametrize(("factor", "schema"), [(1.1, 3), (1.005, 8), (2, 0), (4, -1), (1.0001, 8), (1e9, -4)])
def test_schema_from_the_bucket_factor(factor, schema):
    assert pick_schema(factor) == schema


def test_bucket_boundaries_are_upper_inclusive_at_every_schema():
    for schema in range(-4, 9):
        # at schemas <= 0, client_golang 1.14 divides keys with Go's truncating division, which
        # moves values at or below 2**-(2**-schema) up one bucket: see the next test
        for key in range(-20 if schema > 0 else 1, 20):
            # the upper bound of bucket `key` is 2**(key * 2**-schema); it belongs to that bucket
            upper = 2.0 ** (key / 2**schema) if schema > 0 else 2.0 ** (key << -schema)
            if schema > 0 and (key % 2**schema) != 0:
                fraction_index = key % 2**schema
                upper = math.ldexp(BOUNDS[schema][fraction_index], key // 2**schema + 1)
            assert bucket_key(upper, schema) == key, (schema, key)
            assert bucket_key(math.nextafter(upper, math.inf), schema) == key + 1, (schema, key)


def test_small_values_at_negative_schemas_divide_as_go_does():
    # key = (exponent + 2**-schema - 1) / 2**-schema in Go's integer division, which truncates toward
    # zero: 0.25 at schema -1 gets key 0 where a floor would give -1. statsd_exporter (client_golang
    # 1.14) does this, so the bridge does too (tests/unit/test_native_histograms.py compares them).
    assert bucket_key(0.25, -1) == 0
    assert bucket_key(0.0625, -1) == -1
    assert bucket_key(2.0**-320, -4) == -19


def test_past_max_buckets_the_schema_halves_and_keys_merge():
    histogram = NativeHistogram(schema=3, max_buckets=4)
    for value in (1, 2, 4, 8, 16):  # five buckets at schema 3: 0, 8, 16, 24, 32
        histogram.observe(value)
    assert histogram.schema == 2 and sorted(histogram.positive) == [0, 4, 8, 12, 16]
    histogram.observe(32)  # still over: one more halving per observation, as client_golang
    assert histogram.schema == 1 and sorted(histogram.positive) == [0, 2, 4, 6, 8, 10]
    assert histogram.count == 6


def test_spans_fill_gaps_of_up_to_two_buckets():
    assert spans_and_deltas({}) == ([], [])
    assert spans_and_deltas({0: 1, 1: 2, 3: 1, 7: 5, -2: 1}) == ([(-2, 6), (3, 1)], [1, -1, 1, 1, -2, 1, 4])


def test_text_shows_classic_buckets_only():
    bridge = pipeline("defaults:\n  observer_type: histogram\nmappings: []\n")
    bridge.send("lat:0.3|h")
    text = bridge.text()
    assert 'lat_bucket{le="0.5"} 1' in text and "schema" not in text


def test_native_settings_follow_statsd_exporter():
    default = load_mapping("mappings:\n- match: a\n  name: a\n")
    assert default.native == (1.1, 256) and default.rules[0].outputs[0].native == (1.1, 256)
    tuned = load_mapping(
        "defaults:\n  histogram_options:\n    native_histogram_bucket_factor: 1.5\n"
        "mappings:\n- match: a\n  name: a\n  histogram_options:\n"
        "    native_histogram_max_buckets: 20\n- match: b\n  name: b\n  histogram_options:\n"
        "    native_histogram_bucket_factor: 1\n"
    )
    assert [rule.outputs[0].native for rule in tuned.rules] == [(1.5, 20), (1, 256)]
    with pytest.raises(ValueError, match="native_histogram_max_buckets"):
        load_mapping("mappings:\n- match: a\n  name: a\n  histogram_options:\n    native_histogram_max_buckets: -1\n")


# --- against statsd_exporter ---


# --- a real Prometheus with native histograms on, scraping both ---


# --- the hand-written encoder for counters and gauges writes what the protobuf library writes ---

_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(["counter", "gauge"]),
    help_text=_TEXT,
    series=st.lists(
        st.tuples(
            st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,5}", fullmatch=True), _TEXT, max_size=3),
            st.floats(allow_nan=False) | st.just(math.nan),
            # a start time in whole 64ths of a second, which a float holds exactly: 0, under a second, ...
            st.tuples(st.integers(0, 2**33), st.integers(0, 63)),
        ),
        min_size=1,
        max_size=5,
    ),
)
def test_scalar_families_are_the_bytes_the_protobuf_library_writes(kind, help_text, series):
    store = Store()
    target = Target(name="m", type=kind, help=help_text)
    starts = {}
    for labels, value, (seconds, sixty_fourths) in series:
        key = tuple(sorted(labels.items()))
        store.wall_clock = lambda: seconds + sixty_fourths / 64  # noqa: B023  (called at once)
        store.series(target, key, 0).value = value
        starts.setdefault(key, seconds * 10**9 + sixty_fourths * 15_625_000)
    family = store.families["m"]
    expected = pb.MetricFamily(name="m", help=help_text, type=pb.COUNTER if kind == "counter" else pb.GAUGE)
    for item in family.series.values():
        metric = expected.metric.add()
        for name, value in item.key:
            metric.label.add(name=name, value=value)
        getattr(metric, kind).value = item.total  # a counter's whole and fractional parts, added
        if kind == "counter" and starts[item.key]:  # a gauge has no start; 0: made outside a store, none known
            metric.counter.created_timestamp.FromNanoseconds(starts[item.key])
    for _ in range(2):  # the first call encodes the labels, the second reuses them
        assert protobuf_format._scalar_family(family, list(family.series.values())) == expected.SerializeToString()
