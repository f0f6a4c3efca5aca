"""What statsd_exporter would make of a mapping file that the bridge reads otherwise.

The bridge reads statsd_exporter's mapping files and, where statsd_exporter's behaviour is sound, does
what it does. Where it is a defect (a glob that silently never matches, a label value mangled by Go's
formatter, a scrape that fails for every scraper), the bridge keeps the sensible behaviour, and the
lint says, rule by rule, what statsd_exporter would do instead: a user swapping one for the other learns
before the swap which series will change. This module finds those differences (statsd_exporter 0.23 to
0.30): it reads the file with the bridge's router and with the model of statsd_exporter's matcher and
formatter (bridge/mapping/globs.py, bridge/mapping/semantics.py), and follows its registry where names
meet; the lint turns the differences into findings.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections import Counter
from dataclasses import dataclass

from bridge.mapping.globs import PartIndex, ReferenceGlobs
from bridge.mapping.router import Mapper, Route, Target
from bridge.mapping.schema import MappingConfig, Output, Rule
from bridge.mapping.semantics import GLOB_REFERENCE, KINDS, expand_glob, fixed_name, go_format, takes_kind
from bridge.parsing.line import COUNTER, GAUGE, OBSERVER
from bridge.series.names import SAMPLE_SUFFIXES

# --- the differences, found ---


@dataclass(frozen=True)
class Difference:
    line: int  # the rule's line in the file
    check: str  # statsd_exporter_<what>
    message: str
    metric: str = ""  # for differences of a metric name rather than of a rule's lines
    example: tuple[str, ...] = ()  # StatsD lines, sent in order, that show it (none where none was found)


_KIND_CODES = {COUNTER: "c", GAUGE: "g", OBSERVER: "h"}


class GlobIndex:
    """Globs in one order, looked up by a name's parts (PartIndex) and kind rather than tried one by one."""

    def __init__(self, globs: list[Rule]) -> None:
        self.globs = globs
        self._parts = PartIndex()
        self._kinds = dict.fromkeys(KINDS, 0)  # kind -> globs that take it
        for order, rule in enumerate(globs):
            self._parts.add(order, rule.match)
            for kind in KINDS:
                if takes_kind(rule, kind):
                    self._kinds[kind] |= 1 << order

    def first(self, name: str, kind: str) -> Rule | None:
        """The first glob in order that takes this name and kind of line."""
        candidates = self._kinds[kind] & self._parts.matching(name)
        while candidates:
            lowest = candidates & -candidates
            rule = self.globs[lowest.bit_length() - 1]
            if rule.pattern.match(name) is not None:
                return rule
            candidates ^= lowest
        return None


class Readings:
    """One mapping file as both would read it: the bridge's mapper and statsd_exporter's glob tree."""

    def __init__(self, config: MappingConfig) -> None:
        self.config = config
        self.mapper = Mapper(config)
        self.reference = ReferenceGlobs(config)
        self.globs = GlobIndex([rule for rule in self.mapper.rules if rule.match_type == "glob"])
        self.line_of = {id(rule): rule.line for rule in config.rules}
        self.star_choices = _star_choices(self.reference.globs)

    def ours(self, name: str, kind: str) -> Rule | None:
        """The glob the bridge maps a name with (the regexes come after every glob, in both)."""
        return self.globs.first(name, kind)

    def theirs(self, name: str, kind: str) -> Route:
        """The route statsd_exporter picks for a line: its glob tree's choice, else the regexes in order, else
        none (the names and labels as the bridge fills them in: _templates compares those)."""
        return self.mapper.route_with(self.reference.match(name, kind), name, kind)

    def series(self, glob: Rule | None, name: str, kind: str) -> tuple[bool, list[tuple]]:
        """What a line makes when `glob` matches it (None: when no glob does): dropped, or what its targets
        make. Another rule that makes the same series is no difference."""
        route = self.mapper.route_with(glob, name, kind)
        return route.drop, [_made(target) for target in route.targets]

    def witness(self, rule: Rule, kinds: tuple[str, ...] = KINDS) -> tuple[str, str] | None:
        """(name, kind) of a line the bridge maps with this glob rule; None for a regex rule, or where the
        rule never wins."""
        if rule.match_type != "glob":
            return None
        for name in _witnesses(rule, self.star_choices):
            for kind in kinds:
                if self.ours(name, kind) is rule:
                    return name, kind
        return None

    def witness_line(self, rule: Rule, kinds: tuple[str, ...] = KINDS, tags: str = "") -> str | None:
        found = self.witness(rule, kinds)
        return None if found is None else f"{found[0]}:1|{_KIND_CODES[found[1]]}{tags}"


