"""A mapping file's vocabulary: its keys, its defaults, what statsd_exporter's loader accepts, and the
compiled rules the loader makes of it (bridge/mapping/loader.py reads and checks; this says what).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TypeAlias

import re2

from bridge.series.quantiles import SummaryOptions

DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# statsd_exporter's native histogram defaults once a mapping file is loaded (none without one)
DEFAULT_NATIVE_FACTOR = 1.1
DEFAULT_NATIVE_MAX_BUCKETS = 256

# statsd_exporter's own names for the event kinds, "timer" being the old spelling.
METRIC_TYPES = {"counter": "counter", "gauge": "gauge", "observer": "observer", "timer": "observer"}
OBSERVER_TYPES = ("histogram", "summary")
# The keys that name an observer type, the first winning where both are given ("timer" the old spelling)
OBSERVER_TYPE_KEYS = ("observer_type", "timer_type")

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# A metric name template, as statsd_exporter checks it: letters, digits, _ and $n / ${n} (no colon,
# no named group; labels may use those)
NAME_TEMPLATE = re.compile(r"^([a-zA-Z_]|\$\{?\d+\}?)([a-zA-Z0-9_]|\$\{?\d+\}?)*$")
GLOB_COMPONENT = re.compile(r"^[a-zA-Z0-9_*:-]+$")

# Units Prometheus' durations have and Go's time.ParseDuration (statsd_exporter's mapping files) has not
PROMETHEUS_ONLY_UNITS = re.compile(r"\d[dwy]")
# statsd_exporter's glob syntax (mapper.go's metricLineRE): `*` only as a whole part, no `:`, a first part
# not starting with a digit or `-`, later parts not starting with `-`
EXPORTER_GLOB = re.compile(r"^(\*|[a-zA-Z_][a-zA-Z0-9_-]*)(\.\*|\.[a-zA-Z0-9_][a-zA-Z0-9_-]*)*$")
# statsd_exporter's label names (mapper.go's labelNameRE) need two characters
EXPORTER_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]+$")
# What statsd_exporter does with a rule whose keys it does not know, for the rollback findings
EXTENSION_EFFECTS = {
    "type": "takes each line's own type",
    "value": "applies each value as its type does",
    "tags": "turns every tag into a label",
    "required": "takes lines without those tags too",
    "non_empty": "takes lines with those tags empty too",
    "when": "takes lines with any value of those tags",
}
# The extensions for which statsd_exporter refuses the whole file; it ignores the others (set_window too, in a
# rule or in `defaults`: rolled back, every set line is refused as set_unsupported)
REFUSED_EXTENSIONS = ("outputs",)

# Keys of one output: statsd_exporter's, then our extensions (docs/mapping.md: "Extensions").
OUTPUT_KEYS = {
    *OBSERVER_TYPE_KEYS, "name", "labels", "buckets", "quantiles", "histogram_options",
    "summary_options", "help", "ttl", "scale", "honor_labels",
    "type", "value", "tags", "required", "non_empty", "when", "set_window",
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
    *OBSERVER_TYPE_KEYS, "buckets", "quantiles", "match_type", "glob_disable_ordering", "ttl",
    "summary_options", "histogram_options", "set_window",
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
    # seconds: StatsD set lines (|s) make a gauge of their distinct values over this sliding window; 0: they
    # are refused (set_unsupported), as statsd_exporter refuses every one
    set_window: float = 0.0
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
    set_window: float = 0.0  # `defaults: set_window`, each rule's unless it has its own
    glob_disable_ordering: bool = False
    path: str = ""
    reaper: Reaper = field(default_factory=Reaper)
    observer_type_given: bool = False  # whether `defaults` names an observer type (statsd_exporter's checks use it)
    extensions_declared: int = 0  # the line of `statsd_bridge_extensions: true`; 0 where the file has none
    # (line, check, message) of what the loader noticed, for the lint: keys statsd_exporter ignores, what it
    # refuses or reads otherwise (a rollback would fail or change), bare-number durations
    notes: list[tuple[int, str, str]] = field(default_factory=list)
    extensions: list[tuple[int, str]] = field(default_factory=list)  # (line, key) of each extension in use
    # --statsd.utf8-names: names and label names kept as written (any UTF-8), not rewritten to [a-zA-Z0-9_]
    utf8_names: bool = False
