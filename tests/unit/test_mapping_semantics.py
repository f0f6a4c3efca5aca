"""The router and the model of statsd_exporter read one mapping file alike, except where statsd_exporter has a
known defect, which the lint then names.

Each side is held against what this test works out on its own: which rule the bridge picks (globs first, in
file order or, under glob_disable_ordering, literal parts first; then the regexes) and what a glob template
gives for a name (each reference on its own). On files free of statsd_exporter's known defects the model must
agree exactly, with no finding. On any file it must agree, or the lint names the rule, and the defect is
confirmed from the file itself rather than from the lint: a longer glob made the rule's path first, a
duplicated glob, a matcher that does not backtrack; for a template, a `%` or a reference whose text sits
inside another's.
"""

from __future__ import annotations

import re

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.mapping.compat import Readings
from bridge.mapping.lint import Finding, lint
from bridge.mapping.loader import load_mapping
from bridge.mapping.schema import MappingConfig, Rule
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
# and the pieces of templates statsd_exporter reads as the bridge does (no `%`, no number of two digits)
CLEAN_NAME_PIECES = ["x", "_", "$1", "${1}", "$2", "${2}", "$0"]
CLEAN_LABEL_PIECES = ["$1", "${1}", "$2", "x", "-", "{", "."]
# two globs statsd_exporter's own test says need backtracking: of a length and a first part no other glob or
# generated name has (one of three parts, `*.*.*`, would cover them, and then it says none is needed)
BACKTRACKING_PAIR = [{"match": "zz.*.k.l", "name": "zz_k"}, {"match": "zz.y.m.l", "name": "zz_m"}]
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_NAME_CHARS = re.compile(r"[a-zA-Z0-9_$]+")


# --- what the bridge does, worked out here ---


def _takes(rule: Rule, kind: str) -> bool:
    return rule.match_metric_type in ("", kind)


def _glob_regex(glob: str) -> str:
    return r"\.".join(re.escape(part).replace(r"\*", "([^.]*)") for part in glob.split("."))


def glob_captures(glob: str, name: str) -> list[str] | None:
    """What a glob's `*`s take of a name (None: it does not match it)."""
    found = re.fullmatch(_glob_regex(glob), name)
    return None if found is None else list(found.groups())


def bridge_choice(config: MappingConfig, name: str, kind: str) -> Rule | None:
    """The rule the bridge maps a line with: the first glob that takes it (under glob_disable_ordering a
    literal part before a `*`, part by part), else the first regex."""
    globs = [rule for rule in config.rules if rule.match_type == "glob" and _takes(rule, kind)]
    if config.glob_disable_ordering:
        globs.sort(key=lambda rule: ["*" in part for part in rule.match.split(".")])
    for rule in globs:
        if glob_captures(rule.match, name) is not None:
            return rule
    regexes = [rule for rule in config.rules if rule.match_type == "regex" and _takes(rule, kind)]
    return next((rule for rule in regexes if re.search(rule.match, name)), None)


def read_glob_template(template: str, captures: list[str]) -> tuple[str, list[str]]:
    """A glob template as the bridge reads it, and the texts of its references: `$`, an optional `{`, the
    longest run of letters, digits, `_` and `$`, an optional `}`; the capture of that number, else nothing."""
    out, texts, at = [], [], 0
    while at < len(template):
        braced = template.startswith("${", at)
        run = _NAME_CHARS.match(template, at + 1 + braced) if template[at] == "$" else None
        if run is None:
            out.append(template[at])
            at += 1
            continue
        end = run.end() + template.startswith("}", run.end())
        number = int(run.group()) if run.group().isdigit() else 0
        out.append(captures[number - 1] if 1 <= number <= len(captures) else "")
        texts.append(template[at:end])
        at = end
    return "".join(out), texts


