"""Mapping lint: what a mapping file will do wrong before any line arrives.

Errors are rules that cannot work as written (a `$3` the pattern has no third group for, a label
Prometheus reserves, one metric name with two types); warnings are rules that work but not as their
author probably meant (a rule an earlier one always wins over, a label set that differs by rule) or
that are slow in statsd_exporter (globs that make its matcher backtrack). Load errors (bad YAML,
unknown keys, a regex that does not compile) come from the loader, as MappingError.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from bridge.mapping.compat import differences
from bridge.mapping.globs import PartIndex, backtracking_pairs, part_covers
from bridge.mapping.loader import load_mapping_file
from bridge.mapping.router import Mapper
from bridge.mapping.schema import REFUSED_EXTENSIONS, MappingConfig, MappingError, Rule
from bridge.mapping.semantics import (
    KINDS,
    Reference,
    filled,
    fixed_name,
    label_names,
    prometheus_type,
    references,
    rule_type,
    run_on,
    takes_kind,
)
from bridge.series.names import RESERVED_LABELS, SAMPLE_SUFFIXES

ERROR, WARNING = "error", "warning"

_CATCH_ALL_REGEXES = {".*", ".+"}


@dataclass(frozen=True)
class Finding:
    severity: str  # ERROR or WARNING
    path: str
    line: int
    check: str  # a short name of the check, for scripts
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.severity}: {self.message} [{self.check}]"


def lint_file(path: str) -> list[Finding]:
    """Findings for a mapping file, its load error (if any) as the only finding."""
    try:
        config = load_mapping_file(path)
    except MappingError as error:
        return [
            Finding(
                ERROR, error.path, error.line or 0, "load", f"{error.key + ': ' if error.key else ''}{error.message}"
            )
        ]
    return lint(config)


def lint(config: MappingConfig) -> list[Finding]:
    path = config.path or "<mapping>"
    findings = []
    rules = Mapper(config).rules  # the order they are tried in
    for rule in rules:
        findings += [
            Finding(ERROR, path, line, "unfillable_reference", message)
            for line, message in _unfillable_references(rule)
        ]
        findings += [
            Finding(WARNING, path, line, "run_on_reference", message) for line, message in _run_on_references(rule)
        ]
        findings += [
            Finding(ERROR, path, line, "invalid_label_name", message)
            for line, message in _invalid_label_names(rule, config)
        ]
    findings += [
        Finding(
            WARNING,
            path,
            later.line,
            "shadowed",
            f"rule `{later.match}` never matches: the rule at line {earlier.line} "
            f"(`{earlier.match}`) takes every name it would",
        )
        for earlier, later in shadowing(rules)
    ]
    findings += _notes(config, path)
    if not config.extensions_declared:  # a file that says it is the bridge's own is not read by statsd_exporter
        findings += [Finding(WARNING, path, d.line, d.check, d.message) for d in differences(config)]
    findings += _backtracking(rules, path)
    findings += _name_conflicts(rules, config, path)
    return sorted(findings, key=lambda finding: (finding.line, finding.check))


def _notes(config: MappingConfig, path: str) -> list[Finding]:
    """What the loader noticed. What statsd_exporter refuses is an error (a rollback to it would fail at
    start-up), and so is each use of an extension, unless the file declares them with
    `statsd_bridge_extensions: true`: a file that says it is the bridge's own is not meant for statsd_exporter,
    and what statsd_exporter would make of it is not worth a finding."""
    findings = []
    for line, check, message in config.notes:
        if config.extensions_declared and check.startswith("statsd_exporter_"):
            continue
        severity = ERROR if check in ("statsd_exporter_refuses", "statsd_exporter_extension") else WARNING
        findings.append(Finding(severity, path, line, check, message))
    if config.extensions_declared and not config.extensions:  # each extension used is a note too
        findings.append(
            Finding(
                WARNING,
                path,
                config.extensions_declared,
                "statsd_exporter_extension",
                "the file declares the bridge's mapping extensions but uses none: without the key, "
                "statsd_exporter could load it",
            )
        )
    return findings


def rollback(config: MappingConfig) -> str:
    """For a file that declares the bridge's mapping extensions, the one line that says what a rollback to
    statsd_exporter meets: the file refused (the keys it refuses it for), or read otherwise (the keys it
    ignores). "" for any other file, whose findings say it rule by rule."""
    keys = sorted({key for _, key in config.extensions})
    if not config.extensions_declared or not keys:
        return ""
    path = config.path or "<mapping>"
    refused = [key for key in keys if key in REFUSED_EXTENSIONS]
    ignored = [key for key in keys if key not in REFUSED_EXTENSIONS]
    if refused:
        besides = f" (and {_keys(ignored)}, which it ignores)" if ignored else ""
        verdict = f"statsd_exporter refuses this file for the bridge's mapping extensions {_keys(refused)}{besides}"
    else:
        verdict = f"statsd_exporter would load this file but ignore the bridge's mapping extensions {_keys(ignored)}"
    return f"{path}: {verdict}; a rollback to statsd_exporter needs another mapping file"


def _keys(keys: list[str]) -> str:
    return ", ".join(f"`{key}`" for key in keys)


def has_errors(findings: list[Finding]) -> bool:
    return any(finding.severity == ERROR for finding in findings)


def _templates(rule: Rule) -> Iterator[tuple[int, str, Reference]]:
    """(line, where, reference) for each capture reference in a rule's names and label values."""
    for output in rule.outputs:
        texts = [("name", output.name)] + [(f"label {label}", value) for label, value in output.labels.items()]
        for where, text in texts:
            for reference in references(rule.match_type, text):
                yield output.line or rule.line, where, reference


