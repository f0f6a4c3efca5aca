"""Mapping files in statsd_exporter's YAML schema: read, validate, compile.

Every problem is a MappingError naming the file, the line and the key, so
`--check-config` and start-up can say exactly what to fix.
"""

from __future__ import annotations

import contextlib
import math
import re
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import re2
import yaml

from bridge.durations import parse_duration
from bridge.series.quantiles import DEFAULT_MAX_AGE, SummaryOptions

DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# statsd_exporter's native histogram defaults once a mapping file is loaded (none without one)
DEFAULT_NATIVE_FACTOR = 1.1
DEFAULT_NATIVE_MAX_BUCKETS = 256

# statsd_exporter's own names for the event kinds, "timer" being the old spelling.
METRIC_TYPES = {"counter": "counter", "gauge": "gauge", "observer": "observer", "timer": "observer"}
OBSERVER_TYPES = ("histogram", "summary")

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# A metric name template, as statsd_exporter checks it: letters, digits, _ and $n / ${n} (no colon,
# no named group; labels may use those)
NAME_TEMPLATE = re.compile(r"^([a-zA-Z_]|\$\{?\d+\}?)([a-zA-Z0-9_]|\$\{?\d+\}?)*$")
GLOB_COMPONENT = re.compile(r"^[a-zA-Z0-9_*:-]+$")

# Units Prometheus' durations have and Go's time.ParseDuration (statsd_exporter's mapping files) has not
_PROMETHEUS_ONLY_UNITS = re.compile(r"\d[dwy]")
# statsd_exporter's glob syntax (mapper.go's metricLineRE): `*` only as a whole part, no `:`, a first part
# not starting with a digit or `-`, later parts not starting with `-`
_REFERENCE_GLOB = re.compile(r"^(\*|[a-zA-Z_][a-zA-Z0-9_-]*)(\.\*|\.[a-zA-Z0-9_][a-zA-Z0-9_-]*)*$")
# statsd_exporter's label names (mapper.go's labelNameRE) need two characters
_REFERENCE_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]+$")
# What statsd_exporter does with a rule whose keys it does not know, for the rollback findings
EXTENSION_EFFECTS = {
    "type": "takes each line's own type",
    "value": "applies each value as its type does",
    "tags": "turns every tag into a label",
    "required": "takes lines without those tags too",
    "non_empty": "takes lines with those tags empty too",
    "when": "takes lines with any value of those tags",
}

# Keys of one output: statsd_exporter's, then our extensions (docs/mapping.md: "Extensions").
OUTPUT_KEYS = {
    "name", "labels", "observer_type", "timer_type", "buckets", "quantiles", "histogram_options",
    "summary_options", "help", "ttl", "scale", "honor_labels",
    "type", "value", "tags", "required", "non_empty", "when",
}  # fmt: skip
MATCH_KEYS = {"match", "match_type", "match_metric_type", "action", "outputs"}
MAPPING_KEYS = OUTPUT_KEYS | MATCH_KEYS
EXTENSION_KEYS = {"type", "value", "tags", "required", "non_empty", "when"}
# What an output may do with an event's value, by the output's type; the first is the default.
VALUE_OPS = {
    "counter": ("add", "count"),
    "gauge": ("set", "add", "count", "up_down"),
    "histogram": ("observe",),
    "summary": ("observe",),
}
DEFAULTS_KEYS = {
    "observer_type", "timer_type", "buckets", "quantiles", "match_type", "glob_disable_ordering", "ttl",
    "summary_options", "histogram_options",
}  # fmt: skip
# statsd_bridge_extensions: true says the file means to use the mapping extensions (statsd_exporter ignores the key)
TOP_KEYS = {"defaults", "mappings", "reaper", "statsd_bridge_extensions"}
REAPER_KEYS = {"label", "after", "interval"}
SUMMARY_KEYS = {"quantiles", "max_age", "age_buckets", "buf_cap"}
HISTOGRAM_KEYS = {"buckets", "native_histogram_bucket_factor", "native_histogram_max_buckets"}


