"""Validated settings of one bridge process; main.py's flags map onto these fields one to one."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.durations import parse_duration
from bridge.logs import LEVELS
from bridge.mapping.loader import LABEL_NAME, MappingConfig
from bridge.net import parse_address
from bridge.parsing.line import Dialects
from bridge.receiving.relay import DEFAULT_PACKET_LENGTH, MAX_UDP_PAYLOAD
from bridge.series.store import DEFAULT_MAX_SERIES
from bridge.workers.cpus import MAX_WORKERS, workers_for

# Datagrams wait here while a scrape holds the GIL: 0.2 s of rendering 100k series at 750k lines/s
# is ~5,000 datagrams of 30 lines, ~12 MiB as the kernel counts them; 8 MiB lost 0.9 % (bench/run.py).
DEFAULT_READ_BUFFER = 32 * 1024 * 1024


class ConfigError(ValueError):
    """A bad flag value; `flag` names the flag."""

    def __init__(self, flag: str, message: str) -> None:
        super().__init__(f"{flag}: {message}")
        self.flag = flag


@dataclass(frozen=True)
class Config:
    statsd_listen_udp: str = ":9125"
    statsd_listen_tcp: str = ":9125"
    statsd_listen_unixgram: str = ""
    statsd_unixsocket_mode: str = "755"
    statsd_read_buffer: int = DEFAULT_READ_BUFFER
    statsd_reuse_port: bool = False
    statsd_workers: str = "1"  # receiving processes: a number, or auto (bridge/workers/cpus.py)
    web_listen_address: str = ":9102"
    web_telemetry_path: str = "/metrics"
    web_config_file: str = ""
    web_read_header_timeout: str = "10s"
    mapping_config: str = ""
    watch_mapping_config: bool = False
    log_level: str = "info"
    log_format: str = "logfmt"
    # the reaper; None leaves the setting to the mapping file's `reaper:` block, then the defaults
    reap_label: str | None = None
    reap_after: str | None = None
    reap_interval: str | None = None
    max_series: int = DEFAULT_MAX_SERIES
    max_series_per_metric: int = 0
    web_enable_lifecycle: bool = False
    web_enable_openmetrics: bool = False
    statsd_relay_address: tuple[str, ...] = ()
    statsd_relay_packet_length: int = DEFAULT_PACKET_LENGTH
    statsd_parse_dogstatsd_tags: bool = True
    statsd_parse_influxdb_tags: bool = True
    statsd_parse_librato_tags: bool = True
    statsd_parse_signalfx_tags: bool = True
    # statsd_exporter's machinery flags: checked as it checks them, then logged as inert (main.INERT_FLAGS)
    statsd_cache_size: int = 1000
    statsd_cache_type: str = "lru"
    statsd_event_queue_size: int = 10000
    statsd_event_flush_threshold: int = 1000
    statsd_event_flush_interval: str = "200ms"
    statsd_udp_packet_queue_size: int = 10000
    debug_dump_fsm: str = ""

    @property
    def workers(self) -> int:
        """How many receiving processes: 1 is the one process that does everything."""
        return workers_for(self.statsd_workers)

    @property
    def dialects(self) -> Dialects:
        return Dialects(
            self.statsd_parse_dogstatsd_tags,
            self.statsd_parse_influxdb_tags,
            self.statsd_parse_librato_tags,
            self.statsd_parse_signalfx_tags,
        )

    def validate(self) -> None:
        """Raise ConfigError for the first bad value."""
        for flag, value in (
            ("--statsd-listen-udp", self.statsd_listen_udp),
            ("--statsd-listen-tcp", self.statsd_listen_tcp),
            ("--web-listen-address", self.web_listen_address),
        ):
            if value or flag == "--web-listen-address":
                try:
                    parse_address(value)
                except ValueError as error:
                    raise ConfigError(flag, str(error)) from None
        if not self.web_telemetry_path.startswith("/"):
            raise ConfigError("--web-telemetry-path", f"{self.web_telemetry_path!r} must start with /")
        if self.web_telemetry_path in ("/-/healthy", "/-/ready", "/-/reload", "/-/quit"):
            raise ConfigError("--web-telemetry-path", f"{self.web_telemetry_path} is taken by another page")
        try:
            if parse_duration(self.web_read_header_timeout) <= 0:
                raise ValueError(f"{self.web_read_header_timeout!r} must be longer than 0")
        except ValueError as error:
            raise ConfigError("--web.read-header-timeout", str(error)) from None
        if self.statsd_read_buffer < 0:
            raise ConfigError("--statsd-read-buffer", "must be 0 (the kernel's default) or a size in bytes")
        try:
            mode = int(self.statsd_unixsocket_mode, 8)
        except ValueError:
            mode = -1
        if not 0 <= mode <= 0o777:
            raise ConfigError("--statsd-unixsocket-mode", f"{self.statsd_unixsocket_mode!r} is not an octal mode")
        if self.log_level not in LEVELS:
            raise ConfigError("--log-level", f"must be one of {', '.join(LEVELS)}")
        if self.log_format not in ("logfmt", "json"):
            raise ConfigError("--log-format", "must be logfmt or json")
        for flag, duration in (("--reap-after", self.reap_after), ("--reap-interval", self.reap_interval)):
            if duration is not None:
                try:
                    if parse_duration(duration) <= 0:
                        raise ValueError(f"{duration!r} must be longer than 0")
                except ValueError as error:
                    raise ConfigError(flag, str(error)) from None
        if self.reap_label is not None and self.reap_label and not LABEL_NAME.match(self.reap_label):
            raise ConfigError("--reap-label", f"{self.reap_label!r} is not a label name")
        if self.max_series < 0:
            raise ConfigError("--max-series", "must be 0 (no cap) or a number of series")
        if self.max_series_per_metric < 0:
            raise ConfigError("--max-series-per-metric", "must be 0 (no cap) or a number of series")
        for target in self.statsd_relay_address:
            try:
                _, port = parse_address(target)
            except ValueError as error:
                raise ConfigError("--statsd-relay-address", str(error)) from None
            if port == 0:
                raise ConfigError("--statsd-relay-address", f"{target!r}: port 0 is no place to send to")
        if not 1 < self.statsd_relay_packet_length <= MAX_UDP_PAYLOAD:
            raise ConfigError("--statsd-relay-packet-length", f"must be from 2 to {MAX_UDP_PAYLOAD} bytes")
        if self.statsd_cache_size < 0:
            # statsd_exporter: "Unable to setup metric mapper cache"; 0 turns its cache off
            raise ConfigError("--statsd.cache-size", "must be 0 (no cache) or a positive size")
        if self.statsd_cache_type not in ("lru", "random"):
            raise ConfigError("--statsd.cache-type", "must be lru or random")
        if self.statsd_event_queue_size < 0:
            raise ConfigError("--statsd.event-queue-size", "must be 0 or more (an unsigned integer)")
        if self.statsd_udp_packet_queue_size < 0:
            raise ConfigError("--statsd.udp-packet-queue-size", "must be 0 or more")
        try:
            parse_duration(self.statsd_event_flush_interval)
        except ValueError as error:
            raise ConfigError("--statsd.event-flush-interval", str(error)) from None
        if not (self.statsd_listen_udp or self.statsd_listen_tcp or self.statsd_listen_unixgram):
            raise ConfigError("--statsd-listen-udp", "every StatsD listener is disabled; enable at least one")
        if self.statsd_workers != "auto" and not (
            self.statsd_workers.isascii()
            and self.statsd_workers.isdigit()
            and 1 <= int(self.statsd_workers) <= MAX_WORKERS
        ):
            raise ConfigError(
                "--statsd-workers", f"{self.statsd_workers!r}: give auto or a number from 1 to {MAX_WORKERS}"
            )
        if self.watch_mapping_config and not self.mapping_config:
            raise ConfigError("--watch-mapping-config", "there is no mapping file to watch: give --mapping-config")


DEFAULT_REAP_AFTER = 300.0
DEFAULT_REAP_INTERVAL = 60.0


@dataclass(frozen=True)
class ReaperSettings:
    label: str  # "" turns the reaper off
    after: float
    interval: float


def reaper_settings(config: Config, mapping: MappingConfig) -> ReaperSettings:
    """Flags win over the mapping file's `reaper:` block, which wins over the defaults."""
    file = mapping.reaper
    label = config.reap_label if config.reap_label is not None else (file.label or "")
    after = parse_duration(config.reap_after) if config.reap_after is not None else file.after
    interval = parse_duration(config.reap_interval) if config.reap_interval is not None else file.interval
    return ReaperSettings(label, after or DEFAULT_REAP_AFTER, interval or DEFAULT_REAP_INTERVAL)
