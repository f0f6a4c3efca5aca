"""Explain lines: what the daemon would make of each, worded for a person (or as JSON for scripts).

Each line goes through the daemon's own Ingest into a store of its own, so the answer can't
disagree with the daemon: the parse and the rule are read off the same parser and mapper, and what
happens to the series is the difference in that store before and after the line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from bridge.config import FLAGS
from bridge.exposition.text import format_value
from bridge.ingest import Ingest
from bridge.mapping.router import Mapper
from bridge.mapping.schema import MappingConfig
from bridge.parsing.line import LineError, TagStats, parse_line, parse_number
from bridge.reasons import REASONS, SET
from bridge.series.store import Store
from bridge.series.types import Histogram, SetSeries, Summary, render_labels
from bridge.stats import Stats

_TYPE_WORDS = {"c": "counter", "g": "gauge", "ms": "timer", "h": "histogram", "d": "distribution"}
_KIND_OF_WORD = {"counter": "counter", "gauge": "gauge", "timer": "observer", "histogram": "observer",
                 "distribution": "observer"}  # fmt: skip


def _snapshot(store: Store) -> dict[tuple[str, tuple], tuple[str, Any]]:
    store.fold_pending()
    state = {}
    for family in store.families.values():
        for key, series in family.series.items():
            if isinstance(series, Histogram):
                value: Any = (tuple(series.counts), series.sum)
            elif isinstance(series, Summary):
                value = (series.count, series.sum)
            else:
                value = series.total
            state[(family.name, key)] = ("set" if isinstance(series, SetSeries) else family.type, value)
    return state


def _effect(kind: str, before: Any, after: Any, bounds: tuple[float, ...], relative: bool, one_value: bool) -> str:
    """What a line did to one series, from its state before and after; `one_value`: the line had one value."""
    if kind == "counter":
        old = before or 0.0
        return f"add {format_value(after - old)} (now {format_value(after)})"
    if kind == "set":
        return f"a gauge of the distinct values in its set_window: now {format_value(after)}"
    if kind == "gauge":
        if relative:  # a new series starts from 0
            change = after - (before or 0.0)
            return f"change by {'+' if change >= 0 else ''}{format_value(change)} (now {format_value(after)})"
        return f"set {format_value(after)}"
    if kind == "histogram":
        old_counts, old_sum = before or ((0,) * len(after[0]), 0.0)
        grew = {i: a - b for i, (a, b) in enumerate(zip(after[0], old_counts, strict=True)) if a != b}
        observed = sum(grew.values())
        names = [format_value(bounds[i]) if i < len(bounds) else "+Inf" for i in grew]
        if len(grew) == 1 and one_value:
            value = (after[1] - old_sum) / observed
            times = f", counted {observed} times," if observed != 1 else ""
            return f"observe {format_value(value)}{times} into bucket le={names[0]}"
        buckets = ", ".join(f"+{count} in le={name}" for name, count in zip(names, grew.values(), strict=True))
        return f"{observed} observations, sum {format_value(after[1] - old_sum)}: {buckets}"
    old_count, old_sum = before or (0, 0.0)
    observed = after[0] - old_count
    if not one_value:
        return f"{observed} observations, sum {format_value(after[1] - old_sum)}"
    value = (after[1] - old_sum) / observed if observed else 0.0
    return f"observe {format_value(value)}" + (f", counted {observed} times" if observed != 1 else "")


def _ignored_fields(line: str) -> list[str]:
    """DogStatsD metadata the parser accepts and sets aside, described."""
    ignored = []
    for field in line.partition(":")[2].partition("|")[2].split("|")[1:]:
        if field.startswith("T"):
            ignored.append("client timestamp (Prometheus stamps samples when it scrapes)")
        elif field.startswith("e:"):
            ignored.append("external data (origin detection)")
        elif field.startswith("card:"):
            ignored.append("cardinality hint")
    return ignored


def _statsd_type_and_rate(line: str) -> tuple[str, float]:
    fields = line.partition(":")[2].partition("|")[2].split("|")
    rate_text = next((field[1:] for field in fields[1:] if field.startswith("@")), "1")
    try:
        rate = parse_number(rate_text) or 1.0  # as the parser reads it: @0 is no rate
    except ValueError:
        rate = 1.0  # unreadable: counted, and the sample kept unscaled
    return _TYPE_WORDS.get(fields[0], fields[0]), rate


def _problems(before: Stats, after: Stats) -> list[dict[str, str]]:
    problems = []
    for reason, count in (Counter(after.sample_errors) - Counter(before.sample_errors)).items():
        problems += [{"reason": reason, "message": REASONS.get(reason, reason)}] * count
    for reason, count in (Counter(after.event_errors) - Counter(before.event_errors)).items():
        problems += [{"reason": reason, "message": REASONS.get(reason, reason)}] * count
    for (kind, name), _ in (Counter(after.conflicts) - Counter(before.conflicts)).items():
        problems.append(
            {
                "reason": "conflict",
                "message": f"{name} already exists with another type or its sample "
                f"names are taken, so this {kind} is not applied",
            }
        )
    for (name, tag), _ in (Counter(after.output_skips) - Counter(before.output_skips)).items():
        problems.append({"reason": "skipped", "message": f"output {name} skipped: tag {tag!r} is missing or empty"})
    for name in Counter(after.series_dropped) - Counter(before.series_dropped):
        problems.append(
            {"reason": "series_cap", "message": f"a new series of {name} would pass {FLAGS['max_series'].name}"}
        )
    for name in Counter(after.metric_series_dropped) - Counter(before.metric_series_dropped):
        problems.append(
            {
                "reason": "metric_series_cap",
                "message": f"a new series of {name} would pass {FLAGS['max_series_per_metric'].name}",
            }
        )
    if after.tag_errors > before.tag_errors:
        problems.append(
            {
                "reason": "tag_error",
                "message": f"{after.tag_errors - before.tag_errors} tag(s) skipped "
                "as malformed (no key, no value, or a label the type writes itself)",
            }
        )
    return problems


def _copy_counts(stats: Stats) -> Stats:
    copy = Stats()
    copy.sample_errors = Counter(stats.sample_errors)
    copy.event_errors = Counter(stats.event_errors)
    copy.conflicts = Counter(stats.conflicts)
    copy.output_skips = Counter(stats.output_skips)
    copy.series_dropped = Counter(stats.series_dropped)
    copy.metric_series_dropped = Counter(stats.metric_series_dropped)
    copy.tag_errors = stats.tag_errors
    return copy


class Explainer:
    """A store of its own and the daemon's ingest; lines are explained in order, each seeing the last."""

    def __init__(self, mapping: MappingConfig, clock: Callable[[], float] = lambda: 0.0) -> None:
        self.mapping = mapping
        self.stats = Stats()
        self.store = Store(clock)  # a set's window moves with the ingest's clock
        self.ingest = Ingest(Mapper(mapping), self.store, self.stats, clock)
        self.ingest.shape_limit = 0  # every line by the full path: nothing cached between explanations

    def explain(self, line: str) -> dict[str, Any]:
        result: dict[str, Any] = {"line": line, "samples": [], "series": [], "problems": []}
        try:
            raw = line.encode()
            samples, _errors, dialect = parse_line(line, TagStats(), sets=self.ingest.mapper.takes_sets)
        except UnicodeEncodeError:  # bytes that were not UTF-8, carried here as surrogates
            raw, samples, dialect = line.encode("utf-8", "surrogateescape"), [], ""
        except LineError:
            samples, dialect = [], ""
        result["dialect"] = dialect or ("none" if samples else "")
        result["ignored"] = _ignored_fields(line) if samples else []
        statsd_type, rate = _statsd_type_and_rate(line) if samples else ("", 1.0)
        for sample in samples:
            route = self.ingest.mapper.map(sample.name, sample.kind)
            if route.drop:
                outcome = "dropped"
            elif route.mapped:
                outcome = "mapped"
            else:
                outcome = "unmapped"
            rule = route.rule
            result["samples"].append(
                {
                    "name": sample.name,
                    "type": statsd_type if _KIND_OF_WORD.get(statsd_type) == sample.kind else sample.kind,
                    "kind": sample.kind,
                    "value": float(f"{sample.value * sample.divisor:.12g}"),  # as sent, before rate and ms scaling
                    "relative": sample.relative,
                    "member": sample.member if sample.kind == SET else None,
                    "sample_rate": rate,
                    "tags": dict(sample.tags),
                    "outcome": outcome,
                    "metric": route.targets[0].name if outcome == "unmapped" else None,
                    "rule": None
                    if rule is None
                    else {
                        "file": self.mapping.path or "<mapping>",
                        "line": rule.line,
                        "match": rule.match,
                        "match_type": rule.match_type,
                        "action": rule.action,
                    },
                }
            )
        before_state, before_stats = _snapshot(self.store), _copy_counts(self.stats)
        self.ingest.packet(raw)
        after_state = _snapshot(self.store)
        relative = any(sample["relative"] for sample in result["samples"])
        for (name, key), (kind, value) in after_state.items():
            old = before_state.get((name, key), (kind, None))[1]
            if old == value and (name, key) in before_state:
                continue
            series = self.store.families[name].series[key]
            bounds = series.bounds if isinstance(series, Histogram) else ()
            result["series"].append(
                {
                    "name": name,
                    "type": kind,
                    "labels": dict(key),
                    "effect": _effect(kind, old, value, bounds, relative, len(result["samples"]) == 1),
                }
            )
        result["problems"] = _problems(before_stats, self.stats)
        return result


