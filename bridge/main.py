"""The command line. Each option maps onto one Config field; statsd_exporter's spellings are aliases."""

from __future__ import annotations

import sys

import click

from bridge import __version__
from bridge.config import DEFAULT_READ_BUFFER, Config, ConfigError
from bridge.logs import LEVELS, setup
from bridge.mapping import MappingError
from bridge.relay import DEFAULT_PACKET_LENGTH
from bridge.server import load_mapping, main
from bridge.store import DEFAULT_MAX_SERIES


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--statsd-listen-udp",
    "--statsd.listen-udp",
    default=":9125",
    show_default=True,
    metavar="ADDR",
    help="UDP address for StatsD lines (host:port, :port, [v6]:port); empty disables.",
)
@click.option(
    "--statsd-listen-tcp",
    "--statsd.listen-tcp",
    default=":9125",
    show_default=True,
    metavar="ADDR",
    help="TCP address for newline-framed StatsD lines; empty disables.",
)
@click.option(
    "--statsd-listen-unixgram",
    "--statsd.listen-unixgram",
    default="",
    metavar="PATH",
    help="Unix datagram socket path for DogStatsD clients; off unless given.",
)
@click.option(
    "--statsd-unixsocket-mode",
    "--statsd.unixsocket-mode",
    default="755",
    show_default=True,
    metavar="MODE",
    help="Permission bits (octal) of the unixgram socket file.",
)
@click.option(
    "--statsd-read-buffer",
    "--statsd.read-buffer",
    default=DEFAULT_READ_BUFFER,
    show_default=True,
    type=int,
    metavar="BYTES",
    help="SO_RCVBUF of the datagram sockets; 0 keeps the kernel's default.",
)
@click.option(
    "--web-listen-address",
    "--web.listen-address",
    default=":9102",
    show_default=True,
    metavar="ADDR",
    help="HTTP address for the telemetry path and health endpoints.",
)
@click.option(
    "--web-telemetry-path",
    "--web.telemetry-path",
    default="/metrics",
    show_default=True,
    metavar="PATH",
    help="Path under which the metrics are served.",
)
@click.option(
    "--mapping-config",
    "--statsd.mapping-config",
    default="",
    metavar="FILE",
    help="statsd_exporter-style YAML mapping file.",
)
@click.option("--check-config", is_flag=True, help="Validate flags and the mapping file, then exit.")
@click.option(
    "--log-level",
    "--log.level",
    default="info",
    show_default=True,
    type=click.Choice(LEVELS),
    help="Lowest level logged.",
)
@click.option(
    "--log-format",
    "--log.format",
    default="logfmt",
    show_default=True,
    type=click.Choice(["logfmt", "json"]),
    help="Log line format.",
)
@click.option(
    "--reap-label",
    default=None,
    metavar="NAME",
    help="Label naming a source (worker, host, pod); all series of a silent source are dropped. "
    "Default: the mapping file's reaper block, else off.",
)
@click.option(
    "--reap-after",
    default=None,
    metavar="DURATION",
    help="How long a source may stay silent before its series go (e.g. 90s, 5m).  [default: 5m]",
)
@click.option(
    "--reap-interval",
    default=None,
    metavar="DURATION",
    help="How often the reaper looks for silent sources.  [default: 60s]",
)
@click.option(
    "--max-series",
    default=DEFAULT_MAX_SERIES,
    show_default=True,
    type=int,
    metavar="N",
    help="Cap on the series held; past it new series are refused (and counted), existing ones update. 0: no cap.",
)
@click.option(
    "--web-enable-lifecycle",
    "--web.enable-lifecycle",
    is_flag=True,
    help="Enable POST /-/reload (re-read the mapping file) and POST /-/quit.",
)
@click.option(
    "--web-enable-openmetrics",
    is_flag=True,
    help="Serve OpenMetrics to scrapers that ask for it (text format 0.0.4 otherwise, as statsd_exporter).",
)
@click.option(
    "--statsd-relay-address",
    "--statsd.relay.address",
    multiple=True,
    metavar="HOST:PORT",
    help="Forward every received line, unchanged, to this StatsD server over UDP; may be repeated.",
)
@click.option(
    "--statsd-relay-packet-length",
    "--statsd.relay.packet-length",
    default=DEFAULT_PACKET_LENGTH,
    show_default=True,
    type=int,
    metavar="BYTES",
    help="Largest relayed packet; lines are packed up to it.",
)
@click.version_option(__version__, "--version", prog_name="statsd-bridge")
def cli(check_config: bool, **options: object) -> None:
    """Receive StatsD / DogStatsD lines and serve them to Prometheus."""
    config = Config(**options)  # type: ignore[arg-type]
    try:
        config.validate()
    except ConfigError as error:
        raise click.BadParameter(str(error).split(": ", 1)[1], param_hint=f"'{error.flag}'") from None
    setup(config.log_level, config.log_format)
    try:
        mapping = load_mapping(config)
    except MappingError as error:
        click.echo(f"statsd-bridge: bad mapping file: {error}", err=True)
        sys.exit(1)
    if check_config:
        click.echo(f"configuration OK ({len(mapping.rules)} mapping rules)")
        return
    sys.exit(main(config, mapping))
