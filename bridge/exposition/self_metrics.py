"""The bridge's own metrics, prefixed statsd_bridge_: each component's counts, read at scrape time, with
the process, platform and GC collectors of prometheus_client."""

from __future__ import annotations

import platform
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from bridge import __version__
from bridge.series.store import Store
from bridge.stats import Stats

PREFIX = "statsd_bridge_"


@dataclass
class Sources:
    """Where the self-metrics come from, each read when scraped (on a web worker thread: reads only)."""

    stats: Stats  # the ingest's and the reloads' counts
    store: Store
    udp: Any  # each listener's counts: DatagramCounts, DatagramCounts, TCPCounts (bridge/receiving)
    unixgram: Any
    tcp: Any
    mapper: Callable[[], Any]  # the mapper in use (a reload replaces it), for its cache counts
    kernel_drops: Callable[[], int] = lambda: 0  # datagrams the kernel dropped on the UDP sockets
    relays: list = field(default_factory=list)  # each relay target's RelayStats
    http: Callable[[], Any] = lambda: None  # the web server's HTTPStats, once it listens
    listen_overflows: Callable[[], int | None] = lambda: None  # the kernel's count, where it tells it
    max_series: int = 0


class SelfMetrics:
    """A prometheus_client collector of the bridge's own metrics."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        yield from self_metrics(self.sources)


def self_registry(sources: Sources) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(SelfMetrics(sources))
    return registry


def reserved_names(registry: CollectorRegistry) -> set[str]:
    """Names our own metrics write, which no StatsD metric may take."""
    names = set()
    for metric in registry.collect():
        names.add(metric.name)
        names.update(sample.name for sample in metric.samples)
    return names


def _counter(name: str, documentation: str, value: float) -> Metric:
    return CounterMetricFamily(PREFIX + name, documentation, value=value)


def _labelled(
    name: str,
    documentation: str,
    labels: list[str],
    values: Counter,
    kind: type[CounterMetricFamily] | type[GaugeMetricFamily] = CounterMetricFamily,
) -> Metric:
    family = kind(PREFIX + name, documentation, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return family


def self_metrics(sources: Sources) -> Iterator[Metric]:
    """The self-metric families, named as statsd_exporter's with our prefix, from each component's counts."""
    stats, store, tcp = sources.stats, sources.store, sources.tcp
    mapper = sources.mapper()
    yield _counter("lines_total", "StatsD lines received.", stats.lines)
    yield _counter("samples_total", "StatsD samples received (a multi-value line holds several).", stats.samples)
    yield _counter("tags_total", "Lines received with tags.", stats.tags)
    yield _counter("tag_errors_total", "Tags skipped as malformed (no key, no value, reserved name).", stats.tag_errors)
    yield _counter("udp_packets_total", "UDP datagrams received.", sources.udp.packets)
    yield _counter(
        "udp_packet_drops_total",
        "UDP datagrams the kernel dropped on the bridge's sockets (receive "
        "buffer full), from its per-socket drop counter.",
        sources.kernel_drops(),
    )
    yield _counter(
        "event_queue_flushed_total",
        "Batches of datagrams applied to the series (statsd_exporter: event queue flushes).",
        stats.batches,
    )
    yield _counter("unixgram_packets_total", "Unix datagram packets received.", sources.unixgram.packets)
    yield _labelled(
        "datagram_socket_errors_total",
        "Errors a datagram socket reported (the OS's, not a bug), by listener.",
        ["listener"],
        Counter({"udp": sources.udp.socket_errors, "unixgram": sources.unixgram.socket_errors}),
    )
    yield _counter("tcp_connections_total", "TCP connections accepted.", tcp.connections)
    yield _counter("tcp_connection_errors_total", "TCP connections ended by a read error.", tcp.connection_errors)
    yield _counter(
        "tcp_too_long_lines_total", "TCP lines over the length limit; each closed its connection.", tcp.too_long_lines
    )
    overflows = sources.listen_overflows()
    if overflows is not None:
        yield _counter(
            "listen_overflows_total",
            "Connections the kernel dropped because a listening socket's accept queue was full (TcpExt "
            "ListenOverflows): the count of the whole network namespace, every program's listeners, not the "
            "bridge's alone.",
            overflows,
        )
    yield _counter("events_unmapped_total", "Events that matched no mapping rule.", stats.events_unmapped)
    yield _labelled("sample_errors_total", "Rejected lines or samples, by reason.", ["reason"], stats.sample_errors)
    yield _labelled("events_total", "Events applied to a series, by StatsD kind.", ["type"], stats.events)
    yield _labelled("events_error_total", "Events rejected after mapping, by reason.", ["reason"], stats.event_errors)
    yield _labelled(
        "events_actions_total", "Events that matched a rule, by the rule's action.", ["action"], stats.actions
    )
    yield _labelled(
        "events_conflict_total",
        "Events whose metric name exists with another type or clashes with another metric's sample names.",
        ["type", "metric_name"],
        stats.conflicts,
    )
    yield _labelled(
        "events_skipped_total",
        "Outputs of a mapping skipped because a required tag was missing or empty, by metric and tag.",
        ["metric_name", "tag"],
        stats.output_skips,
    )
    yield _labelled("config_reloads_total", "Mapping file reloads, by outcome.", ["outcome"], stats.config_reloads)
    yield _counter("cleared_series_total", "Series dropped by POST /-/clear.", stats.cleared_series)
    yield _labelled(
        "clear_requests_total",
        "POST /-/clear requests, by outcome (cleared, bad_selector, bad_request, disabled).",
        ["outcome"],
        stats.clear_requests,
    )
    yield _labelled(
        "internal_errors_total",
        "Errors where none should be (a bug), by component: each is logged with its traceback, and the work goes on.",
        ["component"],
        stats.internal_errors,
    )
    yield GaugeMetricFamily(PREFIX + "loaded_mappings", "Rules in the mapping file.", value=stats.loaded_mappings)
    yield GaugeMetricFamily(
        PREFIX + "workers", "Receiving worker processes (--statsd.workers); 0: one process.", value=stats.workers
    )
    yield _counter(
        "worker_restarts_total", "Receiving workers that exited and were started again.", stats.worker_restarts
    )
    yield _labelled(
        "worker_lines_total",
        "StatsD lines each receiving worker handled (how evenly the kernel spreads them).",
        ["worker"],
        Counter({str(worker): lines for worker, lines in stats.worker_lines.items()}),
    )
    yield _labelled(
        "series_dropped_total",
        "New series refused because the series cap was reached, by metric.",
        ["metric_name"],
        stats.series_dropped,
    )
    yield GaugeMetricFamily(PREFIX + "max_series", "The series cap (--max-series).", value=sources.max_series)
    yield _labelled(
        "metric_series_dropped_total",
        "New series refused because their metric reached --max-series-per-metric, by metric.",
        ["metric_name"],
        stats.metric_series_dropped,
    )
    yield _counter("reaped_series_total", "Series dropped because their source went silent.", store.reaped_series)
    yield _counter("reaped_sources_total", "Sources that went silent and were reaped.", store.reaped_sources)
    yield GaugeMetricFamily(PREFIX + "reaper_sources", "Sources the reaper is tracking.", value=store.sources)
    yield from _relay_metrics(sources.relays)
    series = GaugeMetricFamily(PREFIX + "metrics", "Series held, by Prometheus type.", labels=["type"])
    for kind, count in sorted(store.count_by_type().items()):
        series.add_metric([kind], count)
    yield series
    vectors = GaugeMetricFamily(
        PREFIX + "metrics_total",
        "Metrics created (a name and a set of label names with no live series before), by type; never lowered.",
        labels=["type"],
    )
    for kind, count in sorted(dict(store.vectors_created).items()):
        vectors.add_metric([kind], count)
    yield vectors
    yield GaugeMetricFamily(
        PREFIX + "metric_mapper_cache_length", "Routes in the mapper's cache.", value=mapper.cache_length
    )
    yield _counter(
        "metric_mapper_cache_gets_total",
        "Mapper cache lookups (lines the shape cache answers don't look up).",
        mapper.cache_gets,
    )
    yield _counter("metric_mapper_cache_hits_total", "Mapper cache lookups that found a route.", mapper.cache_hits)
    yield from _http_metrics(stats, sources.http())
    yield _build_info()


def _http_metrics(stats: Stats, http: Any) -> Iterator[Metric]:
    yield _labelled(
        "web_config_reloads_total",
        "Re-reads of --web.config.file after it or a certificate changed, by outcome.",
        ["outcome"],
        stats.web_config_reloads,
    )
    if http is None:
        return
    yield GaugeMetricFamily(
        PREFIX + "http_open_connections", "Open connections to the web endpoint.", value=http.open_connections
    )
    yield GaugeMetricFamily(
        PREFIX + "http_max_connections",
        "Connections the web endpoint holds at most: 10,000, or fewer when the open-files limit is too low "
        "(a warning at start-up gives the numbers).",
        value=http.max_connections,
    )
    yield _counter("http_connections_total", "Connections accepted by the web endpoint.", http.connections)
    yield _labelled(
        "http_requests_total",
        "HTTP requests answered, by status code.",
        ["code"],
        Counter({str(code): count for code, count in http.requests.items()}),
    )
    yield _labelled(
        "http_errors_total",
        "Requests and connections the web endpoint refused or timed out, by reason.",
        ["reason"],
        http.errors,
    )


def _build_info() -> Metric:
    labels = ["version", "revision", "branch", "pythonversion", "os", "arch"]
    info = GaugeMetricFamily(
        PREFIX + "build_info",
        "A metric with a constant '1' value labeled by version, "
        "revision, branch, Python version, OS and architecture from which statsd-bridge "
        "was built.",
        labels=labels,
    )
    info.add_metric([__version__, "", "", platform.python_version(), sys.platform, platform.machine()], 1)
    return info


def _relay_metrics(relays: list) -> Iterator[Metric]:
    lines = CounterMetricFamily(
        PREFIX + "relay_lines_relayed_total", "Lines queued to relay, by target.", labels=["target"]
    )
    long_lines = CounterMetricFamily(
        PREFIX + "relay_long_lines_total",
        "Lines longer than the relay packet length, not relayed, by target.",
        labels=["target"],
    )
    packets = CounterMetricFamily(PREFIX + "relay_packets_total", "Packets sent to relay targets.", labels=["target"])
    dropped = CounterMetricFamily(
        PREFIX + "relay_dropped_lines_total",
        "Lines not relayed, by target and reason (too_long, send_buffer_full, send_error).",
        labels=["target", "reason"],
    )
    for relay in relays:
        lines.add_metric([relay.target], relay.lines)
        long_lines.add_metric([relay.target], relay.dropped.get("too_long", 0))
        packets.add_metric([relay.target], relay.packets)
        for reason, count in sorted(relay.dropped.items()):
            dropped.add_metric([relay.target, reason], count)
    yield lines
    yield long_lines
    yield packets
    yield dropped
