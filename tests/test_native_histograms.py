"""Native histograms and the protobuf exposition, against statsd_exporter and a real Prometheus."""

from __future__ import annotations

import math
import urllib.request

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.exposition import metrics_pb2 as pb
from bridge.exposition import protobuf as protobuf_format
from bridge.mapping.loader import load_mapping
from bridge.mapping.router import Target
from bridge.series.native_histogram import BOUNDS, NativeHistogram, bucket_key, pick_schema, spans_and_deltas
from bridge.series.quantiles import RELATIVE_ACCURACY
from bridge.series.store import Store
from tests.conftest import pipeline

ACCEPT = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"


def read_delimited(body: bytes) -> list[pb.MetricFamily]:
    """Length-delimited MetricFamily messages, parsed by the protobuf library."""
    families, position = [], 0
    while position < len(body):
        length, shift = 0, 0
        while True:
            byte = body[position]
            position += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        family = pb.MetricFamily()
        family.ParseFromString(body[position : position + length])
        families.append(family)
        position += length
    return families


def scrape_protobuf(url: str) -> dict[str, pb.MetricFamily]:
    request = urllib.request.Request(url, headers={"Accept": ACCEPT})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("application/vnd.google.protobuf")
        return {family.name: family for family in read_delimited(response.read())}


def native_fields(histogram: pb.Histogram) -> dict:
    return {
        "schema": histogram.schema,
        "zero_threshold": histogram.zero_threshold,
        "zero_count": histogram.zero_count,
        "positive_span": [(s.offset, s.length) for s in histogram.positive_span],
        "positive_delta": list(histogram.positive_delta),
        "negative_span": [(s.offset, s.length) for s in histogram.negative_span],
        "negative_delta": list(histogram.negative_delta),
        "count": histogram.sample_count,
        "sum": histogram.sample_sum,
        "buckets": [(b.upper_bound, b.cumulative_count) for b in histogram.bucket],
    }


def by_labels(family: pb.MetricFamily) -> dict[frozenset, pb.Metric]:
    return {frozenset((label.name, label.value) for label in metric.label): metric for metric in family.metric}


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
    # 1.14) does this, so the bridge does too (tests/test_native_histograms.py compares them).
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

NATIVE_MAPPING = """
defaults:
  observer_type: histogram
mappings:
- match: wide.*
  name: wide
  labels:
    which: $1
- match: tight.*
  name: tight
  labels:
    which: $1
  histogram_options:
    native_histogram_bucket_factor: 1.005
    native_histogram_max_buckets: 20
- match: classic.*
  name: classic
  histogram_options:
    native_histogram_bucket_factor: 1
- match: coarse.*
  name: coarse
  histogram_options:
    native_histogram_bucket_factor: 4
    buckets: [0.5, 5]
- match: quantiles.*
  name: quantiles
  observer_type: summary
"""


def native_lines() -> list[str]:
    lines = []
    for i in range(300):  # 1e-6 .. 1e6: more than 256 buckets at schema 3, so the schema is reduced
        value = 10 ** (-6 + 12 * i / 299)
        lines.append(f"wide.spread:{value!r}|h")
    lines += [f"wide.signs:{v}|h" for v in ("0", "-0.5", "-3", "2", "0", "-1e-9", "1e-40", "-7e6")]
    lines += [f"wide.timer:{ms}|ms" for ms in (1, 5, 20, 320, 5000)] + ["wide.timer:40|ms|@0.5"]
    lines += [f"tight.a:{1 + i / 50}|h" for i in range(60)] + [f"tight.b:{-i}|h" for i in range(40)]
    lines += [f"classic.x:{v}|h" for v in (0.1, 1, 10)] + [f"coarse.y:{v}|h" for v in (0.1, 3, 300, -2)]
    lines += ["unmapped.hist:0.25|h", "unmapped.hist:4|h"]
    return lines


def test_native_histograms_match_statsd_exporter(tmp_path):
    from tests.differential import start_pair

    pair = start_pair([], NATIVE_MAPPING, tmp_path)
    try:
        lines = native_lines()
        pair.send(["\n".join(lines[i : i + 20]) for i in range(0, len(lines), 20)])
        theirs = scrape_protobuf(f"http://127.0.0.1:{pair.reference.web_port}/metrics")
        ours = scrape_protobuf(pair.bridge.web + "/metrics")
    finally:
        pair.stop()
    names = ["wide", "tight", "classic", "coarse", "unmapped_hist"]
    assert all(theirs[name].type == pb.HISTOGRAM == ours[name].type for name in names)
    compared = 0
    for name in names:
        their_metrics, our_metrics = by_labels(theirs[name]), by_labels(ours[name])
        assert set(our_metrics) == set(their_metrics), name
        for labels, metric in their_metrics.items():
            expected, got = native_fields(metric.histogram), native_fields(our_metrics[labels].histogram)
            assert math.isclose(got.pop("sum"), expected.pop("sum"), rel_tol=1e-12), (name, labels)
            assert got == expected, (name, labels)
            compared += 1
    wide = by_labels(ours["wide"])[frozenset({("which", "spread")})].histogram
    assert wide.schema < 3  # the spread forced a reduction from factor 1.1's schema 3
    assert by_labels(ours["classic"])[frozenset()].histogram.zero_threshold == 0  # factor 1: classic only
    assert compared == 8


