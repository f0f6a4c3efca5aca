"""The bridge's own counters, kept as plain ints on the hot path and exposed at scrape time."""

from __future__ import annotations

import platform
import sys
from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from bridge import __version__

PREFIX = "statsd_bridge_"


class Stats:
    def __init__(self) -> None:
        self.lines = 0
        self.samples = 0
        self.tags = 0
        self.tag_errors = 0
        self.udp_packets = 0
        self.unixgram_packets = 0
        self.tcp_connections = 0
        self.tcp_connection_errors = 0
        self.tcp_too_long_lines = 0
        self.events_unmapped = 0
        self.loaded_mappings = 0
        self.sample_errors: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.event_errors: Counter[str] = Counter()
        self.actions: Counter[str] = Counter()
        self.conflicts: Counter[tuple[str, str]] = Counter()
        # both outcomes from 0, so that Prometheus sees the first failure as an increase (alerts.yml)
        self.config_reloads: Counter[str] = Counter({"success": 0, "failure": 0})
        self.output_skips: Counter[tuple[str, str]] = Counter()
        self.series_dropped: Counter[str] = Counter()
        self.metric_series_dropped: Counter[str] = Counter()
        self.max_series = 0
        self.series_by_type: dict[str, int] = {}
        self.reaped_series = 0
        self.reaped_sources = 0
        self.tracked_sources = 0
        self.relays: list = []  # RelayStats of each --statsd-relay-address
        self.batches = 0  # datagram batches handed to the ingest: statsd_exporter's event queue flushes
        self.udp_packet_drops = 0  # read from the kernel at scrape time
        self.vectors_created: dict[str, int] = {}
        self.mapper_cache = (0, 0, 0)  # length, gets, hits
        self.mapper = None  # the ingest's Mapper, for its cache counts at scrape time
        self.udp_inodes: list[int] = []  # the UDP sockets' inodes, to find their drop counters
        self.http = None  # the web server's HTTPStats (bridge/http_server.py), once it listens
        self.web_config_reloads: Counter[str] = Counter({"success": 0, "failure": 0})


def _counter(name: str, documentation: str, value: float) -> Metric:
    return CounterMetricFamily(PREFIX + name, documentation, value=value)


