"""The line parser alone: one case table per rule of the protocol."""

import math

import pytest

from bridge.parsing.line import COUNTER, GAUGE, OBSERVER, LineError, TagStats, parse_line, parse_number


def parse(line):
    stats = TagStats()
    samples, errors, dialect = parse_line(line, stats)
    return samples, [e.reason for e in errors], dialect, stats


def one(line):
    samples, errors, dialect, stats = parse(line)
    assert not errors, errors
    assert len(samples) == 1, samples
    return samples[0], dialect, stats


@pytest.mark.parametrize(
    ("line", "name", "kind", "value", "relative", "weight"),
    [
        ("foo:1|c", "foo", COUNTER, 1.0, False, 1),
        ("foo:2.5|c", "foo", COUNTER, 2.5, False, 1),
        ("foo:0|c", "foo", COUNTER, 0.0, False, 1),
        ("foo:+3|c", "foo", COUNTER, 3.0, False, 1),
        ("foo:1e3|c", "foo", COUNTER, 1000.0, False, 1),
        ("foo:1|c|@0.1", "foo", COUNTER, 10.0, False, 1),
        ("foo:2|c|@0.5", "foo", COUNTER, 4.0, False, 1),
        ("foo:1|c|@1", "foo", COUNTER, 1.0, False, 1),
        ("foo:5|g", "foo", GAUGE, 5.0, False, 1),
        ("foo:-5|g", "foo", GAUGE, -5.0, True, 1),
        ("foo:+5|g", "foo", GAUGE, 5.0, True, 1),
        ("foo:0|g", "foo", GAUGE, 0.0, False, 1),
        ("foo:5|g|@0.1", "foo", GAUGE, 5.0, False, 1),  # gauges ignore the rate
        ("foo:NaN|g", "foo", GAUGE, math.nan, False, 1),
        ("foo:150|ms", "foo", OBSERVER, 0.15, False, 1),
        ("foo:150|ms|@0.5", "foo", OBSERVER, 0.15, False, 2),
        ("foo:150|ms|@0.1", "foo", OBSERVER, 0.15, False, 10),
        ("foo:150|ms|@0.3", "foo", OBSERVER, 0.15, False, 3),
        ("foo:150|h", "foo", OBSERVER, 150.0, False, 1),
        ("foo:150|d", "foo", OBSERVER, 150.0, False, 1),
        ("foo:-3|h", "foo", OBSERVER, -3.0, False, 1),
        ("a.b.c-d:1|c", "a.b.c-d", COUNTER, 1.0, False, 1),
    ],
)
def test_types_values_and_rates(line, name, kind, value, relative, weight):
    sample, _, _ = one(line)
    assert (sample.name, sample.kind, sample.relative, sample.weight) == (name, kind, relative, weight)
    assert sample.value == pytest.approx(value, nan_ok=True)


@pytest.mark.parametrize(
    ("line", "tags", "dialect"),
    [
        ("foo:1|c|#env:prod,region:eu", {"env": "prod", "region": "eu"}, "dogstatsd"),
        ("foo:1|c|#env:prod,#region:eu", {"env": "prod", "region": "eu"}, "dogstatsd"),
        ("foo:1|c|#url:http://x:80/y", {"url": "http://x:80/y"}, "dogstatsd"),
        ("foo:1|c|#k:foo:bar", {"k": "foo:bar"}, "dogstatsd"),
        ("foo:1|c|@0.5|#env:prod", {"env": "prod"}, "dogstatsd"),
        ("foo:1|c|#env:prod|@0.5", {"env": "prod"}, "dogstatsd"),
        ("foo,env=prod,region=eu:1|c", {"env": "prod", "region": "eu"}, "influxdb"),
        ("foo#env=prod,region=eu:1|c", {"env": "prod", "region": "eu"}, "librato"),
        ("foo[env=prod,region=eu]:1|c", {"env": "prod", "region": "eu"}, "signalfx"),
        ("foo[env=prod].bar:1|c", {"env": "prod"}, "signalfx"),
        ("foo:1|c", {}, ""),
        ("foo:1|c|#env:prod,env:dev", {"env": "dev"}, "dogstatsd"),
        ("foo:1|c|#tag.with-dash:v", {"tag.with-dash": "v"}, "dogstatsd"),  # escaped later by the mapper
        ("foo:1|c|#k:v=w", {"k": "v=w"}, "dogstatsd"),
    ],
)
def test_tag_dialects(line, tags, dialect):
    sample, found_dialect, _ = one(line)
    assert sample.tags == tags
    assert found_dialect == dialect