def _made(target: Target) -> tuple:
    """What of a target shapes its series: buckets only for a histogram, quantiles only for a summary."""
    options: tuple = ()
    if target.type == "histogram":
        options = (target.buckets, target.native)
    elif target.type == "summary":
        options = (target.summary,)
    return (
        target.name,
        target.type,
        target.labels,
        target.help,
        target.ttl,
        target.scale,
        target.honor_labels,
        target.value,
        target.tags,
        target.required,
        target.non_empty,
        target.when,
        options,
    )


def differences(config: MappingConfig) -> list[Difference]:
    """Every way statsd_exporter would serve this file's series otherwise, each at its rule's line."""
    file = Readings(config)
    fixed = _fixed_givers(file)
    found = _glob_choices(file) + _templates(file) + _two_helps(file, fixed) + _template_helps(file, fixed)
    found += _sample_name_clashes(file)
    return sorted(set(found), key=lambda d: (d.line, d.check, d.message))


def _star_choices(globs: list[Rule]) -> list[list[str]]:
    """For each place, what a glob's `*` there is filled with to find names that walk statsd_exporter's
    tree differently: a part no glob names there, then every literal a glob has in that place. The same
    for every rule, so made once a file."""
    literals: list[set[str]] = []
    for glob in globs:
        for position, part in enumerate(glob.match.split(".")):
            if position == len(literals):
                literals.append(set())
            literals[position].add(part)
    choices = []
    for there in literals:
        fresh = next(word for word in (f"any{i}" if i else "any" for i in itertools.count()) if word not in there)
        choices.append([fresh, *sorted(literal for literal in there if literal != "*")])
    return choices


def _witnesses(rule: Rule, star_choices: list[list[str]], limit: int = 256) -> list[str]:
    """Names the rule matches that walk statsd_exporter's tree differently: each `*` filled with a part
    no glob names there, or with a literal another glob has in that place (`star_choices`)."""
    choices = [star_choices[position] if part == "*" else [part] for position, part in enumerate(rule.match.split("."))]
    names = []
    for combination in itertools.product(*choices):
        names.append(".".join(combination))
        if len(names) >= limit:
            break
    return names


def _glob_choices(file: Readings) -> list[Difference]:
    """Names whose glob statsd_exporter picks otherwise; one finding per rule and kind of difference."""
    reference = file.reference
    found: dict[tuple[int, str], Difference] = {}
    for rule in reference.globs:
        for name in _witnesses(rule, file.star_choices):
            outcomes: dict[tuple[int, int], list[str]] = {}  # (ours, theirs) -> the kinds it happens for
            choices = {}
            for kind in KINDS:
                ours = file.ours(name, kind)
                theirs = reference.match(name, kind)
                if ours is None or ours is theirs:  # the same rule makes the same series: skip building them
                    continue
                if file.series(ours, name, kind) != file.series(theirs, name, kind):
                    outcomes.setdefault((id(ours), id(theirs)), []).append(kind)
                    choices[(id(ours), id(theirs))] = (ours, theirs)
            for key, kinds in outcomes.items():
                ours, theirs = choices[key]
                difference = _choice_difference(file, ours, theirs, name, kinds)
                found.setdefault((difference.line, difference.check), difference)
    return list(found.values())


def _choice_difference(file: Readings, ours: Rule, theirs: Rule | None, name: str, kinds: list[str]) -> Difference:
    reference, line_of = file.reference, file.line_of
    there = (
        f"maps it with the rule at line {line_of[id(theirs)]} (`{theirs.match}`)"
        if theirs is not None
        else "matches no glob with it (it goes on to the regex rules, or stays unmapped)"
    )
    kind = kinds[0]
    state = reference.state(ours, kind)
    assert state is not None  # the bridge took the name by this rule, so the rule takes the kind
    words = ", ".join("timer" if k == OBSERVER else k for k in kinds)
    example = f"for `{name}` as a {words} statsd_exporter {there}, the bridge with this rule"
    lines = (f"{name}:1|{_KIND_CODES[kind]}",)
    if state.result is not ours:
        maker = _longer_glob_on_the_path(reference, ours, kind)
        return Difference(
            ours.line,
            "statsd_exporter_unreachable",
            f"statsd_exporter never matches this glob: its matcher keeps one state per path, and "
            f"the longer glob `{maker.match}` at line {line_of[id(maker)]} made the state for "
            f"`{ours.match}` first, with no result; {example}",
            example=lines,
        )
    if not reference.ordering_disabled:
        duplicate = reference.globs[state.priority]
        return Difference(
            ours.line,
            "statsd_exporter_order",
            f"statsd_exporter tries this glob at the place of its duplicate at line "
            f"{line_of[id(duplicate)]}, after the rules in between; {example}",
            example=lines,
        )
    return Difference(
        ours.line,
        "statsd_exporter_unreachable",
        f"with glob_disable_ordering, statsd_exporter does not backtrack for these globs (its own "
        f"test of when to backtrack misses them) and gives up on a name that takes a literal part "
        f"of another glob; {example}",
        example=lines,
    )