def test_every_family_type_round_trips_through_protobuf(bridge_factory, tmp_path):
    mapping = tmp_path / "m.yml"
    mapping.write_text(
        "defaults:\n  observer_type: histogram\nmappings:\n- match: s.*\n  name: s_$1\n  observer_type: summary\n"
    )
    bridge = bridge_factory("--statsd.mapping-config", str(mapping))
    bridge.send_udp("c.hits:3|c|#env:prod", "g.temp:-2.5|g", "h.lat:0.3|h", "s.q:1|h", "s.q:3|h")
    assert bridge.wait_for(lambda s: ("s_q_count", frozenset()) in s) is not None
    families = scrape_protobuf(bridge.web + "/metrics")
    assert families["c_hits"].type == pb.COUNTER and families["c_hits"].metric[0].counter.value == 3
    assert [(label.name, label.value) for label in families["c_hits"].metric[0].label] == [("env", "prod")]
    assert families["g_temp"].metric[0].gauge.value == -2.5
    histogram = families["h_lat"].metric[0].histogram
    assert histogram.sample_count == 1 and histogram.schema == 3 and histogram.positive_delta == [1]
    summary = families["s_q"].metric[0].summary
    assert (summary.sample_count, summary.sample_sum) == (2, 4)
    assert [q.quantile for q in summary.quantile] == [0.5, 0.9, 0.99]
    assert families["statsd_bridge_lines_total"].type == pb.COUNTER  # self-metrics too
    assert families["statsd_bridge_lines_total"].metric[0].counter.value == 5
    # the protobuf text form, for people, says the same
    request = urllib.request.Request(bridge.web + "/metrics", headers={"Accept": ACCEPT.replace("delimited", "text")})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert 'name: "c_hits"' in response.read().decode()


# --- a real Prometheus with native histograms on, scraping both ---


def differences(result: dict, tolerance: float = 1e-9) -> list:
    """What differs between the reference's and the bridge's series in a query result ([] when alike)."""
    by_job: dict[str, dict] = {}
    for labels, value in result.items():
        rest = frozenset((k, v) for k, v in labels if k not in ("job", "instance"))
        by_job.setdefault(dict(labels).get("job", ""), {})[rest] = value
    reference, bridge = by_job.get("reference"), by_job.get("bridge")
    if not reference or not bridge or set(reference) != set(bridge):
        return [("series", reference, bridge)]
    return [
        (labels, value, bridge[labels])
        for labels, value in reference.items()
        if not same(value, bridge[labels], tolerance)
    ]


def same(a: float, b: float, tolerance: float) -> bool:
    return math.isclose(a, b, rel_tol=tolerance) or (math.isnan(a) and math.isnan(b))


def test_prometheus_gets_the_same_native_series_from_both(tmp_path):
    from tests.conftest import Prometheus, require
    from tests.differential import start_pair

    binary = require("prometheus", "apt-get install prometheus")
    pair = start_pair([], NATIVE_MAPPING, tmp_path)
    prometheus = None
    try:
        bridge_host, bridge_port = pair.bridge.addresses["web"]
        config = (
            "global:\n  scrape_interval: 500ms\n  scrape_timeout: 400ms\nscrape_configs:\n"
            f"- job_name: reference\n  static_configs:\n  - targets: ['127.0.0.1:{pair.reference.web_port}']\n"
            f"- job_name: bridge\n  static_configs:\n  - targets: ['{bridge_host}:{bridge_port}']\n"
        )
        prometheus = Prometheus(binary, config, tmp_path, ("--enable-feature=native-histograms",))
        lines = [*native_lines(), "plain.counter:7|c|#env:prod", "plain.gauge:-3|g"]
        lines += [f"quantiles.q:{v}|h" for v in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)]
        pair.send(["\n".join(lines[i : i + 20]) for i in range(0, len(lines), 20)])
        expressions = [
            "histogram_count(wide)",
            "histogram_sum(wide)",
            "histogram_quantile(0.9, wide)",
            "histogram_quantile(0.5, tight)",
            "histogram_count(tight)",
            "histogram_quantile(0.99, coarse)",
            "histogram_fraction(0, 1, wide)",
            "plain_counter",
            "plain_gauge",
            "quantiles_count",
            "quantiles",
        ]
        for expression in expressions:
            # a summary's quantiles: the same rank, within the sketch's accuracy (README: Exposition)
            tolerance = RELATIVE_ACCURACY * 1.01 if expression == "quantiles" else 1e-9
            # both converge once Prometheus has scraped each after the last line (pair.send waited for
            # both to handle them); an earlier scrape of one may hold part of the data
            result = prometheus.wait_for(expression, lambda r, t=tolerance: not differences(r, t))
            assert not differences(result, tolerance), (expression, differences(result, tolerance), result)
        # the native series is what Prometheus stored: no classic _bucket series for a native histogram
        assert prometheus.query('wide_bucket{job="bridge"}') == {}
        # and the self-metrics came over protobuf too
        assert prometheus.query('statsd_bridge_lines_total{job="bridge"}')
    finally:
        if prometheus is not None:
            prometheus.stop()
        pair.stop()


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
        ),
        min_size=1,
        max_size=5,
    ),
)
def test_scalar_families_are_the_bytes_the_protobuf_library_writes(kind, help_text, series):
    store = Store()
    target = Target(name="m", type=kind, help=help_text)
    for labels, value in series:
        store.series(target, tuple(sorted(labels.items())), 0).value = value
    family = store.families["m"]
    expected = pb.MetricFamily(name="m", help=help_text, type=pb.COUNTER if kind == "counter" else pb.GAUGE)
    for item in family.series.values():
        metric = expected.metric.add()
        for name, value in item.key:
            metric.label.add(name=name, value=value)
        getattr(metric, kind).value = item.total  # a counter's whole and fractional parts, added
    for _ in range(2):  # the first call encodes the labels, the second reuses them
        assert protobuf_format._scalar_family(family, list(family.series.values())) == expected.SerializeToString()