def test_signalfx_name_is_joined_around_the_brackets():
    sample, _, _ = one("foo[env=prod].bar:1|c")
    assert sample.name == "foo.bar"


@pytest.mark.parametrize(
    ("line", "tags", "tag_errors"),
    [
        ("foo:1|c|#novalue,env:prod", {"env": "prod"}, 1),
        ("foo:1|c|#:v,env:prod", {"env": "prod"}, 1),
        ("foo:1|c|#k:,env:prod", {"env": "prod"}, 1),
        ("foo:1|c|#,,,env:prod", {"env": "prod"}, 3),
        ("foo,novalue,env=prod:1|c", {"env": "prod"}, 1),
        ("foo#=v,env=prod:1|c", {"env": "prod"}, 1),
        ("foo[env=prod:1|c", {}, 1),  # a lone bracket: the name is kept, the tag error counted
    ],
)
def test_bad_tags_are_skipped_and_counted_but_keep_the_line(line, tags, tag_errors):
    sample, _, stats = one(line)
    assert sample.tags == tags
    assert stats.errors == tag_errors


def test_multi_value_line():
    samples, errors, _, _ = parse("foo:1:2:3|ms|#env:prod")
    assert errors == []
    assert [s.value for s in samples] == pytest.approx([0.001, 0.002, 0.003])
    assert all(s.tags == {"env": "prod"} for s in samples)


def test_multi_value_line_with_a_bad_value_keeps_the_good_ones():
    samples, errors, _, _ = parse("foo:1:x:3|h")
    assert [s.value for s in samples] == [1.0, 3.0]
    assert errors == ["malformed_value"]


def test_old_statsd_multi_metric_form():
    samples, errors, _, _ = parse("foo:1|c:2|g")
    assert errors == []
    assert [(s.kind, s.value) for s in samples] == [(COUNTER, 1.0), (GAUGE, 2.0)]


@pytest.mark.parametrize(
    "line",
    [
        "foo:1|c|c:abc123",  # DogStatsD origin detection container id
        "foo:1|c|#env:prod|c:abc123",
        "foo:1|c|T1656581400",
        "foo:1|c|#env:prod|T1656581400|c:abc",
        "foo:1|c|e:it-false,cn-x,pu-y",
        "foo:1|c|card:high",
        "foo:1|c|@0.5|#env:prod|c:abc|T1656581400",
    ],
)
def test_newer_dogstatsd_fields_never_drop_the_line(line):
    sample, _, _ = one(line)
    assert sample.name == "foo"
    # DogStatsD 1.2's container id is a label, as statsd_exporter 0.29 and later make it
    assert sample.tags.get("container_id") == (line.split("|c:")[1].split("|")[0] if "|c:" in line else None)


def test_a_container_id_line_without_tags_is_not_read_as_multi_metric():
    # statsd_exporter 0.30 splits this at the id's colon and loses it (docs/migrating.md: Differences)
    sample, _, _ = one("foo:1|c|c:abc123")
    assert (sample.value, sample.tags) == (1.0, {"container_id": "abc123"})
    samples, errors, _, _ = parse("foo:1|g:2|c:3|ms")  # the old multi-metric form still is
    assert errors == [] and [s.kind for s in samples] == [GAUGE, COUNTER, OBSERVER]