class MappingError(ValueError):
    """A problem in a mapping file, with where it is."""

    def __init__(self, message: str, path: str = "<mapping>", line: int | None = None, key: str = "") -> None:
        self.path, self.line, self.key, self.message = path, line, key, message
        where = path if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {key + ': ' if key else ''}{message}")


@dataclass
class Output:
    """One metric a matching event feeds. A plain statsd_exporter rule has exactly one."""

    name: str
    labels: dict[str, str]
    observer_type: str = ""  # "", "histogram" or "summary"
    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    # (bucket factor, max buckets) of the native histogram beside the classic buckets; factor <= 1: none
    native: tuple[float, int] = (0.0, 0)
    summary: SummaryOptions = field(default_factory=SummaryOptions)
    help: str = ""
    ttl: float = 0.0
    scale: float | None = None
    honor_labels: bool = False
    # extensions
    type: str = ""  # "" follows the event's kind, as statsd_exporter does
    value: str = ""  # "" is the type's default in VALUE_OPS
    tags: dict[str, str] | None = None  # label -> tag; when given, every other tag is dropped
    required: tuple[str, ...] = ()  # tags that must be present, or the output is skipped
    non_empty: tuple[str, ...] = ()  # tags that must be present and non-empty
    when: dict[str, tuple[str, ...]] = field(default_factory=dict)  # tag -> values that select this output
    line: int = 0
    # name and labels contain no capture reference: format once, not per match
    static: bool = False

    @property
    def extended(self) -> bool:
        return bool(self.type or self.value or self.tags is not None or self.required or self.non_empty or self.when)


CompiledPattern: TypeAlias = "re.Pattern[str] | re2._Regexp"


@dataclass
class Rule:
    """One compiled entry of `mappings:`."""

    match: str
    match_type: str  # "glob" or "regex"
    pattern: CompiledPattern  # globs: Python's re (literals and [^.]*); regexes: RE2, as Go
    outputs: list[Output]
    action: str = "map"  # "map" or "drop"
    match_metric_type: str = ""  # "", "counter", "gauge" or "observer"
    line: int = 0


@dataclass
class Reaper:
    """The `reaper:` block; None where the file leaves a setting to the flags or defaults."""

    label: str | None = None
    after: float | None = None
    interval: float | None = None


@dataclass
class MappingConfig:
    rules: list[Rule] = field(default_factory=list)
    observer_type: str = "summary"  # statsd_exporter's default: see docs/migrating.md, Values
    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    native: tuple[float, int] = (0.0, 0)  # no native histograms without a mapping file, as statsd_exporter
    summary: SummaryOptions = field(default_factory=SummaryOptions)
    ttl: float = 0.0
    glob_disable_ordering: bool = False
    path: str = ""
    reaper: Reaper = field(default_factory=Reaper)
    observer_type_given: bool = False  # whether `defaults` names an observer type (statsd_exporter's checks use it)
    extensions_declared: int = 0  # the line of `statsd_bridge_extensions: true`; 0 where the file has none
    # (line, check, message) of what the loader noticed, for the lint: keys statsd_exporter ignores, what it
    # refuses or reads otherwise (a rollback would fail or change), bare-number durations
    notes: list[tuple[int, str, str]] = field(default_factory=list)


def output_type(rule: Rule, output: Output, config: MappingConfig) -> str:
    """The Prometheus type an output produces, or "" when it follows the kind of each line."""
    if output.type:
        return output.type
    if rule.match_metric_type == "counter":
        return "counter"
    if rule.match_metric_type == "gauge":
        return "gauge"
    if rule.match_metric_type == "observer":
        return output.observer_type or config.observer_type
    return ""


class _Located(dict):
    """A YAML mapping that remembers the line of itself and of each key, and each scalar's text."""

    line: int = 0
    key_lines: dict[str, int]
    # key -> the value's text as written, for plain scalars: go-yaml decodes a scalar into a
    # string field as its text (`1.10`, `010`, `yes` stay so), where PyYAML would give 1.1, 8, True
    texts: dict[str, str]


# go-yaml v2's float resolution: `1e-6`, `1E3` and `.5` are numbers there, strings in YAML 1.1
_GO_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")