def _longer_glob_on_the_path(reference: ReferenceGlobs, rule: Rule, kind: str) -> Rule:
    """The first glob of `kind` whose path passes through the end of `rule`'s: the one whose state it is."""
    parts = rule.match.split(".")
    for glob in reference.globs:
        theirs = glob.match.split(".")
        if reference.state(glob, kind) is not None and len(theirs) > len(parts) and theirs[: len(parts)] == parts:
            return glob
    raise AssertionError(f"no glob made the state of {rule.match}")


def _outputs(config: MappingConfig) -> list[tuple[Rule, Output]]:
    return [(rule, output) for rule in config.rules if rule.action == "map" for output in rule.outputs]


def _templates(file: Readings) -> list[Difference]:
    """Glob templates that Go's formatter writes otherwise: a `%`, or a reference whose text is the
    head of another (`$1` in `$12`) or ends in a brace it keeps."""
    found = []
    for rule, output in _outputs(file.config):
        if rule.match_type != "glob":
            continue
        captures = [f"c{index}" for index in range(1, rule.pattern.groups + 1)]
        for where, template in [("name", output.name), *((f"label {k}", v) for k, v in output.labels.items())]:
            ours = expand_glob(template, tuple(captures))
            theirs = go_format(template, captures)
            if theirs == ours:
                continue
            shown = f"`{theirs}`" if theirs is not None else "a value Go's fmt mangles"
            example = file.witness_line(rule)
            found.append(
                Difference(
                    output.line or rule.line,
                    "statsd_exporter_template",
                    f"{where}: statsd_exporter runs `{template}` through Go's fmt.Sprintf, so for "
                    f"captures {', '.join(captures)} it writes {shown} where the bridge writes "
                    f"`{ours}`",
                    example=(example,) if example else (),
                )
            )
    return found


def _template_pattern(name: str) -> re.Pattern[str]:
    """The metric names a name template can give (each reference any text), for comparing with fixed names."""
    return re.compile(".*".join(re.escape(piece) for piece in GLOB_REFERENCE.sub("\0", name).split("\0")) + r"\Z")


def _fixed_givers(file: Readings) -> dict[str, list[tuple[Rule, Output]]]:
    """Each fixed name -> the outputs that give it, in file order."""
    fixed: dict[str, list[tuple[Rule, Output]]] = {}
    for rule, output in _outputs(file.config):
        name = fixed_name(output)
        if name is not None:
            fixed.setdefault(name, []).append((rule, output))
    return fixed


def _two_helps(file: Readings, fixed: dict[str, list[tuple[Rule, Output]]]) -> list[Difference]:
    """One fixed name given two HELP texts: a finding for each later output of another HELP than an earlier one."""
    found = []
    for name, givers in fixed.items():
        helps: Counter[str] = Counter()  # how many of the givers so far give each HELP
        for position, later in enumerate(givers):
            # a name many rules give, all with one HELP (a shared name, a `service` label): nothing to walk
            if helps[later[1].help] < position:
                found += _first_help_difference(file, name, givers[:position], later, example=True)
            helps[later[1].help] += 1
    return found


def _template_helps(file: Readings, fixed: dict[str, list[tuple[Rule, Output]]]) -> list[Difference]:
    """A name template that can give a fixed name of another HELP."""
    names = sorted(fixed)
    found = []
    for rule, output in _outputs(file.config):
        if "$" not in output.name:
            continue
        pattern = _template_pattern(output.name)
        head = output.name[: output.name.index("$")]  # every name the template gives begins so
        for name in names[bisect.bisect_left(names, head) :]:
            if not name.startswith(head):
                break
            if pattern.match(name):
                found += _first_help_difference(file, name, fixed[name], (rule, output), example=False)
    return found