def _unfillable_references(rule: Rule) -> Iterator[tuple[int, str]]:
    count, names = rule.pattern.groups, sorted(rule.pattern.groupindex) if rule.match_type == "regex" else []
    for line, where, reference in _templates(rule):
        if filled(rule, reference) or run_on(rule, reference):
            continue  # a run-on: _run_on_references says it, with the fix
        named = f" ({', '.join(names)})" if names else ""
        yield (
            line,
            f"{where}: ${reference.name} can never be filled: `{rule.match}` has {count} group(s){named}; "
            "it would be empty",
        )


def _run_on_references(rule: Rule) -> Iterator[tuple[int, str]]:
    """`$1_total`: a capture number run on into a longer name, empty in statsd_exporter and here."""
    for line, where, reference in _templates(rule):
        found = run_on(rule, reference)
        if found is None:
            continue
        capture, rest = found
        yield (
            line,
            f"{where}: `${reference.name}` reads as the name `{reference.name}`, which no capture has, so it is "
            f"empty (the longest name is read); for capture {capture} then `{rest}` write `${{{capture}}}{rest}`",
        )


def _invalid_label_names(rule: Rule, config: MappingConfig) -> Iterator[tuple[int, str]]:
    for output in rule.outputs:
        labels = label_names(output)
        for label in sorted(labels):
            if label.startswith("__"):
                yield output.line or rule.line, f"label {label}: names starting with __ are reserved for Prometheus"
        types = {prometheus_type(kind, output, config.observer_type) for kind in KINDS if takes_kind(rule, kind)}
        for metric_type in sorted(types):
            reserved = RESERVED_LABELS.get(metric_type)
            if reserved in labels:
                yield output.line or rule.line, f"label {reserved}: a {metric_type} writes {reserved} itself"


def _types_cover(earlier: Rule, later: Rule) -> bool:
    """Whether `earlier` takes every kind of line `later` takes."""
    return all(takes_kind(earlier, kind) for kind in KINDS if takes_kind(later, kind))


def _covers(earlier: Rule, later: Rule) -> bool:
    """Whether every name `later` matches is taken by `earlier` first."""
    if not _types_cover(earlier, later):
        return False
    if earlier.match_type == "glob" and later.match_type == "glob":
        a, b = earlier.match.split("."), later.match.split(".")
        return len(a) == len(b) and all(part_covers(x, y) for x, y in zip(a, b, strict=True))
    if earlier.match_type == "regex":
        return _catch_all(earlier) or (later.match_type == "regex" and earlier.match == later.match)
    return False


def _catch_all(rule: Rule) -> bool:
    return re.sub(r"[()^$]", "", rule.match) in _CATCH_ALL_REGEXES


