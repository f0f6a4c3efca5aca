"""Mapping lint: each check in its own test, on loaded mapping files (no process)."""

import re
from pathlib import Path

import pytest

from bridge.mapping.globs import glob_to_regex
from bridge.mapping.lint import lint
from bridge.mapping.loader import load_mapping
from bridge.mapping.semantics import expand_regex, go_format

ROOT = Path(__file__).resolve().parents[2]


def findings(text: str) -> list[tuple[str, str, int]]:
    return [(finding.check, finding.severity, finding.line) for finding in lint(load_mapping(text, "m.yml"))]


def test_a_glob_shadowed_by_an_earlier_one():
    text = "mappings:\n- match: api.*.count\n  name: a\n- match: api.home.count\n  name: b\n"
    assert findings(text) == [("shadowed", "warning", 4)]


def test_shadowing_respects_metric_types_and_order():
    typed = "mappings:\n- match: api.*\n  name: a\n  match_metric_type: gauge\n- match: api.x\n  name: b\n"
    assert findings(typed) == []  # the earlier rule takes gauges only: counters still reach the later one
    reversed_order = "mappings:\n- match: api.x\n  name: b\n- match: api.*\n  name: a\n"
    assert findings(reversed_order) == []


def test_a_regex_after_a_catch_all_or_its_twin():
    text = (
        "mappings:\n- match: (.*)\n  match_type: regex\n  name: all\n"
        "- match: x\\.(\\w+)\n  match_type: regex\n  name: x_$1\n"
    )
    assert findings(text) == [("shadowed", "warning", 5)]
    twins = (
        "mappings:\n- match: a\\.(\\w+)\n  match_type: regex\n  name: one\n"
        "- match: a\\.(\\w+)\n  match_type: regex\n  name: two\n"
    )
    assert findings(twins) == [("shadowed", "warning", 5)]


def test_globs_that_need_backtracking():
    text = "mappings:\n- match: client.*.request.count\n  name: requests\n- match: client.*.*.size\n  name: sizes\n"
    assert findings(text) == [("backtracking", "warning", 4)]
    apart = "mappings:\n- match: client.*.request.count\n  name: requests\n- match: server.*.*.size\n  name: sizes\n"
    assert findings(apart) == []


def test_one_name_with_two_types_is_an_error():
    text = (
        "mappings:\n- match: a.*\n  name: things\n  match_metric_type: counter\n"
        "- match: b.*\n  name: things\n  match_metric_type: gauge\n"
    )
    assert findings(text) == [("type_conflict", "error", 5)]


def test_sample_names_that_collide_across_types():
    text = (
        "mappings:\n- match: a.*\n  name: latency\n  match_metric_type: observer\n"
        "- match: b.*\n  name: latency_count\n  match_metric_type: counter\n"
    )
    assert findings(text) == [("type_conflict", "error", 5)]


def test_one_name_with_two_label_sets_is_a_warning():
    text = (
        "mappings:\n- match: a.*\n  name: jobs\n  labels:\n    team: $1\n"
        "- match: b.*.*\n  name: jobs\n  labels:\n    team: $1\n    region: $2\n"
    )
    assert findings(text) == [("label_conflict", "warning", 6)]


@pytest.mark.parametrize(
    "match,match_type,name",
    [
        ("api.*", "glob", "api_$2"),
        (r"api\.(\w+)", "regex", "api_${2}"),
        (r"api\.(?P<route>\w+)", "regex", "api\n  labels:\n    route: $path"),
    ],
)
def test_a_reference_the_pattern_cannot_fill(match, match_type, name):
    text = f"mappings:\n- match: '{match}'\n  match_type: {match_type}\n  name: {name}\n"
    assert findings(text) == [("unfillable_reference", "error", 2)]


def test_references_the_pattern_fills_are_fine():
    text = (
        "mappings:\n- match: api.*.*\n  name: api_$1\n  labels:\n    xx: ${2}\n"
        "- match: 'web\\.(?P<route>\\w+)'\n  match_type: regex\n  name: web\n"
        "  labels:\n    rr: $route\n"
    )
    assert findings(text) == []


def test_a_label_in_a_label_value_beyond_the_groups():
    text = "mappings:\n- match: api.*\n  name: api\n  labels:\n    route: $1\n    part: $3\n"
    assert findings(text) == [("unfillable_reference", "error", 2)]


