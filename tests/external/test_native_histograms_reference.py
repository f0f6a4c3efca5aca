"""Native histograms against statsd_exporter and a real Prometheus."""

from __future__ import annotations

import math

import pytest

from bridge.exposition import metrics_pb2 as pb
from bridge.series.quantiles import RELATIVE_ACCURACY
from tests.protobuf_scrape import same, scrape_protobuf

# one process, and two receiving workers with the same answers
pytestmark = pytest.mark.usefixtures("each_worker_count")


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


def test_prometheus_gets_the_same_native_series_from_both(tmp_path):
    from tests.conftest import Prometheus, require
    from tests.differential import start_pair

    binary = require("prometheus")
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
            # a summary's quantiles: the same rank, within the sketch's accuracy (docs/protocol.md: Exposition)
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