def _first_help_difference(
    file: Readings, name: str, givers: list[tuple[Rule, Output]], later: tuple[Rule, Output], example: bool
) -> list[Difference]:
    """The finding for `later` against the first of `givers` of another HELP whose lines meet it; one a rule
    and name."""
    for giver in givers:
        if giver[1].help != later[1].help:
            difference = _help_difference(file, name, giver, later, example)
            if difference:
                return difference
    return []


def _sample_name_clashes(file: Readings) -> list[Difference]:
    """Fixed names whose samples statsd_exporter mixes up with another metric's."""
    found = []
    typed = _typed_names(file)
    for (name, metric_type), (rule, output, kind) in typed.items():
        line = output.line or rule.line
        for suffix, other_type, check, message in _sample_clashes(name, metric_type, line):
            if (name + suffix, other_type) in typed:
                other_rule, other, other_kind = typed[(name + suffix, other_type)]
                lines = _lines(file, (rule, kind), (other_rule, other_kind))
                found.append(Difference(other.line or other_rule.line, check, message, name + suffix, lines))
    return found


# statsd_exporter keeps these suffixes of a counter's or gauge's name for the samples of any `x` that is not a
# counter; the bridge only for a histogram's or summary's own samples
_KEPT_SUFFIXES = {"gauge": ("_bucket", "_count", "_sum"), "summary": ("_bucket",)}


def _sample_clashes(name: str, metric_type: str, line: int) -> list[tuple[str, str, str, str]]:
    """(suffix, type, check, message) for each name and type beside a metric that statsd_exporter mishandles."""
    clashes = [
        (
            suffix,
            metric_type,
            "statsd_exporter_scrape_error",
            f"{name}{suffix} ({metric_type}) is a sample name of the {metric_type} {name} at line {line}: "
            "statsd_exporter keeps both and fails every scrape (HTTP 500); the bridge refuses the second to arrive "
            "and counts it in events_conflict_total",
        )
        for suffix in SAMPLE_SUFFIXES.get(metric_type, ())
    ]
    clashes += [
        (
            suffix,
            other_type,
            "statsd_exporter_conflict",
            f"statsd_exporter refuses {name}{suffix} ({other_type}) while the {metric_type} {name} of line {line} "
            "exists, and counts it in events_conflict_total; the bridge keeps both",
        )
        for suffix in _KEPT_SUFFIXES.get(metric_type, ())
        for other_type in ("counter", "gauge")
    ]
    return clashes


def _typed_names(file: Readings) -> dict[tuple[str, str], tuple[Rule, Output, str]]:
    """(metric name, Prometheus type) -> the first (rule, output, kind of line) that gives it, for every
    output whose name is fixed, for each kind of line the rule takes."""
    typed: dict[tuple[str, str], tuple[Rule, Output, str]] = {}
    for rule, output in _outputs(file.config):
        name = fixed_name(output)
        for kind in KINDS:
            if name is not None and takes_kind(rule, kind):
                typed.setdefault((name, file.mapper.prometheus_type(kind, output)), (rule, output, kind))
    return typed


def _help_difference(
    file: Readings, name: str, first: tuple[Rule, Output], later: tuple[Rule, Output], example: bool = True
) -> list[Difference]:
    """The two HELP texts of a name meet only where one kind of line gives both rules' outputs the same type
    (else the second is a type conflict, in both); `example`: whether the later rule gives the name itself."""
    (first_rule, first_output), (rule, output) = first, later
    type_of = file.mapper.prometheus_type
    kinds = [
        kind
        for kind in KINDS
        if takes_kind(first_rule, kind)
        and takes_kind(rule, kind)
        and type_of(kind, first_output) == type_of(kind, output)
    ]
    if not kinds:
        return []
    lines: tuple[str | None, ...] = (None,)
    for kind in kinds if example else ():
        lines = (file.witness_line(first_rule, (kind,)), file.witness_line(rule, (kind,), "|#statsd_bridge_probe:1"))
        if all(lines):
            break
    return [
        Difference(
            output.line or rule.line,
            "statsd_exporter_scrape_error",
            f"{name} has another HELP at line {first_output.line or first_rule.line}: statsd_exporter fails "
            "every scrape (HTTP 500) once the two give it series with different label names (tags count); "
            "the bridge serves the first HELP",
            name,
            tuple(line for line in lines if line) if all(lines) else (),
        )
    ]


def _lines(file: Readings, *rules: tuple[Rule, str]) -> tuple[str, ...]:
    """A line for each (rule, kind of line), in order; () unless every one was found."""
    lines = [file.witness_line(rule, (kind,)) for rule, kind in rules]
    return tuple(line for line in lines if line) if all(lines) else ()
