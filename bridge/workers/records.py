"""What crosses between a worker and the main process: the records of series (handover.py makes them,
merge.py applies them) and the hand-over that carries them with the worker's counts. Plain tuples, cheap
to pickle."""

from __future__ import annotations

from typing import Any, NamedTuple

from bridge.series.quantiles import SummaryOptions
from bridge.series.store import Family, Metric
from bridge.series.types import LabelKey


class MetricSpec(NamedTuple):
    """What the store needs to make a series of a metric (store.Metric), small enough to hand over."""

    name: str
    type: str
    help: str
    buckets: tuple[float, ...]
    native: tuple[float, int]
    summary: SummaryOptions
    ttl: float
    set_window: float = 0.0


def kind_of(metric: Metric | Family | MetricSpec) -> str:
    """What a hand-over takes of a series of this metric: its type's change, or a set's values."""
    return "set" if metric.set_window else metric.type


def spec_of(metric: Metric) -> MetricSpec:
    return MetricSpec(
        metric.name,
        metric.type,
        metric.help,
        metric.buckets,
        metric.native,
        metric.summary,
        metric.ttl,
        metric.set_window,
    )


# What lines made of a provisional series: (StatsD kind, samples, events); the store counts them as one
# process would if it refuses the series (a type conflict, a cap)
Events = tuple[str, int, int]
# A record of a series new to the main process: (sid, metric, labels, created, last update, change, events)
NewRecord = tuple[int, MetricSpec, LabelKey, float, float, tuple, Events | None]
# A record of a series the main process knows by its sid: (sid, last update, change, events)
Record = tuple[int, float, tuple, Events | None]


class Flushed(NamedTuple):
    """A worker's hand-over, sent as ("flushed", Flushed): its answer to round `round` (0: new series handed
    over ahead, asked by nobody), with what it counted since the last one."""

    round: int
    new: list[NewRecord]
    known: list[Record]
    forgotten: list[int]  # sids it was told to forget, forgotten: none of their records can follow
    counts: dict[str, Any]  # its Stats (bridge.stats.take_counts): ints, and dicts of counts
    listeners: dict[str, dict[str, int]]  # listener kind -> the fields of its counts
    mapper: tuple[int, int, int]  # its mapper's cache: gets, hits, length
    relays: list[tuple[str, int, int, dict[str, int]]]  # relay target, lines, packets, lines dropped by reason