def _labelled(name: str, documentation: str, labels: list[str], values: Counter, kind=CounterMetricFamily) -> Metric:
    family = kind(PREFIX + name, documentation, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return family


def self_metrics(stats: Stats) -> Iterator[Metric]:
    """Metric families for stats, named as statsd_exporter's with our prefix."""
    yield _counter("lines_total", "StatsD lines received.", stats.lines)
    yield _counter("samples_total", "StatsD samples received (a multi-value line holds several).", stats.samples)
    yield _counter("tags_total", "Lines received with tags.", stats.tags)
    yield _counter("tag_errors_total", "Tags skipped as malformed (no key, no value, reserved name).", stats.tag_errors)
    yield _counter("udp_packets_total", "UDP datagrams received.", stats.udp_packets)
    yield _counter("udp_packet_drops_total", "UDP datagrams the kernel dropped on the bridge's sockets (receive "
                   "buffer full), from its per-socket drop counter.", stats.udp_packet_drops)  # fmt: skip
    yield _counter("event_queue_flushed_total", "Batches of datagrams applied to the series (statsd_exporter: "
                   "event queue flushes).", stats.batches)  # fmt: skip
    yield _counter("unixgram_packets_total", "Unix datagram packets received.", stats.unixgram_packets)
    yield _counter("tcp_connections_total", "TCP connections accepted.", stats.tcp_connections)
    yield _counter("tcp_connection_errors_total", "TCP connections ended by a read error.", stats.tcp_connection_errors)
    yield _counter("tcp_too_long_lines_total", "TCP lines over the length limit; each closed its connection.",
                   stats.tcp_too_long_lines)  # fmt: skip
    yield _counter("events_unmapped_total", "Events that matched no mapping rule.", stats.events_unmapped)
    yield _labelled("sample_errors_total", "Rejected lines or samples, by reason.", ["reason"], stats.sample_errors)
    yield _labelled("events_total", "Events applied to a series, by StatsD kind.", ["type"], stats.events)
    yield _labelled("events_error_total", "Events rejected after mapping, by reason.", ["reason"], stats.event_errors)
    yield _labelled("events_actions_total", "Events that matched a rule, by the rule's action.", ["action"],
                    stats.actions)  # fmt: skip
    yield _labelled("events_conflict_total", "Events whose metric name exists with another type or clashes "
                    "with another metric's sample names.", ["type", "metric_name"], stats.conflicts)  # fmt: skip
    yield _labelled("events_skipped_total", "Outputs of a mapping skipped because a required tag was missing "
                    "or empty, by metric and tag.", ["metric_name", "tag"], stats.output_skips)  # fmt: skip
    yield _labelled("config_reloads_total", "Mapping file reloads, by outcome.", ["outcome"], stats.config_reloads)
    yield GaugeMetricFamily(PREFIX + "loaded_mappings", "Rules in the mapping file.", value=stats.loaded_mappings)
    yield _labelled("series_dropped_total", "New series refused because the series cap was reached, by metric.",
                    ["metric_name"], stats.series_dropped)  # fmt: skip
    yield GaugeMetricFamily(PREFIX + "max_series", "The series cap (--max-series).", value=stats.max_series)
    yield _labelled("metric_series_dropped_total", "New series refused because their metric reached "
                    "--max-series-per-metric, by metric.", ["metric_name"], stats.metric_series_dropped)  # fmt: skip
    yield _counter("reaped_series_total", "Series dropped because their source went silent.", stats.reaped_series)
    yield _counter("reaped_sources_total", "Sources that went silent and were reaped.", stats.reaped_sources)
    yield GaugeMetricFamily(PREFIX + "reaper_sources", "Sources the reaper is tracking.", value=stats.tracked_sources)
    yield from _relay_metrics(stats.relays)
    series = GaugeMetricFamily(PREFIX + "metrics", "Series held, by Prometheus type.", labels=["type"])
    for kind, count in sorted(stats.series_by_type.items()):
        series.add_metric([kind], count)
    yield series
    vectors = GaugeMetricFamily(PREFIX + "metrics_total", "Metrics created (a name and a set of label names), by "
                                "type; never lowered, as statsd_exporter's.", labels=["type"])  # fmt: skip
    for kind, count in sorted(stats.vectors_created.items()):
        vectors.add_metric([kind], count)
    yield vectors
    length, gets, hits = stats.mapper_cache
    yield GaugeMetricFamily(PREFIX + "metric_mapper_cache_length", "Routes in the mapper's cache.", value=length)
    yield _counter("metric_mapper_cache_gets_total", "Mapper cache lookups (lines the shape cache answers don't "
                   "look up).", gets)  # fmt: skip
    yield _counter("metric_mapper_cache_hits_total", "Mapper cache lookups that found a route.", hits)
    yield from _http_metrics(stats)
    yield _build_info()


def _http_metrics(stats: Stats) -> Iterator[Metric]:
    yield _labelled("web_config_reloads_total", "Re-reads of --web.config.file after it or a certificate "
                    "changed, by outcome.", ["outcome"], stats.web_config_reloads)  # fmt: skip
    http = stats.http
    if http is None:
        return
    yield GaugeMetricFamily(PREFIX + "http_connections", "Open connections to the web endpoint.",
                            value=http.open_connections)  # fmt: skip
    yield _counter("http_connections_total", "Connections accepted by the web endpoint.", http.connections)
    yield _labelled("http_requests_total", "HTTP requests answered, by status code.", ["code"],
                    Counter({str(code): count for code, count in http.requests.items()}))  # fmt: skip
    yield _labelled("http_errors_total", "Requests and connections the web endpoint refused or timed out, by "
                    "reason.", ["reason"], http.errors)  # fmt: skip


def _build_info() -> Metric:
    labels = ["version", "revision", "branch", "pythonversion", "os", "arch"]
    info = GaugeMetricFamily(PREFIX + "build_info", "A metric with a constant '1' value labeled by version, "
                             "revision, branch, Python version, OS and architecture from which statsd-bridge "
                             "was built.", labels=labels)  # fmt: skip
    info.add_metric([__version__, "", "", platform.python_version(), sys.platform, platform.machine()], 1)
    return info


def _relay_metrics(relays: list) -> Iterator[Metric]:
    lines = CounterMetricFamily(PREFIX + "relay_lines_relayed_total", "Lines queued to relay, by target.",
                                labels=["target"])  # fmt: skip
    long_lines = CounterMetricFamily(PREFIX + "relay_long_lines_total", "Lines longer than the relay packet "
                                     "length, not relayed, by target.", labels=["target"])  # fmt: skip
    packets = CounterMetricFamily(PREFIX + "relay_packets_total", "Packets sent to relay targets.", labels=["target"])
    dropped = CounterMetricFamily(PREFIX + "relay_dropped_lines_total", "Lines not relayed, by target and reason "
                                  "(too_long, send_buffer_full, send_error).", labels=["target", "reason"])  # fmt: skip
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