def _construct_located(loader: yaml.constructor.SafeConstructor, node: yaml.MappingNode) -> _Located:
    # keys are their text as written, as go-yaml decodes them into string-keyed maps
    located = _Located()
    located.line = node.start_mark.line + 1
    located.key_lines, located.texts = {}, {}
    for key_node, value_node in node.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(loader.construct_object(key_node))
        located[key] = loader.construct_object(value_node, deep=True)
        located.key_lines[key] = key_node.start_mark.line + 1
        if isinstance(value_node, yaml.ScalarNode) and located[key] is not None:
            located.texts[key] = value_node.value
    return located


class _Loader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> _Located:
        return _construct_located(self, node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _Loader.construct_mapping)
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _GO_FLOAT, list("-+0123456789."))


# libyaml's parser (PyYAML's C extension, where installed) reads a big file about six times faster than
# PyYAML's pure-Python one, into the same nodes with the same marks, and so, with the same constructors,
# the same values and lines. It reads a few constructs otherwise, where PyYAML's parser refuses the text
# or gives another value: tabs as blanks, tags (`k: !`, `[!!str,x]`), a block scalar's header (`|#`), and
# in `[...]` or `{...}` a `?` in a plain scalar or an explicit key (`[?::]`). A text with any of these, or
# one libyaml refuses, is read by PyYAML's parser, which gives the values and the error messages (with
# their lines) it has always given. tests/unit/test_mapping_yaml.py holds the two to that.
_LIBYAML_UNSURE = ("\t", "!")


class _UnsureError(Exception):
    """libyaml read a construct PyYAML's parser may read otherwise: the text is read again by PyYAML's."""


_FastLoader: type[yaml.CSafeLoader] | None = None
if yaml.__with_libyaml__:

    class _LibyamlLoader(yaml.CSafeLoader):
        def get_single_data(self) -> Any:
            node = self.get_single_node()
            if node is None:
                return None
            if _libyaml_unsure(node):
                raise _UnsureError
            return self.construct_document(node)

        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> _Located:
            return _construct_located(self, node)

    _LibyamlLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _LibyamlLoader.construct_mapping)
    _LibyamlLoader.add_implicit_resolver("tag:yaml.org,2002:float", _GO_FLOAT, list("-+0123456789."))
    _FastLoader = _LibyamlLoader


def _libyaml_unsure(root: yaml.Node) -> bool:
    """Whether the document holds a block scalar, or in a flow collection a plain scalar that is empty or
    has a `?`, `:` or `#` (what an explicit key in a flow collection leaves, or the two scan otherwise)."""
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    seen: set[int] = set()
    while stack:
        node, in_flow = stack.pop()
        if isinstance(node, yaml.ScalarNode):
            # each place a scalar is met (an alias meets it again): its anchor may stand in a flow collection
            if node.style in ("|", ">"):
                return True
            if in_flow and not node.style and (not node.value or any(mark in node.value for mark in "?:#")):
                return True
            continue
        if id(node) in seen or not isinstance(node, yaml.nodes.CollectionNode):
            continue
        seen.add(id(node))
        children = (
            [child for pair in node.value for child in pair] if isinstance(node, yaml.MappingNode) else node.value
        )
        stack += [(child, bool(node.flow_style)) for child in children]
    return False


def _parse(text: str) -> Any:
    """The YAML document, read by libyaml where it reads it as PyYAML's parser does."""
    if _FastLoader is not None and not any(character in text for character in _LIBYAML_UNSURE):
        with contextlib.suppress(Exception):  # whatever libyaml refuses (or raises), PyYAML's parser decides
            return yaml.load(text, Loader=_FastLoader)
    return yaml.load(text, Loader=_Loader)


def _text(entry: _Located, key: str) -> Any:
    """A string field's value as go-yaml gives it: the scalar's text, "" for null, else the value."""
    value = entry.get(key)
    if value is None:
        return ""
    return entry.texts.get(key, value) if isinstance(entry, _Located) else value


def glob_to_regex(glob: str) -> re.Pattern[str]:
    """A glob's `*` matches within one dot-separated component, never across a dot."""
    return re.compile("([^.]*)".join(re.escape(piece) for piece in glob.split("*")) + r"\Z")


