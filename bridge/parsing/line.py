"""StatsD / DogStatsD line protocol: bytes in, samples out.

Knows nothing of Prometheus: names and tag keys come out as the client sent
them. Semantics follow prometheus/statsd_exporter's pkg/line unless docs/migrating.md
says otherwise.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from bridge.reasons import COUNTER, GAUGE, OBSERVER, SET

# StatsD type code -> (kind, what the value is divided by). Timers arrive in milliseconds and
# Prometheus presumes seconds; statsd_exporter divides by 1000, and so do we, to the last bit.
TYPE_CODES = {
    "c": (COUNTER, 1.0),
    "g": (GAUGE, 1.0),
    "ms": (OBSERVER, 1000.0),
    "h": (OBSERVER, 1.0),
    "d": (OBSERVER, 1.0),
}
MULTI_VALUE_TYPES = frozenset(("ms", "h", "d"))
# Components of one sample, value and type included, as statsd_exporter 0.29 and later allow
MAX_COMPONENTS = 5

# Observers with a sample rate repeat 1/rate times; a hostile rate must not
# turn one line into a billion observations, so the weight is carried as a
# number instead of repeated events, and capped.
MAX_OBSERVER_WEIGHT = 1_000_000


class Sample(NamedTuple):
    name: str
    kind: str  # COUNTER, GAUGE, OBSERVER or SET
    value: float
    relative: bool  # gauges only: "+3" / "-3" add to the current value
    weight: int  # observers only: how many observations this sample stands for (statsd_exporter's events)
    tags: dict[str, str]
    divisor: float = 1.0  # what the sent value was divided by: the sample rate of a counter, 1000 for a timer
    member: str = ""  # a set's value, any text (its `value` is 0)


class Dialects(NamedTuple):
    """Which tag dialects are read (statsd_exporter's --[no-]statsd.parse-*-tags); a dialect off is plain text."""

    dogstatsd: bool = True
    influxdb: bool = True
    librato: bool = True
    signalfx: bool = True


ALL_DIALECTS = Dialects()


class LineError(ValueError):
    """A line (or one sample of it) is rejected; `reason` is a stable label value."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class TagStats:
    """Counts of tags seen and tags skipped, kept by the caller across lines."""

    __slots__ = ("errors", "rate_errors", "received")

    def __init__(self) -> None:
        self.errors = 0
        self.received = 0
        self.rate_errors = 0  # unreadable sample rates, counted while their sample is kept


def parse_number(text: str) -> float:
    """Parse a StatsD value as Go's strconv.ParseFloat would, without its range errors.

    Both take `1_000` (underscores between digits); Go also takes hexadecimal floats with a
    `p` exponent (`0x1p-3`), which Python reads with float.fromhex; neither takes blanks. Python's
    float() also reads other scripts' decimal digits (U+0663, an Arabic-Indic three; U+FF13, a
    fullwidth three), which Go refuses: ASCII only.
    """
    if not text or not text.isascii() or text[0].isspace() or text[-1].isspace():
        raise ValueError(text)
    if "x" in text or "X" in text:
        if "p" not in text.lower() or "_" in text:
            raise ValueError(text)  # Go: a hexadecimal mantissa requires a 'p' exponent
        return float.fromhex(text)
    value = float(text)
    if math.isinf(value) and "inf" not in text.lower():
        raise ValueError(f"{text[:20]}... is out of range")
    return value


def is_relative(value_text: bytes) -> bool:
    """Whether a gauge's value changes it rather than sets it: a leading sign ("+3", "-3"), as
    statsd_exporter reads it. Bytes, as the ingest's cached path has the value."""
    return value_text[:1] in (b"+", b"-")


def _parse_tag(tag: str, separator: str, tags: dict[str, str], stats: TagStats) -> None:
    key, found, value = tag.partition(separator)
    if not found or not key or not value:
        stats.errors += 1
        return
    tags[key] = value


def _parse_tag_list(text: str, separator: str, tags: dict[str, str], stats: TagStats, hashes: bool) -> None:
    for tag in text.split(","):
        if hashes and tag.startswith("#"):
            tag = tag[1:]
        _parse_tag(tag, separator, tags, stats)


