"""The values of a mapping file checked one by one, each problem a MappingError at its line and key, and
what statsd_exporter would refuse or read otherwise noted for the lint.
"""

from __future__ import annotations

import math
import re
from typing import Any

from bridge.durations import parse_duration
from bridge.mapping.schema import (
    HISTOGRAM_KEYS,
    OBSERVER_TYPE_KEYS,
    OBSERVER_TYPES,
    PROMETHEUS_ONLY_UNITS,
    SUMMARY_KEYS,
    CompiledPattern,
    MappingConfig,
    MappingError,
)
from bridge.mapping.yaml_reading import Located
from bridge.series.names import underscored
from bridge.series.quantiles import DEFAULT_MAX_AGE, SummaryOptions

# the underscores form of a name template's text around its `$n` / `${n}` references
_TEMPLATE_INVALID = re.compile(r"[^a-zA-Z0-9_:${}]")


class Checker:
    """Reads one YAML mapping with the file path at hand for error messages."""

    def __init__(self, path: str, utf8_names: bool = False) -> None:
        self.path = path
        self.utf8_names = utf8_names  # --statsd.utf8-names: names and label names may hold any UTF-8
        self.notes: list[tuple[int, str, str]] = []  # MappingConfig.notes
        self.extensions: list[tuple[int, str]] = []  # MappingConfig.extensions
        self.patterns: dict[tuple[str, str], CompiledPattern] = {}  # this file's, for _last_patterns

    def note(self, where: Located | None, key: str, check: str, message: str) -> None:
        line = 0
        if isinstance(where, Located):
            line = where.key_lines.get(key, where.line) if key else where.line
        self.notes.append((line, check, message))

    def extension(self, where: Located, key: str, message: str) -> None:
        """A mapping extension of the bridge's in use, and what statsd_exporter makes of it."""
        self.note(where, key, "statsd_exporter_extension", message)
        self.extensions.append((self.notes[-1][0], key))

    def rewritten(self, where: Located, key: str, name: str) -> None:
        """A name kept as written under --statsd.utf8-names that statsd_exporter would rewrite."""
        # in a template, the capture references stay: `x.$1` is `x_$1`
        read_as = underscored(name) if "$" not in name else _TEMPLATE_INVALID.sub("_", name)
        self.note(where, key, "utf8_name", f"`{name}` is served as written; a Prometheus 2 scraper reads `{read_as}`")

    def refused(self, where: Located | None, key: str, message: str) -> None:
        """Something the bridge reads and statsd_exporter refuses: a rollback to it would fail at start-up."""
        self.note(where, key, "statsd_exporter_refuses", f"statsd_exporter refuses this file: {message}")

    def fail(self, where: Located | None, key: str, message: str) -> MappingError:
        line = None
        if isinstance(where, Located):
            line = where.key_lines.get(key, where.line) if key else where.line
        return MappingError(message, self.path, line, key)

    def mapping(self, value: Any, where: Located | None, key: str, allowed: set[str]) -> Located:
        if value is None:
            value = Located()
        if not isinstance(value, Located):  # every YAML mapping is read as one
            raise self.fail(where, key, f"must be a mapping, got {type(value).__name__}")
        for unknown in sorted(set(value) - allowed):
            # statsd_exporter's loader ignores keys it doesn't know (a typo, an `x-anchors:` holder): so do we, aloud
            self.note(
                value if isinstance(value, Located) else None,
                unknown,
                "unknown_key",
                f"unknown key `{unknown}` ignored (known: {', '.join(sorted(allowed))})",
            )
        return value

    def number(self, value: Any, where: Located, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(where, key, f"must be a number, got {value!r}")
        return float(value)

    def count(self, value: Any, where: Located, key: str) -> int:
        """A whole number of 0 or more (statsd_exporter reads these into unsigned integers)."""
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
            raise self.fail(where, key, f"must be a whole number from 0 to {2**32 - 1}, got {value!r}")
        return value

    def buckets(self, value: Any, where: Located, key: str) -> tuple[float, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail(where, key, "must be a non-empty list of numbers")
        buckets = tuple(self.number(bound, where, key) for bound in value)
        if any(math.isnan(b) for b in buckets) or list(buckets) != sorted(set(buckets)):
            raise self.fail(where, key, f"bucket bounds must be strictly increasing: {value}")
        return tuple(b for b in buckets if b != math.inf)

    def quantiles(self, value: Any, where: Located, key: str) -> tuple[tuple[float, float], ...]:
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

    def duration(self, value: Any, where: Located, key: str) -> float:
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
        if PROMETHEUS_ONLY_UNITS.search(str(value)):
            self.refused(
                where, key, f"`{value}` has a unit Go's durations lack (d, w, y); write hours, e.g. {seconds / 3600:g}h"
            )
        return seconds

    def set_window(self, where: Located, default: float) -> float:
        """A `set_window` (in `defaults` or a rule), or `default` where none is given; a bridge extension."""
        if where.get("set_window") is None:
            return default
        window = self.duration(where["set_window"], where, "set_window")
        if window <= 0:
            raise self.fail(where, "set_window", f"must be a positive duration, got {where['set_window']!r}")
        self.extension(
            where,
            "set_window",
            "statsd_exporter ignores `set_window`, a mapping extension of the bridge's: rolled back, "
            "every set line (|s) is refused as set_unsupported",
        )
        return window

    def choice(self, value: Any, where: Located, key: str, choices: tuple[str, ...] | dict[str, str]) -> str:
        if value not in choices:
            raise self.fail(where, key, f"must be one of {', '.join(choices)}, got {value!r}")
        return choices[value] if isinstance(choices, dict) else value

    def summary(self, value: Any, where: Located, key: str, base: SummaryOptions) -> SummaryOptions:
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


def observer_options(check: Checker, entry: Located, base: MappingConfig | None) -> dict[str, Any]:
    """observer_type, buckets and summary options of a mapping or of the defaults block."""
    out: dict[str, Any] = {}
    key = next((key for key in OBSERVER_TYPE_KEYS if entry.get(key)), "")
    if key:
        out["observer_type"] = check.choice(entry[key], entry, key, OBSERVER_TYPES)
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