@pytest.mark.parametrize(
    ("line", "value", "rate_errors"),
    [
        ("foo:1|c|@0", 1.0, 0),  # statsd_exporter: a zero rate is no rate
        ("foo:1|c|@2", 0.5, 0),  # any rate divides a counter, as statsd_exporter
        ("foo:1|c|@abc", 1.0, 1),  # counted, and the sample kept unscaled, as statsd_exporter
        ("foo:1|c|@", 1.0, 1),
        ("foo:1_000|c", 1000.0, 0),  # Go's ParseFloat takes underscores between digits
        ("foo:0x1p-2|g", 0.25, 0),  # and hexadecimal floats with a p exponent
        ("foo:3|g|@0.1", 3.0, 0),  # gauges ignore their rate
        ("foo:-1|c", -1.0, 0),  # parsed; the ingest refuses it as an event error (illegal_negative_counter)
        ("foo:1|c|@-1", -1.0, 0),
    ],
)
def test_values_and_rates_read_as_statsd_exporter_reads_them(line, value, rate_errors):
    sample, _, stats = one(line)
    assert (sample.value, stats.rate_errors) == (value, rate_errors)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("foo", "malformed_line"),
        (":1|c", "malformed_line"),
        ("foo:1", "not_enough_parts_after_colon"),
        ("foo:1|", "illegal_event"),
        ("foo:1|x", "illegal_event"),
        ("foo:1|s", "set_unsupported"),
        ("foo,env=prod:1|c|#region:eu", "mixed_tagging_styles"),
        ("foo#env=prod:1|c|#region:eu", "mixed_tagging_styles"),
        ("foo[env=prod]:1|c|#region:eu", "mixed_tagging_styles"),
        ("foo:1:2|c", "invalid_extended_aggregate_type"),
        ("foo:1:2|g", "invalid_extended_aggregate_type"),
        ("[a=b]:1|c", "malformed_line"),
        ("_e{5,4}:title|text|#env:prod", "dogstatsd_event_unsupported"),
        ("_sc|my.check|0|#env:prod", "service_check_unsupported"),
        ("foo:abc|c", "malformed_value"),
        ("foo:|c", "malformed_value"),
        ("foo: 1|c", "malformed_value"),
        ("foo:0x10|c", "malformed_value"),
        ("foo:\u0663|c", "malformed_value"),  # an Arabic-Indic 3: float() reads it, Go's ParseFloat does not
        ("foo:\uff13.5|g", "malformed_value"),  # a fullwidth 3
        ("foo:" + "9" * 400 + "|g", "malformed_value"),
        ("foo:NaN|c", "non_finite_counter"),
        ("foo:Inf|c", "non_finite_counter"),
        ("foo:+Inf|c", "non_finite_counter"),
        ("foo:NaN|ms", "non_finite_observation"),
        ("foo:1|ms|@2", "invalid_sample_factor"),
        ("foo:1|h|@-0.5", "invalid_sample_factor"),
        ("foo:1|c|@0.5|#env:prod|c:abc|card:low|e:x", "malformed_component"),
        ("foo:1|c|", "malformed_component"),
        ("foo:1|c||#a:b", "malformed_component"),
        ("foo:1|c|Tabc", "malformed_timestamp"),
        ("foo:1|c|zzz", "invalid_sample_factor"),
    ],
)
def test_rejected_samples(line, expected):
    try:
        samples, errors, _, _ = parse(line)
    except LineError as error:
        errors, samples = [error.reason], []
    assert samples == []
    assert errors == [expected]


def test_infinite_gauge_spelled_out_is_accepted():
    sample, _, _ = one("foo:+Inf|g")
    assert sample.value == math.inf


def test_observer_weight_is_capped():
    sample, _, _ = one("foo:1|h|@0.0000000001")
    assert sample.weight == 1_000_000


@pytest.mark.parametrize("text", ["1", "-1", "+1", "1.5", "1e3", ".5", "NaN", "Inf", "-Inf"])
def test_parse_number_accepts_go_floats(text):
    parse_number(text)


@pytest.mark.parametrize("text", ["", " 1", "1 ", "1__0", "_1", "1_", "0x1", "0x1_0p1", "1e999", "abc"])
def test_parse_number_rejects(text):
    with pytest.raises(ValueError):
        parse_number(text)
