"""The command line. Each option maps onto one Config field; statsd_exporter's spellings are aliases."""

from __future__ import annotations

import json
import logging
import platform
import sys
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any, TypeVar

import click

from bridge import __version__
from bridge.config import DEFAULT_REAP_AFTER, DEFAULT_REAP_INTERVAL, Config, ConfigError
from bridge.daemon import compile_mapping, main
from bridge.explain import explain_lines, format_text
from bridge.logs import LEVELS, setup
from bridge.mapping.lint import ERROR, WARNING, has_errors, lint
from bridge.mapping.loader import MappingConfig, MappingError, load_mapping_file
from bridge.web import tls, web_config

F = TypeVar("F", bound=Callable[..., Any])  # a click command, as its decorators take and give it

DEFAULTS = Config()  # each option's default is its Config field's

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def tag_dialect_option(dialect: str, what: str) -> Callable[[F], F]:
    """--[no-]statsd.parse-<dialect>-tags, as statsd_exporter spells them (kingpin's --no- form included)."""
    return click.option(
        f"--statsd-parse-{dialect}-tags/--no-statsd-parse-{dialect}-tags",
        f"--statsd.parse-{dialect}-tags/--no-statsd.parse-{dialect}-tags",
        default=True,
        show_default=True,
        help=f"Parse {what} Off: the text stays in the name or is ignored, as in statsd_exporter.",
    )


# statsd_exporter flags that tune machinery the bridge doesn't have, and why each changes nothing
INERT_FLAGS = {
    "statsd_cache_size": "mapping results are cached per live series, with no size to set",
    "statsd_cache_type": "mapping results are cached per live series, with no eviction policy to choose",
    "statsd_event_queue_size": "events apply to the series as they are parsed; there is no queue",
    "statsd_event_flush_threshold": "events apply to the series as they are parsed; there is no batch",
    "statsd_event_flush_interval": "events apply to the series as they are parsed; there is no flush delay",
    "statsd_udp_packet_queue_size": "datagrams wait in the socket's receive buffer (--statsd-read-buffer), not a queue",
    "debug_dump_fsm": "glob rules are not compiled into a state machine here; `explain` shows what matches",
}


def inert_option(dotted: str, kind: Any, metavar: str, what: str) -> Callable[[F], F]:
    """A statsd_exporter flag for machinery the bridge doesn't have: both spellings, checked, inert."""
    default = getattr(DEFAULTS, dotted.replace(".", "_").replace("-", "_"))
    reason = INERT_FLAGS[dotted.replace(".", "_").replace("-", "_")]
    return click.option(
        "--" + dotted.replace(".", "-"),
        "--" + dotted,
        default=default,
        show_default=default != "",
        type=kind,
        metavar=metavar or None,
        help=f"statsd_exporter's {what}; accepted and checked, no effect here: {reason}.",
    )


def inert_flags(context: click.Context) -> list[tuple[str, str]]:
    """(flag, reason) for each of INERT_FLAGS given on the command line, to say once at start-up."""
    given = []
    for parameter in context.command.params:
        source = context.get_parameter_source(parameter.name) if parameter.name in INERT_FLAGS else None
        if source in (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT):
            given.append((parameter.opts[-1], INERT_FLAGS[parameter.name]))
    return given