def test_label_names_prometheus_reserves():
    text = (
        "mappings:\n- match: a.*\n  name: a\n  labels:\n    __secret: x\n"
        "- match: b.*\n  name: b\n  match_metric_type: observer\n  observer_type: histogram\n"
        "  labels:\n    le: $1\n"
    )
    assert findings(text) == [("invalid_label_name", "error", 2), ("invalid_label_name", "error", 6)]


@pytest.mark.parametrize("shipped", sorted((ROOT / "mappings").glob("*.yml")), ids=lambda path: path.name)
def test_shipped_mapping_files_lint_clean(shipped):
    assert lint(load_mapping(shipped.read_text(), str(shipped))) == []


@pytest.mark.parametrize("default_type,label", [("histogram", "le"), ("summary", "quantile")])
def test_a_label_the_files_default_observer_type_reserves(default_type, label):
    """A rule of no metric type and no observer type of its own makes its timers the file's default type."""
    text = (
        f"defaults:\n  observer_type: {default_type}\nmappings:\n- match: a.*\n  name: a\n  labels:\n    {label}: $1\n"
    )
    assert findings(text) == [("invalid_label_name", "error", 4)]
    typed = text.replace("  name: a\n", "  name: a\n  match_metric_type: counter\n")
    assert findings(typed) == []  # counters only: no timer gets the default type


def test_a_partial_star_is_a_capture_to_the_formatter_too():
    """`b*` captures as a whole `*` does (statsd_exporter refuses such a glob; where it did not, its formatter
    would fill `$1` there, then read the `%` after it)."""
    text = "mappings:\n- match: a.b*\n  name: a\n  labels:\n    ab: $1%\n"
    assert findings(text) == [("statsd_exporter_refuses", "error", 2), ("statsd_exporter_template", "warning", 2)]


def _messages(text: str) -> list[tuple[str, str]]:
    return [(finding.check, finding.message) for finding in lint(load_mapping(text, "m.yml"))]


TWELVE_GLOB = ".".join(["*"] * 12)
TWELVE_REGEX = r"^" + r"\.".join([r"(\w+)"] * 12)


@pytest.mark.parametrize("match,match_type", [(TWELVE_GLOB, "glob"), (TWELVE_REGEX, "regex")])
def test_a_reference_to_the_twelfth_capture_is_no_run_on(match, match_type):
    text = f"mappings:\n- match: '{match}'\n  match_type: {match_type}\n  name: x_$12\n"
    assert findings(text) == []


@pytest.mark.parametrize(
    "match,match_type,template,advice,name,meant",
    [
        ("a.*", "glob", "x_$1_total", "${1}_total", "a.p", "x_p_total"),
        ("a.*.*", "glob", "x_$1$2", "${1}$2", "a.p.q", "x_pq"),
        ("a.*", "glob", "x_$01_", "${1}_", "a.p", "x_p_"),
        (r"a\.(\w+)", "regex", "x_$1_total", "${1}_total", "a.p", "x_p_total"),
        (r"a\.(\w+)", "regex", "x_$01_", "${1}_", "a.p", "x_p_"),  # Go reads `${01}` as a group named "01"
        (r"a\.(\w+)", "regex", "x_$0_", "${0}_", "a.p", "x_a.p_"),  # the whole match
    ],
)
def test_a_run_on_reference_gets_advice_that_reads_as_meant(match, match_type, template, advice, name, meant):
    text = f"mappings:\n- match: '{match}'\n  match_type: {match_type}\n  name: '{template}'\n"
    [(check, message)] = _messages(text)
    assert check == "run_on_reference"
    assert message.endswith(f"write `{advice}`"), message
    # the advice, taken, reads as meant in statsd_exporter's formatter (globs) or Go's Expand (regexes)
    fixed = "x_" + advice
    found = re.search(match, name) if match_type == "regex" else glob_to_regex(match).match(name)
    assert found is not None
    taken = expand_regex(fixed, found) if match_type == "regex" else go_format(fixed, list(found.groups()))
    assert taken == meant


def test_a_run_on_whose_number_is_no_capture_either_is_unfillable():
    text = "mappings:\n- match: a.*\n  name: x_$5_total\n"
    assert findings(text) == [("unfillable_reference", "error", 2)]