class _Checker:
    """Reads one YAML mapping with the file path at hand for error messages."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.notes: list[tuple[int, str, str]] = []  # MappingConfig.notes
        self.patterns: dict[tuple[str, str], CompiledPattern] = {}  # this file's, for _last_patterns

    def note(self, where: _Located | None, key: str, check: str, message: str) -> None:
        line = 0
        if isinstance(where, _Located):
            line = where.key_lines.get(key, where.line) if key else where.line
        self.notes.append((line, check, message))

    def refused(self, where: _Located | None, key: str, message: str) -> None:
        """Something the bridge reads and statsd_exporter refuses: a rollback to it would fail at start-up."""
        self.note(where, key, "statsd_exporter_refuses", f"statsd_exporter refuses this file: {message}")

    def fail(self, where: _Located | None, key: str, message: str) -> MappingError:
        line = None
        if isinstance(where, _Located):
            line = where.key_lines.get(key, where.line) if key else where.line
        return MappingError(message, self.path, line, key)

    def mapping(self, value: Any, where: _Located | None, key: str, allowed: set[str]) -> _Located:
        if value is None:
            value = _Located()
        if not isinstance(value, _Located):  # every YAML mapping is read as one
            raise self.fail(where, key, f"must be a mapping, got {type(value).__name__}")
        for unknown in sorted(set(value) - allowed):
            # statsd_exporter's loader ignores keys it doesn't know (a typo, an `x-anchors:` holder): so do we, aloud
            self.note(
                value if isinstance(value, _Located) else None,
                unknown,
                "unknown_key",
                f"unknown key `{unknown}` ignored (known: {', '.join(sorted(allowed))})",
            )
        return value

    def number(self, value: Any, where: _Located, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(where, key, f"must be a number, got {value!r}")
        return float(value)

    def count(self, value: Any, where: _Located, key: str) -> int:
        """A whole number of 0 or more (statsd_exporter reads these into unsigned integers)."""
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
            raise self.fail(where, key, f"must be a whole number from 0 to {2**32 - 1}, got {value!r}")
        return value

    def buckets(self, value: Any, where: _Located, key: str) -> tuple[float, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail(where, key, "must be a non-empty list of numbers")
        buckets = tuple(self.number(bound, where, key) for bound in value)
        if any(math.isnan(b) for b in buckets) or list(buckets) != sorted(set(buckets)):
            raise self.fail(where, key, f"bucket bounds must be strictly increasing: {value}")
        return tuple(b for b in buckets if b != math.inf)

    def quantiles(self, value: Any, where: _Located, key: str) -> tuple[tuple[float, float], ...]:
        if not isinstance(value, list) or not value:
            raise self.fail(where, key, "must be a non-empty list of {quantile, error}")
        result = []
        for item in value:
            item = self.mapping(item, where, key, {"quantile", "error"})
            quantile = self.number(item.get("quantile"), item, "quantile")
            error = self.number(item.get("error", 0.01), item, "error")
            if not 0.0 <= quantile <= 1.0:
                raise self.fail(item, "quantile", f"must be between 0 and 1, got {quantile}")
            result.append((quantile, error))
        return tuple(result)

    def duration(self, value: Any, where: _Located, key: str) -> float:
        """A duration as statsd_exporter's YAML library reads one: Go's duration text, or a bare number
        of nanoseconds (`ttl: 30` is 30ns there, and so here; the lint says so)."""
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value != 0:
            self.note(
                where,
                key,
                "bare_duration",
                f"`{key}: {value}` is {int(value)} nanoseconds, as in "
                f"statsd_exporter (a bare number is nanoseconds there); for seconds write {value}s",
            )
            return int(value) * 1e-9
        try:
            seconds = parse_duration(value)
        except ValueError as error:
            raise self.fail(where, key, str(error)) from None
        if _PROMETHEUS_ONLY_UNITS.search(str(value)):
            self.refused(
                where, key, f"`{value}` has a unit Go's durations lack (d, w, y); write hours, e.g. {seconds / 3600:g}h"
            )
        return seconds

    def choice(self, value: Any, where: _Located, key: str, choices: tuple[str, ...] | dict[str, str]) -> str:
        if value not in choices:
            raise self.fail(where, key, f"must be one of {', '.join(choices)}, got {value!r}")
        return choices[value] if isinstance(choices, dict) else value

    def summary(self, value: Any, where: _Located, key: str, base: SummaryOptions) -> SummaryOptions:
        block = self.mapping(value, where, key, SUMMARY_KEYS)
        quantiles = base.quantiles
        if block.get("quantiles"):
            quantiles = self.quantiles(block["quantiles"], block, "quantiles")
        max_age = self.duration(block["max_age"], block, "max_age") if block.get("max_age") else base.max_age
        age_buckets = base.age_buckets
        if block.get("age_buckets"):
            age_buckets = int(self.number(block["age_buckets"], block, "age_buckets"))
            if age_buckets < 1:
                raise self.fail(block, "age_buckets", "must be at least 1")
        return SummaryOptions(quantiles, max_age or DEFAULT_MAX_AGE, age_buckets)


def _observer_options(check: _Checker, entry: _Located, base: MappingConfig | None) -> dict[str, Any]:
    """observer_type, buckets and summary options of a mapping or of the defaults block."""
    out: dict[str, Any] = {}
    observer = entry.get("observer_type") or entry.get("timer_type")
    if observer:
        key = "observer_type" if entry.get("observer_type") else "timer_type"
        out["observer_type"] = check.choice(observer, entry, key, OBSERVER_TYPES)
    histogram = entry.get("histogram_options")
    if "histogram_options" in entry:
        histogram = check.mapping(histogram, entry, "histogram_options", HISTOGRAM_KEYS)
    summary_block = entry.get("summary_options")
    if histogram and entry.get("buckets") and histogram.get("buckets"):
        raise check.fail(entry, "buckets", "cannot use buckets both at the top level and in histogram_options")
    if summary_block and entry.get("quantiles") and summary_block.get("quantiles"):
        raise check.fail(entry, "quantiles", "cannot use quantiles both at the top level and in summary_options")
    if base is not None and out.get("observer_type") == "histogram" and summary_block is not None:
        raise check.fail(entry, "summary_options", "cannot use summary_options with observer_type histogram")
    if base is not None and out.get("observer_type") == "summary" and histogram is not None:
        raise check.fail(entry, "histogram_options", "cannot use histogram_options with observer_type summary")
    if base is not None and "observer_type" not in out and base.observer_type_given:
        # statsd_exporter gives the rule the default observer type before it checks the options
        if base.observer_type == "histogram" and summary_block is not None:
            check.refused(
                entry,
                "summary_options",
                "summary_options on a rule whose observer type is the "
                'default, histogram ("cannot use histogram observer and summary options"); the bridge '
                "makes a histogram and ignores them",
            )
        if base.observer_type == "summary" and entry.get("histogram_options") is not None:
            check.refused(
                entry,
                "histogram_options",
                "histogram_options on a rule whose observer type is the "
                'default, summary ("cannot use summary observer and histogram options"); the bridge '
                "makes a summary and ignores them",
            )
    if histogram:
        if histogram.get("native_histogram_bucket_factor") is not None:
            out["native_factor"] = check.number(
                histogram["native_histogram_bucket_factor"], histogram, "native_histogram_bucket_factor"
            )
        if histogram.get("native_histogram_max_buckets") is not None:
            out["native_max_buckets"] = check.count(
                histogram["native_histogram_max_buckets"], histogram, "native_histogram_max_buckets"
            )
    if histogram and histogram.get("buckets"):
        out["buckets"] = check.buckets(histogram["buckets"], histogram, "buckets")
    elif entry.get("buckets"):
        out["buckets"] = check.buckets(entry["buckets"], entry, "buckets")
    base_summary = base.summary if base is not None else SummaryOptions()
    if summary_block is not None:
        out["summary"] = check.summary(summary_block, entry, "summary_options", base_summary)
    if entry.get("quantiles"):
        quantiles = check.quantiles(entry["quantiles"], entry, "quantiles")
        summary = out.get("summary", base_summary)
        out["summary"] = SummaryOptions(quantiles, summary.max_age, summary.age_buckets)
    return out


# Go's regexp is RE2's dialect (\z, \pL, [[:alpha:]], ASCII \w) and RE2 matches in linear time: no
# pattern in a mapping file can make one datagram stall the bridge, as a backtracking `re` could
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # the error comes back as MappingError, not as a line on stderr


# The compiled patterns of the last file loaded, by match type and text. Compiling is most of a big file's
# load after the YAML (Python's `re` compiler, a few thousand globs), so a reload compiles only the rules
# the file before did not have. Each load replaces them, so they hold one file's patterns; compiled
# patterns are immutable, and the old rules and the new can share them.
_last_patterns: dict[tuple[str, str], CompiledPattern] = {}


def _compile_pattern(check: _Checker, entry: _Located, match: str, match_type: str) -> CompiledPattern:
    key = (match_type, match)
    pattern = check.patterns.get(key) or _last_patterns.get(key)
    if pattern is None:
        pattern = _compile_new_pattern(check, entry, match, match_type)
    check.patterns[key] = pattern
    return pattern


def _compile_new_pattern(check: _Checker, entry: _Located, match: str, match_type: str) -> CompiledPattern:
    if match_type == "glob":
        if not all(GLOB_COMPONENT.match(part) for part in match.split(".")):
            raise check.fail(entry, "match", f"invalid glob {match!r}: dot-separated parts of letters, digits, _, -, *")
        return glob_to_regex(match)
    try:
        return re2.compile(match, _RE2_OPTIONS)
    except re2.error as error:
        reason = error.args[0].decode() if error.args and isinstance(error.args[0], bytes) else str(error)
        raise check.fail(entry, "match", f"invalid regex {match!r}: {reason}") from None


def _string_map(check: _Checker, entry: _Located, key: str, label_keys: bool) -> dict[str, str]:
    raw = entry.get(key)
    block = check.mapping(raw, entry, key, set(raw) if isinstance(raw, dict) else set())
    for name, value in block.items():
        if not isinstance(name, str) or (label_keys and not LABEL_NAME.match(name)):
            raise check.fail(block, str(name), "invalid label name (letters, digits, _; no leading digit)")
        if isinstance(value, (dict, list)):
            raise check.fail(block, name, f"must be a string, got {value!r}")
        if key == "labels" and not _REFERENCE_LABEL_NAME.match(name):
            check.refused(
                block,
                name,
                f'label name `{name}` has one character ("invalid label key"; its '
                "label names need two); Prometheus allows it, and so does the bridge",
            )
    return {name: _text(block, name) for name in block}


def _tag_list(check: _Checker, entry: _Located, key: str) -> tuple[str, ...]:
    value = entry.get(key) or []
    if not isinstance(value, list) or not all(isinstance(tag, str) and tag for tag in value):
        raise check.fail(entry, key, "must be a list of tag names")
    return tuple(value)


def _when(check: _Checker, entry: _Located) -> dict[str, tuple[str, ...]]:
    raw = entry.get("when")
    block = check.mapping(raw, entry, "when", set(raw) if isinstance(raw, dict) else set())
    when = {}
    for tag, wanted in block.items():
        values = wanted if isinstance(wanted, list) else [wanted]
        if not values or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
            raise check.fail(block, str(tag), "must be a tag value or a list of them")
        when[str(tag)] = tuple(str(v) for v in values)
    return when


def _native_options(options: dict[str, Any], config: MappingConfig) -> tuple[float, int]:
    """A mapping's (factor, max buckets): each the defaults' unless above 0, as statsd_exporter's registry."""
    factor = options.get("native_factor", 0.0)
    max_buckets = options.get("native_max_buckets", 0)
    return (factor if factor > 0 else config.native[0], max_buckets if max_buckets > 0 else config.native[1])


