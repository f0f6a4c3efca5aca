"""OpenMetrics, for scrapers that ask for it with --web-enable-openmetrics: the store as prometheus_client
Metric objects, written by prometheus_client's own OpenMetrics writer.

Counters (those served as OpenMetrics counters), histograms and summaries carry their start timestamp
as a `_created` sample, as prometheus_client writes its own; not where that sample's name is another
metric's."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import cast

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from bridge.exposition.escaping import DEFAULT, family_as_served
from bridge.series.store import Family, Store
from bridge.series.types import CounterSeries, Histogram, Scalar, Summary


class OpenMetricsView:
    """The store as prometheus_client Metric objects, for the OpenMetrics writer."""

    def __init__(self, store: Store, extra: Collector, clock: Callable[[], float]) -> None:
        self.store, self.extra, self.clock = store, extra, clock

    def collect(self, escaping: str = DEFAULT) -> Iterator[Metric]:
        """Every family, its names escaped by `escaping`, then the self-metrics."""
        families = [
            family_as_served(f, escaping) for f in sorted(list(self.store.families.values()), key=lambda f: f.name)
        ]
        names = {f.name for f in families}
        now = self.clock()
        for family in families:
            metric = _openmetrics_family(family, names, now)
            if metric is not None:
                yield metric
        yield from self.extra.collect()

    def escaped(self, escaping: str) -> Collector:
        """What the OpenMetrics writer collects for a scraper that asked for `escaping`."""
        return _Escaped(self, escaping)


class _Escaped(Collector):
    def __init__(self, view: OpenMetricsView, escaping: str) -> None:
        self.view, self.escaping = view, escaping

    def collect(self) -> Iterator[Metric]:
        return self.view.collect(self.escaping)


def _openmetrics_family(family: Family, names: set[str], now: float) -> Metric | None:
    series_list = list(family.series.values())
    if not series_list:
        return None
    name = family.name
    if family.type == "counter":
        base = name[: -len("_total")] if name.endswith("_total") else ""
        # OpenMetrics counters must end in _total; others keep their exact name as "unknown"
        if base and base not in names:
            metric = Metric(base, family.help, "counter")
        else:
            metric = Metric(name, family.help, "unknown")
        created = metric.type == "counter" and base + "_created" not in names
        for counter in cast("list[CounterSeries]", series_list):  # a family's type says what its series are
            metric.add_sample(name, dict(counter.key), counter.fraction + counter.value)
            if created and counter.created:
                metric.add_sample(base + "_created", dict(counter.key), counter.created)
        return metric
    metric = Metric(name, family.help, family.type)
    created = name + "_created" not in names
    if family.type == "gauge":
        for gauge in cast("list[Scalar]", series_list):
            metric.add_sample(name, dict(gauge.key), gauge.value)
    elif family.type == "histogram":
        for s in cast("list[Histogram]", series_list):
            bounds = [floatToGoString(b) for b in s.bounds] + ["+Inf"]
            labels = dict(s.key)
            cumulative = 0
            for bound, count in zip(bounds, s.counts, strict=True):
                cumulative += count
                metric.add_sample(name + "_bucket", {**labels, "le": bound}, cumulative)
            metric.add_sample(name + "_count", labels, cumulative)
            metric.add_sample(name + "_sum", labels, s.sum)
            if created and s.created:
                metric.add_sample(name + "_created", labels, s.created)
    else:
        for summary in cast("list[Summary]", series_list):
            labels = dict(summary.key)
            for quantile, value in zip(
                summary.quantiles, summary.window.quantiles(summary.quantiles, now), strict=True
            ):
                metric.add_sample(name, {**labels, "quantile": floatToGoString(quantile)}, value)
            metric.add_sample(name + "_count", labels, summary.count)
            metric.add_sample(name + "_sum", labels, summary.sum)
            if created and summary.created:
                metric.add_sample(name + "_created", labels, summary.created)
    return metric
