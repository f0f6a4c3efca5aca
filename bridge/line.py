"""StatsD / DogStatsD line protocol: bytes in, samples out.

Knows nothing of Prometheus: names and tag keys come out as the client sent
them. Semantics follow prometheus/statsd_exporter's pkg/line unless the README
says otherwise.
"""

from __future__ import annotations

import math
from typing import NamedTuple

COUNTER = "counter"
GAUGE = "gauge"
OBSERVER = "observer"

# StatsD type code -> (kind, factor applied to the value). Timers arrive in
# milliseconds and Prometheus presumes seconds.
TYPE_CODES = {
    "c": (COUNTER, 1.0),
    "g": (GAUGE, 1.0),
    "ms": (OBSERVER, 0.001),
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
    kind: str  # COUNTER, GAUGE or OBSERVER
    value: float
    relative: bool  # gauges only: "+3" / "-3" add to the current value
    weight: int  # observers only: how many observations this sample stands for
    tags: dict[str, str]
    factor: float = 1.0  # what the sent value was multiplied by: 1/rate for counters, 1/1000 for timers


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
    `p` exponent (`0x1p-3`), which Python reads with float.fromhex; neither takes blanks.
    """
    if not text or text[0].isspace() or text[-1].isspace():
        raise ValueError(text)
    if "x" in text or "X" in text:
        if "p" not in text.lower() or "_" in text:
            raise ValueError(text)  # Go: a hexadecimal mantissa requires a 'p' exponent
        return float.fromhex(text)
    value = float(text)
    if math.isinf(value) and "inf" not in text.lower():
        raise ValueError(f"{text[:20]}... is out of range")
    return value


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


class _Suffix(NamedTuple):
    type_code: str
    kind: str
    factor: float
    rate: float


def _parse_suffix(fields: list[str], tags: dict[str, str], stats: TagStats, dialects: Dialects) -> _Suffix:
    """The `|type|@rate|#tags|...` part of a sample, shared by all values of a multi-value line."""
    type_code = fields[0]
    if type_code == "s":
        raise LineError("set_unsupported", "StatsD sets have no Prometheus meaning")
    if type_code not in TYPE_CODES:
        raise LineError("illegal_event", f"unknown type {type_code[:20]!r}")
    kind, factor = TYPE_CODES[type_code]
    rate = 1.0
    if len(fields) + 1 - sum(field[:1] == "T" for field in fields) > MAX_COMPONENTS:
        raise LineError("malformed_component", f"more than {MAX_COMPONENTS} |-separated components")
    for field in fields[1:]:
        if not field:
            raise LineError("malformed_component", "empty field")
        found = _apply_extension(field, tags, stats, dialects)
        if found is not None:
            rate = found
    return _Suffix(type_code, kind, factor, rate)


def _make_sample(name: str, value_text: str, suffix: _Suffix, tags: dict[str, str]) -> Sample:
    try:
        value = parse_number(value_text)
    except ValueError:
        raise LineError("malformed_value", value_text[:40]) from None
    kind = suffix.kind
    weight = 1
    factor = 1.0
    if kind == COUNTER:
        factor = 1.0 / suffix.rate  # any rate, as statsd_exporter: @2 halves the increment
        if not math.isfinite(value * factor):
            raise LineError("non_finite_counter", value_text[:40])
        # a negative increment parses; the ingest refuses it as an event error, as statsd_exporter does
    elif kind == OBSERVER:
        if not math.isfinite(value):
            raise LineError("non_finite_observation", value_text[:40])
        if not 0.0 < suffix.rate <= 1.0:
            # statsd_exporter makes int(1/rate) observations of it: none at all, silently
            raise LineError("invalid_sample_factor", f"rate {suffix.rate} of an observer is not in (0, 1]")
        factor = suffix.factor
        weight = min(int(1.0 / suffix.rate), MAX_OBSERVER_WEIGHT)
    relative = kind == GAUGE and value_text[0] in "+-"
    return Sample(name, kind, value * factor, relative, weight, tags, factor)


def _is_multi_metric(rest: str) -> bool:
    """Whether `rest` is the old multi-metric form 1|c:2|g (as statsd_exporter splits it): every piece
    has a `|`. `1|c|c:abc123` doesn't ("abc123"): that colon is a DogStatsD container id's."""
    return all("|" in piece for piece in rest.split(":"))


def parse_line(
    line: str, stats: TagStats, dialects: Dialects = ALL_DIALECTS
) -> tuple[list[Sample], list[LineError], str]:
    """Parse one line into its samples, the errors of its rejected samples, and the tag dialect.

    A LineError raised here rejects the whole line; errors returned alongside
    samples reject only one value of a multi-value line.
    """
    if line.startswith(("_e{", "_sc|")):
        # DogStatsD events and service checks: no Prometheus sample to make of them
        raise LineError("dogstatsd_event_unsupported" if line[1] == "e" else "service_check_unsupported", line[:80])
    name_part, found, rest = line.partition(":")
    if not found or not name_part:
        raise LineError("malformed_line", line[:80])
    tags: dict[str, str] = {}
    name, dialect = split_name_tags(name_part, tags, stats, dialects)
    dogstatsd = "|#" in rest
    if dogstatsd:
        if tags:
            raise LineError("mixed_tagging_styles", line[:80])
        dialect = "dogstatsd" if dialects.dogstatsd else ""
    if not name:
        raise LineError("malformed_line", "empty metric name")

    head, bar, suffix_text = rest.partition("|")
    if not bar:
        raise LineError("not_enough_parts_after_colon", line[:80])
    if ":" in head:
        # DogStatsD extended aggregation: name:1:2:3|ms shares one suffix
        if suffix_text.split("|", 1)[0] not in MULTI_VALUE_TYPES:
            raise LineError("invalid_extended_aggregate_type", line[:80])
        suffix = _parse_suffix(suffix_text.split("|"), tags, stats, dialects)
        pieces = [(value, suffix) for value in head.split(":")]
    elif dogstatsd or ":" not in suffix_text or not _is_multi_metric(rest):
        # a colon after the type that doesn't start another value|type is a DogStatsD field's (|c:<id>)
        pieces = [(head, _parse_suffix(suffix_text.split("|"), tags, stats, dialects))]
    else:
        pieces = []  # the old StatsD multi-metric form a:1|c:2|g, each with its own suffix
        for sample in rest.split(":"):
            value, bar, sample_suffix = sample.partition("|")
            if not bar:
                pieces.append((value, LineError("malformed_component", sample[:80])))
                continue
            try:
                pieces.append((value, _parse_suffix(sample_suffix.split("|"), tags, stats, dialects)))
            except LineError as error:
                pieces.append((value, error))

    parsed: list[Sample] = []
    errors: list[LineError] = []
    for value, suffix in pieces:
        if isinstance(suffix, LineError):
            errors.append(suffix)
            continue
        try:
            parsed.append(_make_sample(name, value, suffix, tags))
        except LineError as error:
            errors.append(error)
    if tags:
        stats.received += 1
    return parsed, errors, dialect
