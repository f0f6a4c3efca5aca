"""Exposition: exact names, Go-style numbers, valid for an OpenMetrics parser (and for promtool:
tests/external/test_promtool.py)."""

import pytest
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

from bridge.exposition.negotiate import negotiate
from bridge.exposition.openmetrics import OpenMetricsView
from bridge.exposition.text import format_value
from tests.conftest import assert_exposition_parses, pipeline

MAPPING = """
defaults:
  observer_type: histogram
mappings:
- match: req.time.*
  name: req_seconds
  observer_type: summary
  labels:
    route: $1
- match: jobs.done
  name: jobs_done_total
"""

EVERYTHING = [
    "plain.counter:1|c",
    "tagged.counter:2|c|#env:prod,region:eu-west-1",
    "jobs.done:5|c",
    "a.gauge:-3.5|g",
    "nan.gauge:NaN|g",
    "inf.gauge:+Inf|g",
    "timer:12|ms|#route:/a",
    "hist:1000000|h",
    "req.time.home:25|ms",
    'escaped:1|c|#path:C:\\dir,quote:say "hi"',
    "unicode:1|c|#name:héllo wörld",
    "clash:1|c",
    "clash:1|g",
    "timer_count:1|c",
    "big:123456789|g",
    "small:0.000001|g",
]


@pytest.fixture
def full():
    bridge = pipeline(MAPPING)
    bridge.send(*EVERYTHING)
    return bridge


def test_the_exposition_parses_and_the_check_refuses_a_broken_one(full):
    assert_exposition_parses(full.text())
    for broken in ('foo{a="b} 1\n', "foo 1\nfoo 2\n", "foo x\n"):
        with pytest.raises((AssertionError, ValueError)):
            assert_exposition_parses(broken)


def test_text_values_are_written_as_go_writes_them(full):
    text = full.text()
    assert "\nbig 1.23456789e+08\n" in text
    assert "\nsmall 1e-06\n" in text
    assert "\na_gauge -3.5\n" in text
    assert "\nnan_gauge NaN\n" in text
    assert "\ninf_gauge +Inf\n" in text
    assert 'hist_bucket{le="+Inf"} 1\n' in text
    assert "\nhist_sum 1e+06\n" in text


def test_no_created_samples(full):
    assert "_created" not in full.text()


def test_every_family_has_help_and_type_once(full):
    lines = full.text().splitlines()
    types = [line.split()[2] for line in lines if line.startswith("# TYPE")]
    assert len(types) == len(set(types))
    assert len([line for line in lines if line.startswith("# HELP")]) == len(types)


def test_openmetrics_output_parses_and_keeps_sample_names(full):
    encoder, _ = choose_encoder("application/openmetrics-text; version=1.0.0")
    text = encoder(OpenMetricsView(full.store, full.registry, full.clock)).decode()
    assert text.endswith("# EOF\n")
    families = {family.name: family for family in parse_openmetrics(text)}
    samples = {s.name for family in families.values() for s in family.samples}
    # a counter ending in _total is an OpenMetrics counter; others keep their exact name as unknown
    assert families["jobs_done"].type == "counter"
    assert "jobs_done_total" in samples
    assert families["plain_counter"].type == "unknown"
    assert "plain_counter" in samples
    assert families["req_seconds"].type == "summary"
    assert families["timer"].type == "histogram"


def test_negotiation():
    assert negotiate("")[0] == "text"
    assert negotiate("text/plain")[0] == "text"
    openmetrics_first = "application/openmetrics-text; version=1.0.0,text/plain;q=0.5"
    assert negotiate(openmetrics_first)[0] == "text"  # only with --web-enable-openmetrics
    assert negotiate(openmetrics_first, openmetrics=True)[0] == "openmetrics"
    # what Prometheus 2 sends with native histograms on: protobuf first
    prometheus = (
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,"
        "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
    )
    assert negotiate(prometheus)[0] == "protobuf"
    assert negotiate("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text")[0] == (
        "protobuf-text"
    )
    assert negotiate("application/vnd.google.protobuf;proto=other;encoding=delimited")[0] == "text"
    assert (
        negotiate(
            "text/plain;q=0.9,application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
            "encoding=delimited;q=0.1"
        )[0]
        == "text"
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (1.0, "1"),
        (-2.0, "-2"),
        (0.25, "0.25"),
        (999999.0, "999999"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1e21, "1e+21"),
        (0.1 + 0.2, "0.30000000000000004"),
        (float("nan"), "NaN"),
        (float("inf"), "+Inf"),
        (float("-inf"), "-Inf"),
    ],
)
def test_format_value(value, text):
    assert format_value(value) == text