class _Coverers:
    """The rules so far, indexed to give for a later rule the few earlier ones that might cover it, as a bit
    set (bit i: the i-th rule). Only those pass to `_covers`, which decides: a pairwise walk costs millions
    of `_covers` calls on a file of thousands of rules.

    A glob covers only globs the PartIndex gives; a regex covers a regex of the same text; a catch-all
    regex covers anything.
    """

    def __init__(self) -> None:
        self._count = 0
        self._globs = PartIndex()
        self._regexes: dict[str, int] = {}  # regex text -> regexes
        self._catch_alls = 0
        self._types: dict[str, int] = {}  # match_metric_type ("" for none) -> rules

    def add(self, rule: Rule) -> None:
        position, bit = self._count, 1 << self._count
        self._count += 1
        self._types[rule.match_metric_type] = self._types.get(rule.match_metric_type, 0) | bit
        if rule.match_type == "glob":
            self._globs.add(position, rule.match)
            return
        self._regexes[rule.match] = self._regexes.get(rule.match, 0) | bit
        if _catch_all(rule):
            self._catch_alls |= bit

    def candidates(self, later: Rule) -> int:
        """Earlier rules that might cover `later`: a superset of those that do."""
        found = self._catch_alls
        if later.match_type == "regex":
            found |= self._regexes.get(later.match, 0)
        else:
            found |= self._globs.covering(later.match)
        # _types_cover: an earlier rule of no metric type, or of the later one's
        return found & (self._types.get("", 0) | self._types.get(later.match_metric_type, 0))


def shadowing(rules: list[Rule]) -> Iterator[tuple[Rule, Rule]]:
    """(earlier, later) for each rule that an earlier one covers, the first such earlier rule, in `rules`' order."""
    coverers = _Coverers()
    for later in rules:
        candidates = coverers.candidates(later)
        while candidates:
            lowest = candidates & -candidates
            earlier = rules[lowest.bit_length() - 1]
            if _covers(earlier, later):
                yield earlier, later
                break
            candidates ^= lowest
        coverers.add(later)


def _backtracking(rules: list[Rule], path: str) -> list[Finding]:
    """Pairs of globs that make statsd_exporter's matcher backtrack.

    Its matcher walks the name's components down a tree of the globs, preferring a literal
    component over `*`. When a name goes down the literal branch and fails further on, while the
    `*` branch would have matched, it has to come back and try again.
    """
    globs = [rule for rule in rules if rule.match_type == "glob"]
    findings = []
    for first, second, component in backtracking_pairs(globs):
        findings.append(
            Finding(
                WARNING,
                path,
                max(first.line, second.line),
                "backtracking",
                f"globs `{first.match}` (line {first.line}) and `{second.match}` "
                f"(line {second.line}) need backtracking in statsd_exporter's matcher "
                f"at component {component + 1}: slower there",
            )
        )
    return findings


def _name_conflicts(rules: list[Rule], config: MappingConfig, path: str) -> list[Finding]:
    """One fixed metric name produced with two types, or with two label-name sets. The types compared are
    those an output makes whatever the line (an output that follows each line's kind conflicts only with
    some lines: the compat findings follow it kind by kind)."""
    findings = []
    seen: dict[str, tuple[str, str, int]] = {}  # sample name -> (metric, type, line) of the first writer
    label_sets: dict[str, tuple[frozenset, int]] = {}
    for rule in rules:
        if rule.action == "drop":
            continue
        for output in rule.outputs:
            name = fixed_name(output)
            if name is None:
                continue  # the name depends on the line: nothing fixed to compare
            line = output.line or rule.line
            kind = rule_type(rule, output, config)
            if kind:
                for sample_name in [name] + [name + suffix for suffix in SAMPLE_SUFFIXES[kind]]:
                    owner, owner_kind, owner_line = seen.setdefault(sample_name, (name, kind, line))
                    if (owner, owner_kind) != (name, kind):
                        findings.append(
                            Finding(
                                ERROR,
                                path,
                                line,
                                "type_conflict",
                                f"{name} ({kind}) writes {sample_name}, as does {owner} ({owner_kind}) at line "
                                f"{owner_line}: only the first to arrive is kept",
                            )
                        )
                        break
            labels = label_names(output)
            earlier_labels = label_sets.setdefault(name, (labels, line))
            if earlier_labels[0] != labels:
                findings.append(
                    Finding(
                        WARNING,
                        path,
                        line,
                        "label_conflict",
                        f"{name} gets labels {{{', '.join(sorted(labels))}}} here and "
                        f"{{{', '.join(sorted(earlier_labels[0]))}}} at line {earlier_labels[1]}: "
                        "two series sets under one name",
                    )
                )
    return findings
