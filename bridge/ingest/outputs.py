"""What one output of a mapping rule (a Target) makes of a sample: whether it takes it, the value it
adds, sets or observes, and the label set of its series."""

from __future__ import annotations

from bridge.mapping.router import Target
from bridge.mapping.semantics import escape_name
from bridge.parsing.line import Sample
from bridge.series.names import RESERVED_LABELS, is_legacy, underscored
from bridge.series.types import LabelKey

# Tag keys escaped to label names are kept for the next line; past this many, forgotten and made again
LABEL_NAME_CACHE_LIMIT = 100_000


class LabelCollisionError(Exception):
    """Two label names of one series that a scraper without UTF-8 names would read as one (`a.b`, `a_b`)."""


def when_holds(sample: Sample, target: Target) -> bool:
    """Whether the sample's tags have the values an extended output's `when` asks for."""
    tags = sample.tags
    return all(tags.get(tag) in wanted for tag, wanted in target.when.items())


def missing_tag(sample: Sample, target: Target) -> str | None:
    """The first tag the output requires that the sample lacks (or has empty where it must not); None if none."""
    tags = sample.tags
    for tag in target.required:
        if tag not in tags:
            return tag
    for tag in target.non_empty:
        if not tags.get(tag):
            return tag
    return None


def value_of(sample: Sample, target: Target) -> float:
    """What the output does with the sample's value: one event (count), up or down (up_down), or scaled."""
    if target.value == "count":
        return 1.0
    if target.value == "up_down":
        return 1.0 if sample.value == 1 else -1.0
    return sample.value if target.scale is None else sample.value * target.scale


def labels_of(sample: Sample, target: Target, names: dict[str, str], utf8_names: bool) -> tuple[LabelKey, bool]:
    """The label set of the sample's series under this output, and whether a label the exposition writes
    itself (a histogram's le, a summary's quantile) had to be dropped. `names` caches escaped tag keys;
    `utf8_names` (--statsd.utf8-names) keeps tag keys as written, and raises LabelCollisionError for two names
    a Prometheus 2 scraper would read as one."""
    if target.tags is not None:
        # only the tags the output names, under its label names; an absent one is ""
        labels = dict(target.labels)
        for label, tag in target.tags.items():
            labels[label] = sample.tags.get(tag, "")
    else:
        labels = {}
        for key, value in sample.tags.items():
            name = names.get(key)
            if name is None:
                if len(names) > LABEL_NAME_CACHE_LIMIT:
                    names.clear()
                # `:` is legacy in a metric name, so no scheme escapes it in a label name, which may not
                # hold it: such a key is rewritten as without the flag
                name = names[key] = key if utf8_names and ":" not in key else escape_name(key)
            labels[name] = value
        for name, value in target.labels.items():
            if target.honor_labels and name in labels:
                continue
            labels[name] = value
    if utf8_names and not all(map(is_legacy, labels)) and len(set(map(underscored, labels))) < len(labels):
        raise LabelCollisionError(", ".join(sorted(labels)))
    return _without_reserved(labels, target.type)


def _without_reserved(labels: dict[str, str], metric_type: str) -> tuple[LabelKey, bool]:
    reserved = RESERVED_LABELS.get(metric_type)
    if reserved is None or reserved not in labels:
        return tuple(sorted(labels.items())), False
    del labels[reserved]
    return tuple(sorted(labels.items())), True