def split_name_tags(
    name: str, tags: dict[str, str], stats: TagStats, dialects: Dialects = ALL_DIALECTS
) -> tuple[str, str]:
    """Strip name-side tags (SignalFX, Librato, InfluxDB) into `tags`; return (name, dialect)."""
    if dialects.signalfx:
        start, end = name.find("["), name.find("]")
        if start != -1 and end != -1 and start < end:
            _parse_tag_list(name[start + 1 : end], "=", tags, stats, hashes=False)
            return name[:start] + name[end + 1 :], "signalfx"
        if (start != -1) != (end != -1) or start > end:
            stats.errors += 1  # a lone bracket: keep the name as sent, it escapes to "_"
            return name, ""
    for i, char in enumerate(name):
        if char == "#" and dialects.librato:
            _parse_tag_list(name[i + 1 :], "=", tags, stats, hashes=False)
            return name[:i], "librato"
        if char == "," and dialects.influxdb:
            _parse_tag_list(name[i + 1 :], "=", tags, stats, hashes=False)
            return name[:i], "influxdb"
    return name, ""


def _apply_extension(field: str, tags: dict[str, str], stats: TagStats, dialects: Dialects) -> float | None:
    """Handle one `|...` field after the type; return a sample rate if it is one."""
    first = field[0]
    if first == "@":
        try:
            rate = parse_number(field[1:])
        except ValueError:
            # statsd_exporter counts the error and keeps the sample, unscaled
            stats.rate_errors += 1
            return 1.0
        return rate or 1.0  # as statsd_exporter: @0 means unsampled; other ranges are judged per kind
    if first == "#":
        if dialects.dogstatsd:
            _parse_tag_list(field[1:], ":", tags, stats, hashes=True)
        return None
    if first == "T":
        if not field[1:].isdigit():
            raise LineError("malformed_timestamp", field)
        return None  # a client timestamp is not forwarded: Prometheus stamps at scrape
    if field.startswith("c:") and len(field) > 2:
        tags["container_id"] = field[2:]  # DogStatsD 1.2 origin: a label, as statsd_exporter 0.29 and later
        return None
    if field.startswith(("e:", "card:")):
        return None  # DogStatsD external data and cardinality hints: metadata, not labels
    raise LineError("invalid_sample_factor", f"unknown field {field[:40]!r}")


def _parse_member(name: str, fields: list[str], tags: dict[str, str], stats: TagStats, dialects: Dialects) -> Sample:
    """A set's sample (`member|s|...`), read where sets are asked for: its value is any text but none."""
    if not fields[0]:
        raise LineError("malformed_value", "a set's member is empty")
    if not all(fields[2:]):
        raise LineError("malformed_component", "empty field")
    for field in fields[2:]:
        _apply_extension(field, tags, stats, dialects)  # a rate changes nothing: a member is seen or not
    if tags:
        stats.received += 1
    return Sample(name, SET, 0.0, False, 1, tags, member=fields[0])


def _parse_sample(
    name: str, text: str, tags: dict[str, str], stats: TagStats, dialects: Dialects, sets: bool = False
) -> Sample:
    """One sample (`value|type|@rate|#tags|...`), checked in statsd_exporter's order, so that a sample
    with several faults is rejected for the one statsd_exporter names: the parts, the value, empty
    fields, the fields in order, then the type. A set is refused (set_unsupported) unless `sets`."""
    fields = text.split("|")
    if len(fields) < 2 or len(fields) - sum(field[:1] == "T" for field in fields[2:]) > MAX_COMPONENTS:
        raise LineError("malformed_component", f"a sample has from 2 to {MAX_COMPONENTS} |-separated components")
    value_text, type_code = fields[0], fields[1]
    if sets and type_code == "s":
        return _parse_member(name, fields, tags, stats, dialects)
    try:
        value = parse_number(value_text)
    except ValueError:
        # a set's members are mostly not numbers: name what is wrong with the line (statsd_exporter
        # counts malformed_value, with the same count of everything else)
        raise LineError("set_unsupported" if type_code == "s" else "malformed_value", value_text[:40]) from None
    if not all(fields[2:]):
        raise LineError("malformed_component", "empty field")
    rates = [rate for rate in (_apply_extension(field, tags, stats, dialects) for field in fields[2:]) if rate]
    if tags:
        stats.received += 1  # per sample read this far, as statsd_exporter counts tags_total
    if type_code == "s":
        raise LineError("set_unsupported", "StatsD sets have no Prometheus meaning")
    if type_code not in TYPE_CODES:
        raise LineError("illegal_event", f"unknown type {type_code[:20]!r}")
    kind, divisor = TYPE_CODES[type_code]
    weight = 1
    if kind == COUNTER:
        for rate in rates:  # each rate divides, as statsd_exporter does: @2 halves the increment
            value /= rate
        divisor = rates[0] if len(rates) == 1 else 1.0
        if not math.isfinite(value):
            raise LineError("non_finite_counter", value_text[:40])
        # a negative increment parses; the ingest refuses it as an event error, as statsd_exporter does
    elif kind == OBSERVER:
        if not math.isfinite(value):
            raise LineError("non_finite_observation", value_text[:40])
        rate = rates[-1] if rates else 1.0
        if not 0.0 < rate <= 1.0:
            # statsd_exporter makes int(1/rate) observations of it: none at all, silently
            raise LineError("invalid_sample_factor", f"rate {rate} of an observer is not in (0, 1]")
        value /= divisor
        weight = min(int(1.0 / rate), MAX_OBSERVER_WEIGHT)
    relative = kind == GAUGE and is_relative(value_text.encode())
    return Sample(name, kind, value, relative, weight, tags, divisor)