def go_reads_otherwise(template: str, texts: list[str]) -> bool:
    """Whether statsd_exporter's formatter has cause to read a template otherwise than reference by reference:
    a `%` (fmt.Sprintf reads it), or a reference's text inside another's (it replaces the text everywhere)."""
    return "%" in template or any(template.count(text) > texts.count(text) for text in texts)


# --- statsd_exporter's defects, confirmed from the file ---


def _path_made_by_another(config: MappingConfig, glob: Rule, kind: str) -> bool:
    """statsd_exporter keeps one state per path, made by the first glob of the kind to pass through it."""
    parts = glob.match.split(".")
    globs = [rule for rule in config.rules if rule.match_type == "glob" and _takes(rule, kind)]
    maker = next(rule for rule in globs if rule.match.split(".")[: len(parts)] == parts)
    return maker is not glob


def _duplicated(config: MappingConfig, glob: Rule, kind: str) -> bool:
    """A later glob of the same text, which moves this one to its place in the order."""
    return any(rule.line > glob.line and rule.match == glob.match and _takes(rule, kind) for rule in config.rules)


def defect_explains(readings: Readings, glob: Rule, kind: str) -> bool:
    """Whether one of statsd_exporter's known defects makes it pass over the glob the bridge picks."""
    config, reference = readings.config, readings.reference
    if _path_made_by_another(config, glob, kind):
        return True
    if not config.glob_disable_ordering:
        return _duplicated(config, glob, kind)
    return not reference.backtracking  # its own test of when to backtrack missed these globs


# --- the properties ---


def _flagged(findings: list[Finding], line: int, checks: set[str]) -> bool:
    return any(finding.line == line and finding.check in checks for finding in findings)


def assert_read_alike(config: MappingConfig, name: str, kind: str, excuses: bool = True) -> None:
    """The bridge does what this test works out; statsd_exporter's model agrees, or (with `excuses`) the lint
    names a defect that the file confirms."""
    readings = Readings(config)
    ours, theirs = readings.mapper.map(name, kind), readings.theirs(name, kind)
    assert ours.rule is bridge_choice(config, name, kind), (name, kind)
    findings = lint(config) if excuses else []
    if ours.rule is not theirs.rule:
        # the regexes come after every glob in both: only the glob can differ
        glob = ours.rule
        assert glob is not None and glob.match_type == "glob", (name, kind)
        if readings.series(glob, name, kind) != readings.series(readings.reference.match(name, kind), name, kind):
            assert _flagged(findings, glob.line, CHOICE_CHECKS), (name, kind, glob.match, findings)
            assert defect_explains(readings, glob, kind), (name, kind, glob.match)
        return
    rule = ours.rule
    if rule is None or rule.match_type != "glob" or ours.drop:
        return
    captures = glob_captures(rule.match, name)
    assert captures is not None
    for output, target in zip(rule.outputs, ours.targets, strict=True):
        templates = [(None, output.name), *output.labels.items()]
        for label, template in templates:
            expected, texts = read_glob_template(template, captures)
            made = target.name if label is None else target.labels[label]
            assert made == (escape_name(expected) if label is None else expected), (template, made)
            if go_format(template, captures) != expected:
                assert _flagged(findings, output.line or rule.line, {TEMPLATE_CHECK}), (name, template, findings)
                assert go_reads_otherwise(template, texts), template


def _template(pieces: list[str], name: bool) -> st.SearchStrategy[str]:
    text = st.lists(st.sampled_from(pieces), min_size=1, max_size=4).map("".join)
    return text.map(lambda t: t if t[0] in "$_" or t[0].isalpha() else "n" + t) if name else text


def _no_run_on(template: str) -> str:
    """`$1` before a name character reads as a longer name: brace it."""
    return re.sub(r"\$([0-9])(?=[a-zA-Z0-9_$])", r"${\1}", template)


