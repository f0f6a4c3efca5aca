"""The Prometheus text format (0.0.4), written directly: prometheus_client's writer renames every counter
to `<name>_total`, and statsd_exporter users expect the exact mapped name."""

from __future__ import annotations

import math
from typing import cast

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from bridge.exposition.escaping import ALLOW_UTF8, DEFAULT, family_as_served, renamed
from bridge.series.names import is_legacy
from bridge.series.store import Family, Store
from bridge.series.types import CounterSeries, Histogram, Scalar, Summary, escape_label_value

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def format_value(value: float) -> str:
    """A float as Go's strconv.FormatFloat(v, 'g', -1, 64) writes it, as client_golang does."""
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and -1e6 < value < 1e6:
        return str(int(value))
    sign = "-" if value < 0 else ""
    mantissa, _, exponent = repr(abs(value)).partition("e")  # repr gives the shortest digits
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + int(exponent or 0)  # value = 0.<digits> * 10**point
    significant = digits.lstrip("0")
    point -= len(digits) - len(significant)
    digits = significant.rstrip("0") or "0"
    exp = point - 1
    if exp < -4 or exp >= 6:  # Go switches to %e here when asked for the shortest form
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{body}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _with(label_text: str, extra: str) -> str:
    return f"{{{label_text},{extra}}}" if label_text else f"{{{extra}}}"


def _braced(label_text: str) -> str:
    return f"{{{label_text}}}" if label_text else ""


def _render_family(family: Family, now: float, out: list[str]) -> None:
    series_list = list(family.series.values())
    if not series_list:
        return
    name = family.name
    out.append(f"# HELP {name} {_escape_help(family.help)}\n# TYPE {name} {family.type}\n")
    # a family's type says what its series are
    if family.type == "counter":
        counters = cast("list[CounterSeries]", series_list)
        out.extend(f"{name}{_braced(s.label_text)} {format_value(s.fraction + s.value)}\n" for s in counters)
    elif family.type == "gauge":
        gauges = cast("list[Scalar]", series_list)
        out.extend(f"{name}{_braced(s.label_text)} {format_value(s.value)}\n" for s in gauges)
    elif family.type == "histogram":
        bounds_text: dict[tuple[float, ...], list[str]] = {}  # each set of bounds written once
        for s in cast("list[Histogram]", series_list):
            bounds = bounds_text.get(s.bounds)
            if bounds is None:
                bounds = bounds_text[s.bounds] = [f'le="{format_value(b)}"' for b in s.bounds] + ['le="+Inf"']
            cumulative = 0
            for bound, count in zip(bounds, s.counts, strict=True):
                cumulative += count
                out.append(f"{name}_bucket{_with(s.label_text, bound)} {cumulative}\n")
            labels = _braced(s.label_text)
            # _count is the +Inf bucket, so the two agree even if an update lands mid-render
            out.append(f"{name}_sum{labels} {format_value(s.sum)}\n{name}_count{labels} {cumulative}\n")
    else:
        quantile_text: dict[tuple[float, ...], list[str]] = {}
        for summary in cast("list[Summary]", series_list):
            quantile_labels = quantile_text.get(summary.quantiles)
            if quantile_labels is None:
                quantile_labels = quantile_text[summary.quantiles] = [
                    f'quantile="{format_value(q)}"' for q in summary.quantiles
                ]
            for label, value in zip(quantile_labels, summary.window.quantiles(summary.quantiles, now), strict=True):
                out.append(f"{name}{_with(summary.label_text, label)} {format_value(value)}\n")
            labels = _braced(summary.label_text)
            out.append(f"{name}_sum{labels} {format_value(summary.sum)}\n{name}_count{labels} {summary.count}\n")


def render_text(store: Store, extra: Collector, now: float, escaping: str = DEFAULT) -> bytes:
    """The Prometheus text format 0.0.4 of every series, then of `extra` (the self-metrics), with names
    escaped by the scheme the scraper asked for."""
    out: list[str] = []
    for family in sorted(list(store.families.values()), key=lambda f: f.name):
        if escaping == ALLOW_UTF8 and not family.legacy:
            _render_quoted(family, now, out)
        else:
            _render_family(family_as_served(family, escaping), now, out)
    for metric in extra.collect():
        _render_metric(metric, out)
    return "".join(out).encode("utf-8")


_STAND_IN = "\x00"  # the metric name while a family whose name must be quoted renders


def _render_quoted(family: Family, now: float, out: list[str]) -> None:
    """Names that are not legacy-valid, kept under allow-utf-8: quoted, and a metric name inside the
    braces (`{"my.metric_sum","my.label"="x"} 1`), as client_golang's text writer puts them."""
    name = family.name
    if is_legacy(name):
        _render_family(renamed(family, name, _quoted), now, out)
        return
    lines: list[str] = []
    _render_family(renamed(family, _STAND_IN, _quoted), now, lines)
    for line in "".join(lines).split("\n")[:-1]:
        if line.startswith("# "):  # HELP and TYPE
            out.append(line.replace(_STAND_IN, _quoted(name), 1) + "\n")
            continue
        rest = line[1:]
        suffix = rest[: len(rest) - len(rest.lstrip("_abcdefghijklmnopqrstuvwxyz"))]  # _bucket, _sum, _count
        after = rest[len(suffix) :]
        quoted = "{" + _quoted(name + suffix)
        out.append(quoted + ("," + after[1:] if after.startswith("{") else "}" + after) + "\n")


def _quoted(name: str) -> str:
    return name if is_legacy(name) else f'"{escape_label_value(name)}"'


def _render_metric(metric: Metric, out: list[str]) -> None:
    """A prometheus_client metric family, with its sample names exactly as they are."""
    kind = {"unknown": "untyped", "info": "gauge", "stateset": "gauge"}.get(metric.type, metric.type)
    name = metric.name + "_total" if metric.type == "counter" else metric.name
    out.append(f"# HELP {name} {_escape_help(metric.documentation)}\n# TYPE {name} {kind}\n")
    for sample in metric.samples:
        if sample.name.endswith("_created"):
            continue
        labels = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in sorted(sample.labels.items()))
        out.append(f"{sample.name}{_braced(labels)} {format_value(float(sample.value))}\n")
