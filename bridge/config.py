"""The settings of one bridge process, each defined once: its field of Config carries its flag (flags.py:
spellings, help, default as written, parser and check). main.py builds the command line from these,
tests/unit/test_configuration_doc.py holds docs/configuration.md to them, and a Config is valid once
constructed."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from bridge import flags
from bridge.durations import parse_duration
from bridge.flags import ConfigError, flag
from bridge.logs import LEVELS
from bridge.mapping.schema import MappingConfig
from bridge.parsing.line import Dialects
from bridge.receiving.relay import DEFAULT_PACKET_LENGTH, MAX_UDP_PAYLOAD
from bridge.series.store import DEFAULT_MAX_SERIES
from bridge.workers.cpus import AUTO_MAX_WORKERS, MAX_WORKERS

# Datagrams wait here while a scrape holds the GIL: 0.2 s of rendering 100k series at 750k lines/s
# is ~5,000 datagrams of 30 lines, ~12 MiB as the kernel counts them; 8 MiB lost 0.9 % (bench/run.py).
DEFAULT_READ_BUFFER = 32 * 1024 * 1024
DEFAULT_REAP_AFTER = 300.0
DEFAULT_REAP_INTERVAL = 60.0


def _dialect(name: str, example: str) -> Any:
    help = f"Parse {name} tags ({example}). Off: the text stays in the name or is ignored, as in statsd_exporter."
    return flag(True, help, dotted=f"--statsd.parse-{name.lower()}-tags")


@dataclass(frozen=True)
class Config:
    """Every setting, parsed and checked: constructing one raises ConfigError naming the first bad flag.
    Addresses stay as written, checked: they name their listener in logs and errors."""

    statsd_listen_udp: str = flag(
        ":9125",
        "UDP address for StatsD lines (host:port, :port, [v6]:port); empty disables.",
        dotted="--statsd.listen-udp",
        metavar="ADDR",
        check=flags.listener_address,
    )
    statsd_listen_tcp: str = flag(
        ":9125",
        "TCP address for newline-framed StatsD lines; empty disables.",
        dotted="--statsd.listen-tcp",
        metavar="ADDR",
        check=flags.listener_address,
    )
    statsd_listen_unixgram: str = flag(
        "",
        "Unix datagram socket path for DogStatsD clients.",
        shown="off",
        dotted="--statsd.listen-unixgram",
        metavar="PATH",
    )
    statsd_unixsocket_mode: int = flag(
        "755",
        "Permission bits (octal) of the unixgram socket file.",
        dotted="--statsd.unixsocket-mode",
        metavar="MODE",
        parse=flags.octal,
        check=flags.between(0, 0o777, "not an octal mode from 0 to 777"),
    )
    statsd_read_buffer: int = flag(
        DEFAULT_READ_BUFFER,
        "SO_RCVBUF of the datagram sockets; 0 keeps the kernel's default.",
        dotted="--statsd.read-buffer",
        metavar="BYTES",
        parse=flags.integer,
        check=flags.at_least(0, "0 (the kernel's default) or a size in bytes"),
    )
    statsd_reuse_port: bool = flag(
        False,
        "Bind the UDP and TCP listeners with SO_REUSEPORT, so that several bridges share one port and the kernel "
        "spreads clients over them (each client's lines stay in one bridge); scrape each, sum in PromQL.",
        dotted="--statsd.reuse-port",
    )
    statsd_workers: int = flag(  # how many receiving processes; 1 is the one process that does everything
        "1",
        "Processes that receive, parse and map lines, handing them to the one store: auto is one per CPU this "
        f"process may use (affinity and cgroup quota, at most {AUTO_MAX_WORKERS}); 1 does everything in one process.",
        dotted="--statsd.workers",
        metavar="N|auto",
        parse=flags.worker_count,
        check=flags.between(1, MAX_WORKERS, flags.WORKER_COUNTS),
    )
    statsd_utf8_names: bool = flag(
        False,
        "Keep metric names and tag keys as the client sent them (any UTF-8, dots included) instead of rewriting "
        "them to [a-zA-Z0-9_]; a scraper that asks for UTF-8 names (Prometheus 3) gets them, others the "
        "underscores form. Mapping files may then write UTF-8 names and labels.",
        dotted="--statsd.utf8-names",
    )
    web_listen_address: str = flag(
        ":9102",
        "HTTP address for the telemetry path and health endpoints.",
        dotted="--web.listen-address",
        metavar="ADDR",
        check=flags.address,
    )
    web_telemetry_path: str = flag(
        "/metrics",
        "Path under which the metrics are served.",
        dotted="--web.telemetry-path",
        metavar="PATH",
        check=flags.telemetry_path,
    )
    web_config_file: str = flag(
        "",
        "TLS, basic auth, response headers and a rate limit for the web endpoint, in exporter-toolkit's format "
        "(as node_exporter's --web.config.file); re-read when it or its certificates change.",
        dotted="--web.config.file",
        metavar="FILE",
    )
    web_read_header_timeout: float = flag(
        "10s",
        "A client must send its whole request head within this long (else 408 and close).",
        dotted="--web.read-header-timeout",
        metavar="DURATION",
        parse=parse_duration,
        check=flags.positive_duration,
    )
    mapping_config: str = flag(
        "", "statsd_exporter-style YAML mapping file.", dotted="--statsd.mapping-config", metavar="FILE"
    )
    watch_mapping_config: bool = flag(
        False,
        "Re-read the mapping file when it changes on disk (a Kubernetes ConfigMap update), as SIGHUP does; a file "
        "that fails to load keeps the old rules and is tried again until it loads or changes.",
    )
    log_level: str = flag("info", "Lowest level logged.", dotted="--log.level", choices=LEVELS)
    log_format: str = flag(
        "logfmt",
        "Log line format.",
        dotted="--log.format",
        choices=("logfmt", "json"),
    )
    # the reaper; None leaves the setting to the mapping file's `reaper:` block, then the defaults
    reap_label: str | None = flag(
        None,
        "Label naming a source (worker, host, pod); all series of a silent source are dropped.",
        shown="the mapping file's reaper.label, else off",
        metavar="NAME",
        check=flags.label_name,
    )
    reap_after: float | None = flag(
        None,
        "How long a source may stay silent before its series go (e.g. 90s, 5m).",
        shown=f"the mapping file's reaper.after, else {DEFAULT_REAP_AFTER / 60:g}m",
        metavar="DURATION",
        parse=parse_duration,
        check=flags.positive_duration,
    )
    reap_interval: float | None = flag(
        None,
        "How often the reaper looks for silent sources.",
        shown=f"the mapping file's reaper.interval, else {DEFAULT_REAP_INTERVAL:g}s",
        metavar="DURATION",
        parse=parse_duration,
        check=flags.positive_duration,
    )
    max_series: int = flag(
        DEFAULT_MAX_SERIES,
        "Cap on the series held; past it new series are refused (and counted), existing ones update. 0: no cap.",
        metavar="N",
        parse=flags.integer,
        check=flags.at_least(0, "0 (no cap) or a number of series"),
    )
    max_series_per_metric: int = flag(
        0,
        "Cap on the series of any one metric, so that one runaway tag can't use up --max-series. 0: no cap.",
        metavar="N",
        parse=flags.integer,
        check=flags.at_least(0, "0 (no cap) or a number of series"),
    )
    web_enable_lifecycle: bool = flag(
        False,
        "Enable POST /-/reload (re-read the mapping file), POST /-/quit and POST /-/clear (drop series).",
        dotted="--web.enable-lifecycle",
    )
    web_enable_openmetrics: bool = flag(
        False, "Serve OpenMetrics to scrapers that ask for it (text format 0.0.4 otherwise, as statsd_exporter)."
    )
    statsd_relay_address: tuple[str, ...] = flag(
        (),
        "Forward every received line, unchanged, to this StatsD server over UDP; may be repeated.",
        dotted="--statsd.relay.address",
        metavar="HOST:PORT",
        check=flags.relay_targets,
    )
    statsd_relay_packet_length: int = flag(
        DEFAULT_PACKET_LENGTH,
        "Largest relayed packet; lines are packed up to it.",
        dotted="--statsd.relay.packet-length",
        metavar="BYTES",
        parse=flags.integer,
        check=flags.between(2, MAX_UDP_PAYLOAD, f"must be from 2 to {MAX_UDP_PAYLOAD} bytes"),
    )
    statsd_parse_dogstatsd_tags: bool = _dialect("DogStatsD", "name:1|c|#tag:value")
    statsd_parse_influxdb_tags: bool = _dialect("InfluxDB", "name,tag=value:1|c")
    statsd_parse_librato_tags: bool = _dialect("Librato", "name#tag=value:1|c")
    statsd_parse_signalfx_tags: bool = _dialect("SignalFX", "name[tag=value]:1|c")
    # statsd_exporter's machinery flags: checked as it checks them, then logged as inert
    statsd_cache_size: int = flag(
        1000,
        "mapping cache size",
        inert="mapping results are cached per live series, with no size to set",
        dotted="--statsd.cache-size",
        metavar="N",
        parse=flags.integer,
        # statsd_exporter: "Unable to setup metric mapper cache"; 0 turns its cache off
        check=flags.at_least(0, "0 (no cache) or a positive size"),
    )
    statsd_cache_type: str = flag(
        "lru",
        "mapping cache policy",
        inert="mapping results are cached per live series, with no eviction policy to choose",
        dotted="--statsd.cache-type",
        choices=("lru", "random"),
    )
    statsd_event_queue_size: int = flag(
        10000,
        "event queue size",
        inert="events apply to the series as they are parsed; there is no queue",
        dotted="--statsd.event-queue-size",
        metavar="N",
        parse=flags.integer,
        check=flags.at_least(0, "0 or more (an unsigned integer)"),
    )
    statsd_event_flush_threshold: int = flag(
        1000,
        "event batch size",
        inert="events apply to the series as they are parsed; there is no batch",
        dotted="--statsd.event-flush-threshold",
        metavar="N",
        parse=flags.integer,
        check=flags.at_least(0, "0 or more (statsd_exporter cannot make a batch of a negative size)"),
    )
    statsd_event_flush_interval: float = flag(
        "200ms",
        "event batch delay",
        inert="events apply to the series as they are parsed; there is no flush delay",
        dotted="--statsd.event-flush-interval",
        metavar="DURATION",
        parse=parse_duration,
        check=flags.positive_duration,  # statsd_exporter's ticker refuses 0
    )
    statsd_udp_packet_queue_size: int = flag(
        10000,
        "UDP packet queue",
        inert="datagrams wait in the socket's receive buffer (--statsd-read-buffer), not a queue",
        dotted="--statsd.udp-packet-queue-size",
        metavar="N",
        parse=flags.integer,
        check=flags.at_least(0, "0 or more"),
    )
    debug_dump_fsm: str = flag(
        "",
        "glob FSM dump",
        inert="glob rules are not compiled into a state machine here; `explain` shows what matches",
        dotted="--debug.dump-fsm",
        metavar="FILE",
    )

    def __post_init__(self) -> None:
        for name, spec in FLAGS.items():
            value = getattr(self, name)
            if spec.check is not None and value is not None:
                try:
                    spec.check(value)
                except ValueError as error:
                    raise ConfigError(spec.spellings, str(error)) from None
        if not (self.statsd_listen_udp or self.statsd_listen_tcp or self.statsd_listen_unixgram):
            listeners = ", ".join(FLAGS[name].dotted for name in ("statsd_listen_udp", "statsd_listen_tcp"))
            raise _error(
                "statsd_listen_udp",
                f"every StatsD listener is disabled ({listeners} empty, no {FLAGS['statsd_listen_unixgram'].dotted}); "
                "enable at least one",
            )
        if self.watch_mapping_config and not self.mapping_config:
            raise _error(
                "watch_mapping_config", f"there is no mapping file to watch: give {FLAGS['mapping_config'].name}"
            )

    @property
    def dialects(self) -> Dialects:
        return Dialects(
            self.statsd_parse_dogstatsd_tags,
            self.statsd_parse_influxdb_tags,
            self.statsd_parse_librato_tags,
            self.statsd_parse_signalfx_tags,
        )


def _error(name: str, reason: str) -> ConfigError:
    return ConfigError(FLAGS[name].spellings, reason)


# each field's flag, by field name, in the order of --help
FLAGS = flags.flags_of(fields(Config))
INERT_FLAGS = {name: spec for name, spec in FLAGS.items() if spec.inert}


@dataclass(frozen=True)
class ReaperSettings:
    label: str  # "" turns the reaper off
    after: float
    interval: float


def reaper_settings(config: Config, mapping: MappingConfig) -> ReaperSettings:
    """Flags win over the mapping file's `reaper:` block, which wins over the defaults."""
    file = mapping.reaper
    label = config.reap_label if config.reap_label is not None else (file.label or "")
    after = config.reap_after if config.reap_after is not None else file.after
    interval = config.reap_interval if config.reap_interval is not None else file.interval
    return ReaperSettings(label, after or DEFAULT_REAP_AFTER, interval or DEFAULT_REAP_INTERVAL)
