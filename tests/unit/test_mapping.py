"""Mapping files: statsd_exporter's schema read unchanged, every problem named by file, line and key."""

import pytest

from bridge.durations import parse_duration
from bridge.mapping.loader import load_mapping
from bridge.mapping.router import Mapper
from bridge.mapping.schema import MappingError
from bridge.mapping.semantics import escape_name

STATSD_EXPORTER_EXAMPLE = """
defaults:
  observer_type: histogram
  histogram_options:
    buckets: [0.01, 0.1, 1]
  summary_options:
    quantiles:
      - quantile: 0.99
        error: 0.001
    max_age: 30s
    age_buckets: 3
  match_type: glob
  glob_disable_ordering: false
  ttl: 0
mappings:
- match: "test.timing.*.*.*"
  observer_type: summary
  name: "my_timer"
  labels:
    provider: "$2"
    outcome: "$3"
    job: "${1}_server"
- match: "(.*)\\\\.(.*)--(.*)\\\\.status\\\\.(.*)\\\\.count"
  match_type: regex
  name: "request_total"
  labels:
    hostname: "$1"
    exec: "$2"
    protocol: "$3"
    code: "$4"
- match: "client.*.request.size.*"
  name: "client_request_size_bytes"
  histogram_options:
    buckets: [100, 1000]
- match: "test.foo.*"
  name: "test_foo"
  match_metric_type: counter
  ttl: 1m20s
  help: "The foo."
  scale: 2
  honor_labels: true
  labels:
    provider: "$1"
- match: .
  match_type: regex
  action: drop
  name: "dropped"
"""


def test_statsd_exporter_file_reads_unchanged():
    config = load_mapping(STATSD_EXPORTER_EXAMPLE, "example.yml")
    assert len(config.rules) == 5
    assert config.buckets == (0.01, 0.1, 1.0)
    assert config.summary.quantiles == ((0.99, 0.001),)
    assert config.summary.max_age == 30
    timer = config.rules[0].outputs[0]
    assert timer.observer_type == "summary"
    assert timer.summary.max_age == 30
    foo = config.rules[3].outputs[0]
    assert (foo.ttl, foo.help, foo.scale, foo.honor_labels) == (80, "The foo.", 2.0, True)
    assert config.rules[3].match_metric_type == "counter"
    assert config.rules[2].outputs[0].buckets == (100.0, 1000.0)
    assert config.rules[4].action == "drop"
    assert config.rules[0].line == 16


def target(mapper: Mapper, name: str, kind: str):
    """The single target a plain statsd_exporter rule routes to."""
    route = mapper.map(name, kind)
    assert len(route.targets) == 1
    return route.targets[0]


def test_mapper_on_the_example():
    mapper = Mapper(load_mapping(STATSD_EXPORTER_EXAMPLE))
    found = target(mapper, "test.timing.web.aws.ok", "observer")
    assert (found.name, found.type, found.labels) == (
        "my_timer",
        "summary",
        {"provider": "aws", "outcome": "ok", "job": "web_server"},
    )
    found = target(mapper, "host1.nginx--http.status.200.count", "counter")
    assert found.name == "request_total"
    assert found.labels == {"hostname": "host1", "exec": "nginx", "protocol": "http", "code": "200"}
    assert mapper.map("anything", "gauge").drop
    assert mapper.map("test.foo.x", "gauge").drop  # match_metric_type: counter skips gauges
    assert target(mapper, "test.foo.x", "counter").name == "test_foo"


