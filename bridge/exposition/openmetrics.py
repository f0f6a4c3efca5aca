"""OpenMetrics, for scrapers that ask for it with --web-enable-openmetrics: the store as prometheus_client
Metric objects, written by prometheus_client's own OpenMetrics writer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import cast

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from bridge.series.store import Family, Store
from bridge.series.types import CounterSeries, Histogram, Scalar, Summary


class OpenMetricsView:
    """The store as prometheus_client Metric objects, for the OpenMetrics writer."""

    def __init__(self, store: Store, extra: Collector, clock: Callable[[], float]) -> None:
        self.store, self.extra, self.clock = store, extra, clock

    def collect(self) -> Iterator[Metric]:
        families = sorted(list(self.store.families.values()), key=lambda f: f.name)
        names = {f.name for f in families}
        now = self.clock()
        for family in families:
            metric = _openmetrics_family(family, names, now)
            if metric is not None:
                yield metric
        yield from self.extra.collect()


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
        for counter in cast("list[CounterSeries]", series_list):  # a family's type says what its series are
            metric.add_sample(name, dict(counter.key), counter.fraction + counter.value)
        return metric
    metric = Metric(name, family.help, family.type)
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
    else:
        for summary in cast("list[Summary]", series_list):
            labels = dict(summary.key)
            for quantile, value in zip(
                summary.quantiles, summary.window.quantiles(summary.quantiles, now), strict=True
            ):
                metric.add_sample(name, {**labels, "quantile": floatToGoString(quantile)}, value)
            metric.add_sample(name + "_count", labels, summary.count)
            metric.add_sample(name + "_sum", labels, summary.sum)
    return metric
