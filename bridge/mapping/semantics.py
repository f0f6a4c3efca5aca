"""statsd_exporter's mapping semantics, each defined once: which lines a rule takes, how a template's capture
references read, the name statsd_exporter exposes, and the Prometheus type a line makes.

The router (what the bridge does), the compat model (what statsd_exporter would do) and the lint call
these; its globs are in bridge/mapping/globs.py, its file's keys in bridge/mapping/schema.py. Each follows
statsd_exporter's pkg/mapper and pkg/exporter as they are read, and, where the bridge departs from them on
purpose (a glob template with a `%`), both sides are here beside each other.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from bridge.mapping.schema import MappingConfig, Output, Rule
from bridge.parsing.line import COUNTER, GAUGE, OBSERVER

KINDS = (COUNTER, GAUGE, OBSERVER)

# statsd_exporter's glob formatter: `$`, an optional `{`, the longest run of letters, digits, `_` and
# `$`, an optional `}`. A run that isn't a capture number expands to nothing: `$1_total` is empty
# there (the variable `1_total`), and so is `$1$2`; `${1}_total` is capture 1 then `_total`.
GLOB_REFERENCE = re.compile(r"\$(\{)?([a-zA-Z0-9_$]+)\}?")
# Go's regexp.Expand (regex rules): `$$` is a `$`; `${name}` or `$name`, the longest run of word
# characters, so "$1_x" means the group named "1_x"; write "${1}_x" for capture 1 then "_x".
REGEX_REFERENCE = re.compile(r"\$(?:\$|\{(\w+)\}|(\w+))")
_INVALID_NAME_CHARS = re.compile(r"-{2,}|[^a-zA-Z0-9_]")
# a verb of Go's fmt: flags, width, precision, then the verb itself
_GO_VERB = re.compile(r"%([-+# 0]*)(\d*)(?:\.(\d*))?(.?)", re.S)


def takes_kind(rule: Rule, kind: str) -> bool:
    """Whether a rule maps lines of this kind: its match_metric_type, where it has one, is the line's."""
    return not rule.match_metric_type or rule.match_metric_type == kind


# --- the Prometheus type ---


def prometheus_type(kind: str, output: Output | None, default_observer: str) -> str:
    """The type a line of this kind makes through an output (None: unmapped): the output's `type` where it
    has one, else a counter's counter, a gauge's gauge, an observer's its observer type or the default."""
    if output is not None and output.type:
        return output.type
    if kind == COUNTER:
        return "counter"
    if kind == GAUGE:
        return "gauge"
    assert kind == OBSERVER
    return (output.observer_type if output else "") or default_observer


def rule_type(rule: Rule, output: Output, config: MappingConfig) -> str:
    """The type an output makes whatever the line, or "" where it follows the kind of each line."""
    if output.type or rule.match_metric_type:
        return prometheus_type(rule.match_metric_type, output, config.observer_type)
    return ""


# --- names ---


def escape_name(name: str) -> str:
    """statsd_exporter's EscapeMetricName: invalid characters become `_`, a run of `-` one `_`, no leading digit."""
    escaped = _INVALID_NAME_CHARS.sub("_", name)
    if escaped[:1].isdigit():
        return "_" + escaped
    return escaped


def fixed_name(output: Output) -> str | None:
    """The name statsd_exporter exposes for every line an output takes: its exporter escapes each mapped
    name, whatever the kind of line; None where the name is a template and depends on the line."""
    return None if "$" in output.name else escape_name(output.name)


def label_names(output: Output) -> frozenset[str]:
    """The label names an output gives its series: its labels, and, under `tags`, the labels they fill."""
    return frozenset(output.labels) | frozenset(output.tags or {})


# --- capture references ---


@dataclass(frozen=True)
class Reference:
    name: str  # what it names: a number or a group name
    braced: bool


def references(match_type: str, template: str) -> Iterator[Reference]:
    """The capture references of a name or label template, read as statsd_exporter reads them for a rule of
    this match type (its glob formatter, or Go's regexp.Expand)."""
    if match_type == "glob":
        for found in GLOB_REFERENCE.finditer(template):
            yield Reference(found.group(2), bool(found.group(1)))
        return
    for found in REGEX_REFERENCE.finditer(template):
        if found.group(1) or found.group(2):  # not `$$`
            yield Reference(found.group(1) or found.group(2), found.group(1) is not None)


def glob_capture(name: str) -> int:
    """The capture a glob reference names (strconv.Atoi), 0 where it is no number."""
    return int(name) if name.isascii() and name.isdigit() else 0


def regex_group(name: str) -> int | str:
    """The group a regex reference names: Go reads a number only from digits without a leading zero."""
    number = name.isascii() and name.isdigit() and (len(name) == 1 or name[0] != "0")
    return int(name) if number else name