def error_of(text: str) -> MappingError:
    with pytest.raises(MappingError) as caught:
        load_mapping(text, "bad.yml")
    return caught.value


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        ("mappings:\n- match: a.b\n", 2, "", "needs a `name`"),
        ("mappings:\n- name: x\n", 2, "", "needs a non-empty `match`"),
        ("mappings:\n- match: a.b\n  name: 1x\n", 3, "name", "not a valid metric name"),
        ("mappings:\n- match: a.b\n  name: x-y\n", 3, "name", "not a valid metric name"),
        ("mappings:\n- match: (\n  match_type: regex\n  name: x\n", 2, "match", "invalid regex"),
        ("mappings:\n- match: a.b\n  match_type: fuzzy\n  name: x\n", 3, "match_type", "must be one of"),
        ("mappings:\n- match: a.b\n  name: x\n  observer_type: gauge\n", 4, "observer_type", "must be one of"),
        ("mappings:\n- match: a.b\n  name: x\n  action: keep\n", 4, "action", "must be one of"),
        ("mappings:\n- match: a.b\n  name: x\n  match_metric_type: set\n", 4, "match_metric_type", "must be one"),
        ("mappings:\n- match: a.b\n  name: x\n  ttl: soon\n", 4, "ttl", "not a duration"),
        ("mappings:\n- match: a.b\n  name: x\n  scale: big\n", 4, "scale", "must be a number"),
        ("mappings:\n- match: a.b\n  name: x\n  labels:\n    1bad: v\n", 5, "1bad", "invalid label name"),
        ("mappings:\n- match: a.b\n  name: x\n  labels:\n    bad-name: v\n", 5, "bad-name", "invalid label"),
        ("mappings:\n- match: a.b\n  name: x\n  buckets: [2, 1]\n", 4, "buckets", "strictly increasing"),
        ("mappings:\n- match: a.b\n  name: x\n  histogram_options:\n    buckets: 5\n", 5, "buckets", "non-empty list"),
        (
            "mappings:\n- match: a.b\n  name: x\n  observer_type: histogram\n  summary_options: {}\n",
            5,
            "summary_options",
            "cannot use",
        ),
        (
            "mappings:\n- match: a.b\n  name: x\n  summary_options:\n    quantiles:\n    - quantile: 2\n",
            6,
            "quantile",
            "between 0 and 1",
        ),
        ("mappings:\n- match: a b.c\n  name: x\n", 2, "match", "invalid glob"),
        ("mappings: [\n", 2, "", "not valid YAML"),
        ("mappings: 3\n", 1, "mappings", "must be a list"),
        ("- a\n- b\n", None, "", "must be a mapping"),
    ],
)
def test_errors_name_file_line_and_key(text, line, key, words):
    error = error_of(text)
    assert error.path == "bad.yml"
    assert error.line == line
    assert error.key == key
    assert words in error.message
    assert str(error).startswith("bad.yml")


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("mappings:\n- match: a.b\n  name: x\n  colour: red\n", 4, "colour"),
        ("defaults:\n  frobnicate: 1\n", 2, "frobnicate"),
        ("mapping:\n- match: a\n", 1, "mapping"),
        ("x-anchors:\n  common: &c {help: h}\nmappings:\n- match: a\n  name: x\n", 1, "x-anchors"),
        ("mappings:\n- match: a.b\n  name: x\n  summary_options:\n    max_age: 1m\n    x: 1\n", 6, "x"),
        ("mappings:\n- match: a\n  outputs: [{name: y, colour: red}]\n", 3, "colour"),
        ("reaper:\n  every: 1s\n", 2, "every"),
    ],
)
def test_unknown_keys_are_warnings_with_their_line_as_statsd_exporter_ignores_them(text, line, key):
    config = load_mapping(text, "m.yml")
    unknown = [(found, f"`{key}`" in message) for found, check, message in config.notes if check == "unknown_key"]
    assert unknown == [(line, True)]


@pytest.mark.parametrize(
    ("text", "value"),
    [("1e-6", 1e-6), ("1E3", 1000.0), (".5", 0.5), ("-2.5e+2", -250.0), ("3", 3.0)],
)
def test_numbers_in_every_yaml_form_go_yaml_reads(text, value):
    config = load_mapping(f"mappings:\n- match: a\n  name: x\n  scale: {text}\n  buckets: [{text}]\n")
    assert config.rules[0].outputs[0].scale == value
    assert config.rules[0].outputs[0].buckets == (value,)


