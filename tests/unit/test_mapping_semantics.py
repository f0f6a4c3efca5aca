"""The router and the model of statsd_exporter read one mapping file alike, except where the lint says not.

Random mapping files and names: the rule the bridge's router picks for a line is the rule the compat model
says statsd_exporter picks, and the name and labels it fills in are Go's, unless the two make other
series, and then the lint flags that rule with the finding that names statsd_exporter's defect.
"""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.mapping.compat import Readings
from bridge.mapping.lint import Finding, lint
from bridge.mapping.loader import load_mapping
from bridge.mapping.schema import MappingConfig
from bridge.mapping.semantics import KINDS, escape_name, go_format
from bridge.parsing.line import COUNTER, GAUGE, OBSERVER
from tests.mapping_generator import generate

PARTS = ["a", "b", "ab", "c"]
# the lint's words for statsd_exporter picking another glob, and for its formatter writing otherwise
CHOICE_CHECKS = {"statsd_exporter_unreachable", "statsd_exporter_order"}
TEMPLATE_CHECK = "statsd_exporter_template"
# the glob rules' templates: references Go's formatter reads otherwise (`$1` in `$12`, `$1$2`), and in
# labels a `%` it reads as a verb
NAME_PIECES = ["x", "_", "$1", "${1}", "$2", "${2}", "$12", "$1_", "$1$2", "$0"]
LABEL_PIECES = ["$1", "${1}", "$2", "$12", "x", "-", "{", "%", "%s", "%d", "%%", "%5s"]
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _template(pieces: list[str], name: bool) -> st.SearchStrategy[str]:
    text = st.lists(st.sampled_from(pieces), min_size=1, max_size=4).map("".join)
    return text.map(lambda t: t if t[0] in "$_" or t[0].isalpha() else "n" + t) if name else text


@st.composite
def mapping_files(draw: st.DrawFn) -> str:
    """A file of globs over a few parts (some regexes among them), one name each, so that any two rules
    make other series; with match_metric_type, drop rules and glob_disable_ordering now and then."""
    rules = []
    for index in range(draw(st.integers(1, 8))):
        parts = draw(st.lists(st.sampled_from([*PARTS, "*"]), min_size=1, max_size=3))
        rule: dict = {"match": ".".join(parts), "name": draw(_template(NAME_PIECES, name=True)) + f"_r{index}"}
        if draw(st.integers(0, 5)) == 0:
            rule = {"match": "^" + r"\.".join("([^.]*)" if p == "*" else p for p in parts), "match_type": "regex"}
            rule["name"] = f"regex_r{index}"
        if draw(st.booleans()):
            rule["labels"] = {"ab": draw(_template(LABEL_PIECES, name=False))}
        if draw(st.integers(0, 3)) == 0:
            rule["match_metric_type"] = draw(st.sampled_from(["counter", "gauge", "observer", "timer"]))
        if draw(st.integers(0, 9)) == 0:
            rule["action"] = "drop"
        rules.append(rule)
    document: dict = {"mappings": rules}
    if draw(st.integers(0, 3)) == 0:
        document["defaults"] = {"glob_disable_ordering": True}
    return yaml.safe_dump(document, sort_keys=False)


names = st.lists(st.sampled_from([*PARTS, "d"]), min_size=1, max_size=4).map(".".join)


def _flagged(findings: list[Finding], line: int, checks: set[str]) -> bool:
    return any(finding.line == line and finding.check in checks for finding in findings)


def assert_read_alike(config: MappingConfig, name: str, kind: str) -> None:
    readings = Readings(config)
    ours, theirs = readings.mapper.map(name, kind), readings.theirs(name, kind)
    findings = lint(config)
    if ours.rule is not theirs.rule:
        # the regexes come after every glob in both: only the glob can differ
        glob, other = ours.rule, readings.reference.match(name, kind)
        assert glob is not None and glob.match_type == "glob", (name, kind)
        if readings.series(glob, name, kind) != readings.series(other, name, kind):
            assert _flagged(findings, glob.line, CHOICE_CHECKS), (name, kind, glob.match, findings)
        return
    rule = ours.rule
    if rule is None or rule.match_type != "glob" or ours.drop:
        return
    captures = list(rule.pattern.match(name).groups())
    for output, target in zip(rule.outputs, ours.targets, strict=True):
        theirs_name = go_format(output.name, captures)
        theirs_labels = {label: go_format(value, captures) for label, value in output.labels.items()}
        alike = theirs_name is not None and escape_name(theirs_name) == target.name and theirs_labels == target.labels
        assert alike or _flagged(findings, output.line or rule.line, {TEMPLATE_CHECK}), (name, output, findings)


@SETTINGS
@given(mapping_files(), names, st.sampled_from(KINDS))
def test_the_router_and_the_model_pick_alike_or_the_lint_says_why(text, name, kind):
    assert_read_alike(load_mapping(text), name, kind)


LINE_KINDS = {"c": COUNTER, "g": GAUGE, "ms": OBSERVER, "h": OBSERVER, "d": OBSERVER}


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.data())
def test_generated_files_read_alike_or_the_lint_says_why(seed, data):
    generated = generate(seed)
    config = load_mapping(generated.text)
    line = data.draw(st.sampled_from(generated.lines))
    name, rest = line.split(":", 1)
    assert_read_alike(config, name, LINE_KINDS[rest.split("|")[1]])


def test_a_glob_statsd_exporter_never_reaches_is_flagged():
    """The property holds by the lint, not by the two agreeing: a longer glob made `a.b`'s state first."""
    config = load_mapping("mappings:\n- match: a.b.c\n  name: long\n- match: a.b\n  name: short\n")
    readings = Readings(config)
    assert readings.mapper.map("a.b", COUNTER).rule is config.rules[1]
    assert readings.theirs("a.b", COUNTER).rule is None
    assert _flagged(lint(config), config.rules[1].line, CHOICE_CHECKS)
    assert_read_alike(config, "a.b", COUNTER)


def _lint_checks(text: str) -> list[tuple[int, str]]:
    return [(finding.line, finding.check) for finding in lint(load_mapping(text))]


def test_references_read_as_statsd_exporter_reads_them_for_each_match_type():
    # a glob's `$0` is no capture there (its formatter writes nothing); a regex's is the whole match
    assert _lint_checks("mappings:\n- match: a.*\n  name: a\n  labels:\n    ab: x$0\n") == [(2, "unfillable_reference")]
    assert _lint_checks("mappings:\n- match: a.(.*)\n  match_type: regex\n  name: a\n  labels:\n    ab: $0\n") == []
    # Go's Expand reads `$$` as a dollar, so `$$9` names no group
    assert _lint_checks("mappings:\n- match: a.(.*)\n  match_type: regex\n  name: a\n  labels:\n    ab: $$9\n") == []
    assert _lint_checks("mappings:\n- match: a.*\n  name: a\n  labels:\n    ab: ${1}x\n") == []
    # and a run-on reference is said once, as a run-on
    assert _lint_checks("mappings:\n- match: a.*\n  name: a\n  labels:\n    ab: $1_x\n") == [(2, "run_on_reference")]