def _compile_output(check: _Checker, entry: _Located, config: MappingConfig, needs_name: bool) -> Output:
    name = _text(entry, "name")
    if not isinstance(name, str):
        raise check.fail(entry, "name", f"must be a string, got {name!r}")
    if not isinstance(_text(entry, "help"), str):
        raise check.fail(entry, "help", f"must be a string, got {entry['help']!r}")
    if needs_name:
        if not name:
            raise check.fail(entry, "name" if "name" in entry else "", "a mapping needs a `name` (or `action: drop`)")
        if not NAME_TEMPLATE.match(name):
            raise check.fail(entry, "name", f"{name!r} is not a valid metric name (letters, digits, _, $n)")
    elif not name:
        check.refused(
            entry,
            "",
            "a mapping without `name`, a drop rule's too (\"metric mapping didn't set a metric "
            'name"); give it one, e.g. `name: dropped`',
        )
    elif not NAME_TEMPLATE.match(name):
        check.refused(entry, "name", f"{name!r} is not a metric name, a drop rule's neither")
    options = _observer_options(check, entry, config)
    scale = entry.get("scale")
    output = Output(
        name=name,
        labels=_string_map(check, entry, "labels", label_keys=True),
        observer_type=options.get("observer_type", ""),
        buckets=options.get("buckets", config.buckets),
        native=_native_options(options, config),
        summary=options.get("summary", config.summary),
        help=_text(entry, "help"),
        ttl=check.duration(entry["ttl"], entry, "ttl") if entry.get("ttl") is not None else config.ttl,
        scale=None if scale is None else check.number(scale, entry, "scale"),
        honor_labels=bool(entry.get("honor_labels", False)),
        line=entry.line,
    )
    if entry.get("type"):
        output.type = check.choice(entry["type"], entry, "type", tuple(VALUE_OPS))
        if output.type in OBSERVER_TYPES:
            if output.observer_type and output.observer_type != output.type:
                raise check.fail(entry, "observer_type", f"contradicts type: {output.type}")
            output.observer_type = output.type
    if entry.get("value"):
        if not output.type:
            raise check.fail(entry, "value", "needs a `type` (counter, gauge, histogram or summary) beside it")
        output.value = check.choice(entry["value"], entry, "value", VALUE_OPS[output.type])
    if "tags" in entry:
        output.tags = _string_map(check, entry, "tags", label_keys=True)
    output.required = _tag_list(check, entry, "required")
    output.non_empty = _tag_list(check, entry, "non_empty")
    output.when = _when(check, entry)
    output.static = "$" not in output.name and not any("$" in v for v in output.labels.values())
    return output