def filled(rule: Rule, reference: Reference) -> bool:
    """Whether a reference names a capture the rule's pattern has (else statsd_exporter writes nothing)."""
    count = rule.pattern.groups
    if rule.match_type == "glob":
        return 1 <= glob_capture(reference.name) <= count
    group = regex_group(reference.name)
    return group <= count if isinstance(group, int) else group in rule.pattern.groupindex


# a reference's digits, then the name characters read on after them
_RUN_ON = re.compile(r"([0-9]+)([^0-9].*)", re.S)


def run_on(rule: Rule, reference: Reference) -> tuple[int, str] | None:
    """(capture, text) for a reference whose capture number runs on into more name characters: both read
    the longest name (`$1_total` is the name `1_total`, `$1$2` in a glob `1$2`), which no capture has, so it
    is empty; `${capture}text` is what was meant. None for a braced or filled reference, or where the
    digits name no capture of the rule either. The capture is the digits' number: Go's Expand reads
    `${01}` as a group named "01", the glob formatter `${1}` and `${01}` alike."""
    found = _RUN_ON.fullmatch(reference.name)
    if reference.braced or found is None or filled(rule, reference):
        return None
    capture = int(found.group(1))
    return (capture, found.group(2)) if filled(rule, Reference(str(capture), braced=True)) else None


def expand_glob(template: str, captures: tuple[str, ...]) -> str:
    """A glob rule's name or label template with its captures filled in, each reference on its own
    (statsd_exporter's formatter does otherwise where a template holds a `%`: go_format)."""

    def capture(match: re.Match[str]) -> str:
        index = glob_capture(match.group(2))
        return captures[index - 1] if 0 < index <= len(captures) else ""

    return GLOB_REFERENCE.sub(capture, template)


def expand_regex(template: str, match: re.Match[str]) -> str:
    """A regex rule's template expanded as Go's regexp.Expand does."""

    def group(ref: re.Match[str]) -> str:
        key = ref.group(1) or ref.group(2)
        if key is None:
            return "$"
        try:
            return match.group(regex_group(key)) or ""
        except IndexError:  # no such group: Go expands it to nothing
            return ""

    return REGEX_REFERENCE.sub(group, template)


# --- statsd_exporter's glob formatter (fsm.TemplateFormatter), where it departs from expand_glob ---


def go_template(template: str, capture_count: int) -> tuple[str, list[int], bool]:
    """What statsd_exporter's formatter makes of a glob template: the format string, the capture
    indexes it passes, and whether it formats at all (a template without a capture it can fill is
    used as it is). Each reference is replaced wherever its text occurs, so `$1` also eats the head
    of `$12`, and a bad reference (`$0`, `$9` with 2 captures, `$1_x`) becomes nothing."""
    matches = list(GLOB_REFERENCE.finditer(template))
    if not matches:
        return template, [], False
    text, indexes = template, []
    for match in matches:
        index = glob_capture(match.group(2))
        if not 1 <= index <= capture_count:
            text = text.replace(match.group(0), "")
        else:
            text = text.replace(match.group(0), "%s")
            indexes.append(index - 1)
    return text, indexes, bool(indexes)


def go_format(template: str, captures: list[str]) -> str | None:
    """statsd_exporter's value of a glob template for these captures, or None where Go's fmt would
    do something this model does not follow (argument indexes, `*` widths)."""
    text, indexes, formats = go_template(template, len(captures))
    if not formats:
        return text
    return go_sprintf(text, [captures[index] for index in indexes])


def go_sprintf(text: str, args: list[str]) -> str | None:
    """Go's fmt.Sprintf with string arguments, for the verbs a template can hold by accident."""
    out, position, used = [], 0, 0
    while True:
        start = text.find("%", position)
        if start < 0:
            out.append(text[position:])
            break
        out.append(text[position:start])
        verb = _GO_VERB.match(text, start)
        assert verb is not None  # the pattern matches any text after a %
        flags, width, precision, char = verb.groups()
        position = verb.end()
        if char in ("[", "*"):
            return None
        if not char:
            out.append("%!(NOVERB)")
            break
        if char == "%":
            out.append("%")
            continue
        if used >= len(args):
            out.append(f"%!{char}(MISSING)")
            continue
        value = args[used]
        used += 1
        if char in "sv":
            if precision is not None:
                value = value[: int(precision or 0)]
            pad = max(0, int(width or 0) - len(value))
            out.append(value + " " * pad if "-" in flags else " " * pad + value)
        elif char in "xX" and not flags and not width and precision is None:
            encoded = value.encode().hex()
            out.append(encoded.upper() if char == "X" else encoded)
        elif char in "qxX":
            return None  # quoting and spaced hex: not worth following
        else:
            out.append(f"%!{char}(string={value})")
    if used < len(args):
        out.append("%!(EXTRA " + ", ".join(f"string={arg}" for arg in args[used:]) + ")")
    return "".join(out)