def explain_lines(lines: Iterable[str], mapping: MappingConfig) -> list[dict[str, Any]]:
    explainer = Explainer(mapping)
    return [explainer.explain(line) for line in lines if line.strip()]


def format_text(result: dict[str, Any]) -> str:
    out = [result["line"]]
    for sample in result["samples"]:
        tags = ", ".join(f"{k}={v}" for k, v in sample["tags"].items())
        value = format_value(sample["value"])
        value = f"change by {'+' if sample['value'] >= 0 else ''}{value}" if sample["relative"] else f"value {value}"
        if sample["member"] is not None:
            value = f"member {sample['member']!r}"
        rate = f", sample rate {format_value(sample['sample_rate'])}" if sample["sample_rate"] != 1 else ""
        out.append(
            f"  parsed:  {sample['name']}, {sample['type']}, {value}"
            f"{rate}" + (f", tags {tags} ({result['dialect']})" if tags else ", no tags")
        )
        rule = sample["rule"]
        if sample["outcome"] == "unmapped":
            out.append(f"  rule:    none matched (unmapped): the metric is named {sample['metric']}")
        else:
            out.append(
                f"  rule:    {rule['file']}:{rule['line']} `{rule['match']}` ({rule['match_type']})"
                + (" drops it" if sample["outcome"] == "dropped" else "")
            )
    for ignored in result["ignored"]:
        out.append(f"  ignored: {ignored}")
    for series in result["series"]:
        labels = render_labels(tuple(series["labels"].items()))
        out.append(
            f"  series:  {series['name']}{'{' + labels + '}' if labels else ''} {series['type']}: {series['effect']}"
        )
    for problem in result["problems"]:
        out.append(f"  {'rejected' if not result['series'] else 'note'}: {problem['message']} ({problem['reason']})")
    if not result["series"] and not result["problems"] and all(s["outcome"] == "dropped" for s in result["samples"]):
        out.append("  series:  none (the rule drops it)")
    return "\n".join(out)