def _is_multi_metric(rest: str) -> bool:
    """Whether `rest` is the old multi-metric form 1|c:2|g (as statsd_exporter splits it): every piece
    has a `|`. `1|c|c:abc123` doesn't ("abc123"): that colon is a DogStatsD container id's."""
    return all("|" in piece for piece in rest.split(":"))


def _unsupported(line: str) -> str:
    """The reason for a DogStatsD event or service check, which have no Prometheus form; "" otherwise."""
    if line.startswith("_e{"):
        return "dogstatsd_event_unsupported"
    if line.startswith("_sc|"):
        return "service_check_unsupported"
    return ""


def parse_line(
    line: str, stats: TagStats, dialects: Dialects = ALL_DIALECTS, sets: bool = False
) -> tuple[list[Sample], list[LineError], str]:
    """Parse one line into its samples, the errors of its rejected samples, and the tag dialect. Sets
    (`|s`) are read where `sets` is asked for, and refused as statsd_exporter does otherwise.

    A LineError raised here rejects the line before any sample is read: statsd_exporter counts no
    sample for it. Each error returned alongside the samples rejects one sample of the line, which
    statsd_exporter counts as a sample, as it does each one returned.
    """
    unsupported = _unsupported(line)
    name_part, found, rest = line.partition(":")
    if not found or not name_part:
        raise LineError(unsupported or "malformed_line", line[:80])
    tags: dict[str, str] = {}
    # an event's or service check's head is no name: its `,` is not an InfluxDB tag
    name, dialect = (name_part, "") if unsupported else split_name_tags(name_part, tags, stats, dialects)
    dogstatsd = "|#" in rest
    if dogstatsd:
        if tags:
            raise LineError(unsupported or "mixed_tagging_styles", line[:80])
        dialect = "dogstatsd" if dialects.dogstatsd else ""

    head, bar, suffix_text = rest.partition("|")
    if not bar:
        raise LineError(unsupported or "not_enough_parts_after_colon", line[:80])
    if ":" in head:
        # DogStatsD extended aggregation: name:1:2:3|ms, each value with the one suffix
        if suffix_text.split("|", 1)[0] not in MULTI_VALUE_TYPES:
            raise LineError(unsupported or "invalid_extended_aggregate_type", line[:80])
        pieces = [f"{value}|{suffix_text}" for value in head.split(":")]
    elif dogstatsd or ":" not in suffix_text or not _is_multi_metric(rest):
        # a colon after the type that doesn't start another value|type is a DogStatsD field's (|c:<id>)
        pieces = [rest]
    else:
        pieces = rest.split(":")  # the old StatsD multi-metric form a:1|c:2|g, each with its own suffix
    if unsupported:
        return [], [LineError(unsupported, line[:80]) for _ in pieces], ""

    parsed: list[Sample] = []
    errors: list[LineError] = []
    for piece in pieces:
        try:
            if not name:
                raise LineError("malformed_line", "empty metric name")
            parsed.append(_parse_sample(name, piece, tags, stats, dialects, sets))
        except LineError as error:
            errors.append(error)
    return parsed, errors, dialect