@st.composite
def mapping_files(draw: st.DrawFn, clean: bool = False) -> str:
    """A file of globs over a few parts (some regexes among them), one name each, so that any two rules
    make other series; with match_metric_type, drop rules and glob_disable_ordering now and then. `clean`:
    none of statsd_exporter's known defects (no glob twice, no glob on a path an earlier, longer glob made,
    templates of whole references with no `%`; under glob_disable_ordering, globs that make it backtrack)."""
    rules, globs = [], []
    for index in range(draw(st.integers(1, 8))):
        parts = draw(st.lists(st.sampled_from([*PARTS, "*"]), min_size=1, max_size=3))
        pieces = (CLEAN_NAME_PIECES, CLEAN_LABEL_PIECES) if clean else (NAME_PIECES, LABEL_PIECES)
        rule: dict = {"match": ".".join(parts), "name": draw(_template(pieces[0], name=True)) + f"_r{index}"}
        if draw(st.integers(0, 5)) == 0:
            rule = {"match": "^" + r"\.".join("([^.]*)" if p == "*" else p for p in parts), "match_type": "regex"}
            rule["name"] = f"regex_r{index}"
        elif clean and any(glob[: len(parts)] == parts for glob in globs):
            continue  # a duplicate, or a path a longer glob made
        else:
            globs.append(parts)
        if draw(st.booleans()):
            rule["labels"] = {"ab": draw(_template(pieces[1], name=False))}
        if draw(st.integers(0, 3)) == 0:
            rule["match_metric_type"] = draw(st.sampled_from(["counter", "gauge", "observer", "timer"]))
        if draw(st.integers(0, 9)) == 0:
            rule["action"] = "drop"
        if clean:
            rule["name"] = _no_run_on(rule["name"])
            rule.get("labels", {}).update({key: _no_run_on(value) for key, value in rule.get("labels", {}).items()})
        rules.append(rule)
    document: dict = {"mappings": rules}
    if draw(st.integers(0, 3)) == 0:
        document["defaults"] = {"glob_disable_ordering": True}
        if clean:
            rules += BACKTRACKING_PAIR
    return yaml.safe_dump(document, sort_keys=False)


names = st.lists(st.sampled_from([*PARTS, "d"]), min_size=1, max_size=4).map(".".join)


@SETTINGS
@given(mapping_files(clean=True), names, st.sampled_from(KINDS))
def test_files_free_of_statsd_exporters_defects_read_exactly_alike(text, name, kind):
    """No excuse taken: the same rule, the same names and labels, and no finding that says otherwise."""
    config = load_mapping(text)
    readings = Readings(config)
    assert readings.reference.backtracking  # ordering on, or the pair added to make it backtrack
    assert_read_alike(config, name, kind, excuses=False)
    assert [finding for finding in lint(config) if finding.check in CHOICE_CHECKS | {TEMPLATE_CHECK}] == []


@SETTINGS
@given(mapping_files(), names, st.sampled_from(KINDS))
def test_the_router_and_the_model_pick_alike_or_the_lint_names_a_defect(text, name, kind):
    assert_read_alike(load_mapping(text), name, kind)


LINE_KINDS = {"c": COUNTER, "g": GAUGE, "ms": OBSERVER, "h": OBSERVER, "d": OBSERVER}


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.data())
def test_generated_files_read_alike_or_the_lint_names_a_defect(seed, data):
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


def test_the_tests_reading_of_templates():
    """The expected values the properties hold both sides to, worked out by hand."""
    assert read_glob_template("x_$1-${2}$3", ["p", "q"]) == ("x_p-q", ["$1", "${2}", "$3"])
    assert read_glob_template("x_$1_${2}", ["p", "q"]) == ("x_{2}", ["$1_$"])  # `$` is a name character there
    assert read_glob_template("$1$2-${1}}{", ["p", "q"]) == ("-p}{", ["$1$2", "${1}"])
    assert read_glob_template("$1}", ["p"]) == ("p", ["$1}"])
    assert read_glob_template("$$1%$", ["p"]) == ("%$", ["$$1"])
    assert go_reads_otherwise("$1-$12", ["$1", "$12"]) and not go_reads_otherwise("$1-${1}", ["$1", "${1}"])


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