@click.group(invoke_without_command=True, context_settings=CONTEXT)
@click.option(
    "--statsd-listen-udp",
    "--statsd.listen-udp",
    default=DEFAULTS.statsd_listen_udp,
    show_default=True,
    metavar="ADDR",
    help="UDP address for StatsD lines (host:port, :port, [v6]:port); empty disables.",
)
@click.option(
    "--statsd-listen-tcp",
    "--statsd.listen-tcp",
    default=DEFAULTS.statsd_listen_tcp,
    show_default=True,
    metavar="ADDR",
    help="TCP address for newline-framed StatsD lines; empty disables.",
)
@click.option(
    "--statsd-listen-unixgram",
    "--statsd.listen-unixgram",
    default=DEFAULTS.statsd_listen_unixgram,
    metavar="PATH",
    help="Unix datagram socket path for DogStatsD clients; off unless given.",
)
@click.option(
    "--statsd-unixsocket-mode",
    "--statsd.unixsocket-mode",
    default=DEFAULTS.statsd_unixsocket_mode,
    show_default=True,
    metavar="MODE",
    help="Permission bits (octal) of the unixgram socket file.",
)
@click.option(
    "--statsd-read-buffer",
    "--statsd.read-buffer",
    default=DEFAULTS.statsd_read_buffer,
    show_default=True,
    type=int,
    metavar="BYTES",
    help="SO_RCVBUF of the datagram sockets; 0 keeps the kernel's default.",
)
@click.option(
    "--statsd-reuse-port/--no-statsd-reuse-port",
    "--statsd.reuse-port/--no-statsd.reuse-port",
    default=DEFAULTS.statsd_reuse_port,
    show_default=True,
    help="Bind the UDP and TCP listeners with SO_REUSEPORT, so that several bridges share one port and the "
    "kernel spreads clients over them (each client's lines stay in one bridge); scrape each, sum in PromQL.",
)
@click.option(
    "--statsd-workers",
    "--statsd.workers",
    default=DEFAULTS.statsd_workers,
    show_default=True,
    metavar="N|auto",
    help="Processes that receive, parse and map lines, handing them to the one store: auto is one per CPU "
    "this process may use (affinity and cgroup quota, at most 8); 1 does everything in one process.",
)
@click.option(
    "--web-listen-address",
    "--web.listen-address",
    default=DEFAULTS.web_listen_address,
    show_default=True,
    metavar="ADDR",
    help="HTTP address for the telemetry path and health endpoints.",
)
@click.option(
    "--web-telemetry-path",
    "--web.telemetry-path",
    default=DEFAULTS.web_telemetry_path,
    show_default=True,
    metavar="PATH",
    help="Path under which the metrics are served.",
)
@click.option(
    "--web-config-file",
    "--web.config.file",
    default=DEFAULTS.web_config_file,
    metavar="FILE",
    help="TLS, basic auth, response headers and a rate limit for the web endpoint, in exporter-toolkit's "
    "format (as node_exporter's --web.config.file); re-read when it or its certificates change.",
)
@click.option(
    "--web-read-header-timeout",
    "--web.read-header-timeout",
    default=DEFAULTS.web_read_header_timeout,
    show_default=True,
    metavar="DURATION",
    help="A client must send its whole request head within this long (else 408 and close).",
)
@click.option(
    "--mapping-config",
    "--statsd.mapping-config",
    default=DEFAULTS.mapping_config,
    metavar="FILE",
    help="statsd_exporter-style YAML mapping file.",
)
@click.option(
    "--watch-mapping-config/--no-watch-mapping-config",
    default=DEFAULTS.watch_mapping_config,
    show_default=True,
    help="Re-read the mapping file when it changes on disk (a Kubernetes ConfigMap update), as SIGHUP does; a "
    "file that fails to load keeps the old rules and is tried again until it loads or changes.",
)
@click.option(
    "--check-config/--no-check-config",
    help="Validate flags, load and lint the mapping file, then exit: 0 for whatever statsd_exporter accepts, "
    "lint findings printed as warnings.",
)
@click.option(
    "--lint-strict", is_flag=True, help="With --check-config: exit 1 when the lint finds errors (CI for mapping files)."
)
@click.option(
    "--log-level",
    "--log.level",
    default=DEFAULTS.log_level,
    show_default=True,
    type=click.Choice(LEVELS),
    help="Lowest level logged.",
)
@click.option(
    "--log-format",
    "--log.format",
    default=DEFAULTS.log_format,
    show_default=True,
    type=click.Choice(["logfmt", "json"]),
    help="Log line format.",
)
@click.option(
    "--reap-label",
    default=DEFAULTS.reap_label,
    metavar="NAME",
    help="Label naming a source (worker, host, pod); all series of a silent source are dropped. "
    "Default: the mapping file's reaper block, else off.",
)
@click.option(
    "--reap-after",
    default=DEFAULTS.reap_after,
    metavar="DURATION",
    help="How long a source may stay silent before its series go (e.g. 90s, 5m).  "
    f"[default: {DEFAULT_REAP_AFTER / 60:g}m]",
)
@click.option(
    "--reap-interval",
    default=DEFAULTS.reap_interval,
    metavar="DURATION",
    help=f"How often the reaper looks for silent sources.  [default: {DEFAULT_REAP_INTERVAL:g}s]",
)
@click.option(
    "--max-series",
    default=DEFAULTS.max_series,
    show_default=True,
    type=int,
    metavar="N",
    help="Cap on the series held; past it new series are refused (and counted), existing ones update. 0: no cap.",
)
@click.option(
    "--max-series-per-metric",
    default=DEFAULTS.max_series_per_metric,
    show_default=True,
    type=int,
    metavar="N",
    help="Cap on the series of any one metric, so that one runaway tag can't use up --max-series. 0: no cap.",
)
@click.option(
    "--web-enable-lifecycle/--no-web-enable-lifecycle",
    "--web.enable-lifecycle/--no-web.enable-lifecycle",
    help="Enable POST /-/reload (re-read the mapping file) and POST /-/quit.",
)
@click.option(
    "--web-enable-openmetrics/--no-web-enable-openmetrics",
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
    default=DEFAULTS.statsd_relay_packet_length,
    show_default=True,
    type=int,
    metavar="BYTES",
    help="Largest relayed packet; lines are packed up to it.",
)
@tag_dialect_option("dogstatsd", "DogStatsD tags (name:1|c|#tag:value).")
@tag_dialect_option("influxdb", "InfluxDB tags (name,tag=value:1|c).")
@tag_dialect_option("librato", "Librato tags (name#tag=value:1|c).")
@tag_dialect_option("signalfx", "SignalFX tags (name[tag=value]:1|c).")
@inert_option("statsd.cache-size", int, "N", "mapping cache size")
@inert_option("statsd.cache-type", click.Choice(["lru", "random"]), "", "mapping cache policy")
@inert_option("statsd.event-queue-size", int, "N", "event queue size")
@inert_option("statsd.event-flush-threshold", int, "N", "event batch size")
@inert_option("statsd.event-flush-interval", str, "DURATION", "event batch delay")
@inert_option("statsd.udp-packet-queue-size", int, "N", "UDP packet queue")
@inert_option("debug.dump-fsm", str, "FILE", "glob FSM dump")
@click.version_option(
    __version__,
    "--version",
    prog_name="statsd-bridge",
    message=f"%(prog)s %(version)s (Python {platform.python_version()}, {platform.python_implementation()})",
)
@click.pass_context
def cli(context: click.Context, check_config: bool, lint_strict: bool, **options: object) -> None:
    """Receive StatsD / DogStatsD lines and serve them to Prometheus.

    With no command, runs the bridge. `statsd-bridge explain --help` for the line explainer.
    """
    if context.invoked_subcommand is not None:
        return
    config = Config(**options)  # type: ignore[arg-type]
    try:
        config.validate()
    except ConfigError as error:
        # name the option by both its spellings, whichever the command line used
        spellings = next((p.opts for p in context.command.params if error.flag in p.opts), [error.flag])
        hint = " / ".join(f"'{spelling}'" for spelling in spellings)
        raise click.BadParameter(str(error).split(": ", 1)[1], param_hint=hint) from None
    setup(config.log_level, config.log_format)
    for flag, reason in inert_flags(context):
        fields = {"flag": flag, "reason": reason}
        logging.getLogger("bridge.main").info("flag has no effect here", extra={"fields": fields})
    try:
        mapping_text, mapping = compile_mapping(config)
    except MappingError as error:
        click.echo(f"statsd-bridge: bad mapping file: {error}", err=True)
        sys.exit(1)
    try:
        web = tls.load(config.web_config_file) if config.web_config_file else tls.Loaded(web_config.WebConfig())
    except web_config.WebConfigError as error:
        click.echo(f"statsd-bridge: bad web config file {config.web_config_file}: {error}", err=True)
        sys.exit(1)
    if check_config:
        ok = f"configuration OK ({len(mapping.rules)} mapping rules"
        if config.web_config_file:
            users = len(web.config.users)
            tls_on = "TLS" if web.context else "no TLS"
            ok = f"web config OK ({tls_on}, {users} basic auth user{'s' * (users != 1)})\n" + ok
        sys.exit(report_lint(mapping, ok, lint_strict))
    sys.exit(main(config, mapping, web, mapping_text))