def test_label_values_and_names_are_the_text_as_written():
    text = "mappings:\n- match: a\n  name: x\n  labels:\n    a: yes\n    b: 1.10\n    c: 010\n    d: on\n    e: ~\n"
    labels = load_mapping(text).rules[0].outputs[0].labels
    assert labels == {"a": "yes", "b": "1.10", "c": "010", "d": "on", "e": ""}


def test_empty_file_is_no_rules():
    assert load_mapping("").rules == []


def test_drop_rule_needs_no_name():
    assert load_mapping("mappings:\n- match: a.*\n  action: drop\n").rules[0].action == "drop"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0),
        (0, 0),
        ("250ms", 0.25),
        ("2s", 2),
        ("5m", 300),
        ("1h", 3600),
        ("1m20s", 80),
        ("1.5s", 1.5),
        ("100us", 1e-4),
        ("1d", 86400),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", 5, "s", "5 m", "m5", "5x", "-5s", "1h-1m", True])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("template", "name", "expected"),
    [
        # statsd_exporter's glob formatter takes the longest run of letters, digits, _ and $ as the
        # variable: "$1_x" is the variable "1_x" and "$2$1" the variable "2$1", both empty (checked
        # against the reference build: tests/external/test_differential.py); braces say where a number ends
        ("$1_x", "a.b", ""),
        ("${1}_${2}", "a.b", "a_b"),
        ("$2$1", "a.b", ""),
        ("${2}${1}", "a.b", "ba"),
        ("x_$3", "a.b", "x_"),
        ("x_$1", "a.b", "x_a"),
    ],
)
def test_glob_substitution(template, name, expected):
    mapper = Mapper(load_mapping(f"mappings:\n- match: '*.*'\n  name: '{template}'\n"))
    assert target(mapper, name, "counter").name == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${1}_x", "a_x"),
        ("$1_x", ""),  # Go's Expand: "$1_x" names group "1_x", which does not exist
        ("${first}_${2}", "a_b"),
        ("$first", "a"),
        ("x_$$", "x_$"),  # $$ is a literal dollar; label values are not escaped
    ],
)
def test_regex_substitution_follows_go(template, expected):
    rule = (
        "mappings:\n- match: '(?P<first>\\w)\\.(\\w)'\n  match_type: regex\n  name: 'n'\n"
        f"  labels:\n    l: '{template}'\n"
    )
    mapper = Mapper(load_mapping(rule))
    assert target(mapper, "a.b", "counter").labels["l"] == expected


def test_glob_disable_ordering_prefers_literal_components():
    text = (
        "defaults:\n  glob_disable_ordering: true\nmappings:\n- match: a.*\n  name: star\n- match: a.b\n  name: lit\n"
    )
    mapper = Mapper(load_mapping(text))
    assert target(mapper, "a.b", "counter").name == "lit"
    assert target(mapper, "a.c", "counter").name == "star"


def test_glob_star_inside_a_component():
    mapper = Mapper(load_mapping("mappings:\n- match: 'api.*_count.x'\n  name: 'api_$1'\n"))
    assert target(mapper, "api.get_count.x", "counter").name == "api_get"
    assert not mapper.map("api.get.y_count.x", "counter").mapped


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.b", "a_b"), ("a-b", "a_b"), ("a--b", "a_b"), ("a-_-b", "a___b"), ("0a", "_0a"), ("a:b", "a_b"), ("", "")],
)
def test_escape_name(name, expected):
    assert escape_name(name) == expected


def test_a_reload_compiles_only_the_patterns_the_file_before_lacked():
    text = "mappings:\n- match: a.*\n  name: x\n- match: 'b\\.(\\w+)'\n  match_type: regex\n  name: y\n"
    first = load_mapping(text)
    with pytest.raises(MappingError):
        load_mapping(text + "- match: (\n  match_type: regex\n  name: z\n")  # a failed load keeps them
    again = load_mapping(text + "- match: c.*\n  name: z\n")
    assert all(new.pattern is old.pattern for new, old in zip(again.rules[:2], first.rules, strict=True))
    assert again.rules[2].pattern.match("c.d")