def _compile_rule(check: _Checker, entry: Any, config: MappingConfig, match_type_default: str, index: int) -> Rule:
    entry = check.mapping(entry, None, f"mappings[{index}]", MAPPING_KEYS)
    match = _text(entry, "match")
    match_type = check.choice(entry.get("match_type") or match_type_default, entry, "match_type", ("glob", "regex"))
    if not isinstance(match, str) or (not match and match_type == "glob"):
        raise check.fail(entry, "match" if "match" in entry else "", "every glob mapping needs a non-empty `match`")
    if match_type == "glob" and not _REFERENCE_GLOB.match(match) and all(map(GLOB_COMPONENT.match, match.split("."))):
        check.refused(
            entry,
            "match",
            f'glob `{match}` ("invalid match"): its globs take `*` only as a whole '
            "part, no `:`, and no first part starting with a digit or `-`",
        )
    action = check.choice(entry.get("action") or "map", entry, "action", ("map", "drop"))
    for key in sorted(EXTENSION_KEYS & set(entry)):
        check.note(
            entry,
            key,
            "statsd_exporter_extension",
            f"statsd_exporter ignores `{key}`, a mapping extension "
            f"of the bridge's: rolled back, this rule {EXTENSION_EFFECTS[key]}",
        )
    if "outputs" in entry:
        check.note(
            entry,
            "outputs",
            "statsd_exporter_extension",
            "statsd_exporter refuses this file: `outputs` is a "
            "mapping extension of the bridge's, and the rule has no `name` of its own (\"metric mapping "
            "didn't set a metric name\")",
        )
        for key in sorted(set(entry) - MATCH_KEYS):
            raise check.fail(entry, key, "goes in each of `outputs`, not beside it")
        raw = entry["outputs"]
        if action == "drop" or not isinstance(raw, list) or not raw:
            raise check.fail(entry, "outputs", "must be a non-empty list of outputs (and the action map)")
        outputs = [
            _compile_output(check, check.mapping(item, entry, "outputs", OUTPUT_KEYS), config, needs_name=True)
            for item in raw
        ]
    else:
        outputs = [_compile_output(check, entry, config, needs_name=action == "map")]
    return Rule(
        match=match,
        match_type=match_type,
        pattern=_compile_pattern(check, entry, match, match_type),
        outputs=outputs,
        action=action,
        match_metric_type=(
            check.choice(entry["match_metric_type"], entry, "match_metric_type", METRIC_TYPES)
            if entry.get("match_metric_type")
            else ""
        ),
        line=entry.line,
    )