def report_lint(mapping: MappingConfig, ok: str, strict: bool) -> int:
    """Print the lint's findings (to stderr) and a verdict; the exit code: 1 for errors, and only when strict.

    Without --lint-strict every finding is a warning: statsd_exporter accepts these files, and a
    pipeline that runs --check-config on them must keep passing after the swap.
    """
    findings = lint(mapping)
    if not strict:
        findings = [replace(finding, severity=WARNING) for finding in findings]
    for finding in findings:
        click.echo(str(finding), err=True)
    errors = sum(finding.severity == ERROR for finding in findings)
    if errors:
        click.echo(f"statsd-bridge: mapping file has {errors} error(s)", err=True)
        return 1
    warnings = len(findings)
    click.echo(ok + (f", {warnings} lint warning{'s' if warnings != 1 else ''})" if warnings else ")"))
    return 0


@cli.command(context_settings=CONTEXT)
@click.argument("lines", nargs=-1)
@click.option(
    "--mapping-config",
    "--statsd.mapping-config",
    default="",
    metavar="FILE",
    help="The mapping file to explain against; none: every line is unmapped.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people, json for scripts.",
)
@click.option("--lint", "run_lint", is_flag=True, help="Lint the mapping file too; exit 1 when it has errors.")
def explain(lines: tuple[str, ...], mapping_config: str, output_format: str, run_lint: bool) -> None:
    """Show what the bridge makes of StatsD LINES (arguments, or one per line on stdin).

    For each line: how it parses, which rule matches, and which series it touches and how, or why
    it is rejected. Runs the daemon's own parser, mapper and store; nothing listens.
    """
    logging.disable(logging.CRITICAL)  # the daemon's warnings about rejected lines: the explanation says it
    try:
        mapping = load_mapping_file(mapping_config) if mapping_config else MappingConfig()
    except MappingError as error:
        click.echo(f"statsd-bridge: bad mapping file: {error}", err=True)
        sys.exit(1)
    if not lines and not run_lint:
        stdin = sys.stdin.buffer
        if stdin.isatty():
            raise click.UsageError("give StatsD lines as arguments or on stdin")
        # bytes that are not UTF-8 ride along as surrogates, so their line is explained (as rejected)
        lines = tuple(line.rstrip(b"\r\n").decode("utf-8", "surrogateescape") for line in stdin)
    findings = lint(mapping) if run_lint else []
    results = explain_lines(lines, mapping)
    if output_format == "json":
        document: dict = {"mapping": mapping_config or None, "lines": results}
        if run_lint:
            document["lint"] = [asdict(finding) for finding in findings]
        click.echo(json.dumps(document, indent=2))
    else:
        if run_lint:
            for finding in findings:
                click.echo(str(finding))
            click.echo(f"lint: {len(findings)} finding(s)" if findings else "lint: no findings")
        if results:
            click.echo("\n\n".join(format_text(result) for result in results))
    sys.exit(1 if has_errors(findings) else 0)