def _compile_reaper(check: _Checker, top: _Located) -> Reaper:
    block = check.mapping(top.get("reaper"), top, "reaper", REAPER_KEYS)
    reaper = Reaper()
    if block.get("label") is not None:
        if not isinstance(block["label"], str) or not LABEL_NAME.match(block["label"]):
            raise check.fail(block, "label", f"{block['label']!r} is not a label name")
        reaper.label = block["label"]
    if block.get("after") is not None:
        reaper.after = check.duration(block["after"], block, "after")
    if block.get("interval") is not None:
        reaper.interval = check.duration(block["interval"], block, "interval")
    return reaper


def load_mapping(text: str, path: str = "<mapping>") -> MappingConfig:
    """Compile a mapping file's text. Raises MappingError naming file, line and key."""
    check = _Checker(path)
    try:
        document = _parse(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise MappingError(f"not valid YAML: {getattr(error, 'problem', None) or error}", path, line) from None
    top = check.mapping(document, None, "", TOP_KEYS)
    config = MappingConfig(path=path)
    config.reaper = _compile_reaper(check, top)
    if top.get("reaper") is not None:
        check.note(
            top,
            "reaper",
            "statsd_exporter_extension",
            "statsd_exporter ignores `reaper`, a mapping "
            "extension of the bridge's: rolled back, the series of silent sources stay",
        )
    if top.get("statsd_bridge_extensions") is not None:
        if top["statsd_bridge_extensions"] is not True:
            raise check.fail(top, "statsd_bridge_extensions", "must be true (the file means to use the extensions)")
        config.extensions_declared = top.key_lines["statsd_bridge_extensions"]

    defaults = check.mapping(top.get("defaults"), top, "defaults", DEFAULTS_KEYS)
    options = _observer_options(check, defaults, None)
    config.observer_type = options.get("observer_type", "summary")
    config.observer_type_given = "observer_type" in options
    config.buckets = options.get("buckets", DEFAULT_BUCKETS)
    config.native = (
        options.get("native_factor") or DEFAULT_NATIVE_FACTOR,
        options.get("native_max_buckets") or DEFAULT_NATIVE_MAX_BUCKETS,
    )
    config.summary = options.get("summary", SummaryOptions())
    if defaults.get("ttl") is not None:
        config.ttl = check.duration(defaults["ttl"], defaults, "ttl")
    config.glob_disable_ordering = bool(defaults.get("glob_disable_ordering", False))
    match_type = check.choice(defaults.get("match_type") or "glob", defaults, "match_type", ("glob", "regex"))

    mappings = top.get("mappings") or []
    if not isinstance(mappings, list):
        raise check.fail(top, "mappings", "must be a list")
    config.rules = [_compile_rule(check, entry, config, match_type, i) for i, entry in enumerate(mappings)]
    config.notes = check.notes
    _last_patterns.clear()
    _last_patterns.update(check.patterns)
    return config


def load_mapping_file(path: str) -> MappingConfig:
    return load_mapping(read_mapping_file(path), path)


def read_mapping_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as error:
        raise MappingError(f"cannot read the file: {error.strerror or error}", path) from None
    except UnicodeDecodeError as error:
        raise MappingError(f"cannot read the file: not UTF-8 ({error.reason} at byte {error.start})", path) from None
